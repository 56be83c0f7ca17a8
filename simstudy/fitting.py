"""Batched weighted GLM fitting: damped Newton or quasi-Newton under jit, in float64.

For every problem in a batch this minimises (THEORY.md section 1, the pooled ERM)

    F(theta) = sum_i w_i l(theta; z_i, y_i) + (lambda / 2) ||theta without intercept||^2,

with per-row weights w_i >= 0 (a zero weight marks padding, so problems of different sizes
share one compiled shape), z_i = (1, x_i) when the model has an intercept and x_i otherwise.
The intercept, when present, is theta[0] and is never penalised.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.families import SQUARED, Family, get_family


@dataclass(frozen=True)
class GLM:
    """A model: a loss family, an optional unpenalised intercept and a ridge strength.

    The fields are also the attributes of the (frozen) instance; ``family`` is stored as a
    Family, looked up by ``get_family`` when given by name.

    Parameters
    ----------
    family : Family or str, default "logistic"
        The loss family, or its name (``simstudy.families.FAMILIES``).
    intercept : bool, default False
        Whether the design has a leading column of ones, z = (1, x); its coefficient theta[0]
        is never penalised.
    ridge : float, default 1e-8
        The ridge strength lambda >= 0 of the penalty (lambda / 2) ||theta without intercept||^2.

    Raises
    ------
    ValueError
        If ``family`` names no built-in family, or ``ridge`` is not a finite number >= 0.
    """

    family: Family | str = "logistic"
    intercept: bool = False
    ridge: float = 1e-8

    def __post_init__(self):
        object.__setattr__(self, "family", get_family(self.family))
        if not (np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge!r}")

    def n_params(self, d: int) -> int:
        """Number of coefficients for d raw features.

        Parameters
        ----------
        d : int
            The number of raw features (columns of X).

        Returns
        -------
        int
            p, the number of columns of ``covariates`` for a row of d features, plus one with an
            intercept (d + 1 or d for this class).
        """
        return self.covariates(np.zeros((1, d))).shape[-1] + int(self.intercept)

    def covariates(self, X):
        """The design's columns other than the intercept.

        Here x itself; a subclass may map x to features (``simstudy.selection.FeatureGLM``).

        Parameters
        ----------
        X : array_like of shape (..., d)
            Raw rows.

        Returns
        -------
        array_like of shape (..., d)
            ``X`` itself, unchanged (no copy, no conversion).
        """
        return X

    def features(self, X):
        """The design z(x): the covariates, after a column of ones when the model has an intercept.

        Works on numpy and jax.

        Parameters
        ----------
        X : ndarray or jax.Array of shape (..., d)
            Raw rows.

        Returns
        -------
        ndarray or jax.Array of shape (..., p)
            ``covariates(X)``, preceded by a column of ones of its dtype when the model has an
            intercept; a numpy input gives a numpy array, anything else a jax array.
        """
        X = self.covariates(X)
        if not self.intercept:
            return X
        xp = np if isinstance(X, np.ndarray) else __import__("jax.numpy", fromlist=["ones"])
        ones = xp.ones(X.shape[:-1] + (1,), dtype=X.dtype)
        return xp.concatenate([ones, X], axis=-1)


class FitInfo(NamedTuple):
    """Per-fit diagnostics, each with the batch shape of the call.

    Attributes
    ----------
    iterations : ndarray of int32
        Newton steps taken (0 for the exact squared-loss solve).
    grad_norm : ndarray of float64
        ||grad F(theta)||_2 / sum_i w_i at the returned theta.
    converged : ndarray of bool
        grad_norm <= tol, with no non-finite value met.
    separated : ndarray of bool
        Binary families: the fitted linear rule classifies every weighted row correctly (the
        sample is separable and the unpenalised minimiser does not exist).
    nonfinite : ndarray of bool
        A non-finite loss, gradient or Newton system was met; theta is the last finite iterate.
    """

    iterations: np.ndarray
    """Newton steps taken (0 for the exact squared-loss solve)."""
    grad_norm: np.ndarray
    """||grad F(theta)||_2 / sum_i w_i at the returned theta."""
    converged: np.ndarray
    """grad_norm <= tol."""
    separated: np.ndarray
    """Binary families: the fitted linear rule classifies every weighted row correctly, so the
    sample is separable and the unpenalised minimiser does not exist; theta is then the finite
    point where the iteration was stopped (see ``separation_margin``)."""
    nonfinite: np.ndarray
    """A non-finite loss, gradient or Newton system was met; theta is the last finite iterate."""


class Fit(NamedTuple):
    """The result of ``fit_glm``: coefficients and per-fit diagnostics.

    Attributes
    ----------
    theta : ndarray of float64, shape batch + (p,)
        Coefficients; theta[..., 0] is the intercept when the model has one.
    info : FitInfo
        Diagnostics, each an array of the batch shape.
    """

    theta: np.ndarray
    """Coefficients, shape batch + (p,); theta[..., 0] is the intercept when the model has one."""
    info: FitInfo


_ARMIJO = 1e-4
# a problem that has not halved its best gradient norm in this many loop iterations (tried or
# accepted steps) has reached the gradient's rounding floor (seen at 1.2e-10 > tol = 1e-10 with
# coefficients of 2e4 on 101 random features): it stops there instead of running to max_iter,
# and reports converged = False
_STALE_STEPS = 30
# From this many problems sharing one design, Hessians come from one matrix product with the
# precomputed row outer products (a GEMM) instead of G separate Z' diag(c) Z products; the
# outer products take n p^2 memory, so only for small p (p = 101 would need 1.3 GB at n = 16k).
_OUTER_PRODUCT_GROUP = 4
_OUTER_PRODUCT_MAX_P = 32
# Designs are solved in chunks of at least _CHUNK_DESIGNS designs and about _CHUNK_BYTES
# bytes, one chunk after another: a chunk stays in cache across its iterations (a pass over
# 8 MB ran 2.1x faster per row than over 32 MB or more), and a chunk stops at the slowest of
# few problems. On the benchmark shapes, chunks of 4 designs (1 MB of 2000 x 10 rows, 8 MB of
# 10000 x 20) were fastest: 1.7x and 2.2x faster than one 64 MB chunk.
_CHUNK_BYTES = 2**20
_CHUNK_DESIGNS = 4
_OUTER_PRODUCT_CHUNK_BYTES = 128 * 2**20
METHODS = ("auto", "newton", "quasi_newton")
# "auto" turns to quasi-Newton from this many multiply-adds per round of Hessians (a few ms here)
_QUASI_NEWTON_WORK = 2**24
# BFGS learns the curvature over about p steps: at p = 101 (study 6b's random features) it had
# converged none of 110 fits after 100 steps, where Newton took at most 25
_QUASI_NEWTON_MAX_P = 32
# the quasi-Newton start takes its curvature from n / sketch rows, at least this many per
# coefficient (on 200 fits of 10000 x 21, sketches of every 4th to 16th row made the whole fit
# 1.3-1.4x faster than an exact first Hessian, in 20-24 steps instead of 19)
_SKETCH_ROWS_PER_PARAM = 64
# Problems that share a design and their labels and whose weights take few distinct row
# patterns (the engine's nested prefixes: G + 1 runs) start from exact Hessians at a shared
# point, for the cost of one Hessian (``_shared_start_hessians``); on study 2 (G = 21 fits of
# 12,776 x 20) a replication's BFGS then took 6-13 steps (6.8-9.2 on average over its three
# generators) instead of 16 from the sketch. Up to this many runs:
_START_MAX_SEGMENTS = 256


def _design_operators(X, intercept, G, outer_products):
    """Products with the design Z = (1, X) or X of each of D chunks, never materialising Z.

    Returns linear(v) = Z v (D, G, n), adjoint(r) = Z' r (D, G, p), and gram(c) = Z' diag(c) Z
    (D, G, p, p) for per-problem row weights c (D, G, n).
    """
    D, n, d = X.shape
    p = d + int(intercept)

    def linear(v):
        eta = jnp.einsum("dnk,dgk->dgn", X, v[..., p - d :])
        return eta + v[..., :1] if intercept else eta

    def adjoint(r):
        g = jnp.einsum("dgn,dnk->dgk", r, X)
        return jnp.concatenate([jnp.sum(r, axis=-1, keepdims=True), g], axis=-1) if intercept else g

    if outer_products:
        Z = jnp.concatenate([jnp.ones((D, n, 1), X.dtype), X], axis=-1) if intercept else X
        # materialised once per call (the barrier stops XLA from fusing it into every product)
        outer = jax.lax.optimization_barrier((Z[..., :, None] * Z[..., None, :]).reshape(D, n, p * p))

        def gram(c):
            return jnp.einsum("dgn,dnq->dgq", c, outer).reshape(D, G, p, p)
    else:

        def gram(c):
            xcx = jnp.einsum("dgn,dnk,dnl->dgkl", c, X, X)
            if not intercept:
                return xcx
            xc = jnp.einsum("dgn,dnk->dgk", c, X)
            top = jnp.concatenate([jnp.sum(c, axis=-1)[..., None], xc], axis=-1)
            return jnp.concatenate([top[..., None, :], jnp.concatenate([xc[..., :, None], xcx], axis=-1)], axis=-2)

    return linear, adjoint, gram


def _solve(
    X,
    y,
    w,
    theta0,
    penalty,
    hessian0,
    *,
    family,
    intercept,
    tol,
    max_iter,
    separation_margin,
    quasi_newton,
    sketch,
    outer_products,
):
    """Minimise F for D designs x G weightings: X (D, n, d), y and w (D, G, n), theta0 (D, G, p).
    Returns theta (D, G, p), per-problem diagnostics (D, G) and start_failed (D,): the
    quasi-Newton start was singular for some problem of the design (the caller then solves it
    again from the exact Hessian).

    Newton: delta = H^{-1} grad F with H = Z' diag(w l'') Z + lambda P at every iterate.
    Quasi-Newton: H^{-1} is taken at the start only, from hessian0 (D, G, p, p) when given (see
    ``_shared_start_hessians``), else from every sketch-th row at theta0 (scaled by sketch;
    exact when sketch = 1), and then follows the BFGS update
    (Nocedal & Wright, Numerical Optimization, 2nd ed., eq. 6.17)
        H+^{-1} = (I - rho s y') H^{-1} (I - rho y s') + rho s s',  s = step, y = change of
    grad F, rho = 1 / (y's), skipped unless y's > 0 (convex losses give y's >= 0); each step
    then costs two passes over the rows instead of a Hessian's p. Either way the step is tried
    at length t = 1 and halved across loop iterations until the Armijo condition holds, so a
    loop iteration makes one evaluation: loss, score and curvature at the trial point share
    their transcendentals, and the trial's gradient (and Hessian) are what the next step needs.
    The loop runs until every problem has stopped; a stopped problem no longer moves, so the
    others never change its iterations (the rounding of the batched products may still depend
    on the batch's shape: a problem at its rounding floor can stop at a different point).
    """
    D, G, n = w.shape
    p = theta0.shape[-1]
    linear, adjoint, gram = _design_operators(X, intercept, G, outer_products)
    total_w = jnp.maximum(jnp.sum(w, axis=-1), jnp.finfo(X.dtype).tiny)
    # slack of a few ulps of F: near the optimum the decrease is below F's rounding, and the
    # full step must still be taken for the gradient to reach tol
    ulps = 64 * jnp.finfo(X.dtype).eps
    ridge = jnp.diag(penalty)
    cholesky_solve = jax.vmap(lambda H, g: cho_solve(cho_factor(H), g))

    def solve(H, rhs):
        return cholesky_solve(H.reshape(D * G, p, p), rhs.reshape(D * G, *rhs.shape[2:])).reshape(rhs.shape)

    def hessian(eta):
        return gram(w * family.curvature(eta, y)) + ridge

    def objective(eta, theta):
        """F and its data part sum_i w_i l_i."""
        data = jnp.sum(w * family.loss(eta, y), axis=-1)
        return data + 0.5 * jnp.sum(penalty * theta**2, axis=-1), data

    def gradient(eta, theta):
        return adjoint(w * family.score(eta, y)) + penalty * theta

    def apply(inverse, g):
        return jnp.einsum("dgpq,dgq->dgp", inverse, g)

    def bfgs_update(inverse, step, change):
        sy = jnp.sum(step * change, axis=-1)
        curved = sy > jnp.finfo(X.dtype).eps * jnp.linalg.norm(step, axis=-1) * jnp.linalg.norm(change, axis=-1)
        rho = jnp.where(curved, 1.0 / jnp.where(curved, sy, 1.0), 0.0)[..., None, None]
        h_change = apply(inverse, change)
        y_h_y = jnp.sum(change * h_change, axis=-1)[..., None, None]
        cross = step[..., :, None] * h_change[..., None, :]
        return (
            inverse
            - rho * (cross + jnp.swapaxes(cross, -1, -2))
            + (rho * rho * y_h_y + rho) * step[..., :, None] * step[..., None, :]
        )

    # a binary loss falls with the margin y~ eta: a mean loss at or below that of the separation
    # margin is only reached when (nearly) every weighted row has that margin, since one row on
    # the wrong side of the rule alone contributes l(0) = log 2 (logistic)
    separated_loss = family.loss(jnp.asarray(separation_margin, X.dtype), 1.0)

    def margin_of(eta):
        return jnp.min(jnp.where(w > 0, (2.0 * y - 1.0) * eta, jnp.inf), axis=-1)

    def grad_norm(grad):
        return jnp.linalg.norm(grad, axis=-1) / total_w

    eta0 = linear(theta0)
    grad0 = gradient(eta0, theta0)

    if family == SQUARED:
        # the loss is quadratic: one linear solve is exact (not for any family named "squared")
        theta = theta0 - solve(hessian(eta0), grad0)
        norm = grad_norm(gradient(linear(theta), theta))
        finite = jnp.all(jnp.isfinite(theta), axis=-1) & jnp.isfinite(norm)
        theta = jnp.where(finite[..., None], theta, theta0)
        zeros = jnp.zeros((D, G), jnp.int32)
        return theta, (zeros, norm, finite & (norm <= tol), jnp.zeros((D, G), bool), ~finite), jnp.zeros(D, bool)

    f0, _ = objective(eta0, theta0)

    def healthy(f, grad, delta):
        return jnp.isfinite(f) & jnp.all(jnp.isfinite(grad), axis=-1) & jnp.all(jnp.isfinite(delta), axis=-1)

    def converged(grad):
        return grad_norm(grad) <= tol

    def cond(state):
        return jnp.any(~state["done"]) & (state["loop"] < max_iter)

    def body(s):
        t = s["t"][..., None]
        trial_theta = s["theta"] - t * s["delta"]
        trial_eta = linear(trial_theta)
        (f, data), grad = objective(trial_eta, trial_theta), gradient(trial_eta, trial_theta)
        if quasi_newton:
            inverse = bfgs_update(s["inverse"], trial_theta - s["theta"], grad - s["grad"])
            delta = apply(inverse, grad)
        else:
            delta = solve(hessian(trial_eta), grad)
        decrease = jnp.sum(s["grad"] * s["delta"], axis=-1)
        accept = (
            ~s["done"]
            & healthy(f, grad, delta)
            & (f <= s["f"] - _ARMIJO * s["t"] * decrease + ulps * (jnp.abs(s["f"]) + 1.0))
        )
        # t this small moves nothing a double can resolve, and steps that no longer halve the
        # gradient mean it has reached its rounding floor: progress is over
        norm = grad_norm(grad)
        improved = accept & (norm <= 0.5 * s["best"])
        stale = jnp.where(improved, 0, s["stale"] + 1)
        stalled = (~accept & (s["t"] < 1e-12)) | (stale >= _STALE_STEPS)
        rows = accept[..., None]
        theta = jnp.where(rows, trial_theta, s["theta"])
        separated = family.binary & accept & (data <= separated_loss * total_w)
        done = s["done"] | (accept & converged(grad)) | separated | stalled
        state = dict(
            theta=theta,
            f=jnp.where(accept, f, s["f"]),
            grad=jnp.where(rows, grad, s["grad"]),
            delta=jnp.where(rows, delta, s["delta"]),
            t=jnp.where(accept, 1.0, jnp.where(s["done"], s["t"], 0.5 * s["t"])),
            it=s["it"] + (~s["done"]).astype(jnp.int32),
            loop=s["loop"] + 1,
            done=done,
            best=jnp.where(improved, norm, s["best"]),
            stale=stale,
        )
        if quasi_newton:
            state["inverse"] = jnp.where(rows[..., None], inverse, s["inverse"])
        return state

    start_failed = jnp.zeros(D, bool)
    if quasi_newton:
        identity = jnp.broadcast_to(jnp.eye(p, dtype=X.dtype), (D, G, p, p))
        if hessian0 is not None:
            inverse0 = solve(hessian0, identity)
        elif sketch > 1:
            # BFGS needs only a fair first curvature: every sketch-th row, reweighted by sketch
            _, _, sketch_gram = _design_operators(X[:, ::sketch], intercept, G, outer_products)
            c = w[..., ::sketch] * family.curvature(eta0[..., ::sketch], y[..., ::sketch])
            inverse0 = solve(sketch * sketch_gram(c) + ridge, identity)
        else:
            inverse0 = solve(hessian(eta0), identity)
        if hessian0 is not None or sketch > 1:
            # rows the approximation missed can leave it singular where the exact Hessian is not
            start_failed = ~jnp.all(jnp.isfinite(inverse0), axis=(1, 2, 3))
        delta0 = apply(inverse0, grad0)
    else:
        delta0 = solve(hessian(eta0), grad0)
    ok0 = healthy(f0, grad0, delta0)
    state = dict(
        theta=theta0,
        f=f0,
        grad=grad0,
        delta=delta0,
        t=jnp.ones((D, G), X.dtype),
        it=jnp.zeros((D, G), jnp.int32),
        loop=jnp.int32(0),
        done=~ok0 | converged(grad0),
        best=grad_norm(grad0),
        stale=jnp.zeros((D, G), jnp.int32),
    )
    if quasi_newton:
        state["inverse"] = inverse0
    state = jax.lax.while_loop(cond, body, state)
    norm = grad_norm(state["grad"])
    bad = ~ok0 | ~jnp.isfinite(norm)
    is_sep = family.binary & (margin_of(linear(state["theta"])) > 0)
    return state["theta"], (state["it"], norm, (norm <= tol) & ~bad, is_sep, bad), start_failed


def _trace_counter():
    """Number of times the jitted fitter has been traced (compiled); tests use it."""
    return _TRACES["count"]


_TRACES = {"count": 0}


def _make_jitted():
    def traced(X, y, w, theta0, penalty, hessian0, **options):
        _TRACES["count"] += 1
        return _solve(X, y, w, theta0, penalty, hessian0, **options)

    return jax.jit(
        traced,
        static_argnames=(
            "family",
            "intercept",
            "tol",
            "max_iter",
            "separation_margin",
            "quasi_newton",
            "sketch",
            "outer_products",
        ),
    )


_JITTED = _make_jitted()


def _make_curvature():
    return jax.jit(lambda eta, y, family: family.curvature(eta, y), static_argnames="family")


_CURVATURE = _make_curvature()


def _weight_segments(w) -> np.ndarray:
    """Starts of the runs of rows whose weights agree across every problem of w (D, G, n): the
    engine's nested-prefix weights have G + 1 runs (the real rows, then one per pool block)."""
    change = np.any(w[..., 1:] != w[..., :-1], axis=(0, 1))
    return np.concatenate([[0], np.flatnonzero(change) + 1])


def _shared_start_hessians(X, y, w, theta0, penalty, segments, family, intercept) -> np.ndarray:
    """Hessians H_g = sum_i w_gi l''(z_i' theta_ref) z_i z_i' + lambda P of the G problems of each
    design, all at theta_ref = the mean of the design's starts theta0 (exact when they share
    one), for the cost of a single Hessian: within a run of rows (``_weight_segments``) every
    problem weighs each row alike, so H_g = sum_s w_g,s H_s + lambda P with the run sums
    H_s = Z_s' diag(l'') Z_s. X (C, n, d), y (C, 1, n), w (C, G, n), theta0 (C, G, p).
    Returns (C, G, p, p) in numpy."""
    reference = theta0.mean(axis=1)
    d = X.shape[-1]
    eta = np.matmul(X, reference[:, -d:, None])[..., 0]
    if intercept:
        eta = eta + reference[:, :1]
    curvature = np.asarray(_CURVATURE(eta, y[:, 0], family=family))
    bounds = np.append(segments, X.shape[1])
    runs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        Z = X[:, a:b]
        if intercept:
            Z = np.concatenate([np.ones(Z.shape[:-1] + (1,)), Z], axis=-1)
        runs.append(np.matmul((Z * curvature[:, a:b, None]).transpose(0, 2, 1), Z))
    return np.einsum("cgs,cspq->cgpq", w[..., segments], np.stack(runs, axis=1)) + np.diag(penalty)


_LAPACK_LOCK = threading.Lock()


def _lapack_guard(p: int):
    """One fit at a time in this process when p > 32.

    Above p = 32 the batched Cholesky factorisations run through LAPACK's FFI, which splits a
    batch over XLA's CPU thread pool and waits for its parts; two threads fitting at once each
    held pool threads while waiting for the other's parts, and both waited forever (observed
    with p = 41 and two workers on two cores). Smaller p never reached that path."""
    return _LAPACK_LOCK if p > _QUASI_NEWTON_MAX_P else contextlib.nullcontext()


def choose_method(method: str, problems: int, n: int, p: int) -> str:
    """The solver fit_glm uses for `problems` fits of n rows and p coefficients.

    It is `method` itself unless it is "auto", which picks quasi-Newton where Hessians dominate the work (8 <= p <= 32
    and problems n p^2 >= 2^24 multiply-adds per round of Hessians) and Newton otherwise: below,
    its few steps cost nothing worth saving; above p = 32, BFGS needs too many steps.

    Parameters
    ----------
    method : {"auto", "newton", "quasi_newton"}
        The requested method (``METHODS``).
    problems : int
        Number of problems fitted in the call.
    n : int
        Rows per problem.
    p : int
        Coefficients per problem.

    Returns
    -------
    str
        ``"newton"`` or ``"quasi_newton"``.

    Raises
    ------
    ValueError
        If ``method`` is not one of ``METHODS``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    return "quasi_newton" if 8 <= p <= _QUASI_NEWTON_MAX_P and problems * n * p * p >= _QUASI_NEWTON_WORK else "newton"


def padded_size(n: int) -> int:
    """The smallest m 2^k >= n with 8 <= m < 16 (n itself below 16).

    Array sizes are padded up to these buckets (at most 1/8 extra work) so that sizes that
    vary with the data -- TG-VTSS's candidate windows, a selector's final refit, a stage of
    network trainings -- still share a handful of compiled programs across the replications
    of a study.
    """
    if n < 16:
        return n
    k = n.bit_length() - 4
    return -(-n >> k) << k


def fit_glm(
    X,
    y,
    w=None,
    *,
    model: GLM = GLM(),
    theta0=None,
    tol: float = 1e-10,
    max_iter: int = 100,
    separation_margin: float = 30.0,
    method: str = "auto",
) -> Fit:
    """Fit a batch of weighted, ridge-penalised GLMs at once.

    The leading batch axes of the operands broadcast against each other, and an operand with a
    size-1 batch axis is shared rather than copied: X of shape (R, 1, n, d) with w of shape
    (R, G, n) fits G weightings of each of R designs. The G problems that share a design are
    solved together: one pass over its rows per step for all of them, and under Newton with
    G >= 4 and p <= 32 their Hessians come from a single matrix product with the rows' outer
    products.

    The quasi-Newton start is exact, at the mean of the design's starts, when the G problems of
    a design share their labels and their weights take few distinct row patterns (nested
    prefixes: G + 1), since all G Hessians then cost one (``_shared_start_hessians``);
    otherwise it comes from a row sketch when n >= 128 p. A start that is singular where the
    exact Hessian is not is redone from the exact Hessian, for that design only.
    Both methods stop at the same criterion, so they return the same minimiser to within tol.

    Every problem iterates until ||grad F|| / sum(w) <= tol; the batch stops when all have
    stopped or after max_iter steps. A binary-family problem whose mean loss per unit weight
    falls to the loss at margin y~ eta = separation_margin is stopped there (a sample with a
    row on the wrong side of the rule cannot get there unless that row weighs less than about
    e^-separation_margin of the total) and ``info.separated`` tells whether its fitted rule
    classifies every weighted row correctly: its coefficients are finite but their size
    reflects the stopping rule.
    Repeated calls with the same shapes, model and options reuse one compiled program. Designs
    are solved in chunks (at least 4 designs, about 1 MB), one after another, so that each chunk
    stays in cache and stops at the slowest of few problems.

    Parameters
    ----------
    X : array_like of shape (..., n, d)
        Raw rows of each design (converted to float64; the model's ``covariates`` apply).
    y : array_like of shape (..., n)
        Labels; 0/1 for a binary family.
    w : array_like of shape (..., n), optional
        Row weights w >= 0 (default all ones); a zero weight marks padding.
    model : GLM, default GLM()
        Family, intercept and ridge; p = model.n_params(d).
    theta0 : array_like of shape (..., p), optional
        Warm starts (default zeros).
    tol : float, default 1e-10
        Stopping tolerance on ||grad F|| / sum(w), > 0.
    max_iter : int, default 100
        Most loop iterations (tried or accepted steps), >= 1.
    separation_margin : float, default 30.0
        The margin y~ eta at which a binary-family problem counts as separated and stops.
    method : {"auto", "newton", "quasi_newton"}, default "auto"
        "newton" (an exact Hessian at every step), "quasi_newton" (a Hessian at the start, then
        BFGS updates: two passes over the rows per step instead of a Hessian's cost) or "auto"
        (see ``choose_method``: quasi-Newton for large batches with 8 <= p <= 32, Newton
        otherwise).

    Returns
    -------
    Fit
        ``theta`` of shape batch + (p,) (float64) and ``info`` (FitInfo) with arrays of the batch
        shape, the broadcast of X.shape[:-2], y.shape[:-1], w.shape[:-1] and theta0.shape[:-1].

    Raises
    ------
    TypeError
        If ``model`` is not a GLM.
    ValueError
        If X has fewer than 2 dimensions, y or w does not end in n rows, theta0 does not end in p
        coefficients, a weight is negative or not finite, a binary family gets labels other than
        0/1, tol is not a finite number > 0, max_iter < 1, or ``method`` is unknown.
    """
    if not isinstance(model, GLM):
        raise TypeError(f"model must be a simstudy GLM, got {type(model).__name__}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (..., n, d), got {X.shape}")
    # the intercept is handled inside the solver, so the design's ones are never stored
    X = np.asarray(model.covariates(X), dtype=np.float64)
    n, d = X.shape[-2:]
    p = d + int(model.intercept)
    w = np.ones(y.shape, dtype=np.float64) if w is None else np.asarray(w, dtype=np.float64)
    theta0 = np.zeros((p,)) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    if y.shape[-1:] != (n,) or w.shape[-1:] != (n,):
        raise ValueError(f"y and w must end in n={n} rows, got y {y.shape}, w {w.shape}")
    if theta0.shape[-1:] != (p,):
        raise ValueError(f"theta0 must end in p={p} coefficients, got {theta0.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise ValueError("weights w must be finite and >= 0")
    if model.family.binary and not np.all((y == 0) | (y == 1)):
        raise ValueError(f"family {model.family.name!r} needs labels y in {{0, 1}}")
    if not (np.isfinite(tol) and tol > 0) or int(max_iter) < 1:
        raise ValueError(f"need tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")

    batch_shape = np.broadcast_shapes(X.shape[:-2], y.shape[:-1], w.shape[:-1], theta0.shape[:-1])
    nb = len(batch_shape)
    x_batch = (1,) * (nb - X.ndim + 2) + X.shape[:-2]
    # batch axes along which the design varies come first (D designs), the axes that share it
    # last (G problems per design)
    varying = [i for i in range(nb) if x_batch[i] != 1]
    shared = [i for i in range(nb) if x_batch[i] == 1]
    order = varying + shared
    D = int(np.prod([batch_shape[i] for i in varying], dtype=np.int64))
    G = int(np.prod([batch_shape[i] for i in shared], dtype=np.int64))

    def by_design(a, core):
        a = np.broadcast_to(a, batch_shape + a.shape[a.ndim - core :])
        return a.transpose(order + list(range(nb, nb + core))).reshape((D, G) + a.shape[nb:])

    quasi_newton = choose_method(method, D * G, n, p) == "quasi_newton"
    sketch = max(1, n // (_SKETCH_ROWS_PER_PARAM * p)) if quasi_newton else 1
    # one Hessian per problem does not repay materialising the outer products
    outer_products = not quasi_newton and G >= _OUTER_PRODUCT_GROUP and p <= _OUTER_PRODUCT_MAX_P
    if outer_products:
        chunk = _OUTER_PRODUCT_CHUNK_BYTES // (8 * n * p * p)
    else:
        # the design's rows and a few per-problem vectors (y, w, eta, score) share the cache
        chunk = max(_CHUNK_DESIGNS, _CHUNK_BYTES // (8 * n * (d + 6 * G)))
    penalty = np.full(p, model.ridge)
    if model.intercept:
        penalty[0] = 0.0
    # as many chunks as fit whole, widened to cover D with the least overlap
    n_chunks = max(1, D // max(1, int(chunk)))
    chunk = -(-D // n_chunks)
    Xd = X.reshape(D, n, d)
    y_batch = (1,) * (nb - y.ndim + 1) + y.shape[:-1]
    labels_shared = all(y_batch[i] == 1 for i in shared)
    # the solver takes the labels per problem even when shared: broadcasting them inside the
    # loop made every step materialise the broadcast (20 iterations took 25 ms against 20 ms)
    y_, w_, t_ = (by_design(a, 1) for a in (y, w, theta0))
    segments = None
    if quasi_newton and labels_shared and G > 1:
        segments = _weight_segments(w_)
        # segment Hessians cost n p^2 multiply-adds per design, sketches G n p^2 / sketch
        if len(segments) > _START_MAX_SEGMENTS or n + G * len(segments) >= G * -(-n // sketch):
            segments = None
    options = dict(
        family=model.family,
        intercept=model.intercept,
        tol=float(tol),
        max_iter=int(max_iter),
        separation_margin=float(separation_margin),
        quasi_newton=quasi_newton,
        sketch=sketch,
        outer_products=outer_products,
    )

    def solve_designs(designs, **start):
        """_JITTED on a chunk of designs, given by a slice (views, no copies) or an index array;
        returns JAX's pending results."""
        hessian0 = None
        if segments is not None and not start:
            hessian0 = jnp.asarray(
                _shared_start_hessians(
                    Xd[designs],
                    y_[designs, :1],
                    w_[designs],
                    t_[designs],
                    penalty,
                    segments,
                    model.family,
                    model.intercept,
                )
            )
        return _JITTED(
            jax.device_put(Xd[designs]),
            *(jnp.asarray(a[designs]) for a in (y_, w_, t_)),
            jnp.asarray(penalty),
            hessian0,
            **{**options, **start},
        )

    def collect(pending):
        # waiting in block_until_ready releases the GIL (np.asarray on a pending result does
        # not), so threads fitting other designs keep running meanwhile
        return jax.tree.map(np.asarray, jax.block_until_ready(pending))

    # Chunks of designs go to JAX one at a time: each is solved while it sits in cache, and
    # each transfer is small enough to reuse the previous one's memory (one 320 MB copy took
    # 156 ms here, forty 8 MB copies 16 ms). The last chunk starts early enough to keep the
    # compiled shape and keeps only its new designs; a stopped problem no longer moves, so the
    # other problems of its chunk do not change its answer.
    pending, skips, done = [], [], 0
    with _lapack_guard(p):
        while done < D:
            start = min(done, D - chunk)
            pending.append(solve_designs(slice(start, start + chunk)))
            skips.append(done - start)
            done = start + chunk
        results = collect(pending)
    parts = [jax.tree.map(lambda a, skip=skip: a[skip:], out) for out, skip in zip(results, skips)]
    theta, (it, gnorm, conv, sep, bad), failed = jax.tree.map(lambda *a: np.concatenate(a), *parts)
    # designs whose approximate start was singular are solved again from the exact Hessian,
    # in chunks of the same shape (padded with repeats), so each design's answer depends on
    # its own data only
    redo = np.flatnonzero(failed)
    for first in range(0, len(redo), chunk):
        designs = redo[first : first + chunk]
        padded = np.concatenate([designs, np.full(chunk - len(designs), designs[0])])
        with _lapack_guard(p):
            theta_redo, info_redo, _ = collect(solve_designs(padded, sketch=1))
        theta[designs] = theta_redo[: len(designs)]
        for field, value in zip((it, gnorm, conv, sep, bad), info_redo):
            field[designs] = value[: len(designs)]
    back = list(np.argsort(order))

    def restore(a, core):
        a = np.asarray(a).reshape(tuple(batch_shape[i] for i in order) + a.shape[2:])
        return a.transpose(back + list(range(nb, nb + core)))

    info = FitInfo(*(restore(a, 0) for a in (it, gnorm, conv, sep, bad)))
    return Fit(restore(theta, 1), info)
