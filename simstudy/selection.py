"""Choosing the synthetic size from data (THEORY.md sections 4-5), as scikit-learn classifiers.

Notation of section 1: class 0 is the majority (n0 rows), class 1 the minority (n1 rows), and
a candidate synthetic size is n~ = round(gamma (n0 - n1)). Every estimator here fits the pooled
ERM of section 1 with ``fit_glm`` and is judged on the **balanced loss**

    L_bal(theta) = (1/2) mean_{i: y_i = 0} l(theta; x_i, 0) + (1/2) mean_{i: y_i = 1} l(theta; x_i, 1),

the empirical balanced risk R_bal of section 1, computed on real rows only.

* ``VTSSClassifier`` (section 5, VTSS). Candidates gamma on a grid; validation by a stratified
  holdout, stratified K-fold or repeated stratified K-fold (``stratified_splits``). In each
  split the generator is fitted on the fitting part only, the candidate sizes are rescaled to
  the split, n~_split = round(n~ gap_split / gap) with gap = n0 - n1 and gap_split the
  same difference within the fitting part, ONE pool of max_gamma n~_split synthetic points is
  drawn, and candidate gamma uses its first n~_split rows (the pool contract of
  ``simstudy.generators.base``: a prefix is a valid draw). All candidates of all splits are
  fitted in one batched ``fit_glm`` call, the synthetic rows switched on and off by 0/1
  weights. gamma_hat minimises the mean validation L_bal over splits (ties: smallest gamma);
  the final model is refitted on all real rows plus round(gamma_hat gap) FRESH synthetic
  points from the generator fitted on all real rows.
* ``TGVTSSClassifier`` (section 5, TG-VTSS): the section 4 diagnostics choose the candidate
  grid (symmetry -> gamma <= 0.2; a good generator -> windows around 1 and around the plug-in
  target; a biased one -> the wide grid), then it validates as VTSS.
* Baselines of section 5: ``FixedSizeClassifier`` (a fixed gamma: 0 no augmentation, 1 full
  balancing), ``ReweightedClassifier`` (inverse-frequency class weights n / (2 n_k)) and
  ``CostSensitiveClassifier`` (a minority weight w1 tuned by the same validation).

Randomness: ``random_state`` (None, an int >= 0 or a ``numpy.random.SeedSequence``) roots one
SeedSequence; each use derives its own child from a fixed spawn key, so split s of repeat r
draws from streams keyed (r, s) whatever the other splits do, and the final refit's stream does
not depend on the grid or the validation scheme. Nothing touches a global seed.

Feature maps (``feature_map``, every estimator): a callable phi with fixed parameters mapping raw
rows (n, d) to covariates (n, D), e.g. random Fourier features (THEORY.md section 6, study 6(b)).
The generator still works in the raw space; phi is applied to every real and synthetic row after
augmentation, before fitting, and again in prediction, so the design is z(x) = phi(x), or
(1, phi(x)) with an intercept (``FeatureGLM``). With ``feature_map=None``, z(x) = x (or (1, x)).
A ``feature_map`` may instead be a spec with ``fit(X, rng)`` returning such a map (e.g.
``fourier.RandomFourierSpec``): it is then drawn afresh on the real fitting rows of each
validation split (stream keyed (5, repeat, fold)) and on all training rows for the final fit
and TG-VTSS's diagnostics (key (5,)), as the authors' study 6b does (AUTHORS_DESIGNS.md B);
``model_`` holds the final map.

Networks (``model``, ``VTSSClassifier`` and ``TGVTSSClassifier``): a
``simstudy.network.MLPClassifier`` replaces the GLM. Every (split, candidate) network is the
one ``clone(model).fit`` would train on that candidate's rows (its standardisation learnt on
them, the generator working in the raw space), and all of them train together in a few calls
of one vmapped program (``MLPClassifier.candidate_logits``); the final model is
``clone(model)`` fitted on the real rows plus the chosen synthetic rows (``model_``).
TG-VTSS's diagnostics then run on a balanced pilot network's last hidden layer, that map
fixed, as a ``FeatureGLM`` (AUTHORS_DESIGNS.md section E). The networks train in float32
(``simstudy.network``); ``cv_results_`` has no fit-failure counts for them.

Predictions use the linear predictor eta = z(x)' theta: ``predict_proba`` is sigmoid(eta)
(logistic), Phi(eta) (probit) or eta clipped to [0, 1] (squared loss on 0/1 labels, a linear
probability model); ``predict`` thresholds it at 1/2.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from imblearn.over_sampling.base import BaseOverSampler
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.diagnostics import REFERENCES, diagnose, wald_symmetry_test
from simstudy.families import Family, get_family
from simstudy.fitting import GLM, FitInfo, fit_glm, padded_size
from simstudy.generators import FittedGenerator, Generator, ImblearnGenerator, make_generator
from simstudy.network import HiddenLayer, MLPClassifier

DEFAULT_GAMMAS = np.round(np.arange(0.0, 2.0001, 0.05), 10)
"""The wide grid of section 5: gamma = 0, 0.05, ..., 2."""

SYMMETRY_GAMMAS = np.round(np.arange(0.0, 0.2001, 0.05), 10)
"""TG-VTSS candidates under local symmetry (section 5): 0, 0.05, ..., 0.2."""

WINDOW_OFFSETS = np.round(np.arange(-0.2, 0.2001, 0.05), 10)
"""TG-VTSS window: the offsets -0.2, ..., 0.2 added to 1 and to the plug-in target."""

# spawn keys of the streams derived from random_state
_SPLIT, _FOLD, _FINAL, _DIAGNOSTICS, _SYMMETRY_BOOTSTRAP, _FEATURES = 0, 1, 2, 3, 4, 5

WINDOW_FACTORS = np.round(np.arange(0.8, 1.2001, 0.05), 10)
"""The reference variant's multiplicative windows (AUTHORS_DESIGNS.md section C)."""

TG_VARIANTS = ("simstudy", "reference")
"""TG-VTSS as THEORY.md section 5 states it, or as the authors' reference implementation runs it."""

GQS_RULES = ("threshold", "calibrated", "calibrated_pool")
"""TG-VTSS's rules for calling a generator biased (``theory_guided_grid``)."""

_IMBLEARN_RESERVED = ("sampling_strategy", "random_state")


# --------------------------------------------------------------------------------------------
# input checks


def _check_gammas(gammas, name: str = "gammas") -> np.ndarray:
    """A sorted, de-duplicated 1-D array of finite multipliers >= 0."""
    arr = np.asarray(gammas, dtype=np.float64) if gammas is not None else DEFAULT_GAMMAS
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers >= 0, got {gammas!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must contain finite numbers >= 0, got {gammas!r}")
    return np.unique(arr)


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_gqs_threshold(value) -> float:
    """The "threshold" rule's bound: a finite number >= 0, the command line's rule for
    ``selection.gqs_threshold`` (the GQS is >= 0: a negative bound calls every generator
    biased and an infinite one none, so neither is a threshold rule)."""
    try:
        ok = not isinstance(value, bool) and isinstance(value, Real) and 0 <= float(value) < np.inf
    except OverflowError:  # an integer beyond float's range
        ok = False
    if not ok:
        raise ValueError(f"gqs_threshold must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_cv(cv) -> tuple[int | None, int]:
    """(K, n_repeats); K is None for the holdout."""
    if isinstance(cv, str):
        if cv != "holdout":
            raise ValueError(f"cv must be 'holdout', an integer K >= 2 or ('repeated', K, n_repeats), got {cv!r}")
        return None, 1
    if isinstance(cv, tuple):
        if len(cv) != 3 or cv[0] != "repeated":
            raise ValueError(f"a tuple cv must be ('repeated', K, n_repeats), got {cv!r}")
        return _check_int(cv[1], "cv's K", 2), _check_int(cv[2], "cv's n_repeats", 1)
    return _check_int(cv, "cv (the number of folds K)", 2), 1


def _root_seed(random_state) -> np.random.SeedSequence:
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, Integral) or random_state < 0:
        raise ValueError(
            f"random_state must be None, an integer >= 0 or a numpy.random.SeedSequence, got {random_state!r}"
        )
    return np.random.SeedSequence(int(random_state))


def _stream(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """The generator of the child of ``root`` with spawn key ``key`` (appended to root's)."""
    child = np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + key)
    return np.random.Generator(np.random.PCG64(child))


@dataclass(frozen=True)
class FeatureGLM(GLM):
    """A GLM on a fixed feature map phi: z(x) = phi(x), or (1, phi(x)) with an intercept.

    Everything that builds the design through ``GLM.covariates`` (``features``, ``fit_glm``,
    the section 4 diagnostics, the validation losses) then works in feature space while the
    rows handed to it, and to the generator, stay raw.

    Parameters
    ----------
    family : Family or str, default "logistic"
        The loss family, or its name.
    intercept : bool, default False
        Whether z(x) starts with a column of ones (never penalised).
    ridge : float, default 1e-8
        The ridge strength lambda >= 0.
    feature_map : callable
        phi, mapping numpy arrays (..., n, d) to (..., n, D) with D fixed. Required, and
        keyword-only (it follows GLM's defaulted fields).

    Raises
    ------
    ValueError
        If ``feature_map`` is not callable, ``family`` names no family or ``ridge`` is not a
        finite number >= 0.
    """

    feature_map: Callable = field(kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.feature_map):
            raise ValueError(f"feature_map must be a callable X -> Phi, got {self.feature_map!r}")

    def covariates(self, X):
        """phi(X), checked to keep X's leading shape (so n_params reads D off one row).

        Parameters
        ----------
        X : array_like of shape (..., n, d)
            Raw rows (converted to float64).

        Returns
        -------
        ndarray of float64, shape (..., n, D)
            The covariates phi(X) (the design z(x) without its intercept column).

        Raises
        ------
        ValueError
            If phi's output does not have X's leading shape and one feature axis.
        """
        X = np.asarray(X, dtype=np.float64)
        Phi = np.asarray(self.feature_map(X), dtype=np.float64)
        if Phi.ndim != X.ndim or Phi.shape[:-1] != X.shape[:-1]:
            raise ValueError(
                f"feature_map must map rows of shape {X.shape} to an array with the same leading "
                f"shape {X.shape[:-1]} and one feature axis, got shape {Phi.shape}"
            )
        return Phi


def resolve_generator(generator, generator_params=None) -> Generator:
    """The unfitted simstudy ``Generator`` that an estimator's ``generator`` names.

    * a catalog name: ``make_generator(name, **generator_params)``;
    * a simstudy ``Generator``: used as it is (``generator_params`` must be None);
    * an imbalanced-learn over-sampler instance: wrapped as ``ImblearnGenerator`` with the
      sampler's own parameters, except ``sampling_strategy`` and ``random_state``, which the
      adapter sets from the requested size and the selector's streams.

    Parameters
    ----------
    generator : str, Generator or imblearn over-sampler
        What to resolve.
    generator_params : dict, optional
        Options of a catalog generator; must be None or empty otherwise.

    Returns
    -------
    simstudy.generators.base.Generator
        The unfitted generator.

    Raises
    ------
    ValueError
        If ``generator_params`` is not None or a dict, is non-empty for a generator not given by
        name, or ``generator`` is none of the three kinds; ``make_generator`` and
        ``ImblearnGenerator`` raise ValueError for unknown names or options.
    """
    if generator_params is not None and not isinstance(generator_params, dict):
        raise ValueError(f"generator_params must be None or a dict, got {generator_params!r}")
    if isinstance(generator, str):
        return make_generator(generator, **(generator_params or {}))
    if generator_params:
        raise ValueError(
            f"generator_params only apply to a generator given by catalog name; got "
            f"generator={generator!r} with generator_params={generator_params!r}"
        )
    if isinstance(generator, Generator):
        return generator
    if isinstance(generator, BaseOverSampler):
        params = generator.get_params(deep=False)
        kwargs = {k: v for k, v in params.items() if k not in _IMBLEARN_RESERVED}
        return ImblearnGenerator(type(generator).__name__, **kwargs)
    raise ValueError(
        f"generator must be a simstudy catalog name, a simstudy Generator or an "
        f"imbalanced-learn over-sampler instance, got {generator!r}"
    )


def _check_labels(y) -> np.ndarray:
    """y as an int array of 0/1 labels with class 1 the strict minority."""
    y = column_or_1d(y, warn=False)
    try:
        y_num = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"y must contain the labels 0 and 1 only, got values {np.unique(y)!r}") from None
    if not np.all((y_num == 0) | (y_num == 1)):
        raise ValueError(f"y must contain the labels 0 and 1 only, got values {np.unique(y)!r}")
    y = y_num.astype(np.int64)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 <= n1:
        raise ValueError(
            f"class 1 must be the minority and class 0 the majority (0 < n1 < n0), got n0 = {n0}, n1 = {n1}"
        )
    return y


# --------------------------------------------------------------------------------------------
# splits and the balanced loss


class Split(NamedTuple):
    """One validation split: repeat and fold numbers, fitting and held-out row indices.

    Attributes
    ----------
    repeat : int
        Repeat number r (0 except for repeated K-fold).
    fold : int
        Fold number k (0 for the holdout).
    train : ndarray of int
        Sorted indices of the fitting rows.
    validation : ndarray of int
        Sorted indices of the held-out rows.
    """

    repeat: int
    fold: int
    train: np.ndarray
    validation: np.ndarray


def stratified_splits(y, cv="holdout", test_size: float = 0.2, random_state=None) -> list[Split]:
    """The validation splits of section 5, stratified by class.

    Each class's row indices are permuted (stream keyed (repeat,) under ``random_state``);
    the holdout holds out the first round(test_size n_k) of them (at least 1, at most
    n_k - 1), K-fold cuts each permutation into K near-equal chunks (``np.array_split``) and
    fold k holds out chunk k of both classes; repeated K-fold does this n_repeats times with
    independent permutations. Every fold needs at least one row of each class held out and
    left in, so K <= n1.

    Parameters
    ----------
    y : array_like of shape (n,)
        Labels 0 and 1 only, class 1 the strict minority (0 < n1 < n0).
    cv : "holdout", int or tuple, default "holdout"
        "holdout", an integer K >= 2 (stratified K-fold) or ("repeated", K, n_repeats) with
        n_repeats >= 1.
    test_size : float, default 0.2
        The holdout's held-out share of each class, in (0, 1); unused by K-fold.
    random_state : None, int or numpy.random.SeedSequence, default None
        The root of the streams: None (fresh entropy), an integer >= 0 or a SeedSequence.

    Returns
    -------
    list of Split
        The splits, by repeat and then fold.

    Raises
    ------
    ValueError
        If ``y`` is not 0/1 with class 1 the strict minority, ``cv``, ``test_size`` or
        ``random_state`` is invalid, or K > n1.
    """
    y = _check_labels(y)
    K, n_repeats = _check_cv(cv)
    root = _root_seed(random_state)
    classes = [np.flatnonzero(y == k) for k in (0, 1)]
    if K is None:
        if isinstance(test_size, bool) or not isinstance(test_size, Real) or not 0 < test_size < 1:
            raise ValueError(f"test_size must be a number in (0, 1), got {test_size!r}")
    elif K > classes[1].size:
        raise ValueError(f"cv with K = {K} folds needs at least K minority rows, but y has n1 = {classes[1].size}")
    splits = []
    for r in range(n_repeats):
        rng = _stream(root, _SPLIT, r)
        perms = [rng.permutation(idx) for idx in classes]
        if K is None:
            held = [p[: min(max(int(np.rint(test_size * p.size)), 1), p.size - 1)] for p in perms]
            chunks = [held]
        else:
            cut = [np.array_split(p, K) for p in perms]
            chunks = [[cut[0][k], cut[1][k]] for k in range(K)]
        for k, (v0, v1) in enumerate(chunks):
            validation = np.sort(np.concatenate([v0, v1]))
            train = np.setdiff1d(np.arange(y.size), validation, assume_unique=True)
            splits.append(Split(r, k, train, validation))
    return splits


def balanced_loss(family: Family | str, eta, y) -> np.ndarray:
    """L_bal = (1/2) mean_{y=0} l(eta, 0) + (1/2) mean_{y=1} l(eta, 1) over the rows.

    Parameters
    ----------
    family : Family or str
        The loss family, or its name.
    eta : array_like of shape (n, ...)
        Linear predictors of n rows (trailing axes: several fits).
    y : array_like of shape (n,)
        The 0/1 labels.

    Returns
    -------
    ndarray of float64, shape eta.shape[1:]
        L_bal of each fit (a numpy float64 scalar when eta is 1-D).

    Raises
    ------
    ValueError
        If ``family`` names no family or ``eta`` does not have y's n rows first.
    """
    family = get_family(family)
    eta = np.asarray(eta, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if eta.shape[:1] != y.shape:
        raise ValueError(f"eta must have y's {y.shape[0]} rows first, got shape {eta.shape}")
    yb = y.reshape(y.shape + (1,) * (eta.ndim - 1))
    return _balanced_mean(np.asarray(family.loss(eta, yb)), y)


def _balanced_mean(loss: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Half the mean of the class-0 rows plus half the mean of the class-1 rows (axis 0)."""
    return 0.5 * loss[y == 0].mean(axis=0) + 0.5 * loss[y == 1].mean(axis=0)


# --------------------------------------------------------------------------------------------
# batched validation


def _pad_stack(blocks, rows: int, candidates: int | None = None):
    """Stack (X, y, w) blocks of different lengths into (S, rows, ...) arrays, padding with
    zero-weight rows so that every split shares one compiled fit, and the candidate axis of w
    up to ``candidates`` with copies of the last candidate (results to be discarded)."""
    S, d, G = len(blocks), blocks[0][0].shape[1], blocks[0][2].shape[0]
    X = np.zeros((S, rows, d))
    y = np.zeros((S, rows))
    w = np.zeros((S, max(G, candidates or 0), rows))
    for s, (Xs, ys, ws) in enumerate(blocks):
        X[s, : len(ys)], y[s, : len(ys)] = Xs, ys
        w[s, :G, : len(ys)] = ws
        w[s, G:, : len(ys)] = ws[-1]
    return X, y, w


def _validation_losses(views, y, model: GLM | MLPClassifier, splits, blocks, split_models=None):
    """Fit every (split, candidate) at once; return the (S, G) validation L_bal on the
    held-out real rows (``views[s][1]``, ``_split_views``) and the fits' FitInfo (None for a
    network).

    ``split_models`` (one GLM per split, e.g. a FeatureGLM on a map refitted on that split):
    each split's rows are mapped by its own model's covariates, and all splits are fitted as
    the plain GLM on them."""
    if isinstance(model, MLPClassifier):
        etas = model.candidate_logits(blocks, [held for _, held in views])
        return np.stack(
            [balanced_loss("logistic", eta.T, y[s.validation]) for eta, s in zip(etas, splits, strict=True)]
        ), None
    models = [model] * len(splits)
    if split_models is not None:
        models = split_models
        blocks = [(m.covariates(Xb), yb, wb) for m, (Xb, yb, wb) in zip(models, blocks, strict=True)]
        model = GLM(model.family, intercept=model.intercept, ridge=model.ridge)
    G = blocks[0][2].shape[0]
    Xs, ys, ws = _pad_stack(blocks, padded_size(max(len(b[1]) for b in blocks)), padded_size(G))
    fit = fit_glm(Xs[:, None], ys[:, None], ws, model=model)
    theta = fit.theta[:, :G]
    info = FitInfo(*(a[:, :G] for a in fit.info))
    # one loss evaluation over the held-out rows of all splits: the family's jax functions
    # then compile for one shape per configuration, not one per split size
    eta = np.concatenate([models[i].features(views[i][1]) @ theta[i].T for i in range(len(splits))])
    held_y = np.concatenate([y[s.validation] for s in splits]).astype(np.float64)
    loss = np.asarray(model.family.loss(eta, held_y[:, None]))
    split_of = np.repeat(np.arange(len(splits)), [len(s.validation) for s in splits])
    losses = np.stack([_balanced_mean(loss[split_of == i], held_y[split_of == i]) for i in range(len(splits))])
    return losses, info


def _split_views(X, splits, preprocessor=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per split, its (fitting rows, held-out rows); with a ``preprocessor`` both transformed
    by a clone fitted on the fitting rows alone, so no held-out row informs any fitted step."""
    if preprocessor is None:
        return [(X[s.train], X[s.validation]) for s in splits]
    views = []
    for s in splits:
        fitted = clone(preprocessor).fit(X[s.train])
        views.append((_transformed(fitted, X[s.train]), _transformed(fitted, X[s.validation])))
        if views[-1][0].shape[1] != views[0][0].shape[1]:
            raise ValueError(
                f"the preprocessor kept {views[-1][0].shape[1]} columns in validation split {len(views) - 1} "
                f"but {views[0][0].shape[1]} in split 0 (a column constant or empty in one split)"
            )
    return views


def _transformed(fitted, X) -> np.ndarray:
    Z = np.asarray(fitted.transform(X), dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] != X.shape[0] or not np.all(np.isfinite(Z)):
        raise ValueError(f"the preprocessor must map {X.shape[0]} rows to a finite 2-D array, got shape {Z.shape}")
    return Z


def _synthetic_blocks(views, y, generator: Generator, n_tilde, splits, root):
    """Per split: the fitting rows (``views[s][0]``) plus one synthetic pool, with prefix
    weights per candidate.

    Returns the blocks (X, y, w) and the (S, G) fold-rescaled sizes and (S,) split gaps.
    """
    gap = int((y == 0).sum() - (y == 1).sum())
    blocks, sizes, gaps = [], [], []
    for (X_tr, _), split in zip(views, splits, strict=True):
        y_tr = y[split.train]
        X1, X0 = X_tr[y_tr == 1], X_tr[y_tr == 0]
        gap_split = X0.shape[0] - X1.shape[0]
        size = np.maximum(np.rint(n_tilde * gap_split / gap), 0).astype(np.int64)
        pool = _draw(generator, X1, X0, int(size.max()), root, _FOLD, split.repeat, split.fold)
        n_tr = len(y_tr)
        w = np.zeros((len(size), n_tr + pool.shape[0]))
        w[:, :n_tr] = 1.0
        # candidate g uses the first size[g] pool rows: nested draws of one pool
        w[:, n_tr:] = np.arange(pool.shape[0])[None, :] < size[:, None]
        blocks.append((np.vstack([X_tr, pool]), np.r_[y_tr, np.ones(pool.shape[0])], w))
        sizes.append(size)
        gaps.append(gap_split)
    return blocks, np.array(sizes), np.array(gaps)


def _draw(generator: Generator, X1, X0, m: int, root, *key) -> np.ndarray:
    """m synthetic rows from ``generator`` fitted on (X1, X0); fit and draw use the two
    streams under ``key``. No fit when m = 0."""
    if m == 0:
        return np.empty((0, X1.shape[1]))
    fitted = generator.fit(X1, X0, _stream(root, *key, 0))
    return _checked_sample(fitted, m, X1.shape[1], _stream(root, *key, 1))


def _checked_sample(fitted: FittedGenerator, m: int, d: int, rng) -> np.ndarray:
    pool = np.asarray(fitted.sample(m, rng), dtype=np.float64)
    if pool.shape != (m, d) or not np.all(np.isfinite(pool)):
        raise ValueError(
            f"the generator returned synthetic points of shape {pool.shape} (or non-finite "
            f"values); expected finite ({m}, {d})"
        )
    return pool


def _select(means: np.ndarray) -> int:
    """Index of the smallest finite mean loss, the first (smallest gamma) on ties."""
    finite = np.where(np.isfinite(means), means, np.inf)
    if not np.any(np.isfinite(finite)):
        raise ValueError("every candidate's validation loss is non-finite: no size can be chosen")
    return int(np.argmin(finite))


def _curve(name: str, values, losses, info: FitInfo | None, **extra) -> dict:
    """cv_results_: the candidates, the mean and SD over splits of the validation loss, the
    per-split losses and, for GLM fits (``info`` not None), the per-candidate count of
    separated / non-converged fits."""
    return {
        name: values,
        **extra,
        "mean_validation_loss": losses.mean(axis=0),
        "std_validation_loss": losses.std(axis=0),
        "split_validation_loss": losses,
        **(
            {}
            if info is None
            else {"n_separated": info.separated.sum(axis=0), "n_not_converged": (~info.converged).sum(axis=0)}
        ),
    }


# --------------------------------------------------------------------------------------------
# estimators


class _GLMClassifier(ClassifierMixin, BaseEstimator):
    """Prediction from a fitted linear predictor eta = z(x)' theta_ (shared by all classifiers)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _model(self) -> GLM:
        """The GLM; without its map when ``feature_map`` is refitted per fold (``_fitted``)."""
        if not isinstance(self.intercept, (bool, np.bool_)):
            raise ValueError(f"intercept must be True or False, got {self.intercept!r}")
        if self.feature_map is None or self._refitted_map():
            return GLM(get_family(self.family), intercept=bool(self.intercept), ridge=self.ridge)
        if not callable(self.feature_map):
            raise ValueError(
                "feature_map must be None, a callable mapping raw rows (n, d) to covariates (n, D), "
                f"or a spec with fit(X, rng) returning one, got {self.feature_map!r}"
            )
        return FeatureGLM(
            get_family(self.family), intercept=bool(self.intercept), ridge=self.ridge, feature_map=self.feature_map
        )

    def _refitted_map(self) -> bool:
        return not callable(self.feature_map) and callable(getattr(self.feature_map, "fit", None))

    def _fitted(self, model: GLM, X, root, *key: int) -> GLM:
        """``model`` on the map the spec ``feature_map`` draws for the rows X (stream keyed
        (features, *key)); ``model`` itself when the map is fixed or absent."""
        if not isinstance(model, GLM) or not self._refitted_map():
            return model
        phi = self.feature_map.fit(X, _stream(root, _FEATURES, *key))
        if not callable(phi):
            raise ValueError(f"feature_map.fit must return a callable map, got {phi!r}")
        return FeatureGLM(model.family, intercept=model.intercept, ridge=model.ridge, feature_map=phi)

    def _split_models(self, model: GLM, views, splits, root) -> list[GLM] | None:
        """Per validation split, ``model`` on the map drawn for its fitting rows (streams keyed
        (features, repeat, fold)); None when the map is fixed or absent."""
        if not self._refitted_map():
            return None
        return [self._fitted(model, fit_rows, root, s.repeat, s.fold) for (fit_rows, _), s in zip(views, splits)]

    def _check_fit_data(self, X, y):
        preprocessor = getattr(self, "preprocessor", None)
        if preprocessor is not None and not (
            callable(getattr(preprocessor, "fit", None)) and callable(getattr(preprocessor, "transform", None))
        ):
            raise ValueError(f"preprocessor must be None or a transformer with fit and transform, got {preprocessor!r}")
        # missing values are the preprocessor's to fill
        finite = True if preprocessor is None else "allow-nan"
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False, ensure_all_finite=finite)
        return X, _check_labels(y)

    def _preprocess(self, X) -> np.ndarray:
        """X through ``preprocessor`` fitted on all of X (``preprocessor_``, None without one)."""
        self.preprocessor_ = None
        if getattr(self, "preprocessor", None) is None:
            return X
        self.preprocessor_ = clone(self.preprocessor).fit(X)
        return _transformed(self.preprocessor_, X)

    def _fit_final(self, X, y, model: GLM, weights=None, synthetic=None, rows: int = 0):
        """Fit theta on the real rows (weighted or not) plus optional synthetic rows labelled 1,
        padded with zero-weight rows up to ``rows``: a selector pads to its largest candidate,
        so its final fit compiles once whatever size it picks."""
        if weights is None:
            weights = np.ones(len(y))
        if synthetic is not None and synthetic.shape[0]:
            X = np.vstack([X, synthetic])
            y = np.r_[y, np.ones(synthetic.shape[0], dtype=np.int64)]
            weights = np.r_[weights, np.ones(synthetic.shape[0])]
        self.classes_ = np.array([0, 1])
        if isinstance(model, MLPClassifier):
            for stale in ("theta_", "coef_", "intercept_", "fit_info_"):  # of an earlier GLM fit
                self.__dict__.pop(stale, None)
            self.model_ = clone(model).fit(X, y, sample_weight=weights)
            self.family_ = get_family("logistic")
            return
        (X,), (y,), (weights,) = _pad_stack([(X, y, weights[None])], max(rows, len(y)))
        fit = fit_glm(X, y, weights[0], model=model)
        self.theta_ = fit.theta
        self.model_ = model
        self.fit_info_ = fit.info
        self.coef_ = fit.theta[int(model.intercept) :][None, :]
        self.intercept_ = np.array([fit.theta[0] if model.intercept else 0.0])
        self.family_ = model.family

    def _refit_augmented(self, X, y, model, generator, m: int, root, rows: int = 0):
        """Fit on all real rows plus m fresh synthetic points from the generator fitted on
        all real rows (streams keyed (final,)); generator_ is None when m = 0."""
        X1, X0 = X[y == 1], X[y == 0]
        self.generator_ = None
        synthetic = None
        if m > 0:
            self.generator_ = generator.fit(X1, X0, _stream(root, _FINAL, 0))
            synthetic = _checked_sample(self.generator_, m, X.shape[1], _stream(root, _FINAL, 1))
        self._fit_final(X, y, model, synthetic=synthetic, rows=rows)

    def linear_predictor(self, X) -> np.ndarray:
        """eta = z(x)' theta_ (a network's logit) of raw rows X, through ``preprocessor_`` when
        there is one: the family's own scale, as ``balanced_loss`` and the metrics take it.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.

        Returns
        -------
        ndarray of float64, shape (n,)
            The linear predictor.
        """
        return self._eta(X)

    def _eta(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        fitted = getattr(self, "preprocessor_", None)
        X = validate_data(
            self, X, dtype=np.float64, reset=False, ensure_all_finite=True if fitted is None else "allow-nan"
        )
        if fitted is not None:
            X = _transformed(fitted, X)
        if isinstance(self.model_, MLPClassifier):
            return self.model_.decision_function(X)
        return self.model_.features(X) @ self.theta_

    def decision_function(self, X) -> np.ndarray:
        """eta = z(x)' theta for the Bernoulli families; eta - 1/2 for the squared loss.

        So positive always means class 1.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.

        Returns
        -------
        ndarray of float64, shape (n,)
            The decision values.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``X`` fails scikit-learn's validation (wrong number of columns, NaN, ...).
        """
        eta = self._eta(X)
        return eta - 0.5 if self.family_.name == "squared" else eta

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2) array [P(y = 0 | x), P(y = 1 | x)] from the fitted link (module docstring).

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.

        Returns
        -------
        ndarray of float64, shape (n, 2)
            Column 1 is sigmoid(eta) (logistic), Phi(eta) (probit) or eta clipped to [0, 1]
            (squared); column 0 is one minus it.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``X`` fails scikit-learn's validation.
        """
        eta = self._eta(X)
        p1 = self.family_.probability(eta)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X) -> np.ndarray:
        """Class 1 where P(y = 1 | x) > 1/2.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.

        Returns
        -------
        ndarray of int64, shape (n,)
            Predicted labels 0/1 (1 where ``decision_function`` is positive).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``X`` fails scikit-learn's validation.
        """
        return (self.decision_function(X) > 0).astype(np.int64)

    def balanced_loss(self, X, y) -> float:
        """The model's own balanced loss L_bal on (X, y).

        It is the balanced risk estimate of section 1 (for the logistic family it equals
        ``balanced_log_loss``).

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.
        y : array-like of shape (n,)
            Labels: both 0 and 1 present, nothing else.

        Returns
        -------
        float
            L_bal of the fitted theta on (X, y).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``y`` does not hold both labels 0 and 1 and nothing else, or ``X`` fails
            scikit-learn's validation.
        """
        y = _check_test_labels(y)
        return float(balanced_loss(self.family_, self._eta(X), y))

    def balanced_log_loss(self, X, y, eps: float = 1e-15) -> float:
        """(1/2) mean_{y=0} -log(1 - p) + (1/2) mean_{y=1} -log p, p = predict_proba(X)[:, 1].

        p is clipped to [eps, 1 - eps] (it matters only for the squared loss's clipped p).

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw rows, with the number of columns seen in ``fit``.
        y : array-like of shape (n,)
            Labels: both 0 and 1 present, nothing else.
        eps : float, default 1e-15
            The clipping margin.

        Returns
        -------
        float
            The balanced log loss.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``y`` does not hold both labels 0 and 1 and nothing else, or ``X`` fails
            scikit-learn's validation.
        """
        y = _check_test_labels(y)
        p1 = np.clip(self.predict_proba(X)[:, 1], eps, 1 - eps)
        nll = -np.where(y == 1, np.log(p1), np.log1p(-p1))
        return float(0.5 * nll[y == 0].mean() + 0.5 * nll[y == 1].mean())


def _check_test_labels(y) -> np.ndarray:
    y = np.asarray(column_or_1d(y, warn=False), dtype=np.float64)
    if not np.all((y == 0) | (y == 1)) or not (np.any(y == 0) and np.any(y == 1)):
        raise ValueError(f"y must contain both labels 0 and 1 and nothing else, got {np.unique(y)!r}")
    return y


class VTSSClassifier(_GLMClassifier):
    """Validation-Tuned Synthetic Size (THEORY.md section 5).

    The algorithm is in the module docstring.

    Parameters
    ----------
    generator : str, Generator or imblearn over-sampler, default "smote"
        A catalog name, a simstudy Generator or an imbalanced-learn over-sampler (see
        ``resolve_generator``).
    generator_params : dict, optional
        Options of a generator given by catalog name.
    family : Family or str, default "logistic"
        The GLM's loss family.
    intercept : bool, default True
        Whether the GLM has an unpenalised intercept.
    ridge : float, default 1e-8
        The GLM's ridge strength.
    gammas : array_like, optional
        Candidate multipliers gamma >= 0 (default 0, 0.05, ..., 2; sorted and de-duplicated).
    cv : "holdout", int or tuple, default "holdout"
        "holdout", an int K or ("repeated", K, n_repeats) (``stratified_splits``).
    test_size : float, default 0.2
        The holdout's held-out share of each class.
    random_state : None, int or numpy.random.SeedSequence, default None
        The root of every stream (module docstring).
    feature_map : callable or spec, optional
        None, a fixed feature map phi, or a spec refitted per fold (module docstring).
    model : simstudy.network.MLPClassifier, optional
        A network instead of the GLM (module docstring, "Networks"); ``family`` must then be
        "logistic" and ``feature_map`` None.
    preprocessor : transformer, optional
        A scikit-learn-style transformer (``fit``, ``transform``; e.g.
        ``simstudy.preprocessing.TablePreprocessor``) refitted inside every validation split on
        its fitting rows alone and, for the final fit and TG-VTSS's diagnostics, on all rows
        (``preprocessor_``); the generator works on its output. X may then hold NaN.

    Attributes
    ----------
    gamma_ : float
        The selected multiplier.
    n_synthetic_ : int
        round(gamma_ (n0 - n1)), the synthetic points of the final fit.
    cv_results_ : dict of ndarray
        "gamma" and "n_tilde" (G,), "mean_validation_loss" and "std_validation_loss" (G,) (over
        splits), "split_validation_loss" (S, G), "split_n_tilde" (S, G) the fold-rescaled sizes,
        "split_gap" (S,) n0 - n1 within each fitting part, "n_separated" and "n_not_converged"
        (G,) fit-failure counts over splits.
    theta_ : ndarray of shape (p,)
        The final coefficients, intercept first (GLMs only).
    coef_ : ndarray of shape (1, D)
        The coefficients of the covariates (D = d without a feature map; GLMs only).
    intercept_ : ndarray of shape (1,)
        The intercept (0.0 without one; GLMs only).
    model_ : simstudy.fitting.GLM or simstudy.network.MLPClassifier
        The GLM or FeatureGLM fitted, or the fitted clone of ``model``.
    family_ : simstudy.families.Family
        The fitted model's family.
    classes_ : ndarray of shape (2,)
        array([0, 1]).
    generator_ : simstudy.generators.base.FittedGenerator or None
        The final fitted generator, None when n_synthetic_ = 0.
    preprocessor_ : transformer or None
        ``preprocessor`` fitted on all rows (None without one); prediction applies it.
    fit_info_ : simstudy.fitting.FitInfo
        The final fit's FitInfo (GLMs only).
    n_features_in_ : int
        d, the number of raw columns (scikit-learn's name).
    """

    def __init__(
        self,
        generator="smote",
        generator_params=None,
        family="logistic",
        intercept=True,
        ridge=1e-8,
        gammas=None,
        cv="holdout",
        test_size=0.2,
        random_state=None,
        feature_map=None,
        model=None,
        preprocessor=None,
    ):
        self.generator = generator
        self.generator_params = generator_params
        self.family = family
        self.intercept = intercept
        self.ridge = ridge
        self.gammas = gammas
        self.cv = cv
        self.test_size = test_size
        self.random_state = random_state
        self.feature_map = feature_map
        self.model = model
        self.preprocessor = preprocessor

    def _model(self) -> GLM | MLPClassifier:
        if self.model is None:
            return super()._model()
        if not isinstance(self.model, MLPClassifier):
            raise ValueError(f"model must be None (a GLM) or a simstudy.network.MLPClassifier, got {self.model!r}")
        if self.feature_map is not None or get_family(self.family).name != "logistic":
            raise ValueError("a network model needs family='logistic' and feature_map=None (it learns its features)")
        super()._model()  # intercept and ridge still configure the TG diagnostics' GLM
        return self.model

    def fit(self, X, y, shared=None):
        """Select gamma on the validation splits, then refit on all the data (see class).

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw training rows (finite).
        y : array-like of shape (n,)
            Labels 0 and 1 only, class 1 the strict minority (0 < n1 < n0).
        shared : SharedValidations, optional
            The validations of other selectors fitted on the same rows: a candidate grid one
            of them validated on the same inputs is read from it instead of fitted again.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If X or y is invalid, a parameter is invalid (``generator``, ``generator_params``,
            ``family``, ``intercept`` not a bool, ``ridge``, ``gammas``, ``cv``, ``test_size``,
            ``random_state``, ``feature_map`` not callable, ``model``), K > n1, the generator
            returns a bad sample, or every candidate's validation loss is non-finite.
        """
        X_raw, y = self._check_fit_data(X, y)
        model = self._model()
        generator = resolve_generator(self.generator, self.generator_params)
        root = _root_seed(self.random_state)
        _check_cv(self.cv)  # before TG-VTSS's diagnostics spend any work
        X = self._preprocess(X_raw)
        gammas = self._candidates(X, X_raw, y, model, generator, root)
        self._validate_and_refit(X, X_raw, y, model, generator, gammas, root, shared)
        return self

    def _candidates(self, X, X_raw, y, model, generator, root) -> np.ndarray:
        return _check_gammas(self.gammas)

    def _validate_and_refit(self, X, X_raw, y, model, generator, gammas, root, shared=None):
        """Validate ``gammas`` on splits of the raw rows ``X_raw`` (each split preprocessed on
        its own), or read their validation from ``shared``, then refit on ``X`` (all rows,
        preprocessed by ``preprocessor_``)."""
        n0, n1 = int((y == 0).sum()), int((y == 1).sum())
        n_tilde = np.rint(gammas * (n0 - n1)).astype(np.int64)

        def validate():
            return self._validation(X_raw, y, model, generator, gammas, n_tilde, root)

        self.cv_results_ = validate() if shared is None else shared.curve(self, X_raw, y, gammas, validate)
        best = _select(self.cv_results_["mean_validation_loss"])
        self.gamma_ = float(gammas[best])
        self.n_synthetic_ = int(n_tilde[best])
        self._refit_augmented(
            X,
            y,
            self._fitted(model, X, root),
            generator,
            self.n_synthetic_,
            root,
            rows=padded_size(len(y) + int(n_tilde.max())),
        )

    def _validation(self, X_raw, y, model, generator, gammas, n_tilde, root) -> dict:
        """cv_results_ of the candidates ``gammas`` (sizes ``n_tilde``): every (split,
        candidate) fitted in one batched call."""
        splits = stratified_splits(y, self.cv, self.test_size, root)
        views = _split_views(X_raw, splits, self.preprocessor)
        blocks, sizes, gaps = _synthetic_blocks(views, y, generator, n_tilde, splits, root)
        losses, info = _validation_losses(
            views, y, model, splits, blocks, self._split_models(model, views, splits, root)
        )
        return _curve("gamma", gammas, losses, info, n_tilde=n_tilde, split_n_tilde=sizes, split_gap=gaps)


_VALIDATION_PARAMS = (
    "generator",
    "generator_params",
    "family",
    "intercept",
    "ridge",
    "cv",
    "test_size",
    "random_state",
    "feature_map",
    "model",
    "preprocessor",
)
"""The parameters a validation depends on besides its candidates and rows: VTSSClassifier's
but ``gammas`` (TG-VTSS's other parameters only choose the candidates)."""

_VALUE_TYPES = (str, Integral, Real)


class SharedValidations:
    """The validations of the size selectors fitted on one data set, each computed once.

    VTSS and the TG-VTSS variants of a replication (``simstudy.studies.selectors``) validate
    on the same splits, rows, generator streams and model; when two of them arrive at the same
    candidate grid (TG-VTSS's "high_gqs" branch is VTSS's wide grid), their (split, candidate)
    fits are one computation. Given to ``VTSSClassifier.fit`` as ``shared``, it keeps the first
    selector's ``cv_results_`` of a grid, and a later selector with the same inputs gets a copy
    instead of fitting them again: the numbers its own fits would give, bit for bit. Each
    selector still makes its own final refit.

    Inputs are the same when the candidates and the rows (X, y) are equal and every parameter
    of ``_VALIDATION_PARAMS`` is the same object or an equal number, string or tuple of both
    selectors, in the same state (their pickled bytes are equal, so an object changed in place
    between two fits is not the same input); anything else is validated afresh, and so is
    every selector without a ``random_state`` or with a parameter that cannot be pickled.
    """

    def __init__(self):
        self._entries = []

    def __len__(self) -> int:
        """The number of validations computed (not read) through this store."""
        return len(self._entries)

    def curve(self, est, X, y, gammas, validate: Callable[[], dict]) -> dict:
        """The cv_results_ of ``est``'s validation of ``gammas`` on the rows (X, y).

        Parameters
        ----------
        est : VTSSClassifier
            The selector (its parameters are the validation's inputs).
        X : ndarray of shape (n, d)
            The raw rows the selector validates on.
        y : ndarray of shape (n,)
            Their 0/1 labels.
        gammas : ndarray
            The candidates.
        validate : callable
            Computes the cv_results_ when no selector validated the same inputs before.

        Returns
        -------
        dict
            A copy of the stored cv_results_ of the same inputs, or ``validate()``.
        """
        params = {name: getattr(est, name) for name in _VALIDATION_PARAMS}
        state = _state(params)
        if est.random_state is None or state is None:
            # unseeded splits differ from fit to fit; an unpicklable parameter (a closure) may
            # change without a trace: neither can promise another selector its own numbers
            return validate()
        for other_X, other_y, other_gammas, other_params, other_state, results in self._entries:
            if (
                np.array_equal(gammas, other_gammas)
                and all(_same_value(params[k], other_params[k]) for k in _VALIDATION_PARAMS)
                and state == other_state
                and np.array_equal(X, other_X)
                and np.array_equal(y, other_y)
            ):
                return copy.deepcopy(results)
        results = validate()
        # copies: a caller may change its arrays in place between two fits
        self._entries.append((np.array(X), np.array(y), np.array(gammas), params, state, copy.deepcopy(results)))
        return results


def _state(params: dict) -> bytes | None:
    """The parameters' pickled state, which changes when one of them is changed in place
    (a generator's options, a sampler's or a preprocessor's set_params, a seeded Generator
    that has drawn); None when one cannot be pickled."""
    try:
        return pickle.dumps(params)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _same_value(a, b) -> bool:
    """The same object, numbers or strings of one type and equal value, or tuples of such."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same_value(u, v) for u, v in zip(a, b))
    return isinstance(a, _VALUE_TYPES) and bool(a == b)


def theory_guided_grid(
    wald_p: float,
    alpha: float,
    gqs=None,
    gamma_tg=None,
    wide=None,
    *,
    gqs_rule: str = "threshold",
    gqs_threshold: float = 10.0,
    gqs_level: float = 0.05,
    windows: str = "additive",
    gap: int | None = None,
) -> tuple[str, np.ndarray]:
    """TG-VTSS's branch and candidate grid from the section 4 diagnostics (THEORY.md section 5).

    Symmetry not rejected (wald_p > alpha): {0, 0.05, ..., 0.2}, branch "symmetry". Otherwise
    the generator is called biased by ``gqs_rule``: "threshold" when GQS > gqs_threshold (the
    authors' 10), "calibrated" when the GQS's p-value under an exact generator
    (``GQSResult.p_value``) is <= gqs_level, "calibrated_pool" when that p-value with the
    minority's score covariance from the synthetic pools (``GQSResult.pool_p_value``) is. Not
    biased: 1 + {-0.2, ..., 0.2} and, when gamma_TG
    exists, gamma_TG + the same offsets (negatives dropped), branch "low_gqs"; biased: the wide
    grid, branch "high_gqs". ``windows`` "multiplicative" (the reference variant) takes the
    sizes round(f n) for f in 0.80, 0.85, ..., 1.20 around n = gap (balancing) and
    n = gamma_TG gap, as gammas size / gap.

    Parameters
    ----------
    wald_p : float
        The symmetry test's p-value.
    alpha : float
        Its level.
    gqs : simstudy.diagnostics.GQSResult, optional
        Needed when symmetry is rejected.
    gamma_tg : float, optional
        The plug-in target, if any.
    wide : array_like, optional
        The wide grid; default 0, 0.05, ..., 2.
    gqs_rule : {"threshold", "calibrated", "calibrated_pool"}, default "threshold"
        How the GQS decides (keyword only).
    gqs_threshold : float, default 10.0
        The "threshold" rule's bound, a finite number >= 0 (keyword only).
    gqs_level : float, default 0.05
        The "calibrated" rule's false-alarm rate (keyword only).
    windows : {"additive", "multiplicative"}, default "additive"
        The windows of the "low_gqs" branch (keyword only).
    gap : int, optional
        n0 - n1, needed by multiplicative windows (keyword only).

    Returns
    -------
    branch : {"symmetry", "low_gqs", "high_gqs"}
    candidates : ndarray
        Sorted, de-duplicated.
    """
    _check_windows(windows)
    if gqs_rule not in GQS_RULES:
        raise ValueError(f"gqs_rule must be one of {GQS_RULES}, got {gqs_rule!r}")
    if not 0.0 < gqs_level < 1.0:
        raise ValueError(f"gqs_level must lie in (0, 1), got {gqs_level!r}")
    gqs_threshold = _check_gqs_threshold(gqs_threshold)
    if np.isnan(wald_p):
        raise ValueError(f"wald_p must be a number, got {wald_p!r}")
    if gamma_tg is not None and not (np.isfinite(gamma_tg) and gamma_tg > 0):
        raise ValueError(f"gamma_tg must be a finite number > 0 or None, got {gamma_tg!r}")
    if not wald_p > alpha:
        if gqs is None:
            raise ValueError("symmetry is rejected: the branch needs the GQS")
        if gqs_rule == "threshold":
            biased = gqs.gqs > gqs_threshold
        else:
            biased = (gqs.p_value if gqs_rule == "calibrated" else gqs.pool_p_value) <= gqs_level
        if biased:
            return "high_gqs", np.unique(_check_gammas(wide))
        centres = [1.0] + ([gamma_tg] if gamma_tg is not None else [])
        if windows == "multiplicative":
            if gap is None or gap < 1:
                raise ValueError(f"multiplicative windows need gap = n0 - n1 >= 1, got {gap!r}")
            sizes = np.round(np.multiply.outer(np.asarray(centres) * gap, WINDOW_FACTORS)).ravel()
            return "low_gqs", np.unique(sizes / gap)
        window = np.round(np.add.outer(centres, WINDOW_OFFSETS).ravel(), 10)
        return "low_gqs", np.unique(window[window >= 0])
    return "symmetry", SYMMETRY_GAMMAS.copy()


def _check_windows(windows) -> None:
    if windows not in ("additive", "multiplicative"):
        raise ValueError(f"windows must be 'additive' or 'multiplicative', got {windows!r}")


class TGVTSSClassifier(VTSSClassifier):
    """Theory-guided VTSS (THEORY.md section 5): the section 4 diagnostics pick the grid.

    1. The local-symmetry Wald test on the training data (``wald_symmetry_test``, its null
       distribution ``symmetry_test``). p-value > alpha (symmetry not rejected): candidates
       {0, 0.05, ..., 0.2}, branch "symmetry".
    2. Otherwise ``diagnose`` (balanced pilot, cross-fitted GQS with 5 folds, plug-in target
       gamma_TG = n_TG / (n0 - n1) = 1 / (1 - c_hat)). Generator not called biased by
       ``gqs_rule``: candidates 1 + {-0.2, -0.15, ..., 0.2} and, when gamma_TG exists,
       gamma_TG + the same offsets (negative values dropped), branch "low_gqs". Biased: the
       wide grid ``gammas``, branch "high_gqs" (``theory_guided_grid``).
    3. Validation and refit as ``VTSSClassifier``.

    The defaults are THEORY.md's rules (chi2 reference, GQS > 10), which are miscalibrated at
    the paper's sizes (README, "Calibrated diagnostics"); ``symmetry_test="bootstrap"`` (or
    "tilted_double") and ``gqs_rule="calibrated"`` (or "calibrated_pool" with many features per
    minority row) come closer to their nominal error rates; README has where each still misses.

    Parameters
    ----------
    generator, generator_params, family, intercept, ridge, gammas, cv, test_size, random_state
        As for ``VTSSClassifier``.
    feature_map, model, preprocessor
        As for ``VTSSClassifier``; ``gammas`` is the wide grid of the "high_gqs" branch. With a
        network ``model`` the diagnostics run on the last hidden layer of a balanced pilot
        network (``pilot_``) plus an intercept when ``intercept``, ridge ``ridge``.
    alpha : float, default 0.05
        Level of the Wald test, in [0, 1].
    gqs_threshold : float, default 10.0
        The GQS above which the "threshold" rule calls the generator biased, a finite number >= 0.
    symmetry_test : {"chi2", "bootstrap", "tilted", "tilted_double"}, default "chi2"
        The Wald statistic's null distribution (``wald_symmetry_test``'s ``reference``).
    n_boot : int, default 199
        Resamples of the bootstrap tests (each level of "tilted_double"), >= 19.
    gqs_rule : {"threshold", "calibrated", "calibrated_pool"}, default "threshold"
        "calibrated": biased when the GQS's p-value under an exact generator of the data's
        sizes is <= gqs_level (``GQSResult.p_value``); "calibrated_pool": the same law with the
        minority's score covariance from the synthetic pools (``GQSResult.pool_p_value``),
        for many features per minority row (README, "Calibrated diagnostics").
    gqs_level : float, default 0.05
        The calibrated rule's false-alarm rate, in (0, 1).
    variant : {"simstudy", "reference"}, default "simstudy"
        "reference": as the authors' reference implementation (AUTHORS_DESIGNS.md section C):
        the GQS cross-fitted over stratified folds of both classes with a pilot per fold,
        multiplicative windows round(f n), f in 0.80, ..., 1.20, and stabilised pseudo-inverses
        (``diagnose(variant="reference")``, ``theory_guided_grid(windows="multiplicative")``).
    gqs_folds : int, optional
        K of the GQS's cross-fitting, >= 2; default 5 (simstudy) or 3 (reference), at most n1.

    Attributes
    ----------
    wald_ : simstudy.diagnostics.WaldResult
        The Wald test on the training data (its ``reference`` says which null ran).
    diagnostics_ : simstudy.diagnostics.Diagnostics or None
        The section 4 diagnostics, None in the symmetry branch.
    gqs_ : float or None
        The GQS, None in the symmetry branch.
    gamma_tg_ : float or None
        The plug-in target gamma_TG; None in the symmetry branch or when there is no target.
    candidate_gammas_ : ndarray
        The candidate grid, sorted and de-duplicated.
    branch_ : {"symmetry", "low_gqs", "high_gqs"}
        The branch taken.
    rules_ : str
        The decision rules that chose it, "<symmetry_test>/<gqs_rule>" (e.g. "chi2/threshold").
    pilot_ : simstudy.network.MLPClassifier
        With a network ``model`` only: the balanced pilot, ``model`` fitted on all rows with
        the inverse-frequency weights n / (2 n_k); its ``HiddenLayer`` (units constant on the
        training rows dropped) is the diagnostics' feature map.
    gamma_, n_synthetic_, cv_results_, generator_
        As for ``VTSSClassifier``.
    theta_, coef_, intercept_, model_, family_, classes_, fit_info_, n_features_in_
        The fit attributes of ``VTSSClassifier``.
    """

    def __init__(
        self,
        generator="smote",
        generator_params=None,
        family="logistic",
        intercept=True,
        ridge=1e-8,
        gammas=None,
        cv="holdout",
        test_size=0.2,
        random_state=None,
        alpha=0.05,
        gqs_threshold=10.0,
        feature_map=None,
        symmetry_test="chi2",
        n_boot=199,
        gqs_rule="threshold",
        gqs_level=0.05,
        variant="simstudy",
        gqs_folds=None,
        model=None,
        preprocessor=None,
    ):
        super().__init__(
            generator=generator,
            generator_params=generator_params,
            family=family,
            intercept=intercept,
            ridge=ridge,
            gammas=gammas,
            cv=cv,
            test_size=test_size,
            random_state=random_state,
            feature_map=feature_map,
            model=model,
            preprocessor=preprocessor,
        )
        self.alpha = alpha
        self.gqs_threshold = gqs_threshold
        self.symmetry_test = symmetry_test
        self.n_boot = n_boot
        self.gqs_rule = gqs_rule
        self.gqs_level = gqs_level
        self.variant = variant
        self.gqs_folds = gqs_folds

    def _check_rules(self) -> None:
        if self.variant not in TG_VARIANTS:
            raise ValueError(f"variant must be one of {TG_VARIANTS}, got {self.variant!r}")
        if self.gqs_folds is not None:
            _check_int(self.gqs_folds, "gqs_folds", 2)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, Real) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        _check_gqs_threshold(self.gqs_threshold)
        if self.symmetry_test not in REFERENCES:
            raise ValueError(f"symmetry_test must be one of {REFERENCES}, got {self.symmetry_test!r}")
        if self.gqs_rule not in GQS_RULES:
            raise ValueError(f"gqs_rule must be one of {GQS_RULES}, got {self.gqs_rule!r}")
        level = self.gqs_level
        if isinstance(level, bool) or not isinstance(level, Real) or not 0 < level < 1:
            raise ValueError(f"gqs_level must be a number in (0, 1), got {level!r}")
        if self.symmetry_test != "chi2":
            _check_int(self.n_boot, "n_boot", 19)

    def _candidates(self, X, X_raw, y, model, generator, root) -> np.ndarray:
        self._check_rules()
        wide = _check_gammas(self.gammas)
        self.__dict__.pop("pilot_", None)  # of an earlier network fit
        if isinstance(model, MLPClassifier):
            model = self._hidden_layer_glm(X, y, model)
        model = self._fitted(model, X, root)  # the final fit's map: drawn on all training rows
        X0, X1 = X[y == 0], X[y == 1]
        self.wald_ = wald_symmetry_test(
            X0,
            X1,
            model,
            reference=self.symmetry_test,
            rng=_stream(root, _SYMMETRY_BOOTSTRAP),
            n_boot=self.n_boot,
            variant=self.variant,
        )
        self.rules_ = f"{self.symmetry_test}/{self.gqs_rule}"
        self.diagnostics_ = self.gqs_ = self.gamma_tg_ = None
        reference = self.variant == "reference"
        if self.wald_.p_value <= self.alpha:
            folds = self.gqs_folds if self.gqs_folds is not None else (3 if reference else 5)
            # with a preprocessor the diagnostics get the raw rows: the reference GQS refits it per fold
            rows = (X0, X1) if self.preprocessor is None else (X_raw[y == 0], X_raw[y == 1])
            self.diagnostics_ = diagnose(
                *rows,
                generator,
                model,
                _stream(root, _DIAGNOSTICS),
                n_folds=min(folds, X1.shape[0]),
                variant=self.variant,
                preprocessor=self.preprocessor,
            )
            self.gqs_ = self.diagnostics_.gqs.gqs
            self.gamma_tg_ = self.diagnostics_.target.gamma
        self.branch_, self.candidate_gammas_ = theory_guided_grid(
            float(self.wald_.p_value),
            self.alpha,
            None if self.diagnostics_ is None else self.diagnostics_.gqs,
            self.gamma_tg_,
            wide,
            gqs_rule=self.gqs_rule,
            gqs_threshold=self.gqs_threshold,
            gqs_level=self.gqs_level,
            windows="multiplicative" if reference else "additive",
            gap=X0.shape[0] - X1.shape[0],
        )
        return self.candidate_gammas_

    def _hidden_layer_glm(self, X, y, network: MLPClassifier) -> FeatureGLM:
        """The logistic GLM on the balanced pilot network's last hidden layer (its units
        constant on X dropped), the feature map fixed: the GLM the diagnostics run on."""
        n1 = int(y.sum())
        weights = np.where(y == 1, len(y) / (2 * n1), len(y) / (2 * (len(y) - n1)))
        self.pilot_ = clone(network).fit(X, y, sample_weight=weights)
        feature_map = HiddenLayer.of(self.pilot_.params_, X, self.pilot_.mean_, self.pilot_.scale_)
        return FeatureGLM(
            get_family("logistic"), intercept=bool(self.intercept), ridge=self.ridge, feature_map=feature_map
        )


class FixedSizeClassifier(_GLMClassifier):
    """A fixed synthetic multiplier: gamma = 0 (no augmentation) or 1 (full balancing), or any gamma >= 0.

    Fits all real rows plus round(gamma (n0 - n1)) synthetic points (section 5 baselines).

    Parameters
    ----------
    gamma : float, default 1.0
        The multiplier, a finite number >= 0.
    generator, generator_params, family, intercept, ridge, random_state, feature_map
        As for ``VTSSClassifier``.

    Attributes
    ----------
    gamma_ : float
        ``gamma`` as a float.
    n_synthetic_ : int
        round(gamma_ (n0 - n1)).
    generator_ : simstudy.generators.base.FittedGenerator or None
        The fitted generator, None when n_synthetic_ = 0.
    theta_, coef_, intercept_, model_, family_, classes_, fit_info_, n_features_in_
        The fit attributes of ``VTSSClassifier``.
    """

    def __init__(
        self,
        gamma=1.0,
        generator="smote",
        generator_params=None,
        family="logistic",
        intercept=True,
        ridge=1e-8,
        random_state=None,
        feature_map=None,
    ):
        self.gamma = gamma
        self.generator = generator
        self.generator_params = generator_params
        self.family = family
        self.intercept = intercept
        self.ridge = ridge
        self.random_state = random_state
        self.feature_map = feature_map

    def fit(self, X, y):
        """Fit on all real rows plus round(gamma (n0 - n1)) synthetic points.

        The generator is fitted on all real rows (streams keyed (final,) under ``random_state``).

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw training rows (finite).
        y : array-like of shape (n,)
            Labels 0 and 1 only, class 1 the strict minority (0 < n1 < n0).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If X or y is invalid, ``gamma`` is not a finite number >= 0, another parameter is
            invalid, or the generator returns a bad sample.
        """
        X, y = self._check_fit_data(X, y)
        model = self._model()
        if (
            isinstance(self.gamma, bool)
            or not isinstance(self.gamma, Real)
            or not (np.isfinite(self.gamma) and self.gamma >= 0)
        ):
            raise ValueError(f"gamma must be a finite number >= 0, got {self.gamma!r}")
        generator = resolve_generator(self.generator, self.generator_params)
        n0, n1 = int((y == 0).sum()), int((y == 1).sum())
        self.gamma_ = float(self.gamma)
        self.n_synthetic_ = int(np.rint(self.gamma_ * (n0 - n1)))
        root = _root_seed(self.random_state)
        self._refit_augmented(X, y, self._fitted(model, X, root), generator, self.n_synthetic_, root)
        return self


class ReweightedClassifier(_GLMClassifier):
    """Inverse-frequency class weights (section 5 baseline): row weight n / (2 n_k) for class k.

    So each class carries half the total weight (the balanced risk's empirical version, the pilot
    of section 4 up to a factor n). No synthetic points; randomness only in a feature map
    refitted on the training rows.

    Parameters
    ----------
    family, intercept, ridge, feature_map
        As for ``VTSSClassifier``.
    random_state : None, int or numpy.random.SeedSequence, default None
        Roots the stream of a ``feature_map`` spec's draw (unused otherwise).

    Attributes
    ----------
    class_weight_ : ndarray of shape (2,)
        The row weights n / (2 n_0) and n / (2 n_1).
    theta_, coef_, intercept_, model_, family_, classes_, fit_info_, n_features_in_
        The fit attributes of ``VTSSClassifier``.
    """

    def __init__(self, family="logistic", intercept=True, ridge=1e-8, feature_map=None, random_state=None):
        self.family = family
        self.intercept = intercept
        self.ridge = ridge
        self.feature_map = feature_map
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on all rows with the inverse-frequency class weights.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw training rows (finite).
        y : array-like of shape (n,)
            Labels 0 and 1 only, class 1 the strict minority (0 < n1 < n0).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If X, y or a parameter (``family``, ``intercept``, ``ridge``, ``feature_map``) is invalid.
        """
        X, y = self._check_fit_data(X, y)
        counts = np.bincount(y, minlength=2)
        self.class_weight_ = y.size / (2.0 * counts)
        model = self._fitted(self._model(), X, _root_seed(self.random_state))
        self._fit_final(X, y, model, weights=self.class_weight_[y])
        return self


class CostSensitiveClassifier(_GLMClassifier):
    """A tuned minority weight (section 5 baseline): class 0 rows weigh 1, class 1 rows w1.

    Candidates ``weights`` (w1 > 0); by default w1 = 1 + gamma (n0 - n1) / n1 over the wide
    gamma grid, so that candidate gamma gives the minority the total weight n1 + gamma (n0 - n1)
    that gamma (n0 - n1) synthetic points would add (w1 = n0 / n1 at gamma = 1 is the
    reweighting baseline). Each candidate is validated by the balanced validation loss on the
    same stratified splits as VTSS (the minority weight is the same on the fitting part), all
    candidates and splits in one batched fit; w1_hat minimises the mean (ties: the smallest),
    and the final fit uses all rows.

    Parameters
    ----------
    weights : array_like, optional
        Candidate minority weights w1 > 0 (sorted and de-duplicated); default as above.
    family, intercept, ridge, cv, test_size, random_state, feature_map, preprocessor
        As for ``VTSSClassifier``.

    Attributes
    ----------
    weight_ : float
        The selected minority weight w1_hat.
    cv_results_ : dict of ndarray
        "weight" (G,), "mean_validation_loss" and "std_validation_loss" (G,),
        "split_validation_loss" (S, G), "n_separated" and "n_not_converged" (G,).
    theta_, coef_, intercept_, model_, family_, classes_, fit_info_, n_features_in_, preprocessor_
        The fit attributes of ``VTSSClassifier``.
    """

    def __init__(
        self,
        weights=None,
        family="logistic",
        intercept=True,
        ridge=1e-8,
        cv="holdout",
        test_size=0.2,
        random_state=None,
        feature_map=None,
        preprocessor=None,
    ):
        self.weights = weights
        self.family = family
        self.intercept = intercept
        self.ridge = ridge
        self.cv = cv
        self.test_size = test_size
        self.random_state = random_state
        self.feature_map = feature_map
        self.preprocessor = preprocessor

    def fit(self, X, y):
        """Select the minority weight on the validation splits, then refit on all rows.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Raw training rows (finite).
        y : array-like of shape (n,)
            Labels 0 and 1 only, class 1 the strict minority (0 < n1 < n0).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If X or y is invalid, ``weights`` holds a number <= 0 or a non-finite value, another
            parameter is invalid, K > n1, or every candidate's validation loss is non-finite.
        """
        X_raw, y = self._check_fit_data(X, y)
        model = self._model()
        n0, n1 = int((y == 0).sum()), int((y == 1).sum())
        if self.weights is None:
            grid = 1.0 + DEFAULT_GAMMAS * (n0 - n1) / n1
        else:
            grid = _check_gammas(self.weights, "weights")
            if grid[0] <= 0:
                raise ValueError(f"weights must be numbers > 0, got {self.weights!r}")
        root = _root_seed(self.random_state)
        splits = stratified_splits(y, self.cv, self.test_size, root)
        views = _split_views(X_raw, splits, self.preprocessor)
        blocks = []
        for (fit_rows, _), split in zip(views, splits, strict=True):
            y_tr = y[split.train]
            w = np.where(y_tr[None, :] == 1, grid[:, None], 1.0)
            blocks.append((fit_rows, y_tr.astype(np.float64), w))
        losses, info = _validation_losses(
            views, y, model, splits, blocks, self._split_models(model, views, splits, root)
        )
        X = self._preprocess(X_raw)
        self.cv_results_ = _curve("weight", grid, losses, info)
        self.weight_ = float(grid[_select(self.cv_results_["mean_validation_loss"])])
        self._fit_final(X, y, self._fitted(model, X, root), weights=np.where(y == 1, self.weight_, 1.0))
        return self


__all__ = [
    "DEFAULT_GAMMAS",
    "GQS_RULES",
    "TG_VARIANTS",
    "CostSensitiveClassifier",
    "FeatureGLM",
    "FixedSizeClassifier",
    "ReweightedClassifier",
    "SharedValidations",
    "Split",
    "TGVTSSClassifier",
    "VTSSClassifier",
    "balanced_loss",
    "resolve_generator",
    "stratified_splits",
    "theory_guided_grid",
]
