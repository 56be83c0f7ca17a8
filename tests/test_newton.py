"""The damped Newton kernel (simstudy.newton): its steps, its line search and its stopping rule."""

import numpy as np
import pytest
from scipy.special import expit

from simstudy import newton


def quadratic(A, b):
    """f = x'Ax / 2 - b'x: its derivatives and batched values."""

    def derivatives(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b, A

    def values(xs):
        return 0.5 * np.einsum("bi,ij,bj->b", xs, A, xs) - xs @ b

    return derivatives, values


def softplus(c):
    """f = sum_i log(1 + e^{x_i}) - c'x, minimised at x = logit(c): Newton from far needs damping."""

    def derivatives(x):
        s = 1.0 / (1.0 + np.exp(-x))
        return float(np.sum(np.logaddexp(0.0, x) - c * x)), s - c, np.diag(s * (1.0 - s))

    def values(xs):
        return np.sum(np.logaddexp(0.0, xs) - c * xs, axis=1)

    return derivatives, values


def test_a_quadratic_is_solved_by_one_full_step():
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([1.0, -1.0])
    x, info = newton.minimise(*quadratic(A, b), np.zeros(2))
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-15, atol=1e-15)
    assert info.converged and info.steps == 1 and info.grad_norm <= newton.GRAD_TOL


def pseudo_huber():
    """f = sum_i sqrt(1 + x_i^2): the full Newton step x -> -x^3 overshoots for |x| > 1."""

    def derivatives(x):
        r = np.sqrt(1.0 + x * x)
        return float(r.sum()), x / r, np.diag(r**-3)

    def values(xs):
        return np.sqrt(1.0 + xs * xs).sum(axis=1)

    return derivatives, values


def test_a_far_start_is_damped_by_the_armijo_ladder_and_converges():
    """The damped phase shrinks the gradient slowly while f falls: no stall, with the default
    rule (a stall needs f to stop falling too)."""
    derivatives, values = pseudo_huber()
    start = np.array([1.5])
    assert values(-(start[None] ** 3))[0] > derivatives(start)[0]  # the full step increases f
    x, info = newton.minimise(derivatives, values, start)
    assert info.converged and abs(x[0]) <= newton.GRAD_TOL

    def rows(xs):
        r = np.sqrt(1.0 + xs * xs)
        return r.sum(axis=1), xs / r, (r**-3)[:, :, None]

    xs, batch = newton.minimise_batch(rows, start[None])
    assert batch.stop[0] == "tolerance" and abs(xs[0, 0]) <= newton.GRAD_TOL


def test_a_step_from_where_the_hessian_is_flat_is_shortened_before_the_ladder():
    """softplus at x = 30 has curvature e^-30: the full Newton step would go to about -1e13.
    Each step is shortened to MAX_STEP_RATIO (1 + |x|) of the iterate it leaves, so no point
    tried gets anywhere near that, and the solve still reaches the minimum."""
    c = np.array([0.3])
    derivatives, values = softplus(c)
    tried = []

    def recorded(xs):
        tried.append(np.abs(xs).max())
        return values(xs)

    x, info = newton.minimise(derivatives, recorded, np.array([30.0]))
    assert info.converged
    np.testing.assert_allclose(x, np.log(c / (1.0 - c)), rtol=1e-12)
    assert max(tried) < 1e3
    xs, batch = newton.minimise_batch(softplus_rows(c[None]), np.array([[30.0]]))
    assert batch.stop[0] == "tolerance"
    np.testing.assert_allclose(xs[0], np.log(c / (1.0 - c)), rtol=1e-12)


def test_with_no_tolerance_it_runs_to_the_rounding_floor_and_stops_on_the_stall_rule():
    c = np.array([0.3, 0.6, 0.45])
    x, info = newton.minimise(*softplus(c), np.zeros(3), tol=0.0, stall_steps=3)
    assert info.stop in ("stall", "tolerance") and info.grad_norm < 1e-15
    np.testing.assert_allclose(x, np.log(c / (1.0 - c)), rtol=1e-13)


def test_a_singular_hessian_stops_at_the_current_iterate():
    A = np.array([[1.0, 0.0], [0.0, 0.0]])
    start = np.array([1.0, 2.0])
    x, info = newton.minimise(*quadratic(A, np.array([0.0, 1.0])), start)
    assert info.stop == "singular" and info.steps == 0 and not info.converged
    np.testing.assert_array_equal(x, start)


def test_no_decrease_on_the_ladder_stops_the_iteration():
    def derivatives(x):  # the gradient points uphill: no step length can decrease f
        return float(x @ x), -x, np.eye(x.size)

    x, info = newton.minimise(derivatives, lambda xs: np.einsum("bi,bi->b", xs, xs), np.ones(2))
    assert info.stop == "line_search" and info.steps == 0
    np.testing.assert_array_equal(x, np.ones(2))


def test_max_steps_reports_the_gradient_at_the_returned_iterate():
    c = np.array([0.2, 0.9])
    derivatives, values = softplus(c)
    x, info = newton.minimise(derivatives, values, np.array([4.0, -4.0]), max_steps=2)
    assert info.stop == "max_steps" and info.steps == 2
    assert info.grad_norm == float(np.linalg.norm(derivatives(x)[1]))


def softplus_rows(C):
    """Row b: f_b = sum_i log(1 + e^{x_i}) - c_b'x, as ``softplus(C[b])`` for a whole batch (its
    trial steps can be far out, where 1 / (1 + e^-x) would overflow)."""

    def derivatives(xs):
        s = expit(xs)
        hess = np.zeros(xs.shape + xs.shape[-1:])
        hess[:, np.arange(xs.shape[1]), np.arange(xs.shape[1])] = s * (1.0 - s)
        return np.sum(np.logaddexp(0.0, xs) - C * xs, axis=1), s - C, hess

    return derivatives


def test_a_batch_takes_each_solves_own_steps_and_stop():
    rng = np.random.default_rng(3)
    C = rng.uniform(0.05, 0.95, size=(6, 3))
    starts = rng.uniform(-4.0, 4.0, size=(6, 3))  # far enough that some solves damp their steps
    thetas, info = newton.minimise_batch(softplus_rows(C), starts)
    for b in range(6):
        x, one = newton.minimise(*softplus(C[b]), starts[b])
        assert (info.stop[b], info.steps[b]) == (one.stop, one.steps)
        np.testing.assert_allclose(thetas[b], x, rtol=0, atol=1e-14)
        np.testing.assert_allclose(info.grad_norm[b], one.grad_norm, rtol=0, atol=1e-15)
    assert info.steps.max() > info.steps.min()  # the solves did not move in lockstep


def test_each_solve_of_a_batch_stops_for_its_own_reason():
    """Row 0 a quadratic (one full step), row 1 a singular Hessian, row 2 an uphill gradient (no
    step decreases f), row 3 at its minimum already: one solve's trouble leaves the others alone."""
    target = np.array([1.0, -2.0])

    def derivatives(xs):
        f = 0.5 * np.sum((xs - target) ** 2, axis=1)
        grad = xs - target
        hess = np.broadcast_to(np.eye(2), (4, 2, 2)).copy()
        hess[1] = np.diag([1.0, 0.0])
        f[2], grad[2] = xs[2] @ xs[2], -xs[2]
        return f, grad, hess

    starts = np.array([[0.0, 0.0], [3.0, 3.0], [1.0, 1.0], target])
    thetas, info = newton.minimise_batch(derivatives, starts)
    assert list(info.stop) == ["tolerance", "singular", "line_search", "tolerance"]
    assert list(info.steps) == [1, 0, 0, 0]
    np.testing.assert_allclose(thetas[0], target, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thetas[1:], starts[1:])


def test_a_batch_out_of_steps_reports_the_gradient_at_its_last_iterate():
    C = np.array([[0.2, 0.9], [0.7, 0.4]])
    derivatives = softplus_rows(C)
    thetas, info = newton.minimise_batch(derivatives, np.array([[4.0, -4.0], [-4.0, 4.0]]), max_steps=2)
    assert list(info.stop) == ["max_steps", "max_steps"] and list(info.steps) == [2, 2]
    np.testing.assert_array_equal(info.grad_norm, np.linalg.norm(derivatives(thetas)[1], axis=1))


def test_a_step_that_overflows_is_refused_and_never_evaluated():
    """Row 1's Hessian is so small that its Newton step is infinite: that solve stops on the line
    search (as ``minimise`` stops it), the other is solved, and ``derivatives`` (which, like the
    class laws' batched moments, refuses non-finite input) only ever sees finite rows."""
    target = np.array([1.0, -2.0])

    def derivatives(xs):
        assert np.all(np.isfinite(xs))
        hess = np.broadcast_to(np.eye(2), (2, 2, 2)).copy()
        hess[1] *= 1e-320
        return 0.5 * np.sum((xs - target) ** 2, axis=1), xs - target, hess

    thetas, info = newton.minimise_batch(derivatives, np.zeros((2, 2)))
    assert list(info.stop) == ["tolerance", "line_search"]
    np.testing.assert_allclose(thetas[0], target, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thetas[1], np.zeros(2))


def test_a_batch_start_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"shape \(B, p\)"):
        newton.minimise_batch(softplus_rows(np.array([[0.5]])), np.zeros(1))


def test_a_floor_noisier_than_the_slack_still_stops_on_the_stall_rule():
    """At a floor whose f wobbles by more than the slack, f cycles 0, +0.72, -0.31 slacks while
    the gradient stays put: against the last f, every third step falls 1.03 slacks and resets
    the count, and the solve ran to max_steps (found in review); against the smallest f so far
    no step gets a slack lower, and it stops on the third stall."""
    slack = float(newton.decrease_slack(1.0))
    wobble = np.array([0.0, 0.72, -0.31]) * slack
    unit = 1e-10  # the gradient, and with a unit Hessian each step's length

    def f(x):
        return 1.0 + wobble[int(round(-x / unit)) % 3]

    def derivatives(x):
        return f(x[0]), np.array([unit]), np.eye(1)

    def values(xs):
        return np.array([f(x[0]) for x in xs])

    x, info = newton.minimise(derivatives, values, np.zeros(1), tol=0.0, stall_steps=3, max_steps=50)
    assert (info.stop, info.steps) == ("stall", 3)

    def rows(xs):
        return values(xs), np.full(xs.shape, unit), np.ones((len(xs), 1, 1))

    xs, batch = newton.minimise_batch(rows, np.zeros((1, 1)), tol=0.0, stall_steps=3, max_steps=50)
    assert (batch.stop[0], batch.steps[0]) == ("stall", 3)


def test_a_step_too_long_for_its_norm_to_be_finite_is_shortened_not_zeroed():
    """pseudo-Huber at x = 1e52: the full Newton step is about 1e156, whose norm overflows; the
    cap still shortens it to a finite step in the right direction (found in review: it became
    0, and two zero steps were reported as a stall)."""
    derivatives, values = pseudo_huber()
    x, info = newton.minimise(derivatives, values, np.array([1e52]), max_steps=3)
    assert info.stop == "max_steps" and info.steps == 3 and x[0] < 1e52
