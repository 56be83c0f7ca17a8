"""Section 4 diagnostics against independent references: jax derivatives of the mean loss, a
finite-difference influence-function computation of the Wald variance, closed-form Gaussian
moments for squared loss (null size, noncentral chi2 power, GQS and its noise floor), and Monte
Carlo with tolerances from the MCSE (|estimate - truth| / MCSE < Z)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import chi2, ncx2

from simstudy.diagnostics import (
    _pilot,
    alignment_estimates,
    balanced_pilot,
    class_score_stats,
    diagnose,
    exact_generator_null,
    generator_quality_score,
    plug_in_target,
    pool_generator_null,
    wald_symmetry_test,
    weighted_chi2_quantile,
    weighted_chi2_sf,
)
from simstudy.fitting import GLM
from simstudy.generators.base import FittedGenerator, Generator
from simstudy.generators.classic import Smote

Z = 4.0
ALPHA = 0.05


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence([20240917, *key]))


# ---------------------------------------------------------------- closed forms (squared loss)


def gaussian_squared_moments(nu, B, y, theta):
    """Population gradient, Hessian and score covariance of l = (y - z'theta)^2 when
    z = nu + B eta, eta ~ N(0, I).

    With a = y - nu'theta, u = B'theta, t = eta'u ~ N(0, |u|^2) and r = a - t:
    E[r z] = a nu - B u and, by Isserlis, E[(a - t)^2] = a^2 + |u|^2, E[(a - t)^2 eta] = -2 a u,
    E[(a - t)^2 eta eta'] = (a^2 + |u|^2) I + 2 u u'. The score is -2 r z and the Hessian 2 zz'.
    """
    a = y - nu @ theta
    u = B.T @ theta
    Bu = B @ u
    q = a**2 + u @ u
    Erz = a * nu - Bu
    Er2zz = (
        q * np.outer(nu, nu)
        - 2 * a * (np.outer(nu, Bu) + np.outer(Bu, nu))
        + B @ (q * np.eye(u.size) + 2 * np.outer(u, u)) @ B.T
    )
    return -2 * Erz, 2 * (np.outer(nu, nu) + B @ B.T), 4 * (Er2zz - np.outer(Erz, Erz))


class GaussianDesign:
    """P0 = N(0, I), P1 = N(mu1, I), labels 0/1, squared loss without intercept (study 3)."""

    def __init__(self, mu1):
        self.mu1 = np.asarray(mu1, dtype=float)
        d = self.mu1.size
        self.I = np.eye(d)
        zero = np.zeros(d)
        # grad R_k = H_k theta - 2 y_k E_k z, so the balanced minimiser solves one linear system
        H0 = gaussian_squared_moments(zero, self.I, 0.0, zero)[1]
        H1 = gaussian_squared_moments(self.mu1, self.I, 1.0, zero)[1]
        self.theta = np.linalg.solve(H0 + H1, 2 * self.mu1)
        self.g0, self.H0, self.S0 = gaussian_squared_moments(zero, self.I, 0.0, self.theta)
        self.g1, self.H1, self.S1 = gaussian_squared_moments(self.mu1, self.I, 1.0, self.theta)
        self.H = (self.H0 + self.H1) / 2

    def sample(self, rng, shape, n0, n1):
        d = self.mu1.size
        return (rng.standard_normal(shape + (n0, d)), self.mu1 + rng.standard_normal(shape + (n1, d)))

    def synthetic(self, mean, cov):
        """(psi, H_tilde1, Sigma_tilde) of a N(mean, cov) generator at theta*."""
        g, H, S = gaussian_squared_moments(np.asarray(mean, float), np.linalg.cholesky(cov), 1.0, self.theta)
        return g - self.g1, H, S


class FixedGaussian(Generator):
    """A generator whose law N(mean, cov) ignores the data (so psi is not random)."""

    name = "fixed_gaussian"
    data_dependent = False

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, dtype=float)
        self.cov = np.asarray(cov, dtype=float)

    def fit(self, X1, X0, rng):
        return _FittedFixedGaussian(self.mean, self.cov)


class _FittedFixedGaussian(FittedGenerator):
    def __init__(self, mean, cov):
        self.mean, self.dim = mean, mean.size
        self.factor = np.linalg.cholesky(cov)

    def _sample(self, m, rng):
        return self.mean + rng.standard_normal((m, self.dim)) @ self.factor.T


class _FittedConstant(FittedGenerator):
    def __init__(self, row):
        self.row, self.dim = row, row.size

    def _sample(self, m, rng):
        return np.tile(self.row, (m, 1))


# ---------------------------------------------------------------- class_score_stats


@pytest.mark.parametrize("family", ["squared", "logistic", "probit"])
@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_class_score_stats_equals_jax_derivatives_of_the_mean_loss(family, intercept, label):
    rng = _rng(1)
    model = GLM(family, intercept=intercept)
    X = rng.normal(size=(37, 3))
    theta = rng.normal(scale=0.5, size=model.n_params(3))
    Zm = model.features(X)

    def row_loss(th, z):
        return model.family.loss(z @ th, label)

    def mean_loss(th):
        return jnp.mean(jax.vmap(row_loss, in_axes=(None, 0))(th, Zm))

    rows = np.asarray(jax.vmap(jax.grad(row_loss), in_axes=(None, 0))(theta, Zm))
    stats = class_score_stats(theta, X, label, model)
    np.testing.assert_allclose(stats.mean, jax.grad(mean_loss)(theta), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.hessian, jax.hessian(mean_loss)(theta), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(rows, rowvar=False), rtol=1e-10, atol=1e-12)
    assert stats.n == 37


def test_class_score_stats_batches_like_a_loop():
    rng = _rng(2)
    model = GLM("logistic", intercept=True)
    X = rng.normal(size=(4, 25, 2))
    theta = rng.normal(size=(4, 3))
    batched = class_score_stats(theta, X, 1, model)
    for r in range(4):
        single = class_score_stats(theta[r], X[r], 1, model)
        for a, b in zip(batched[:3], single[:3]):
            np.testing.assert_allclose(a[r], b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- Wald test: exact algebra


def test_wald_variance_equals_finite_difference_influence_of_refitted_pilots():
    """Brute force, independent of the A0/A1 formula: perturb the weight of each row, refit the
    pilot from scratch (scipy), difference g_phi_hat numerically. The Jacobian column of row i
    is its influence on g_phi_hat, so V = sum_k Cov_rows(J_k) / n_k (the delta method)."""
    rng = _rng(3)
    model = GLM("logistic", intercept=True, ridge=1e-2)
    n0, n1 = 14, 7
    X0 = rng.normal(size=(n0, 2))
    X1 = rng.normal(loc=(0.8, -0.5), scale=1.3, size=(n1, 2))
    Z0, Z1 = model.features(X0), model.features(X1)
    penalty = np.array([0.0, 1.0, 1.0]) * model.ridge

    def class_mean(th, Zk, wk, yk):
        return jnp.sum(wk * model.family.loss(Zk @ th, yk))

    def objective(th, w0, w1):
        return 0.5 * class_mean(th, Z0, w0, 0.0) + 0.5 * class_mean(th, Z1, w1, 1.0) + 0.5 * jnp.sum(penalty * th**2)

    value_obj = jax.jit(objective)
    grad_obj = jax.jit(jax.grad(objective))
    hess_obj = jax.jit(jax.hessian(objective))
    class_grad = jax.jit(jax.grad(class_mean), static_argnums=3)

    def g_phi(w0, w1):
        res = minimize(
            lambda t: float(value_obj(t, w0, w1)),
            np.zeros(3),
            method="trust-exact",
            jac=lambda t: np.asarray(grad_obj(t, w0, w1)),
            hess=lambda t: np.asarray(hess_obj(t, w0, w1)),
            options={"gtol": 1e-14},
        )
        th = res.x
        return np.asarray(class_grad(th, Z0, w0, 0.0)) - np.asarray(class_grad(th, Z1, w1, 1.0))

    w0, w1 = np.full(n0, 1 / n0), np.full(n1, 1 / n1)
    h = 1e-5

    def jacobian(k, n):
        cols = []
        for i in range(n):
            e = np.zeros(n)
            e[i] = h
            plus = g_phi(w0 + e, w1) if k == 0 else g_phi(w0, w1 + e)
            minus = g_phi(w0 - e, w1) if k == 0 else g_phi(w0, w1 - e)
            cols.append((plus - minus) / (2 * h))
        return np.array(cols)

    V_brute = np.cov(jacobian(0, n0), rowvar=False) / n0 + np.cov(jacobian(1, n1), rowvar=False) / n1
    g_brute = g_phi(w0, w1)
    res = wald_symmetry_test(X0, X1, model)
    assert res.pilot_info.converged
    np.testing.assert_allclose(res.g_phi_hat, g_brute, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.V, V_brute, rtol=1e-6, atol=1e-9)
    T_brute = g_brute @ np.linalg.solve(V_brute, g_brute)
    np.testing.assert_allclose(res.statistic, T_brute, rtol=1e-6)
    np.testing.assert_allclose(res.p_value, chi2.sf(T_brute, 3), rtol=1e-5)
    assert res.df == 3


def test_balanced_pilot_minimises_the_balanced_empirical_risk():
    rng = _rng(4)
    model = GLM("probit", intercept=True)
    X0 = rng.normal(size=(60, 2))
    X1 = rng.normal(loc=0.7, size=(15, 2))
    fit = balanced_pilot(X0, X1, model)
    # the balanced empirical risk's gradient is (m0 + m1)/2, zero at the pilot (plus ridge)
    m0 = class_score_stats(fit.theta, X0, 0, model).mean
    m1 = class_score_stats(fit.theta, X1, 1, model).mean
    np.testing.assert_allclose((m0 + m1) / 2, -model.ridge * fit.theta * [0, 1, 1], atol=1e-9)
    # and it differs from the unweighted fit, which weights class 0 four times as much
    Z, y = model.features(np.vstack([X0, X1])), np.r_[np.zeros(60), np.ones(15)]
    pooled_loss = jax.jit(jax.value_and_grad(lambda t: jnp.sum(model.family.loss(Z @ t, y))))
    pooled = minimize(lambda t: tuple(map(np.asarray, pooled_loss(t))), np.zeros(3), jac=True, method="BFGS")
    assert np.linalg.norm(pooled.x - fit.theta) > 0.1


@pytest.mark.parametrize("coding", [(-1, 1), (2, 5), (3, -1)])
def test_wald_squared_loss_with_intercept_is_invariant_to_affine_label_coding(coding):
    """y -> a + b y maps the fit to theta' = b theta + a e_0 (intercept) and every score by the
    factor b, so T is unchanged. Without an intercept no theta' absorbs the shift."""
    rng = _rng(5)
    X0 = rng.normal(size=(3, 80, 2))
    X1 = rng.normal(loc=0.6, size=(3, 20, 2))
    with_int = GLM("squared", intercept=True)
    ref = wald_symmetry_test(X0, X1, with_int, labels=(0, 1)).statistic
    new = wald_symmetry_test(X0, X1, with_int, labels=coding).statistic
    np.testing.assert_allclose(new, ref, rtol=1e-7)
    no_int = GLM("squared", intercept=False)
    assert not np.allclose(
        wald_symmetry_test(X0, X1, no_int, labels=(0, 1)).statistic,
        wald_symmetry_test(X0, X1, no_int, labels=coding).statistic,
        rtol=1e-3,
    )


@pytest.mark.parametrize("family", ["logistic", "squared"])
def test_wald_is_invariant_to_swapping_the_classes_and_to_flipping_binary_labels(family):
    rng = _rng(6)
    model = GLM(family, intercept=True)
    X0 = rng.normal(size=(4, 90, 3))
    X1 = rng.normal(loc=(0.5, 0.0, -0.3), size=(4, 30, 3))
    ref = wald_symmetry_test(X0, X1, model)
    swapped = wald_symmetry_test(X1, X0, model, labels=(1, 0))
    np.testing.assert_allclose(swapped.statistic, ref.statistic, rtol=1e-7)
    np.testing.assert_allclose(swapped.g_phi_hat, -ref.g_phi_hat, rtol=1e-7, atol=1e-10)
    if model.family.binary:
        # l(eta, 1 - y) = l(-eta, y) for these links: theta -> -theta, same test
        flipped = wald_symmetry_test(X0, X1, model, labels=(1, 0))
        np.testing.assert_allclose(flipped.statistic, ref.statistic, rtol=1e-7)
        np.testing.assert_allclose(flipped.theta_pilot, -ref.theta_pilot, rtol=1e-7, atol=1e-10)


def test_wald_is_invariant_to_an_invertible_linear_map_of_the_features():
    rng = _rng(7)
    model = GLM("logistic")
    X0 = rng.normal(size=(3, 120, 3))
    X1 = rng.normal(loc=0.4, size=(3, 40, 3))
    A = rng.normal(size=(3, 3)) + 2 * np.eye(3)
    ref = wald_symmetry_test(X0, X1, model).statistic
    np.testing.assert_allclose(wald_symmetry_test(X0 @ A, X1 @ A, model).statistic, ref, rtol=1e-6)


# ---------------------------------------------------------------- Wald test: size and power


def _rejection_z(p_values, level):
    rate = np.mean(p_values < ALPHA)
    return rate, abs(rate - level) / np.sqrt(level * (1 - level) / p_values.size)


def _symmetric_mean_shift(rng, R, n0, n1, d):
    """Study 1: labels -1/+1, X = -mu + xi vs mu + xi, mu = e1; g = 0 for every theta."""
    mu = np.eye(d)[0]
    return -mu + rng.standard_normal((R, n0, d)), mu + rng.standard_normal((R, n1, d))


def test_wald_size_under_symmetric_mean_shift_squared_loss():
    rng = _rng(8)
    R = 1000
    X0, X1 = _symmetric_mean_shift(rng, R, 1000, 250, 2)
    res = wald_symmetry_test(X0, X1, GLM("squared"), labels=(-1, 1))
    rate, z = _rejection_z(res.p_value, ALPHA)
    assert z < Z, f"rejection rate {rate} at alpha {ALPHA}"
    assert abs(res.statistic.mean() - 2) / np.sqrt(2 * 2 / R) < Z  # chi2_2 mean 2, var 4


def _logistic_symmetric(rng, shape, y, a=5.0, b=1.0, c=1.0, m=2.5):
    """Study 2 in d = 3, each class sampled exactly: X = T e1 + W, T = -a w.p. alpha else b,
    W_2 = N(0,1) + 2.5 s, W_3 = N(0,1), P(Y=1|X) = sigmoid(c X_1). Given Y = y, T has the
    posterior law and W is unchanged (it does not enter P(Y|X))."""
    sa, sb = expit(c * a), expit(c * b)
    alpha = b * sb * (1 - sb) / (a * sa * (1 - sa) + b * sb * (1 - sb))

    def likelihood(t):
        return expit(c * t) if y == 1 else 1 - expit(c * t)

    p_minus = alpha * likelihood(-a) / (alpha * likelihood(-a) + (1 - alpha) * likelihood(b))
    X = rng.standard_normal(shape + (3,))
    X[..., 0] = np.where(rng.random(shape) < p_minus, -a, b)
    X[..., 1] += m * np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return X


def test_wald_size_under_logistic_local_symmetry():
    """Scores here are skewed (rare T = -5 rows carry large scores), so the chi2 calibration
    needs n1 ~ 1000; at n1 = 250 the measured size is about 0.14."""
    rng = _rng(10)
    R = 400
    res = wald_symmetry_test(
        _logistic_symmetric(rng, (R, 8000), 0), _logistic_symmetric(rng, (R, 1000), 1), GLM("logistic")
    )
    assert np.all(res.pilot_info.converged)
    rate, z = _rejection_z(res.p_value, ALPHA)
    assert z < Z, f"rejection rate {rate} at alpha {ALPHA}"


@pytest.mark.slow
def test_wald_size_many_replications():
    """Squared loss (4000 replications, MCSE 0.0034) and logistic at n1 = 2000 (1000
    replications), in chunks so that each batch fits in memory."""
    rng = _rng(9)
    squared = np.concatenate(
        [
            wald_symmetry_test(*_symmetric_mean_shift(rng, 500, 4000, 1000, 3), GLM("squared"), labels=(-1, 1)).p_value
            for _ in range(8)
        ]
    )
    logistic = np.concatenate(
        [
            wald_symmetry_test(
                _logistic_symmetric(rng, (250, 16000), 0), _logistic_symmetric(rng, (250, 2000), 1), GLM("logistic")
            ).p_value
            for _ in range(4)
        ]
    )
    for p_values in (squared, logistic):
        rate, z = _rejection_z(p_values, ALPHA)
        assert z < Z, f"rejection rate {rate} at alpha {ALPHA} over {p_values.size} replications"


@pytest.mark.parametrize("shift, n0, n1", [(0.1, 2000, 500), (0.15, 2000, 500), (1.0, 400, 50)])
def test_wald_power_matches_the_noncentral_chi2(shift, n0, n1):
    """Asymmetric design N(0, I) vs N((shift, 0), I), labels 0/1. Under the alternative
    T ~ noncentral chi2_p(lambda = g_phi' V^{-1} g_phi) with g_phi and V from closed-form
    moments at theta*; shift = 1 (study 3's design) has power 1 to many digits."""
    design = GaussianDesign([shift, 0.0])
    G = design.H0 - design.H1
    half = G @ np.linalg.inv(design.H) / 2
    A0, A1 = design.I - half, -design.I - half
    V = A0 @ design.S0 @ A0.T / n0 + A1 @ design.S1 @ A1.T / n1
    g_phi = design.g0 - design.g1
    power = ncx2.sf(chi2.isf(ALPHA, 2), 2, g_phi @ np.linalg.solve(V, g_phi))
    R = 1000
    X0, X1 = design.sample(_rng(11, n1), (R,), n0, n1)
    rate = np.mean(wald_symmetry_test(X0, X1, GLM("squared")).p_value < ALPHA)
    if power > 1 - 1e-9:
        assert rate == 1.0
    else:
        assert abs(rate - power) / np.sqrt(power * (1 - power) / R) < Z, (rate, power)


# ---------------------------------------------------------------- GQS, alignment, target

N0, N1, K = 800, 200, 5
GENERATORS = {
    # second moments matched to P1 (cov = I + mu1 mu1' - m m'), so H_tilde1 = H1 and the GQS
    # is exactly section 3's squared-bias / variance ratio of the balanced fit
    "matched": ([0.75, 0.0], np.diag([1.4375, 1.0])),
    # study 3's biased aligned generator N(mu1 + shift, I), shift = (-0.5, 0)
    "shifted": ([0.5, 0.0], np.eye(2)),
    # the true law: psi = 0, so the GQS is pure noise floor
    "oracle": ([1.0, 0.0], np.eye(2)),
}


def _gqs_truth(design, mean, cov, pool_size):
    """Population GQS and its first-order noise floor at (N0, N1, K equal folds, pool_size)."""
    psi, Ht, St = design.synthetic(mean, cov)
    H = design.H
    Sigma_aug = design.S0 / 2 + N1 / (2 * N0) * design.S1 + (N0 - N1) / (2 * N0) * St
    scale = (N0 - N1) ** 2 / (2 * N0)
    variance = np.trace(np.linalg.solve(H, Sigma_aug))
    # delta(theta_hat) - psi ~ (H_t - H1)(theta_hat - theta*) + pool error - held-out error,
    # theta_hat - theta* ~ -H^{-1}(e0 + e1)/2 and the K equal held-out folds average to e1
    B = (Ht - design.H1) @ np.linalg.inv(H) / 2
    IB = design.I + B
    C = IB @ design.S1 @ IB.T / N1 + B @ design.S0 @ B.T / N0 + St / (K * pool_size)
    return dict(
        psi=psi,
        Sigma_aug=Sigma_aug,
        C=C,
        scale=scale,
        variance=variance,
        gqs=scale * psi @ np.linalg.solve(H, psi) / variance,
        noise=scale * np.trace(np.linalg.solve(H, C)) / variance,
        Ht=Ht,
        St=St,
    )


def _replicate(design, generator, R, seed):
    rng = _rng(12, seed)
    out = []
    for _ in range(R):
        X0, X1 = design.sample(rng, (), N0, N1)
        out.append(diagnose(X0, X1, generator, GLM("squared"), rng, n_folds=K))
    return out


def test_gqs_population_value_is_the_balanced_fits_bias_variance_ratio():
    """Section 3 at gamma = 1, in closed form: theta_bar solves the population normal equations
    exactly (squared loss), bias^2 = (1/2)(theta_bar - theta*)' H (theta_bar - theta*), variance
    = tr(H H_w^{-1} Sigma_w H_w^{-1}) / (2N). With H_tilde1 = H1 (the matched generator) their
    ratio must equal the GQS formula's population value; with N(mu1 + shift, I) it need not."""
    design = GaussianDesign([1.0, 0.0])
    ratios = {}
    for name in ("matched", "shifted"):
        mean, cov = GENERATORS[name]
        truth = _gqs_truth(design, mean, cov, N0 - N1)
        n_t, N = N0 - N1, 2 * N0
        E_zz = [design.H0 / 2, design.H1 / 2, truth["Ht"] / 2]
        E_yz = [np.zeros(2), design.mu1, np.asarray(mean)]
        counts = [N0, N1, n_t]
        theta_bar = np.linalg.solve(sum(n * M for n, M in zip(counts, E_zz)), sum(n * v for n, v in zip(counts, E_yz)))
        err = theta_bar - design.theta
        bias2 = 0.5 * err @ design.H @ err
        H_w = sum(n * 2 * M for n, M in zip(counts, E_zz)) / N
        Sigma_w = (N0 * design.S0 + N1 * design.S1 + n_t * truth["St"]) / N
        Hwi = np.linalg.inv(H_w)
        variance = np.trace(design.H @ Hwi @ Sigma_w @ Hwi) / (2 * N)
        ratios[name] = (bias2 / variance, truth["gqs"])
    np.testing.assert_allclose(*ratios["matched"], rtol=1e-12)
    assert abs(ratios["shifted"][0] / ratios["shifted"][1] - 1) > 0.05


@pytest.mark.parametrize("name", list(GENERATORS))
def test_gqs_monte_carlo_mean_matches_population_value_plus_noise_floor(name):
    """E gqs = population GQS + noise floor to first order (delta' H^{-1} delta is quadratic);
    both are closed forms here, so the Monte Carlo mean must agree within Z MCSE, and so must
    the mean of delta (vs psi) and the spread of delta (vs the first-order covariance C)."""
    design = GaussianDesign([1.0, 0.0])
    mean, cov = GENERATORS[name]
    truth = _gqs_truth(design, mean, cov, N0 - N1)
    R = 300
    results = [d.gqs for d in _replicate(design, FixedGaussian(mean, cov), R, len(name))]
    gqs = np.array([r.gqs for r in results])
    delta = np.array([r.delta for r in results])
    expected = truth["gqs"] + truth["noise"]
    assert abs(gqs.mean() - expected) / (gqs.std(ddof=1) / np.sqrt(R)) < Z, (gqs.mean(), expected)
    z_delta = np.abs(delta.mean(0) - truth["psi"]) / (delta.std(0, ddof=1) / np.sqrt(R))
    assert np.all(z_delta < Z), z_delta
    # tr(H^{-1} Cov delta): a sample variance of a near-Gaussian quantity, MCSE ~ sqrt(2/(R-1))
    Hi = np.linalg.inv(design.H)
    spread = np.trace(Hi @ np.cov(delta, rowvar=False))
    target = np.trace(Hi @ truth["C"])
    assert abs(spread / target - 1) / np.sqrt(2 / (R - 1)) < Z, (spread, target)
    np.testing.assert_allclose(np.mean([r.noise_floor for r in results]), truth["noise"], rtol=0.05)
    Sigma_aug = np.mean([r.Sigma_aug for r in results], axis=0)
    np.testing.assert_allclose(Sigma_aug, truth["Sigma_aug"], rtol=0.03, atol=0.03)


def test_alignment_and_plug_in_target_in_study_3():
    """Study 3 (P1 = N((1,0), I), synthetic N((0.5,0), I)): theta* = mu1/3, g_phi = (4/3, 0),
    psi = (1/2, 0), so c = 2 <psi, g_phi> / |g_phi|^2 = 3/4, gamma* = 4, |psi|/|g_phi| = 3/8."""
    design = GaussianDesign([1.0, 0.0])
    np.testing.assert_allclose(design.theta, [1 / 3, 0], rtol=1e-12)
    mean, cov = GENERATORS["shifted"]
    np.testing.assert_allclose(design.synthetic(mean, cov)[0], [0.5, 0], atol=1e-12)
    R = 300
    runs = _replicate(design, FixedGaussian(mean, cov), R, 99)
    c = np.array([d.alignment.c for d in runs])
    ratio = np.array([d.alignment.norm_ratio for d in runs])
    assert abs(c.mean() - 0.75) / (c.std(ddof=1) / np.sqrt(R)) < Z, c.mean()
    assert abs(ratio.mean() - 0.375) / (ratio.std(ddof=1) / np.sqrt(R)) < Z, ratio.mean()
    for d in runs:
        a, t = d.alignment, d.target
        np.testing.assert_allclose(a.c, 2 * a.cosine * a.norm_ratio, rtol=1e-12)
        if a.c < 1:
            assert t.reason == "ok"
            np.testing.assert_allclose(t.n_tilde, (N0 - N1) / (1 - a.c), rtol=1e-12)
        else:
            assert t.n_tilde is None and t.gamma is None


def test_plug_in_target_is_withheld_when_no_size_cancels_the_bias():
    """Matched generator with mean (0.5, 0): psi = (1, 0), so c = 1.5 >= 1 (section 3: no
    synthetic size removes the bias) and the target must be None with a reason."""
    design = GaussianDesign([1.0, 0.0])
    gen = FixedGaussian([0.5, 0.0], np.diag([1.75, 1.0]))
    np.testing.assert_allclose(design.synthetic([0.5, 0.0], np.diag([1.75, 1.0]))[0], [1, 0], atol=1e-12)
    X0, X1 = design.sample(_rng(13), (), 4000, 1000)
    target = plug_in_target(X0, X1, gen, GLM("squared"), _rng(14))
    assert target.n_tilde is None and target.gamma is None and target.c > 1
    assert "no synthetic size" in target.reason


def test_public_functions_agree_with_diagnose_and_are_reproducible():
    design = GaussianDesign([1.0, 0.0])
    X0, X1 = design.sample(_rng(15), (), 300, 60)
    model = GLM("logistic", intercept=True)
    gen = Smote(k=5)
    full = diagnose(X0, X1, gen, model, _rng(16), n_folds=4, pool_size=100)
    again = diagnose(X0, X1, gen, model, _rng(16), n_folds=4, pool_size=100)
    np.testing.assert_array_equal(full.gqs.delta_folds, again.gqs.delta_folds)
    gqs = generator_quality_score(X0, X1, gen, model, _rng(16), n_folds=4, pool_size=100)
    assert gqs.gqs == full.gqs.gqs and np.array_equal(gqs.psi_hat, full.gqs.delta)
    assert alignment_estimates(X0, X1, gen, model, _rng(16), n_folds=4, pool_size=100) == full.alignment
    assert plug_in_target(X0, X1, gen, model, _rng(16), n_folds=4, pool_size=100) == full.target
    wald = wald_symmetry_test(X0, X1, model)
    assert wald.statistic == full.wald.statistic
    assert full.gqs.delta_folds.shape == (4, 3) and np.isfinite(full.gqs.gqs)
    # SMOTE is fitted on the data, so the fixed-law noise floor does not apply
    assert np.isnan(full.gqs.noise_floor) and np.all(np.isnan(full.gqs.delta_cov))


# ---------------------------------------------------------------- input validation


def test_bad_inputs_raise_value_errors_naming_the_argument():
    rng = _rng(17)
    X0, X1 = rng.normal(size=(50, 2)), rng.normal(size=(10, 2))
    gen = FixedGaussian([0.0, 0.0], np.eye(2))
    squared, logistic = GLM("squared"), GLM("logistic")
    with pytest.raises(ValueError, match="labels"):
        wald_symmetry_test(X0, X1, logistic, labels=(-1, 1))
    with pytest.raises(ValueError, match="labels"):
        wald_symmetry_test(X0, X1, squared, labels=(1, 1))
    with pytest.raises(ValueError, match="columns"):
        wald_symmetry_test(X0, X1[:, :1], squared)
    with pytest.raises(ValueError, match="X1 needs at least 2 rows"):
        balanced_pilot(X0, X1[:1], squared)
    with pytest.raises(ValueError, match="NaN"):
        wald_symmetry_test(np.where(X0 > 2, np.nan, X0), X1, squared)
    with pytest.raises(ValueError, match="model"):
        wald_symmetry_test(X0, X1, "squared")
    with pytest.raises(ValueError, match="n_folds"):
        generator_quality_score(X0, X1, gen, squared, rng, n_folds=11)
    with pytest.raises(ValueError, match="pool_size"):
        generator_quality_score(X0, X1, gen, squared, rng, pool_size=1)
    with pytest.raises(ValueError, match="majority"):
        generator_quality_score(X1, X0, gen, squared, rng)
    with pytest.raises(ValueError, match="rng"):
        diagnose(X0, X1, gen, squared, 0)
    with pytest.raises(ValueError, match="one data set"):
        diagnose(np.stack([X0, X0]), np.stack([X1, X1]), gen, squared, rng)
    with pytest.raises(ValueError, match="theta"):
        class_score_stats(np.zeros(3), X0, 0, squared)
    with pytest.raises(ValueError, match="singular"):
        wald_symmetry_test(np.c_[X0, np.zeros(50)], np.c_[X1, np.zeros(10)], squared)


FEW_ROWS = (
    r"likely too few rows for the model's 3 parameters: the minority \(X1\) has {} rows and the majority \(X0\) {};"
)


@pytest.mark.parametrize(
    "few, swap, cause",
    [
        (2, False, FEW_ROWS.format(2, 12)),
        (3, True, FEW_ROWS.format(12, 3)),
        (10, False, "a feature is constant"),
    ],
)
def test_a_singular_wald_covariance_names_the_likely_cause(few, swap, cause):
    """One class's rows span e1, e2 only and the other's lie along the axes (so H0 and H are
    exactly block diagonal), which makes V e3 exactly 0. With at most p = 3 rows in that class
    the cause is the count, not a constant feature (any n <= p rows leave such a direction)."""
    squared = GLM("squared", intercept=False, ridge=0.0)
    axes = np.concatenate([np.diag(s * k * np.array([1.0, 2.0, 3.0])) for s in (1, -1) for k in (1.0, 1.5)])
    plane = np.c_[_rng(60).standard_normal((few, 2)) + 1.0, np.zeros(few)]
    X0, X1 = (plane, axes) if swap else (axes, plane)
    with pytest.raises(ValueError, match=f"^the Wald covariance V is singular: {cause}"):
        wald_symmetry_test(X0, X1, squared)


@pytest.mark.parametrize("name", ["oracle", "shifted"])
def test_calibrated_gqs_p_values_are_uniform_for_an_exact_generator_and_small_for_a_biased_one(name):
    """An exact generator's GQS follows sum_j lambda_j chi2_1 to first order (C and Sigma_aug
    of ``exact_generator_null`` are this design's closed forms when the law is P1): its mean is
    sum lambda within Z MCSE, and its p-values are uniform (mean 1/2, SD 1/sqrt 12). The
    shifted generator of study 3 (population GQS about 40 here) is flagged at 5% nearly always."""
    design = GaussianDesign([1.0, 0.0])
    mean, cov = GENERATORS[name]
    R = 300
    results = [d.gqs for d in _replicate(design, FixedGaussian(mean, cov), R, 100 + len(name))]
    p = np.array([r.p_value for r in results])
    pool = np.array([r.pool_p_value for r in results])
    if name == "shifted":
        assert np.mean(p <= 0.05) > 0.9 and np.mean(pool <= 0.05) > 0.9
        return
    truth = _gqs_truth(design, mean, cov, N0 - N1)
    gqs = np.array([r.gqs for r in results])
    expected = np.mean([r.null_weights.sum() for r in results])
    assert abs(gqs.mean() - expected) / (gqs.std(ddof=1) / np.sqrt(R)) < Z, (gqs.mean(), expected)
    np.testing.assert_allclose(expected, truth["noise"], rtol=0.05)
    assert abs(p.mean() - 0.5) / (np.sqrt(1 / 12) / np.sqrt(R)) < Z, p.mean()
    assert abs(pool.mean() - 0.5) / (np.sqrt(1 / 12) / np.sqrt(R)) < Z, pool.mean()
    threshold = results[0].threshold(0.05)
    assert abs(weighted_chi2_sf(threshold, results[0].null_weights) - 0.05) < 1e-12
    threshold = results[0].threshold(0.05, null="pool")
    assert abs(weighted_chi2_sf(threshold, results[0].pool_null_weights) - 0.05) < 1e-12


def test_the_pool_law_is_the_data_law_at_the_data_covariances_and_the_law_of_its_quadratic_form():
    """pool_generator_null with Sigma_tilde = S1 and Sigma_aug = (S0 + S1)/2 is
    exact_generator_null; and its weights are the law of c delta' H^{-1} delta for
    delta ~ N(0, C), C = Sigma_tilde (sum_k 1/|fold k| + K/pool)/K^2, c = [(n0 - n1)^2 / (2 n0)]
    / tr(H^{-1} Sigma_aug): against 100,000 draws, mean within Z MCSE and the 95% point's
    exceedance within 0.003 of 0.05."""
    rng = _rng(78)
    X0, X1 = rng.normal(size=(400, 3)), rng.normal(size=(40, 3)) + [1.0, 0.0, 0.5]
    model = GLM("logistic", intercept=True)
    pilot = _pilot(X0, X1, model, 0.0, 1.0)
    folds, pool = [8, 8, 8, 8, 8], 360
    s0, s1 = pilot.stats0, pilot.stats1
    np.testing.assert_array_equal(
        pool_generator_null(s1.cov, (s0.cov + s1.cov) / 2, pilot.H, folds, pool, 400),
        exact_generator_null(pilot, folds, pool),
    )
    A = rng.normal(size=(4, 4))
    Sigma_tilde, Sigma_aug = A @ A.T + np.eye(4), s0.cov / 2 + s1.cov / 2 + 0.3 * np.eye(4)
    weights = pool_generator_null(Sigma_tilde, Sigma_aug, pilot.H, folds, pool, 400)
    C = Sigma_tilde * (sum(1 / m for m in folds) + 5 / pool) / 25
    c = (400 - 40) ** 2 / 800 / np.trace(np.linalg.solve(pilot.H, Sigma_aug))
    delta = rng.multivariate_normal(np.zeros(4), C, size=100_000)
    Q = c * np.einsum("bp,bp->b", delta, np.linalg.solve(pilot.H, delta.T).T)
    assert abs(Q.mean() - weights.sum()) / (Q.std(ddof=1) / np.sqrt(len(Q))) < Z
    assert abs(np.mean(Q > weighted_chi2_quantile(0.95, weights)) - 0.05) < 0.003


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_weighted_chi2_is_the_chi2_for_equal_weights(k):
    """Pearson's fit is exact when the weights are equal: a chi2_k scaled by the weight."""
    x = chi2.ppf([0.1, 0.5, 0.95, 0.999], k) * 2.5
    np.testing.assert_allclose([weighted_chi2_sf(v, np.full(k, 2.5)) for v in x], [0.9, 0.5, 0.05, 0.001], rtol=1e-10)
    np.testing.assert_allclose(weighted_chi2_quantile(0.95, np.full(k, 2.5)), x[2], rtol=1e-12)


def test_weighted_chi2_with_zero_weights_is_the_point_mass_at_zero_and_bad_weights_raise():
    """A null without spread (the pools of a generator whose rows are all equal) is Q = 0."""
    assert weighted_chi2_sf(1e-9, np.zeros(3)) == 0.0 and weighted_chi2_sf(-1e-9, np.zeros(3)) == 1.0
    assert weighted_chi2_quantile(0.95, np.zeros(2)) == 0.0 and np.isnan(weighted_chi2_sf(np.nan, np.zeros(2)))
    for bad in ([], [1.0, -0.5], [np.nan], [[1.0]]):
        with pytest.raises(ValueError, match="weights"):
            weighted_chi2_sf(1.0, bad)


def test_a_generator_whose_rows_are_all_equal_gets_a_pool_calibrated_decision():
    """Its pools' score covariance is exactly zero, so the pool law is the point mass at 0: any
    GQS > 0 is called biased, and the data's law is untouched."""

    class Constant(Generator):
        name, data_dependent = "constant", False

        def fit(self, X1, X0, rng):
            return _FittedConstant(np.full(X1.shape[1], 0.5))

    rng = _rng(79)
    X0, X1 = rng.normal(size=(64, 2)), rng.normal(size=(16, 2)) + 1.0
    gqs = generator_quality_score(X0, X1, Constant(), GLM("squared"), rng, n_folds=4)
    assert not gqs.Sigma_tilde.any() and not gqs.pool_null_weights.any()
    assert gqs.gqs > 0 and gqs.pool_p_value == 0.0 and gqs.threshold(0.05, null="pool") == 0.0
    assert 0.0 < gqs.p_value < 1.0


@pytest.mark.parametrize("weights", [[2.0, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, 0.05], np.linspace(0.01, 1.0, 20)])
def test_weighted_chi2_upper_tail_against_monte_carlo(weights):
    """Against 200,000 exact draws of sum_j lambda_j Z_j^2: the 95% quantile's exceedance is
    0.05 to within 0.003 (three MCSEs of 0.0005 plus the fit's own error, measured at most
    0.0011 for these weights; 0.0048 when one weight dominates nine equal ones)."""
    Q = _rng(77).standard_normal((200_000, len(weights))) ** 2 @ np.asarray(weights)
    assert abs(np.mean(Q > weighted_chi2_quantile(0.95, weights)) - 0.05) < 0.003
