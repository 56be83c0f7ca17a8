"""The batched fitter against independent references: statsmodels GLM, scikit-learn, lstsq."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_ndtr, ndtr
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

import simstudy.fitting as fitting
from simstudy.families import LOGISTIC, Family
from simstudy.fitting import GLM, _trace_counter, fit_glm


def _problem(seed, n, d, family):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta = rng.normal(scale=0.7, size=d)
    eta = X @ beta + 0.3
    if family == "squared":
        y = eta + rng.normal(size=n)
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    w = rng.uniform(0.2, 3.0, size=n)
    return X, y, w


N_MAX = 300

problems = st.builds(
    dict,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, N_MAX),
    d=st.integers(1, 4),
    intercept=st.booleans(),
    weighted=st.booleans(),
)


def _padded_fit(X, y, w, model, **options):
    """Pad to N_MAX rows of zero weight so every drawn problem shares a compiled shape."""
    pad = N_MAX - len(y)
    Xp = np.vstack([X, np.zeros((pad, X.shape[1]))])
    return fit_glm(Xp, np.concatenate([y, np.zeros(pad)]), np.concatenate([w, np.zeros(pad)]), model=model, **options)


def _statsmodels_fit(X, y, w, intercept, family):
    Z = sm.add_constant(X, has_constant="add") if intercept else X
    fam = {
        "logistic": sm.families.Binomial(),
        "probit": sm.families.Binomial(sm.families.links.Probit()),
        "squared": sm.families.Gaussian(),
    }[family]
    res = sm.GLM(y, Z, family=fam, var_weights=w).fit(tol=1e-13, maxiter=200)
    return np.asarray(res.params), res.converged


TOL = 1e-6
"""atol and rtol of the comparisons with a reference minimiser."""


def _score_and_curvature(eta, y, family):
    """dl/deta and d2l/deta2 of the Bernoulli losses, from scipy.special (not simstudy.families)."""
    if family == "logistic":
        p = expit(eta)
        return p - y, p * (1 - p)
    mills1, mills0 = (np.exp(norm.logpdf(t) - log_ndtr(t)) for t in (eta, -eta))
    score = -y * mills1 + (1 - y) * mills0
    return score, y * mills1 * (eta + mills1) + (1 - y) * mills0 * (mills0 - eta)


def _newton_step(theta, X, y, w, intercept, family):
    """||H^-1 grad F(theta)|| for the unpenalised weighted loss, in numpy: theta's distance to
    the minimiser, to first order."""
    Z = np.column_stack([np.ones(len(y)), X]) if intercept else X
    score, curvature = _score_and_curvature(Z @ theta, y, family)
    hessian = Z.T @ (Z * (w * curvature)[:, None])
    return np.linalg.norm(np.linalg.solve(hessian, Z.T @ (w * score)))


def _certified(reference, X, y, w, intercept, family):
    """The coefficients ``reference()`` returns, when they are the minimiser to a tenth of TOL;
    otherwise the example is discarded (``assume``).

    A reference's own status does not decide: lbfgs stops at the rounding floor with status 2
    (ABNORMAL line search) and a ConvergenceWarning while its answer is within 3e-9 of the
    minimiser, and IRLS reports convergence from the deviance, not the coefficients. One Newton
    step, computed independently here, measures what the comparison needs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # judged by the Newton step below instead
        ref = np.asarray(reference(), dtype=float)
    assume(np.all(np.isfinite(ref)))
    with np.errstate(all="ignore"):
        step = _newton_step(ref, X, y, w, intercept, family)
    assume(step <= 0.1 * TOL * (1 + np.abs(ref).max()))
    return ref


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
@pytest.mark.parametrize("family", ["logistic", "probit"])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=problems)
def test_agrees_with_statsmodels_glm(family, method, spec):
    X, y, w = _problem(spec["seed"], spec["n"], spec["d"], family)
    if not spec["weighted"]:
        w = np.ones_like(w)
    fit = _padded_fit(X, y, w, GLM(family, intercept=spec["intercept"], ridge=0.0), method=method)
    assume(not fit.info.separated)
    ref = _certified(
        lambda: _statsmodels_fit(X, y, w, spec["intercept"], family)[0], X, y, w, spec["intercept"], family
    )
    assert fit.info.converged
    np.testing.assert_allclose(fit.theta, ref, atol=TOL, rtol=TOL)


def _sklearn_logistic(X, y, w, intercept):
    clf = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000, fit_intercept=intercept)
    clf.fit(X, y, sample_weight=w)
    return np.concatenate([clf.intercept_, clf.coef_[0]]) if intercept else clf.coef_[0]


@settings(deadline=None)
@given(spec=problems)
# lbfgs stops here with status 2 (ABNORMAL line search) and a ConvergenceWarning, 3e-9 from
# the minimiser
@example(spec=dict(seed=60, n=60, d=2, intercept=False, weighted=False))
def test_logistic_agrees_with_sklearn(spec):
    X, y, w = _problem(spec["seed"], spec["n"], spec["d"], "logistic")
    if not spec["weighted"]:
        w = np.ones_like(w)
    fit = _padded_fit(X, y, w, GLM("logistic", intercept=spec["intercept"], ridge=0.0))
    assume(not fit.info.separated)
    ref = _certified(lambda: _sklearn_logistic(X, y, w, spec["intercept"]), X, y, w, spec["intercept"], "logistic")
    np.testing.assert_allclose(fit.theta, ref, atol=TOL, rtol=TOL)


@settings(deadline=None)
@given(spec=problems)
def test_squared_loss_is_weighted_least_squares(spec):
    X, y, w = _problem(spec["seed"], spec["n"], spec["d"], "squared")
    fit = _padded_fit(X, y, w, GLM("squared", intercept=spec["intercept"], ridge=0.0))
    Z = np.column_stack([np.ones(len(y)), X]) if spec["intercept"] else X
    sw = np.sqrt(w)
    ref = np.linalg.lstsq(Z * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(fit.theta, ref, atol=1e-10, rtol=1e-10)
    assert fit.info.converged and fit.info.iterations == 0


def test_ridge_matches_closed_form_and_leaves_intercept_unpenalised():
    X, y, w = _problem(3, 80, 3, "squared")
    lam = 5.0
    fit = fit_glm(X, y, w, model=GLM("squared", intercept=True, ridge=lam))
    Z = np.column_stack([np.ones(len(y)), X])
    # gradient of sum w (y - z't)^2 + lam/2 ||t_{1:}||^2 is zero at (2 Z'WZ + lam P) t = 2 Z'W y
    P = np.diag([0.0, 1.0, 1.0, 1.0])
    ref = np.linalg.solve(2 * Z.T @ (w[:, None] * Z) + lam * P, 2 * Z.T @ (w * y))
    np.testing.assert_allclose(fit.theta, ref, rtol=1e-12)


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
@pytest.mark.parametrize("family", ["logistic", "probit", "squared"])
def test_zero_weight_padding_equals_unpadded(family, method):
    X, y, w = _problem(11, 150, 4, family)
    model = GLM(family, intercept=True)
    plain = fit_glm(X, y, w, model=model, method=method)
    rng = np.random.default_rng(5)
    Xp = np.vstack([X, rng.normal(size=(50, 4)) * 100])
    yp = np.concatenate([y, np.ones(50) if family != "squared" else rng.normal(size=50)])
    wp = np.concatenate([w, np.zeros(50)])
    padded = fit_glm(Xp, yp, wp, model=model, method=method)
    np.testing.assert_allclose(padded.theta, plain.theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
def test_warm_start_gives_the_cold_start_answer(method):
    X, y, w = _problem(7, 200, 5, "logistic")
    model = GLM("logistic", intercept=True)
    cold = fit_glm(X, y, w, model=model, method=method)
    warm = fit_glm(X, y, w, model=model, theta0=cold.theta + 0.3, method=method)
    np.testing.assert_allclose(warm.theta, cold.theta, rtol=1e-9, atol=1e-10)
    near = fit_glm(X, y, w, model=model, theta0=cold.theta, method=method)
    assert near.info.iterations <= 1 < cold.info.iterations


def test_batch_broadcasting_matches_one_by_one():
    rng = np.random.default_rng(2)
    R, G, n, d = 3, 4, 120, 3
    X = rng.normal(size=(R, 1, n, d))
    y = (rng.random((R, 1, n)) < 0.4).astype(float)
    w = rng.integers(0, 2, size=(R, G, n)).astype(float) + 0.5
    model = GLM("logistic", intercept=True)
    batch = fit_glm(X, y, w, model=model)
    assert batch.theta.shape == (R, G, d + 1)
    for r in range(R):
        for g in range(G):
            one = fit_glm(X[r, 0], y[r, 0], w[r, g], model=model)
            np.testing.assert_allclose(batch.theta[r, g], one.theta, rtol=1e-12, atol=1e-13)
            assert batch.info.iterations[r, g] == one.info.iterations


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
@pytest.mark.parametrize("family", ["logistic", "probit"])
def test_separated_data_gives_finite_coefficients_and_the_flag(family, method):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    fit = fit_glm(X, y, model=GLM(family), method=method)
    assert np.all(np.isfinite(fit.theta))
    assert fit.info.separated and not fit.info.nonfinite
    overlapping = fit_glm(X, (rng.random(60) < 0.5).astype(float), model=GLM(family), method=method)
    assert not overlapping.info.separated


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
def test_degenerate_problem_is_flagged_not_silent(method):
    X = np.ones((10, 1))
    fit = fit_glm(X, np.zeros(10), np.zeros(10), model=GLM("logistic", intercept=True), method=method)
    assert np.all(np.isfinite(fit.theta))
    assert fit.info.nonfinite or not fit.info.converged


def test_same_shapes_trace_once():
    rng = np.random.default_rng(4)
    model = GLM("logistic", intercept=True)

    def call():
        X = rng.normal(size=(6, 90, 3))
        y = (rng.random((6, 90)) < 0.3).astype(float)
        return fit_glm(X, y, model=model, tol=1e-9)

    call()
    before = _trace_counter()
    for _ in range(3):
        call()
    assert _trace_counter() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(w=-np.ones(5)), "weights"),
        (dict(y=np.full(5, 2.0)), "labels"),
        (dict(theta0=np.zeros(7)), "theta0"),
        (dict(tol=0.0), "tol"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    args = dict(X=np.ones((5, 2)), y=np.zeros(5))
    args.update({k: v for k, v in kwargs.items() if k in ("y",)})
    other = {k: v for k, v in kwargs.items() if k != "y"}
    with pytest.raises(ValueError, match=message):
        fit_glm(args["X"], args["y"], model=GLM("logistic"), **other)


def _badly_scaled_problem(seed, n, family):
    """Features on scales 1e-2 to 1e2 and a binary feature that is 1 in 2% of the rows: what
    real designs look like, and what a row sketch can miss."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)) * np.logspace(-2, 2, 8)
    X = np.column_stack([X, rng.random(n) < 0.02])
    eta = X @ (rng.normal(scale=0.5, size=9) / np.r_[np.logspace(-2, 2, 8), 1.0]) - 1.0
    y = (rng.random(n) < (expit(eta) if family == "logistic" else ndtr(eta))).astype(float)
    return X, y, rng.uniform(0.2, 3.0, size=n)


@pytest.mark.parametrize("family", ["logistic", "probit"])
def test_sketched_quasi_newton_agrees_with_statsmodels_on_a_badly_scaled_design(family):
    # n / (64 p) = 6: the quasi-Newton start uses every 6th row
    X, y, w = _badly_scaled_problem(1, 4000, family)
    for method in ("quasi_newton", "newton"):
        fit = fit_glm(X, y, w, model=GLM(family, intercept=True, ridge=0.0), method=method)
        ref, ok = _statsmodels_fit(X, y, w, True, family)
        assert ok and fit.info.converged and not fit.info.separated
        np.testing.assert_allclose(fit.theta, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_quasi_newton_batch_in_chunks_matches_one_by_one(monkeypatch):
    rng = np.random.default_rng(8)
    B, n, d = 7, 700, 9
    X = rng.normal(size=(B, n, d))
    y = (rng.random((B, n)) < 0.3).astype(float)
    model = GLM("logistic", intercept=True)
    # chunks of 3 designs: the last chunk overlaps the one before it
    monkeypatch.setattr(fitting, "_CHUNK_DESIGNS", 3)
    monkeypatch.setattr(fitting, "_CHUNK_BYTES", 1)
    batch = fit_glm(X, y, model=model, method="quasi_newton")
    assert batch.info.converged.all()
    for b in range(B):
        one = fit_glm(X[b], y[b], model=model, method="quasi_newton")
        np.testing.assert_allclose(batch.theta[b], one.theta, rtol=1e-12, atol=1e-13)
        assert batch.info.iterations[b] == one.info.iterations


def test_auto_method_chooses_by_the_hessian_work(monkeypatch):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 2000, 12))
    y = (rng.random((40, 2000)) < 0.4).astype(float)
    model = GLM("logistic", intercept=True)
    newton = fit_glm(X, y, model=model, method="newton")
    quasi = fit_glm(X, y, model=model, method="quasi_newton")
    np.testing.assert_allclose(quasi.theta, newton.theta, rtol=1e-7, atol=1e-8)
    # 20 and 40 problems of 2000 x 13 take 6.8e6 and 13.5e6 multiply-adds per round of Hessians
    monkeypatch.setattr(fitting, "_QUASI_NEWTON_WORK", 10**7)
    small, large = fit_glm(X[:20], y[:20], model=model), fit_glm(X, y, model=model)
    np.testing.assert_array_equal(small.info.iterations, newton.info.iterations[:20])
    np.testing.assert_array_equal(large.info.iterations, quasi.info.iterations)
    assert newton.info.iterations.max() < quasi.info.iterations.min()


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method"):
        fit_glm(np.ones((5, 2)), np.zeros(5), model=GLM("logistic"), method="lbfgs")


def test_quasi_newton_start_falls_back_to_the_exact_hessian_when_the_sketch_is_singular():
    rng = np.random.default_rng(10)
    n = 2000  # p = 9: the sketch keeps rows 0, 3, 6, ... (n // (64 p) = 3)
    X = rng.normal(size=(n, 8))
    X[np.arange(n) % 3 != 1, 7] = 0.0  # a column the sketch sees as all zeros
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ np.full(8, 0.4) - 0.5)))).astype(float)
    model = GLM("logistic", intercept=True, ridge=0.0)
    quasi = fit_glm(X, y, model=model, method="quasi_newton")
    newton = fit_glm(X, y, model=model, method="newton")
    assert quasi.info.converged and not quasi.info.nonfinite
    np.testing.assert_allclose(quasi.theta, newton.theta, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("method", ["newton", "quasi_newton"])
def test_an_unreachable_tolerance_stops_at_the_rounding_floor_not_at_max_iter(method):
    X, y, w = _problem(12, 300, 4, "logistic")
    fit = fit_glm(X, y, w, model=GLM("logistic", intercept=True), tol=1e-30, max_iter=500, method=method)
    reachable = fit_glm(X, y, w, model=GLM("logistic", intercept=True), method=method)
    assert not fit.info.converged and not fit.info.nonfinite
    # past tol = 1e-10 the gradient still shrinks for a while; then 30 steps without halving it
    assert reachable.info.iterations < fit.info.iterations < 100
    np.testing.assert_allclose(fit.theta, reachable.theta, rtol=1e-9, atol=1e-10)


def _nested_problem(seed, n_real, pool, d, G, intercept):
    """The engine's shape: one design, G fits whose weights are all real rows plus a growing
    prefix of a synthetic pool; labels shared by the fits."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_real, d)), rng.normal(loc=0.4, size=(pool, d))])
    y = np.concatenate([(rng.random(n_real) < 0.3).astype(float), np.ones(pool)])
    sizes = np.linspace(0, pool, G).astype(int)
    w = np.hstack([np.ones((G, n_real)), (np.arange(pool)[None, :] < sizes[:, None]).astype(float)])
    return X, y, w


@pytest.mark.parametrize("family", ["logistic", "probit"])
@pytest.mark.parametrize("intercept", [False, True])
def test_shared_start_hessians_are_the_exact_hessians_at_a_shared_start(family, intercept):
    X, y, w = _nested_problem(13, 250, 120, 4, 5, intercept)
    model = GLM(family, intercept=intercept, ridge=0.5)
    p = model.n_params(4)
    rng = np.random.default_rng(14)
    theta0 = np.broadcast_to(rng.normal(scale=0.3, size=p), (5, p))
    penalty = np.full(p, 0.5)
    if intercept:
        penalty[0] = 0.0
    segments = fitting._weight_segments(w[None])
    assert len(segments) == 5  # the real rows, then one run per pool block (the first fit has none)
    got = fitting._shared_start_hessians(
        X[None], y[None, None], w[None], theta0[None], penalty, segments, model.family, intercept
    )[0]
    Z = model.features(X)
    c = np.asarray(model.family.curvature(Z @ theta0[0], y))
    exact = np.einsum("gn,nk,nl->gkl", w * c, Z, Z) + np.diag(penalty)
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", ["logistic", "probit"])
@pytest.mark.parametrize("shared_start", [True, False])
def test_nested_prefix_fits_from_a_shared_start_agree_with_statsmodels(family, shared_start):
    X, y, w = _nested_problem(15, 400, 300, 5, 6, True)
    model = GLM(family, intercept=True, ridge=0.0)
    rng = np.random.default_rng(16)
    # starts that differ between fits: the shared Hessians are then taken at their mean
    theta0 = rng.normal(scale=0.2, size=6) + (0 if shared_start else rng.normal(scale=0.2, size=(6, 6)))
    fit = fit_glm(X, y, w, model=model, theta0=theta0, method="quasi_newton")
    assert fit.info.converged.all() and not fit.info.separated.any()
    for g in range(6):
        ref, ok = _statsmodels_fit(X, y, w[g], True, family)
        assert ok
        np.testing.assert_allclose(fit.theta[g], ref, rtol=1e-7, atol=1e-8)


def test_a_singular_shared_start_is_redone_from_the_exact_hessian_for_its_design_only():
    rng = np.random.default_rng(17)
    n = 300
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.random(n) < 0.4).astype(float)
    model = GLM("logistic", ridge=0.0)
    # design 0: the starts' mean puts every row at eta = 1000, where l'' underflows to 0, so
    # its shared Hessian is singular; its first fit starts at 0 and is well posed, its last
    # starts where its own Hessian underflows too; design 1 starts at 0 throughout
    theta0 = np.zeros((2, 3, 2))
    theta0[0, 2, 0] = 3000.0
    fit = fit_glm(np.stack([X, X])[:, None], y, theta0=theta0, model=model, method="quasi_newton")
    alone = fit_glm(X, y, model=model)
    assert fit.info.converged[0, 0] and fit.info.converged[1].all()
    assert fit.info.nonfinite[0, 2] and not fit.info.converged[0, 2]
    for d, g in ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2)):
        np.testing.assert_allclose(fit.theta[d, g], alone.theta, rtol=1e-8, atol=1e-10)


def _positives_twice(f):
    """The elementwise function f with the rows of label 1 counted twice."""
    return lambda eta, y: (1.0 + y) * f(eta, y)


def test_a_user_family_named_like_a_built_in_gets_its_own_compiled_fit():
    # its fit is the built-in's with weights 1 + y; the built-in is compiled first at the same
    # shapes, so a cache keyed by the name alone would hand back the built-in's answer
    doubled = Family(
        "logistic",
        _positives_twice(LOGISTIC.loss),
        _positives_twice(LOGISTIC.score),
        _positives_twice(LOGISTIC.curvature),
        binary=True,
        probability=LOGISTIC.probability,
    )
    X, y, w = _problem(19, 200, 3, "logistic")
    built_in = fit_glm(X, y, w, model=GLM(LOGISTIC, intercept=True))
    user = fit_glm(X, y, w, model=GLM(doubled, intercept=True))
    reference = fit_glm(X, y, w * (1.0 + y), model=GLM(LOGISTIC, intercept=True))
    assert user.info.converged and reference.info.converged
    np.testing.assert_allclose(user.theta, reference.theta, rtol=1e-9, atol=1e-10)
    assert np.abs(user.theta - built_in.theta).max() > 0.01


def test_a_family_is_equal_to_another_with_the_same_functions_only():
    fields = (LOGISTIC.loss, LOGISTIC.score, LOGISTIC.curvature)
    same = Family(LOGISTIC.name, *fields, LOGISTIC.binary, LOGISTIC.probability)
    assert same == LOGISTIC and hash(same) == hash(LOGISTIC)  # the built-ins stay cached
    assert Family("logistic", *fields, False, LOGISTIC.probability) != LOGISTIC


def test_a_family_named_squared_is_not_solved_as_a_quadratic():
    # the closed-form one-step solve holds for the squared loss, not for the name
    named_squared = Family(
        "squared", LOGISTIC.loss, LOGISTIC.score, LOGISTIC.curvature, binary=False, probability=LOGISTIC.probability
    )
    X, y, w = _problem(20, 200, 3, "logistic")
    fit = fit_glm(X, y, w, model=GLM(named_squared, intercept=True))
    reference = fit_glm(X, y, w, model=GLM(LOGISTIC, intercept=True))
    assert fit.info.converged and fit.info.iterations > 0
    np.testing.assert_allclose(fit.theta, reference.theta, rtol=1e-9, atol=1e-10)


def test_two_threads_fitting_more_than_32_coefficients_do_not_deadlock():
    # run in a child process: a deadlock must fail this test, not hang the suite
    script = """
import threading
import numpy as np
import simstudy
from simstudy.fitting import GLM, fit_glm
rng = np.random.default_rng(0)
X = rng.standard_normal((3000, 41))
y = (rng.random(3000) < 0.3).astype(float)
w = (rng.random((21, 3000)) < 0.9).astype(float)
out = []
threads = [threading.Thread(target=lambda: out.append(fit_glm(X, y, w, model=GLM("logistic", False, 1e-8))))
           for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(out), all(bool(np.all(f.info.converged)) for f in out))
"""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["2", "True"]
