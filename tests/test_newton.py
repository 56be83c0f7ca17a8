"""The damped Newton kernel (simstudy.newton): its steps, its line search and its stopping rule."""

import numpy as np

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
    derivatives, values = pseudo_huber()
    start = np.array([1.5])
    assert values(-(start[None] ** 3))[0] > derivatives(start)[0]  # the full step increases f
    # the stall rule assumes the quadratic phase; the damped phase here shrinks the gradient slowly
    x, info = newton.minimise(derivatives, values, start, stall_steps=newton.MAX_STEPS)
    assert info.converged and abs(x[0]) <= newton.GRAD_TOL


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
