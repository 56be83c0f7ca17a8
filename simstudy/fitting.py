"""Batched weighted GLM fitting: damped Newton under jit + vmap, in float64.

For every problem in a batch this minimises (THEORY.md section 1, the pooled ERM)

    F(theta) = sum_i w_i l(theta; z_i, y_i) + (lambda / 2) ||theta without intercept||^2,

with per-row weights w_i >= 0 (a zero weight marks padding, so problems of different sizes
share one compiled shape), z_i = (1, x_i) when the model has an intercept and x_i otherwise.
The intercept, when present, is theta[0] and is never penalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.families import Family, get_family


@dataclass(frozen=True)
class GLM:
    """A model: a loss family, an optional unpenalised intercept and a ridge strength."""

    family: Family | str = "logistic"
    intercept: bool = False
    ridge: float = 1e-8

    def __post_init__(self):
        object.__setattr__(self, "family", get_family(self.family))
        if not (np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge!r}")

    def n_params(self, d: int) -> int:
        """Number of coefficients for d raw features."""
        return d + int(self.intercept)

    def features(self, X):
        """The design z(x): x itself, or (1, x) with an intercept. Works on numpy and jax."""
        if not self.intercept:
            return X
        xp = np if isinstance(X, np.ndarray) else __import__("jax.numpy", fromlist=["ones"])
        ones = xp.ones(X.shape[:-1] + (1,), dtype=X.dtype)
        return xp.concatenate([ones, X], axis=-1)


class FitInfo(NamedTuple):
    """Per-fit diagnostics, each with the batch shape of the call."""

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
    theta: np.ndarray
    """Coefficients, shape batch + (p,); theta[..., 0] is the intercept when the model has one."""
    info: FitInfo


_ARMIJO = 1e-4
# from this many problems sharing one design, Hessians come from one matrix product with the
# precomputed row outer products (a GEMM) instead of G separate Z' diag(c) Z products; the
# outer products take n p^2 memory, so only for small p (p = 101 would need 1.3 GB at n = 16k)
_OUTER_PRODUCT_GROUP = 4
_OUTER_PRODUCT_MAX_P = 32


def _newton_group(Z, y, w, theta0, *, family, penalty, tol, max_iter, separation_margin):
    """Damped Newton on G problems that share one design: Z (n, p), y (G or 1, n), w (G, n),
    theta0 (G or 1, p). Returns theta (G, p) and per-problem diagnostics.

    Step: delta = (Z' diag(w l'') Z + lambda P)^{-1} grad F, tried at length t = 1 and halved
    across loop iterations until the Armijo condition holds. Each loop iteration makes one
    pass over the rows: the loss, score and curvature at the trial point share their
    transcendentals, and the trial's gradient and Hessian are what the next step needs. The
    loop runs until every problem of the group has stopped; a stopped problem no longer moves.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import cho_factor, cho_solve

    G = w.shape[0]
    n, p = Z.shape
    y = jnp.broadcast_to(y, (G, n))
    theta0 = jnp.broadcast_to(theta0, (G, p))
    total_w = jnp.maximum(jnp.sum(w, axis=1), jnp.finfo(Z.dtype).tiny)
    # slack of a few ulps of F: near the optimum the decrease is below F's rounding, and the
    # full Newton step must still be taken for the gradient to reach tol
    ulps = 64 * jnp.finfo(Z.dtype).eps
    ridge = jnp.diag(penalty)

    if G >= _OUTER_PRODUCT_GROUP and p <= _OUTER_PRODUCT_MAX_P:
        # materialised once per call (the barrier stops XLA from fusing it into every product)
        outer = jax.lax.optimization_barrier((Z[:, :, None] * Z[:, None, :]).reshape(n, p * p))

        def hessians(c):
            return (c @ outer).reshape(G, p, p) + ridge
    else:
        def hessians(c):
            return jnp.einsum("gn,np,nq->gpq", c, Z, Z) + ridge

    solve = jax.vmap(lambda H, g: cho_solve(cho_factor(H), g))

    def gradient(eta, theta):
        return (w * family.score(eta, y)) @ Z + penalty * theta

    def evaluate(eta, theta):
        f = jnp.sum(w * family.loss(eta, y), axis=1) + 0.5 * jnp.sum(penalty * theta**2, axis=1)
        grad = gradient(eta, theta)
        return f, grad, solve(hessians(w * family.curvature(eta, y)), grad)

    def margin_of(eta):
        return jnp.min(jnp.where(w > 0, (2.0 * y - 1.0) * eta, jnp.inf), axis=1)

    def grad_norm(eta, theta):
        return jnp.linalg.norm(gradient(eta, theta), axis=1) / total_w

    eta0 = theta0 @ Z.T
    f0, grad0, delta0 = evaluate(eta0, theta0)

    if family.name == "squared":
        # the loss is quadratic: one linear solve is exact
        theta = theta0 - delta0
        norm = grad_norm(theta @ Z.T, theta)
        finite = jnp.all(jnp.isfinite(theta), axis=1) & jnp.isfinite(norm)
        theta = jnp.where(finite[:, None], theta, theta0)
        zeros = jnp.zeros(G, jnp.int32)
        return theta, (zeros, norm, finite & (norm <= tol), jnp.zeros(G, bool), ~finite)

    def healthy(f, grad, delta):
        return (jnp.isfinite(f) & jnp.all(jnp.isfinite(grad), axis=1)
                & jnp.all(jnp.isfinite(delta), axis=1))

    def converged(grad):
        return jnp.linalg.norm(grad, axis=1) / total_w <= tol

    def cond(state):
        return jnp.any(~state["done"]) & (state["loop"] < max_iter)

    def body(s):
        t = s["t"]
        trial_theta = s["theta"] - t[:, None] * s["delta"]
        trial_eta = s["eta"] - t[:, None] * s["deta"]
        f, grad, delta = evaluate(trial_eta, trial_theta)
        decrease = jnp.sum(s["grad"] * s["delta"], axis=1)
        accept = ~s["done"] & healthy(f, grad, delta) & (
            f <= s["f"] - _ARMIJO * t * decrease + ulps * (jnp.abs(s["f"]) + 1.0)
        )
        # t this small moves nothing a double can resolve: floating-point progress is over
        stalled = ~accept & (t < 1e-12)
        rows = accept[:, None]
        theta, eta = jnp.where(rows, trial_theta, s["theta"]), jnp.where(rows, trial_eta, s["eta"])
        new_delta = jnp.where(rows, delta, s["delta"])
        separated = family.binary & (margin_of(eta) >= separation_margin)
        done = s["done"] | (accept & converged(grad)) | separated | stalled
        return dict(
            theta=theta, eta=eta, f=jnp.where(accept, f, s["f"]),
            grad=jnp.where(rows, grad, s["grad"]), delta=new_delta,
            deta=jnp.where(rows, new_delta @ Z.T, s["deta"]),
            t=jnp.where(accept, 1.0, jnp.where(s["done"], t, 0.5 * t)),
            it=s["it"] + (~s["done"]).astype(jnp.int32), loop=s["loop"] + 1, done=done,
        )

    ok0 = healthy(f0, grad0, delta0)
    state = dict(
        theta=theta0, eta=eta0, f=f0, grad=grad0, delta=delta0, deta=delta0 @ Z.T,
        t=jnp.ones(G, Z.dtype), it=jnp.zeros(G, jnp.int32), loop=jnp.int32(0),
        done=~ok0 | converged(grad0),
    )
    state = jax.lax.while_loop(cond, body, state)
    theta, eta = state["theta"], state["eta"]
    norm = grad_norm(eta, theta)
    bad = ~ok0 | ~jnp.isfinite(norm)
    is_sep = family.binary & (margin_of(eta) > 0)
    return theta, (state["it"], norm, (norm <= tol) & ~bad, is_sep, bad)


def _batched_solver(batch_masks, **static):
    """Nest vmap over the batch axes; an operand whose batch axis has size 1 is broadcast
    (in_axes None) instead of copied, so one design X can serve every weight vector."""
    import jax

    solver = lambda Z, y, w, t: _newton_group(Z, y, w, t, **static)  # noqa: E731
    for axis_masks in reversed(batch_masks):
        solver = jax.vmap(solver, in_axes=tuple(0 if m else None for m in axis_masks))
    return solver


def _fit_impl(Z, y, w, theta0, *, family, penalty, tol, max_iter, separation_margin, batch_masks):
    solver = _batched_solver(
        batch_masks, family=family, penalty=penalty, tol=tol, max_iter=max_iter,
        separation_margin=separation_margin,
    )
    return solver(Z, y, w, theta0)


def _trace_counter():
    """Number of times the jitted fitter has been traced (compiled); tests use it."""
    return _TRACES["count"]


_TRACES = {"count": 0}


def _make_jitted():
    import jax

    def traced(Z, y, w, theta0, penalty, *, family, tol, max_iter, separation_margin, batch_masks):
        _TRACES["count"] += 1
        return _fit_impl(
            Z, y, w, theta0, family=family, penalty=penalty, tol=tol, max_iter=max_iter,
            separation_margin=separation_margin, batch_masks=batch_masks,
        )

    return jax.jit(
        traced, static_argnames=("family", "tol", "max_iter", "separation_margin", "batch_masks")
    )


_JITTED = _make_jitted()


def _squeeze_batch(a, batch_ndim, core_ndim):
    """Left-pad a's batch axes to batch_ndim, then drop the size-1 ones; return the mask of
    the axes it keeps (True = mapped by vmap)."""
    batch = a.shape[: a.ndim - core_ndim]
    batch = (1,) * (batch_ndim - len(batch)) + batch
    a = a.reshape(batch + a.shape[a.ndim - core_ndim:])
    keep = tuple(s != 1 for s in batch)
    return a.reshape(tuple(s for s in batch if s != 1) + a.shape[batch_ndim:]), keep


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
) -> Fit:
    """Fit a batch of weighted, ridge-penalised GLMs at once.

    Shapes: X (..., n, d), y (..., n), w (..., n) with w >= 0 (default all ones), theta0
    (..., p) warm starts (default zeros), p = model.n_params(d). The leading batch axes
    broadcast against each other, and an operand with a size-1 batch axis is shared rather
    than copied: X of shape (R, 1, n, d) with w of shape (R, G, n) fits G weightings of each of
    R designs. When the innermost batch axis shares the design, its G problems are solved as one
    group: one pass over the rows per Newton step for all of them, and for p <= 32 their
    Hessians come from a single matrix product with the rows' outer products.

    Every problem iterates until ||grad F|| / sum(w) <= tol; the batch stops when all have
    stopped or after max_iter steps. A binary-family problem whose fitted rule separates its
    sample with every margin y~ eta >= separation_margin is stopped there and flagged
    (``info.separated``): its coefficients are finite but their size reflects the stopping rule.
    Repeated calls with the same shapes, model and options reuse one compiled program.
    """
    import jax.numpy as jnp

    if not isinstance(model, GLM):
        raise TypeError(f"model must be a simstudy GLM, got {type(model).__name__}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (..., n, d), got {X.shape}")
    n, d = X.shape[-2:]
    p = model.n_params(d)
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
    Z = model.features(X)
    operands, masks = zip(
        *(_squeeze_batch(a, nb, k) for a, k in ((Z, 2), (y, 1), (w, 1), (theta0, 1)))
    )
    # an axis of size 1 everywhere is not mapped at all; it is restored on the way out
    mapped = [m for m, size in zip(zip(*masks), batch_shape) if size != 1] if nb else []
    Z, y_, w_, t_ = operands
    if mapped and not mapped[-1][0]:
        # the innermost batch axis shares the design: it becomes the group solved together;
        # operands that do not vary along it get a size-1 group axis (broadcast in the solver)
        group = mapped.pop()
        y_, w_, t_ = (a if varies else a[..., None, :] for a, varies in zip((y_, w_, t_), group[1:]))
        G = [s for s in batch_shape if s != 1][-1]
        w_ = np.broadcast_to(w_, w_.shape[:-2] + (G,) + w_.shape[-1:])
    else:
        y_, w_, t_ = (a[..., None, :] for a in (y_, w_, t_))
    batch_masks = tuple(mapped)
    penalty = np.full(p, model.ridge)
    if model.intercept:
        penalty[0] = 0.0
    theta, (it, gnorm, conv, sep, bad) = _JITTED(
        *(jnp.asarray(a) for a in (Z, y_, w_, t_)), jnp.asarray(penalty),
        family=model.family, tol=float(tol), max_iter=int(max_iter),
        separation_margin=float(separation_margin), batch_masks=batch_masks,
    )
    info = FitInfo(*(np.asarray(a).reshape(batch_shape) for a in (it, gnorm, conv, sep, bad)))
    return Fit(np.asarray(theta).reshape(batch_shape + (p,)), info)
