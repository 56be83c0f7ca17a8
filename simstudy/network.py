"""A multilayer perceptron for binary classification in JAX, trained by full-batch AdamW, many
trainings at once (AUTHORS_DESIGNS.md section E).

The network. With layer widths d -> h_1 -> ... -> h_L -> 1 and ReLU activations,

    a_0 = x,  a_l = relu(a_{l-1} W_l + b_l) (l = 1..L),  eta(x) = a_L W_{L+1} + b_{L+1},

P(Y = 1 | x) = sigmoid(eta(x)). ``hidden`` gives a_L, the last hidden layer: the feature map on
which the section 4 diagnostics run (``HiddenLayer``).

The loss of one training. Rows (x_i, y_i) with weights w_i >= 0, sum_i w_i > 0:

    L(params) = sum_i w_i l(eta(x_i), y_i) / sum_i w_i,  l(eta, y) = log(1 + e^eta) - y eta,

the weighted binary cross-entropy normalised by the sum of the weights. A row of weight 0 has no
effect at all (its gradient term is multiplied by 0), so a data set padded with zero-weight rows,
or a synthetic pool whose rows beyond a candidate size are switched off by 0/1 weights (the
nested prefixes of ``simstudy.engine.prefix_weights``), trains exactly as the unpadded one; and
multiplying every weight by one constant changes nothing.

The optimiser. ``epochs`` full-batch steps of AdamW (optax.adamw: b1 = 0.9, b2 = 0.999,
eps = 1e-8, decoupled weight decay ``weight_decay`` applied to every weight and bias) at the
constant ``learning_rate``. Initial weights: every W_l and b_l uniform on
(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in = the layer's input width), drawn by numpy from the
rng given, so that several trainings can start from the same weights (the design's common
initial weights for every method of a replication).

Vectorisation. ``train`` runs B trainings, each its own (X_b, y_b, w_b) of N rows, as ONE
jitted program: the epochs are a ``lax.scan`` and the trainings a ``vmap``, traced once per
(architecture, epochs, chunk, N, d) and reused for every later call of those shapes
(``TRACES`` counts the traces). A long batch runs in chunks of ``chunk`` trainings, the last
padded with copies of the first, so every call has one shape.

Precision: float32. The networks run in float32 although simstudy switches JAX to float64
(simstudy/__init__.py): training is an iterative optimisation whose error is not rounding, and
float32 halves the memory and trains faster (benchmarks/README.md). Results are deterministic:
the same inputs on the same machine give the same bits (tests/test_network.py checks it); they
may differ in the last bits across machines or XLA versions, and between a training run in a
batch and alone (a vmapped product may round differently; AdamW's normalised steps can grow such
differences in weights whose gradients are near zero, so the tests compare at 1e-5).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

import simstudy  # noqa: F401  (float64 is the default; the networks ask for float32 explicitly)
from simstudy.fitting import padded_size

DTYPE = np.float32
"""The networks' precision (module docstring)."""

CHUNK = 16
"""Most trainings per call of the compiled program (module docstring)."""

TRACES = {"train": 0, "logits": 0}
"""How many times each jitted program was traced (a test counts retraces)."""


@dataclass(frozen=True)
class MLPSpec:
    """The architecture and the optimiser of a network (module docstring).

    Parameters
    ----------
    hidden : tuple of int, default (64, 32)
        Widths of the hidden layers, each >= 1, at least one layer.
    epochs : int, default 120
        Full-batch AdamW steps, >= 1.
    learning_rate : float, default 2e-3
        AdamW's learning rate, > 0.
    weight_decay : float, default 1e-3
        AdamW's decoupled weight decay, >= 0.

    Raises
    ------
    ValueError
        If a field is out of range.
    """

    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 120
    learning_rate: float = 2e-3
    weight_decay: float = 1e-3

    def __post_init__(self):
        hidden = tuple(self.hidden)
        if not hidden or not all(_is_int(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of integers >= 1, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        if not (_is_int(self.epochs) and self.epochs >= 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


Params = list  # [(W_1, b_1), ..., (W_{L+1}, b_{L+1})]


def layer_sizes(spec: MLPSpec, d: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each layer of a network on d inputs, the output layer last."""
    widths = (int(d), *spec.hidden, 1)
    return list(zip(widths[:-1], widths[1:]))


def init_params(spec: MLPSpec, d: int, rng: np.random.Generator) -> Params:
    """Initial weights: W_l and b_l uniform on (-1/sqrt(fan_in), 1/sqrt(fan_in)), float32.

    Parameters
    ----------
    spec : MLPSpec
        The architecture.
    d : int
        Input width.
    rng : numpy.random.Generator
        The source (layer by layer, W before b).

    Returns
    -------
    list of (ndarray, ndarray)
        (W_l of shape (fan_in, fan_out), b_l of shape (fan_out,)) per layer, the output layer
        last with fan_out = 1.
    """
    params = []
    for fan_in, fan_out in layer_sizes(spec, d):
        bound = 1.0 / math.sqrt(fan_in)
        W = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(DTYPE)
        b = rng.uniform(-bound, bound, size=fan_out).astype(DTYPE)
        params.append((W, b))
    return params


def hidden(params: Params, X):
    """a_L, the last hidden layer's activations (..., n, h_L) (module docstring); works on numpy
    and JAX arrays alike."""
    a = X
    for W, b in params[:-1]:
        a = jnp.maximum(a @ W + b, 0.0) if isinstance(a, jax.Array) else np.maximum(a @ W + b, 0.0)
    return a


def logits(params: Params, X):
    """eta(x) = a_L W_{L+1} + b_{L+1} for rows X (..., n, d): shape (..., n)."""
    W, b = params[-1]
    return (hidden(params, X) @ W + b)[..., 0]


def row_losses(eta, y):
    """l(eta, y) = log(1 + e^eta) - y eta, the binary cross-entropy of sigmoid(eta) (stable)."""
    return jnp.logaddexp(0.0, eta) - y * eta


def weighted_loss(params: Params, X, y, w):
    """L = sum_i w_i l(eta(x_i), y_i) / sum_i w_i (module docstring)."""
    return jnp.sum(w * row_losses(logits(params, X), y)) / jnp.sum(w)


def _train_one(spec: MLPSpec, params0: Params, X, y, w):
    """One training: ``spec.epochs`` AdamW steps on L from params0; (params, loss per epoch)."""
    TRACES["train"] += 1  # runs only while JAX traces
    optimiser = optax.adamw(spec.learning_rate, weight_decay=spec.weight_decay)

    def epoch(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(weighted_loss)(params, X, y, w)
        updates, state = optimiser.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    # optax's bias correction raises a float to its int32 step count, which JAX's strict
    # promotion (the test suite's setting) refuses; standard promotion keeps float32 here
    with jax.numpy_dtype_promotion("standard"):
        (params, _), losses = jax.lax.scan(epoch, (params0, optimiser.init(params0)), None, length=spec.epochs)
    return params, losses


@functools.lru_cache(maxsize=8)
def batched_trainer(spec: MLPSpec):
    """The jitted program of B trainings from shared initial weights: (params0, X (B, N, d),
    y (B, N), w (B, N)) -> (params with a leading B axis, losses (B, epochs))."""
    return jax.jit(jax.vmap(functools.partial(_train_one, spec), in_axes=(None, 0, 0, 0)))


@functools.lru_cache(maxsize=8)
def single_trainer(spec: MLPSpec):
    """The jitted program of one training: (params0, X (N, d), y (N,), w (N,)) -> (params,
    losses (epochs,)); the reference that ``batched_trainer`` must reproduce."""
    return jax.jit(functools.partial(_train_one, spec))


def _logits_traced(params, X):
    TRACES["logits"] += 1
    return logits(params, X)


_batched_logits = jax.jit(jax.vmap(_logits_traced, in_axes=(0, 0)))


def as_device(params: Params) -> Params:
    """Params as float32 JAX arrays (what the jitted programs take)."""
    return [(jnp.asarray(W, dtype=DTYPE), jnp.asarray(b, dtype=DTYPE)) for W, b in params]


def _checked_batch(X, y, w):
    X = np.asarray(X, dtype=DTYPE)
    y = np.asarray(y, dtype=DTYPE)
    w = np.asarray(w, dtype=DTYPE)
    if X.ndim != 3 or y.shape != X.shape[:2] or w.shape != X.shape[:2]:
        raise ValueError(f"X must be (B, N, d) with y and w (B, N), got {X.shape}, {y.shape}, {w.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise ValueError("X and w must be finite, w >= 0")
    if not np.all(w.sum(axis=1) > 0):
        raise ValueError("every training needs a positive sum of weights")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold the labels 0 and 1 only")
    return X, y, w


def train(spec: MLPSpec, params0: Params, X, y, w, chunk: int = 64) -> tuple[Params, np.ndarray]:
    """B trainings from the same initial weights, ``chunk`` at a time in one jitted program.

    Training b minimises sum_i w[b, i] l(eta(X[b, i]), y[b, i]) / sum_i w[b, i] by
    ``spec.epochs`` full-batch AdamW steps from ``params0`` (module docstring).

    Parameters
    ----------
    spec : MLPSpec
        Architecture and optimiser.
    params0 : list of (W, b)
        The shared initial weights (``init_params``).
    X : array_like of shape (B, N, d)
        Each training's rows (pad with zero-weight rows to a common N).
    y : array_like of shape (B, N)
        Labels 0/1.
    w : array_like of shape (B, N)
        Row weights >= 0, each training's summing to > 0.
    chunk : int, default 64
        Trainings per call of the compiled program; a last partial chunk is padded with copies
        of the first training (discarded), so every call has the same shapes.

    Returns
    -------
    params : list of (ndarray, ndarray)
        The trained weights, each with a leading axis of length B (float32).
    losses : ndarray of float32, shape (B, epochs)
        L at the start of each epoch (before its step).

    Raises
    ------
    ValueError
        If the shapes disagree, a value is not finite, a weight is negative, a training's
        weights sum to 0, or a label is not 0/1.
    """
    X, y, w = _checked_batch(X, y, w)
    B = X.shape[0]
    chunk = max(1, min(int(chunk), B))
    program = batched_trainer(spec)
    start = as_device(params0)
    pieces, losses = [], []
    for lo in range(0, B, chunk):
        idx = np.arange(lo, lo + chunk)
        idx[idx >= B] = 0  # padding: copies of training 0, dropped below
        out, loss = program(start, X[idx], y[idx], w[idx])
        keep = min(chunk, B - lo)
        pieces.append(jax.tree_util.tree_map(lambda a: np.asarray(a)[:keep], out))
        losses.append(np.asarray(loss)[:keep])
    params = [tuple(np.concatenate([p[layer][k] for p in pieces]) for k in range(2)) for layer in range(len(start))]
    return params, np.concatenate(losses)


def train_grid(spec: MLPSpec, params0: Params, X, y, W, chunk: int = 16) -> tuple[Params, np.ndarray]:
    """S data sets with G weight vectors each (e.g. validation splits x candidate sizes, the
    candidates' synthetic prefixes switched on by 0/1 weights), all trained by ``train``.

    Parameters
    ----------
    spec, params0, chunk
        As for ``train``.
    X : array_like of shape (S, N, d)
        The data sets' rows (zero-weight padding allowed).
    y : array_like of shape (S, N)
        Labels 0/1.
    W : array_like of shape (S, G, N)
        Row weights of each candidate.

    Returns
    -------
    params : list of (ndarray, ndarray)
        Trained weights with a leading axis of length S G, training s G + g for data set s and
        weights g.
    losses : ndarray of shape (S, G, epochs)
        The training loss at each epoch.
    """
    W = np.asarray(W)
    S, G, N = W.shape
    params, losses = train(spec, params0, np.repeat(X, G, axis=0), np.repeat(y, G, axis=0), W.reshape(S * G, N), chunk)
    return params, losses.reshape(S, G, -1)


def batch_logits(params: Params, X) -> np.ndarray:
    """eta of B networks (params with a leading B axis) on their own rows X (B, n, d): (B, n)."""
    return np.asarray(_batched_logits(as_device(params), jnp.asarray(X, dtype=DTYPE)))


def take(params: Params, b: int) -> Params:
    """Network b of a batch of trained weights (``train``'s output)."""
    return [(W[b], bias[b]) for W, bias in params]


def balanced_log_loss(eta, y) -> np.ndarray:
    """(1/2) mean_{y=0} l(eta, 0) + (1/2) mean_{y=1} l(eta, 1) along the last axis, in float64.

    Parameters
    ----------
    eta : array_like of shape (..., n)
        Logits.
    y : array_like of shape (n,)
        Labels 0/1, both present.

    Returns
    -------
    ndarray of float64, shape (...)
        The balanced log-loss.
    """
    eta = np.asarray(eta, dtype=np.float64)
    y = np.asarray(y)
    loss = np.logaddexp(0.0, eta) - y * eta
    return 0.5 * loss[..., y == 0].mean(axis=-1) + 0.5 * loss[..., y == 1].mean(axis=-1)


@dataclass(frozen=True, eq=False)
class HiddenLayer:
    """The last hidden layer of a fitted network as a fixed feature map phi(x) = a_L(x)[units].

    Usable as ``selection.FeatureGLM(feature_map=...)``: numpy rows (..., n, d) in, float64
    features (..., n, len(units)) out, computed in float64 from the float32 weights. ``mean`` and
    ``scale`` standardise the rows first (x - mean) / scale when given.

    Parameters
    ----------
    params : list of (W, b)
        The network's weights (the output layer is not used).
    units : tuple of int
        The hidden units kept.
    mean, scale : ndarray of shape (d,), optional
        The standardisation of the raw rows.
    """

    params: Params
    units: tuple[int, ...]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def of(cls, params: Params, X_alive, mean=None, scale=None, tol: float = 1e-6) -> HiddenLayer:
        """The map over the units that are not constant on the rows ``X_alive`` (n, d): a dead
        ReLU unit is a constant column, collinear with the intercept, and would make the
        diagnostics' Hessian and Wald covariance singular. Constant means an SD at most ``tol``
        times the largest unit SD."""
        full = cls(params, tuple(range(params[-1][0].shape[0])), mean, scale)
        sd = full(np.asarray(X_alive)).std(axis=0)
        return cls(params, tuple(int(u) for u in np.flatnonzero(sd > tol * sd.max())), mean, scale)

    def __call__(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.mean is not None:
            X = (X - self.mean) / self.scale
        params64 = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in self.params]
        return hidden(params64, X)[..., list(self.units)]


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """The network of the module docstring as a scikit-learn classifier.

    ``fit(X, y, sample_weight)`` standardises the columns ((x - mean_) / scale_, mean and SD of
    the rows given, unweighted; SD 0 taken as 1) when ``standardise`` is true, then trains one
    network on the weighted loss L from ``init`` or from weights drawn with ``random_state``.

    Parameters
    ----------
    hidden : tuple of int, default (64, 32)
        Hidden widths.
    epochs : int, default 120
        AdamW steps.
    learning_rate : float, default 2e-3
        AdamW's learning rate.
    weight_decay : float, default 1e-3
        AdamW's weight decay.
    standardise : bool, default True
        Whether fit learns and applies the column standardisation.
    random_state : None, int or numpy.random.SeedSequence, default None
        Seeds the initial weights (``init_params``) when ``init`` is None.
    init : list of (W, b), optional
        Explicit initial weights (e.g. shared by several estimators).

    Attributes
    ----------
    params_ : list of (ndarray, ndarray)
        The trained weights (float32).
    loss_curve_ : ndarray of shape (epochs,)
        L at each epoch.
    mean_, scale_ : ndarray of shape (d,)
        The standardisation (0 and 1 when ``standardise`` is false).
    feature_map_ : HiddenLayer
        The last hidden layer on raw rows (standardised inside), all units.
    classes_ : ndarray
        array([0, 1]).
    n_features_in_ : int
        d.
    """

    def __init__(
        self,
        hidden=(64, 32),
        epochs=120,
        learning_rate=2e-3,
        weight_decay=1e-3,
        standardise=True,
        random_state=None,
        init=None,
    ):
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.standardise = standardise
        self.random_state = random_state
        self.init = init

    def _spec(self) -> MLPSpec:
        return MLPSpec(tuple(self.hidden), self.epochs, float(self.learning_rate), float(self.weight_decay))

    def initial_params(self, d: int) -> Params:
        """The initial weights of a fit on d columns: ``init``, or drawn with ``random_state``
        (the same on every call, so batched trainings of a selector start where ``fit`` does)."""
        spec = self._spec()
        if self.init is None:
            return init_params(spec, d, np.random.default_rng(self.random_state))
        expected = [((i, o), (o,)) for i, o in layer_sizes(spec, d)]
        try:
            shapes = [(np.shape(W), np.shape(b)) for W, b in self.init]
        except (TypeError, ValueError):
            shapes = None
        if shapes != expected:
            raise ValueError(
                f"init must be [(W, b) per layer] with shapes {expected} for {d} input columns and "
                f"hidden={tuple(spec.hidden)}, got {shapes if shapes is not None else type(self.init).__name__}"
            )
        return self.init

    def fit(self, X, y, sample_weight=None):
        """Train one network (class docstring).

        Parameters
        ----------
        X : array_like of shape (n, d)
            Rows, finite.
        y : array_like of shape (n,)
            Labels 0/1.
        sample_weight : array_like of shape (n,), optional
            Row weights >= 0 with a positive sum (default all 1).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a parameter is out of range, or X, y or the weights are invalid.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}")
        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        spec = self._spec()
        self.mean_, self.scale_ = self._standardisation(X)
        Z = (X - self.mean_) / self.scale_
        params, losses = train(spec, self.initial_params(X.shape[1]), Z[None], y[None], w[None], chunk=1)
        self.params_ = take(params, 0)
        self.loss_curve_ = losses[0]
        self.feature_map_ = HiddenLayer(self.params_, tuple(range(spec.hidden[-1])), self.mean_, self.scale_)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def _standardisation(self, X) -> tuple[np.ndarray, np.ndarray]:
        if not self.standardise:
            return np.zeros(X.shape[1]), np.ones(X.shape[1])
        sd = X.std(axis=0)
        return X.mean(axis=0), np.where(sd > 0, sd, 1.0)

    def candidate_logits(self, blocks, held) -> list[np.ndarray]:
        """The held-out logits of many fits at once, each as ``fit`` would train it.

        Block s is (X_s, y_s, W_s) with G_s weight vectors W_s[g] (e.g. a validation split's
        fitting rows plus a synthetic pool, the candidates' prefixes switched on by 0/1
        weights). Its fit g is ``clone(self).fit(X_s[on], y_s[on], W_s[g][on])`` with
        on = W_s[g] > 0 -- the standardisation learnt on the rows it trains on -- and all fits
        of all blocks run in a few calls of the compiled trainer (``Trainings``); fits with the
        same rows and weights are trained once.

        Parameters
        ----------
        blocks : sequence of (ndarray (N_s, d), ndarray (N_s,), ndarray (G_s, N_s))
            The fits' rows, labels 0/1 and weights.
        held : sequence of ndarray (n_s, d)
            Block s's held-out rows.

        Returns
        -------
        list of ndarray of float64, shape (G_s, n_s)
            eta of fit g of block s on ``held[s]``.
        """
        d = blocks[0][0].shape[1]
        trainings, scalings, ids = Trainings(), [], []
        for s, (X, y, W) in enumerate(blocks):
            X = np.asarray(X, dtype=np.float64)
            block_ids = []
            for w in np.asarray(W, dtype=np.float64):
                on = w > 0
                key = (s, on.tobytes(), w[on].tobytes())
                if key not in trainings.index:
                    scalings.append(self._standardisation(X[on]))
                    mean, scale = scalings[-1]
                    trainings.add(key, (X[on] - mean) / scale, np.asarray(y)[on], w[on])
                block_ids.append(trainings.index[key])
            ids.append(block_ids)
        params, _ = trainings.run(self._spec(), self.initial_params(d))
        out = []
        for block_ids, rows in zip(ids, held, strict=True):
            rows = np.asarray(rows, dtype=np.float64)
            out.append(
                np.array([stacked_logits([params[i]], (rows - scalings[i][0]) / scalings[i][1])[0] for i in block_ids])
            )
        return out

    def decision_function(self, X) -> np.ndarray:
        """eta(x) of each row (float64 from the float32 weights)."""
        check_is_fitted(self, "params_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must be (n, {self.n_features_in_}) as in fit, got shape {X.shape}")
        Z = (X - self.mean_) / self.scale_
        params64 = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in self.params_]
        return logits(params64, Z)

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2): 1 - sigmoid(eta), sigmoid(eta)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """1 where sigmoid(eta) > 1/2, else 0."""
        return (self.decision_function(X) > 0).astype(np.int64)


def stack_rows(blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: int):
    """(X, y, w) blocks of different lengths as (B, rows, ...) arrays, padded with zero-weight
    rows (which change nothing, module docstring)."""
    B, d = len(blocks), blocks[0][0].shape[1]
    X = np.zeros((B, rows, d), dtype=DTYPE)
    y = np.zeros((B, rows), dtype=DTYPE)
    w = np.zeros((B, rows), dtype=DTYPE)
    for b, (Xb, yb, wb) in enumerate(blocks):
        n = len(yb)
        X[b, :n], y[b, :n], w[b, :n] = Xb, yb, wb
    return X, y, w


class Trainings:
    """A list of trainings to run together: (X, y, w) blocks, each kept once by its key.

    ``run`` sorts them by their number of rows and trains them ``CHUNK`` at a time, each chunk
    padded with zero-weight rows (which change nothing) up to ``fitting.padded_size`` of its
    longest block, so the trainings of a study compile a handful of shapes once.
    """

    def __init__(self):
        self.blocks, self.index = [], {}

    def add(self, key, X, y, w) -> int:
        if key not in self.index:
            self.index[key] = len(self.blocks)
            self.blocks.append((X, y, w))
        return self.index[key]

    def run(self, spec: MLPSpec, params0) -> tuple[list, np.ndarray]:
        """Train every block from ``params0``; the trained weights (a list in the order added)
        and each training's final loss."""
        order = np.argsort([len(b[1]) for b in self.blocks], kind="stable")
        B = len(order)
        chunk = min(CHUNK, 1 << (B - 1).bit_length())
        params, last = [None] * B, np.empty(B)
        for lo in range(0, B, chunk):
            ids = order[lo : lo + chunk]
            X, y, w = stack_rows([self.blocks[i] for i in ids], padded_size(max(len(self.blocks[i][1]) for i in ids)))
            trained, losses = train(spec, params0, X, y, w, chunk=chunk)
            for j, i in enumerate(ids):
                params[i] = take(trained, j)
                last[i] = losses[j, -1]
        return params, last


def stacked_logits(params: list, X: np.ndarray) -> np.ndarray:
    """eta of each network of ``params`` (a list of weights) on the rows X (n, d), float64: (B, n)."""
    out = []
    for p in params:
        p64 = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in p]
        out.append(logits(p64, X))
    return np.array(out)


__all__ = [
    "DTYPE",
    "CHUNK",
    "TRACES",
    "Trainings",
    "HiddenLayer",
    "MLPClassifier",
    "MLPSpec",
    "balanced_log_loss",
    "batch_logits",
    "batched_trainer",
    "hidden",
    "init_params",
    "layer_sizes",
    "logits",
    "single_trainer",
    "stacked_logits",
    "stack_rows",
    "take",
    "train",
    "train_grid",
    "weighted_loss",
]
