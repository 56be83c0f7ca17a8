"""Damped Newton with an Armijo step-halving ladder: the numpy solver of the population problems.

``minimise`` solves one problem: theta* = argmin R_bal (``simstudy.population.Population``)
and the continuation path of population limits the simulation's fits start from
(``simstudy.theory``). ``minimise_batch`` solves many at once with the same rules and
constants: every generator fit's limit (``simstudy.theory._fit_limits``) and the population
limits along a grid of sizes. The JAX fitter (``simstudy.fitting``) is a separate, jitted solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

GRAD_TOL = 1e-13
"""Stop when ||grad f|| <= GRAD_TOL (the population limit; ``Population`` passes 0, running to
the rounding floor)."""
MAX_STEPS = 100
"""Newton steps at most (``Population`` allows 200)."""
STALL_RATIO = 0.5
"""A step stalls when it leaves ||grad f|| above STALL_RATIO times the smallest norm so far and
f no lower than the decrease test's rounding slack below the smallest f so far: Newton
converges quadratically, so a gradient that stops halving while f stops falling sits at the
floor of floating-point (or Monte Carlo) rounding. A step that takes f lower never stalls, and
resets the count: far from the minimum the gradient may shrink slowly, or grow, while f falls.
(Against the smallest f so far, not the last: a floor noisier than the slack would otherwise
cycle, a step in three falling just past it.)"""
STALL_STEPS = 2
"""Stop after this many stalled steps in a row (``Population`` waits for 3)."""
LADDER = 30
"""Step lengths tried: 1, 1/2, ..., 2^-(LADDER - 1)."""
MAX_STEP_RATIO = 10.0
"""A Newton step longer than MAX_STEP_RATIO (1 + ||theta||) is shortened to that length before
the ladder. Far from the minimum, where the Hessian is nearly flat (a logistic risk past its
bend), the full step can leave for ||theta|| in the hundreds of thousands, where a class law's
risk needs a quadrature of millions of nodes just to be refused; near the minimum the steps
are far shorter and left alone."""
ARMIJO = 1e-4
"""Sufficient decrease: f(theta - t d) <= f(theta) - ARMIJO t grad'd (+ the slack)."""
SLACK_ULPS = 64
"""Slack of the decrease test in units of eps (|f| + 1): near the optimum the decrease falls
below f's rounding and the full Newton step must still be taken."""

STOPS = ("tolerance", "stall", "line_search", "singular", "max_steps")
"""Why ``minimise`` stopped (``NewtonInfo.stop``)."""


class NewtonInfo(NamedTuple):
    """How a ``minimise`` run ended.

    Attributes
    ----------
    steps : int
        Newton steps taken.
    grad_norm : float
        ||grad f|| at the returned theta.
    stop : str
        One of ``STOPS``: "tolerance" (the gradient met the tolerance), "stall" (it stalled
        ``stall_steps`` times in a row), "line_search" (no step on the ladder met the decrease
        test), "singular" (the Hessian was singular) or "max_steps" (the step budget ran out).
    """

    steps: int
    """Newton steps taken."""
    grad_norm: float
    """||grad f|| at the returned theta."""
    stop: str
    """One of ``STOPS``: the gradient met the tolerance, stalled ``STALL_STEPS`` times, no step
    on the ladder met the decrease test, the Hessian was singular, or ``MAX_STEPS`` ran out."""

    @property
    def converged(self) -> bool:
        """The stopping tolerance was met.

        Returns
        -------
        bool
            ``stop == "tolerance"``.
        """
        return self.stop == "tolerance"

    @property
    def stalled(self) -> bool:
        """The gradient stopped shrinking (at its rounding floor, for a well-posed problem).

        Returns
        -------
        bool
            ``stop == "stall"``.
        """
        return self.stop == "stall"


def stall_count(norm, best, stalls):
    """Stalled steps in a row after one with gradient norm ``norm``.

    ``best`` is the smallest norm before it; elementwise for a batch of solves.

    Parameters
    ----------
    norm : float or ndarray
        The gradient norm after the step.
    best : float or ndarray
        The smallest gradient norm before it (``inf`` before the first step).
    stalls : int or ndarray
        Stalled steps in a row before it.

    Returns
    -------
    ndarray of int
        ``stalls + 1`` where norm >= STALL_RATIO * best (a stall), else 0; the broadcast shape
        of the inputs (0-d for scalars).
    """
    return np.where(norm >= STALL_RATIO * best, stalls + 1, 0)


def decrease_slack(f):
    """SLACK_ULPS eps (|f| + 1): rounding room of the decrease test at objective value f.

    Parameters
    ----------
    f : float or ndarray
        Objective value(s).

    Returns
    -------
    float or ndarray
        The slack, of the shape of ``f``.
    """
    return SLACK_ULPS * np.finfo(float).eps * (np.abs(f) + 1.0)


def _capped(steps, thetas) -> np.ndarray:
    """Each row of steps (B, p) no longer than MAX_STEP_RATIO (1 + ||theta||) for its row of
    thetas; rows within the cap are returned as they are, bit for bit."""
    # scaled by the largest entry first: a norm of entries above 1e154 overflows to inf, and the
    # step would be scaled to nothing
    largest = np.abs(steps).max(axis=1)
    length = largest * np.linalg.norm(steps / np.where(largest > 0, largest, 1.0)[:, None], axis=1)
    cap = MAX_STEP_RATIO * (1.0 + np.linalg.norm(thetas, axis=1))
    long = length > cap
    if not long.any():
        return steps
    out = steps.copy()
    out[long] *= (cap[long] / length[long])[:, None]
    return out


def _armijo_step(values: Callable, theta, f: float, grad, step) -> np.ndarray | None:
    """The longest theta - t step, t = 2^-k, k < LADDER, with a finite value meeting the
    decrease test; None when there is none. All rungs are evaluated in one batch."""
    ladder = 0.5 ** np.arange(LADDER)
    trials = theta[None, :] - ladder[:, None] * step[None, :]
    trial_values = values(trials)
    ok = np.isfinite(trial_values) & (trial_values <= f - ARMIJO * ladder * float(grad @ step) + decrease_slack(f))
    return trials[int(np.argmax(ok))] if ok.any() else None


def minimise(
    derivatives: Callable,
    values: Callable,
    start,
    *,
    tol: float = GRAD_TOL,
    max_steps: int = MAX_STEPS,
    stall_steps: int = STALL_STEPS,
) -> tuple[np.ndarray, NewtonInfo]:
    """Minimise a smooth convex f by damped Newton from ``start``.

    Parameters
    ----------
    derivatives : callable
        ``derivatives(theta) -> (f, grad, hess)`` at theta (p,): f(theta), its gradient (p,)
        and Hessian (p, p).
    values : callable
        ``values(thetas) -> f`` at each row of thetas (B, p), shape (B,).
    start : array_like
        The first iterate, shape (p,).
    tol : float, default GRAD_TOL
        Stop when ||grad f|| <= tol (keyword only).
    max_steps : int, default MAX_STEPS
        Newton steps at most (keyword only).
    stall_steps : int, default STALL_STEPS
        Stop after this many stalled steps in a row (keyword only).

    Returns
    -------
    theta : ndarray
        The last iterate, shape (p,).
    info : NewtonInfo
        Steps taken, ||grad f(theta)|| and why the iteration stopped; the caller judges
        whether that is close enough.

    Notes
    -----
    Iteration k, with g_k = grad f(theta_k), H_k = hess f(theta_k):

        d_k = H_k^{-1} g_k,   theta_{k+1} = theta_k - t_k d_k,

    t_k the largest of 1, 1/2, ..., 2^-(LADDER-1) with f(theta_k - t d_k) finite and at most
    f(theta_k) - ARMIJO t g_k'd_k + SLACK_ULPS eps (|f(theta_k)| + 1). It stops at the first
    k with ||g_k|| <= tol, or with ``stall_steps`` stalled steps in a row (step k - 1 stalls
    when ||g_k|| >= STALL_RATIO min_{j<k} ||g_j|| and min_{j<k} f(theta_j) - f(theta_k) is at
    most the slack above; one that takes f lower resets the count), when no t passes the test
    or H_k is singular (theta_k returned), or after ``max_steps`` steps. A d_k longer than
    MAX_STEP_RATIO (1 + ||theta_k||) is first shortened to that length.
    """
    theta = np.array(start, dtype=np.float64)
    best, stalls, before = np.inf, 0, np.inf
    for steps in range(max_steps):
        f, grad, hess = derivatives(theta)
        norm = float(np.linalg.norm(grad))
        stalls = 0 if before - f > decrease_slack(before) else stall_count(norm, best, stalls)
        before = min(before, f)
        best = min(best, norm)
        if norm <= tol:
            return theta, NewtonInfo(steps, norm, "tolerance")
        if stalls >= stall_steps:
            return theta, NewtonInfo(steps, norm, "stall")
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return theta, NewtonInfo(steps, norm, "singular")
        step = _capped(step[None], theta[None])[0]
        trial = _armijo_step(values, theta, f, grad, step)
        if trial is None:
            return theta, NewtonInfo(steps, norm, "line_search")
        theta = trial
    # the last step moved theta after its gradient was taken
    return theta, NewtonInfo(max_steps, float(np.linalg.norm(derivatives(theta)[1])), "max_steps")


class BatchInfo(NamedTuple):
    """How the B solves of a ``minimise_batch`` run ended, one entry per solve.

    Attributes
    ----------
    steps : ndarray of int, shape (B,)
        Newton steps taken.
    grad_norm : ndarray of float, shape (B,)
        ||grad f|| at the returned theta.
    stop : ndarray of str, shape (B,)
        One of ``STOPS`` each, as ``NewtonInfo.stop``.
    """

    steps: np.ndarray
    """(B,) Newton steps taken."""
    grad_norm: np.ndarray
    """(B,) ||grad f|| at the returned theta."""
    stop: np.ndarray
    """(B,) one of ``STOPS`` each."""


def _solve_rows(hess, grad, rows) -> tuple[np.ndarray, np.ndarray]:
    """H_b^{-1} g_b for the rows b in ``rows``; (steps (B, p), singular (B,) bool)."""
    step = np.zeros_like(grad)
    singular = np.zeros(grad.shape[0], dtype=bool)
    try:
        step[rows] = np.linalg.solve(hess[rows], grad[rows][..., None])[..., 0]
    except np.linalg.LinAlgError:  # one singular Hessian fails the whole batched solve
        for b in np.flatnonzero(rows):
            try:
                step[b] = np.linalg.solve(hess[b], grad[b])
            except np.linalg.LinAlgError:
                singular[b] = True
    return step, singular


def minimise_batch(
    derivatives: Callable,
    start,
    *,
    tol: float = GRAD_TOL,
    max_steps: int = MAX_STEPS,
    stall_steps: int = STALL_STEPS,
) -> tuple[np.ndarray, BatchInfo]:
    """Minimise B smooth convex functions f_b at once by damped Newton, each from its own start.

    Each solve follows ``minimise``'s iteration and stopping rules on its own. The line search
    differs: a trial step's value comes with its gradient and Hessian (one call of
    ``derivatives``), so the decrease test costs nothing when the full step is taken, as it is
    from a good start; otherwise the step is halved one rung at a time, up to LADDER rungs.
    Every call evaluates all B rows (a solve that stopped keeps its theta): a fixed batch shape
    lets a jitted quadrature inside ``derivatives`` compile once.

    Parameters
    ----------
    derivatives : callable
        ``derivatives(thetas) -> (f, grad, hess)`` at thetas (B, p): f_b(theta_b) (B,), the
        gradients (B, p) and Hessians (B, p, p).
    start : array_like of shape (B, p)
        The first iterates.
    tol : float, default GRAD_TOL
        A solve stops when ||grad f_b|| <= tol (keyword only).
    max_steps : int, default MAX_STEPS
        Newton steps at most (keyword only).
    stall_steps : int, default STALL_STEPS
        A solve stops after this many stalled steps in a row (keyword only).

    Returns
    -------
    thetas : ndarray of shape (B, p)
        The last iterates.
    info : BatchInfo
        Per solve: steps, ||grad f_b|| and why it stopped (``NewtonInfo.stop``); the caller
        judges whether that is close enough.

    Raises
    ------
    ValueError
        If ``start`` is not two-dimensional.
    """
    theta = np.array(start, dtype=np.float64)
    if theta.ndim != 2:
        raise ValueError(f"start must have shape (B, p), got shape {theta.shape}")
    B = theta.shape[0]
    f, grad, hess = derivatives(theta)
    active = np.ones(B, dtype=bool)
    best, stalls = np.full(B, np.inf), np.zeros(B, dtype=int)
    steps, stop = np.zeros(B, dtype=int), np.full(B, "max_steps", dtype=object)
    before = np.full(B, np.inf)
    for _ in range(max_steps):
        norm = np.linalg.norm(grad, axis=1)
        stalls = np.where(before - f > decrease_slack(before), 0, stall_count(norm, best, stalls))
        before = np.minimum(before, f)
        best = np.minimum(best, norm)
        met, stalled = active & (norm <= tol), active & (norm > tol) & (stalls >= stall_steps)
        stop[met], stop[stalled] = "tolerance", "stall"
        active &= ~(met | stalled)
        if not active.any():
            break
        step, singular = _solve_rows(hess, grad, active)
        stop[singular] = "singular"
        active &= ~singular
        step = _capped(step, theta)
        slope = np.einsum("bp,bp->b", grad, step)
        slack = decrease_slack(f)
        t, pending = np.ones(B), active.copy()
        for _ in range(LADDER):
            trial = theta - t[:, None] * step
            # a step that overflowed is refused like one whose value is not finite; its row is
            # evaluated at the current theta so that ``derivatives`` sees finite input only
            finite = np.all(np.isfinite(trial), axis=1)
            f_t, grad_t, hess_t = derivatives(np.where(finite[:, None], trial, theta))
            ok = pending & finite & np.isfinite(f_t) & (f_t <= f - ARMIJO * t * slope + slack)
            theta[ok], f[ok], grad[ok], hess[ok] = trial[ok], f_t[ok], grad_t[ok], hess_t[ok]
            steps += ok
            pending &= ~ok
            if not pending.any():
                break
            t[pending] *= 0.5
        # a solve whose line search failed stays where it is, judged by its last gradient
        stop[pending] = "line_search"
        active &= ~pending
    return theta, BatchInfo(steps, np.linalg.norm(grad, axis=1), stop.astype(str))


__all__ = [
    "ARMIJO",
    "BatchInfo",
    "GRAD_TOL",
    "LADDER",
    "MAX_STEP_RATIO",
    "MAX_STEPS",
    "NewtonInfo",
    "SLACK_ULPS",
    "STALL_RATIO",
    "STALL_STEPS",
    "STOPS",
    "decrease_slack",
    "minimise",
    "minimise_batch",
    "stall_count",
]
