"""Class laws: exact moments against independent references.

References: Isserlis closed forms written out here for Gaussian mixtures under squared loss,
a 2-D tensor Gauss-Hermite rule with no 1-D reduction and scipy.integrate.quad for the
logistic and probit families, exact enumeration for Rademacher noise, and Monte Carlo on
the laws' own samplers with tolerances from the Monte Carlo standard error (MCSE).
"""

import math
import time

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, stats
from scipy.special import expit, log_ndtr

from simstudy.families import get_family
from simstudy.fitting import GLM
from simstudy.laws import (
    EmpiricalLaw,
    GaussianMixtureLaw,
    Moments,
    SymmetricNoiseLaw,
    gaussian_expectations,
)

NOISES = ["gaussian", "uniform_cube", "rademacher", "uniform_sphere"]


def rng_for(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


# ---------------------------------------------------------------------------------------------
# independent references (numpy/scipy only)


def ref_terms(eta, y, family):
    """(loss, score, curvature) written with numpy/scipy, independent of simstudy.families."""
    if family == "squared":
        return (y - eta) ** 2, 2.0 * (eta - y), np.full_like(eta, 2.0)
    if family == "logistic":
        p = expit(eta)
        return np.logaddexp(0.0, eta) - y * eta, p - y, p * (1.0 - p)
    if family == "probit":
        loss = -(y * log_ndtr(eta) + (1.0 - y) * log_ndtr(-eta))
        m1 = np.exp(stats.norm.logpdf(eta) - log_ndtr(eta))
        m0 = np.exp(stats.norm.logpdf(eta) - log_ndtr(-eta))
        return loss, -y * m1 + (1.0 - y) * m0, y * m1 * (eta + m1) + (1.0 - y) * m0 * (m0 - eta)
    raise AssertionError(family)


def design(X, intercept):
    return np.hstack([np.ones((X.shape[0], 1)), X]) if intercept else X


def sample_moments(X, theta, y, family, intercept):
    """Sample moments and their MCSEs (entrywise sd / sqrt(n))."""
    Z = design(X, intercept)
    n = Z.shape[0]
    loss, score, curv = ref_terms(Z @ theta, y, family)
    Q = Z * score[:, None]
    Hrows = curv[:, None, None] * Z[:, :, None] * Z[:, None, :]
    Qc = Q - Q.mean(0)
    Crows = Qc[:, :, None] * Qc[:, None, :]
    est = Moments(loss.mean(), Q.mean(0), Hrows.mean(0), Crows.mean(0))
    se = Moments(
        loss.std() / math.sqrt(n),
        Q.std(0) / math.sqrt(n),
        Hrows.std(0) / math.sqrt(n),
        Crows.std(0) / math.sqrt(n),
    )
    return est, se


def assert_mc(estimate, truth, se, family_alpha=1e-3):
    """|estimate - truth| / se below the Bonferroni z for a family-wise error of family_alpha;
    entries with se = 0 (constant integrands) must agree to rounding."""
    estimate, truth, se = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (estimate, truth, se))
    z = stats.norm.isf(family_alpha / (2 * estimate.size))
    exact = se <= 1e-14 * (1 + np.abs(truth))
    assert np.allclose(estimate[exact], truth[exact], rtol=1e-9, atol=1e-12)
    zs = np.abs(estimate - truth)[~exact] / se[~exact]
    assert zs.size == 0 or zs.max() < z, f"max |z| = {zs.max():.2f} >= {z:.2f}"


def assert_moments_mc(law_moments, X, theta, y, family, intercept):
    est, se = sample_moments(X, theta, y, family, intercept)
    for name in Moments._fields:
        assert_mc(getattr(est, name), getattr(law_moments, name), getattr(se, name))


def gaussian_squared_closed_form(weights, means, covs, theta, y, intercept):
    """Squared-loss moments of a Gaussian mixture by Isserlis' theorem, component by component.

    With z ~ N(mu, S) and a = theta'mu - y: E[(theta'z - y)^2 z z'] = a^2 (mu mu' + S)
    + 2a (mu (S theta)' + S theta mu') + theta'S theta (mu mu' + S) + 2 S theta theta' S.
    """
    p = theta.size
    risk, grad, hess, second = 0.0, np.zeros(p), np.zeros((p, p)), np.zeros((p, p))
    for w, mu, S in zip(weights, means, covs):
        if intercept:
            mu = np.r_[1.0, mu]
            S = np.pad(S, ((1, 0), (1, 0)))
        a = theta @ mu - y
        St = S @ theta
        v = theta @ St
        M2 = np.outer(mu, mu) + S
        risk += w * (a * a + v)
        grad += w * 2.0 * (a * mu + St)
        hess += w * 2.0 * M2
        second += w * 4.0 * (a * a * M2 + 2 * a * (np.outer(mu, St) + np.outer(St, mu)) + v * M2 + 2 * np.outer(St, St))
    return Moments(risk, grad, hess, second - np.outer(grad, grad))


def tensor_gh_moments(mu, S, theta, y, family, intercept, nodes=150):
    """2-D Gaussian moments by a tensor Gauss-Hermite rule on x = mu + F w (no 1-D reduction)."""
    u, w = hermegauss(nodes)
    w = w / w.sum()
    U1, U2 = np.meshgrid(u, u, indexing="ij")
    W = np.outer(w, w).ravel()
    F = np.linalg.cholesky(S)
    X = mu + np.column_stack([U1.ravel(), U2.ravel()]) @ F.T
    Z = design(X, intercept)
    loss, score, curv = ref_terms(Z @ theta, y, family)
    grad = (W * score) @ Z
    hess = (Z * (W * curv)[:, None]).T @ Z
    Q = Z * score[:, None] - grad
    return Moments(W @ loss, grad, hess, (Q * W[:, None]).T @ Q)


def assert_moments_close(a, b, rtol, atol):
    for name in Moments._fields:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Gaussian mixtures


def mixture_example():
    """Three components in d = 3, one with a singular covariance (coordinate 0 fixed)."""
    rng = rng_for(1)
    A = rng.standard_normal((3, 3))
    covs = np.array([A @ A.T / 3 + 0.2 * np.eye(3), np.diag([0.0, 1.0, 0.5]), np.diag([0.3, 0.3, 2.0])])
    means = np.array([[0.5, -1.0, 0.2], [-2.0, 0.3, 1.0], [1.0, 1.0, -0.5]])
    return GaussianMixtureLaw([0.5, 0.3, 0.2], means, covs)


@pytest.mark.parametrize("intercept", [False, True])
def test_mixture_squared_matches_isserlis_closed_form(intercept):
    law = mixture_example()
    model = GLM("squared", intercept=intercept)
    rng = rng_for(2)
    for _ in range(3):
        theta = rng.standard_normal(model.n_params(3))
        y = float(rng.uniform(-1, 2))
        got = law.moments(theta, y, model)
        want = gaussian_squared_closed_form(law.weights, law.means, law.covs, theta, y, intercept)
        assert_moments_close(got, want, rtol=1e-11, atol=1e-11)
        assert law.risk_batch(theta, y, model) == pytest.approx(want.risk, rel=1e-12)


@pytest.mark.parametrize("family", ["squared", "logistic", "probit"])
@pytest.mark.parametrize("intercept", [False, True])
def test_mixture_moments_batch_is_moments_row_by_row(family, intercept):
    """One quadrature call for B thetas against the single-theta moments tested above, with
    theta = 0 (every component's sd zero) and a theta along the singular component's fixed
    coordinate (that component's sd zero) among the rows."""
    law = mixture_example()
    model = GLM(family, intercept=intercept)
    p = model.n_params(3)
    thetas = rng_for(7).standard_normal((5, p))
    thetas[0] = 0.0
    thetas[1] = np.eye(p)[int(intercept)]
    for y in (0.0, 1.0):
        batch = law.moments_batch(thetas, y, model)
        assert batch.grad.shape == (5, p) and batch.hess.shape == (5, p, p)
        for b, theta in enumerate(thetas):
            row = Moments(*(field[b] for field in batch))
            assert_moments_close(row, law.moments(theta, y, model), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "law, family",
    [
        (SymmetricNoiseLaw(np.array([0.5, -1.0]), "uniform_cube", np.array([1.0, 2.0])), "squared"),
        (SymmetricNoiseLaw(np.array([0.5, -1.0]), "gaussian", 1.5), "logistic"),
        (EmpiricalLaw(rng_for(8).standard_normal((50, 2))), "logistic"),
    ],
    ids=["noise-squared", "noise-logistic", "empirical"],
)
def test_every_law_batches_its_moments(law, family):
    model = GLM(family, intercept=True)
    thetas = rng_for(9).standard_normal((3, 3))
    batch = law.moments_batch(thetas, 1.0, model)
    for b, theta in enumerate(thetas):
        assert_moments_close(Moments(*(field[b] for field in batch)), law.moments(theta, 1.0, model), 1e-13, 1e-15)


def test_moments_batch_refuses_what_moments_refuses():
    law, model = mixture_example(), GLM("logistic")
    for bad in (np.zeros(3), np.zeros((0, 3)), np.zeros((2, 4)), np.array([[0.0, np.nan, 0.0]])):
        with pytest.raises(ValueError, match="thetas"):
            law.moments_batch(bad, 1.0, model)


def test_an_empirical_laws_mean_score_is_its_moments_gradient_bit_for_bit():
    law = EmpiricalLaw(rng_for(10).standard_normal((300, 3)))
    for family, y in (("logistic", 0.0), ("probit", 1.0), ("squared", 0.3)):
        model = GLM(family, intercept=True)
        theta = rng_for(11).standard_normal(4)
        np.testing.assert_array_equal(law.mean_score(theta, y, model), law.moments(theta, y, model).grad)


@pytest.mark.parametrize("family", ["logistic", "probit"])
@pytest.mark.parametrize("intercept", [False, True])
def test_gaussian_binary_families_match_tensor_gauss_hermite(family, intercept):
    mu = np.array([0.7, -0.4])
    S = np.array([[1.0, 0.4], [0.4, 0.6]])
    law = GaussianMixtureLaw([1.0], mu[None], S[None])
    model = GLM(family, intercept=intercept)
    theta = np.array([0.3, 1.1, -0.8])[-model.n_params(2) :]
    for y in (0.0, 1.0):
        assert_moments_close(
            law.moments(theta, y, model),
            tensor_gh_moments(mu, S, theta, y, family, intercept),
            rtol=1e-10,
            atol=1e-12,
        )


@pytest.mark.parametrize("family", ["logistic", "probit"])
@pytest.mark.parametrize("scale", [0.0, 0.3, 4.0, 40.0, 400.0])
def test_risk_batch_matches_scipy_quad_for_narrow_and_wide_gaussians(family, scale):
    # eta ~ N(m, s^2) with s = scale |theta|: from a point mass to a Gaussian far wider than
    # the pi-wide analyticity strip of the loss, where a fixed Gauss-Hermite rule fails
    mu = np.array([0.5, -0.2])
    law = GaussianMixtureLaw([1.0], mu[None], np.eye(2)[None])
    model = GLM(family)
    thetas = np.array([[0.6, -0.8], [0.1, 0.2]]) * max(scale, 1.0) if scale else np.zeros((1, 2))
    got = law.risk_batch(thetas, 1.0, model)
    for theta, value in zip(thetas, got):
        m, s = theta @ mu, np.linalg.norm(theta)

        def integrand(u):
            return ref_terms(np.array(m + s * u), 1.0, family)[0] * stats.norm.pdf(u)

        if s == 0:
            want = float(ref_terms(np.array(m), 1.0, family)[0])
        else:
            # split where eta = 0: the loss bends there on the scale 1 / s in u
            kink = -m / s
            opts = dict(epsabs=1e-13, epsrel=1e-13, limit=400)
            want = (
                integrate.quad(integrand, -np.inf, kink, **opts)[0] + integrate.quad(integrand, kink, np.inf, **opts)[0]
            )
        assert value == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_gaussian_expectations_closed_forms():
    m = np.array([0.3, -1.0, 2.0, 0.0])
    s = np.array([0.0, 0.5, 2.0, 3.0])
    E = gaussian_expectations(lambda eta, y: jnp.stack([jnp.exp(eta), eta**3]), m, s, 0.0)
    # E e^(m+sU) = e^(m + s^2/2); E U e^(m+sU) = s E e^(..); E U^2 e^(..) = (1 + s^2) E e^(..)
    # (e^(s u) moves mass toward the |u| <= 9.5 truncation, hence 1e-11 rather than rounding)
    lognormal = np.exp(m + s**2 / 2)
    np.testing.assert_allclose(E[0, :, 0], lognormal, rtol=1e-11)
    np.testing.assert_allclose(E[0, :, 1], s * lognormal, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(E[0, :, 2], (1 + s**2) * lognormal, rtol=1e-11)
    # E (m+sU)^3 = m^3 + 3 m s^2
    np.testing.assert_allclose(E[1, :, 0], m**3 + 3 * m * s**2, rtol=1e-13, atol=1e-13)
    assert E.shape == (2, 4, 3)
    nan = gaussian_expectations(lambda eta, y: eta[None], np.array([np.nan, 1.0]), np.array([1.0, np.inf]), 0.0)
    assert np.all(np.isnan(nan))


@pytest.mark.parametrize("intercept", [False, True])
def test_mixture_sampling_matches_logistic_moments_monte_carlo(intercept):
    law = mixture_example()
    model = GLM("logistic", intercept=intercept)
    theta = np.array([0.2, 0.8, -0.5, 0.3])[-model.n_params(3) :]
    X = law.sample(200_000, rng_for(3))
    assert X.shape == (200_000, 3)
    assert_moments_mc(law.moments(theta, 1.0, model), X, theta, 1.0, "logistic", intercept)
    # the singular component keeps its fixed coordinate exactly
    assert np.isclose(X[:, 0], -2.0, atol=1e-12).mean() == pytest.approx(0.3, abs=5 * math.sqrt(0.21 / 2e5))


def test_shifted_and_scaled_laws():
    law = mixture_example()
    delta, s = np.array([1.0, -0.5, 0.25]), 0.7
    moved = law.shifted(delta).scaled(s)
    np.testing.assert_allclose(moved.mean, law.mean + delta, atol=1e-14)
    X = law.sample(100_000, rng_for(4))
    Y = moved.sample(100_000, rng_for(4))
    # the same draws transformed: E X + delta + s (X - E X) has covariance s^2 Cov X
    np.testing.assert_allclose(np.cov(Y.T), s * s * np.cov(X.T), rtol=0.05, atol=0.02)
    model = GLM("squared", intercept=True)
    theta = np.array([0.1, 0.5, -0.3, 0.2])
    centred = law.mean + delta + s * (law.means - law.mean)
    want = gaussian_squared_closed_form(law.weights, centred, s * s * law.covs, theta, 1.0, True)
    assert_moments_close(moved.moments(theta, 1.0, model), want, rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# symmetric noise


@pytest.mark.parametrize("noise", NOISES)
def test_symmetric_noise_squared_closed_form_matches_monte_carlo(noise):
    d = 4
    law = SymmetricNoiseLaw([1.0, -0.5, 0.0, 0.3], noise, scale=1.3)
    model = GLM("squared", intercept=True)
    theta = np.array([0.2, 0.7, -0.4, 1.1, 0.5])
    X = law.sample(200_000, rng_for(5, NOISES.index(noise)))
    assert X.shape == (200_000, d)
    assert_moments_mc(law.moments(theta, 1.0, model), X, theta, 1.0, "squared", True)


def test_noise_laws_have_unit_covariance_and_their_shapes():
    d = 5
    rng = rng_for(6)
    for noise in NOISES:
        xi = SymmetricNoiseLaw(np.zeros(d), noise).sample(50_000, rng)
        np.testing.assert_allclose(np.cov(xi.T), np.eye(d), atol=0.04)
    sphere = SymmetricNoiseLaw(np.zeros(d), "uniform_sphere").sample(100, rng)
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), math.sqrt(d), rtol=1e-14)
    rad = SymmetricNoiseLaw(np.zeros(d), "rademacher").sample(100, rng)
    assert set(np.unique(rad)) == {-1.0, 1.0}
    cube = SymmetricNoiseLaw(np.zeros(d), "uniform_cube").sample(10_000, rng)
    assert np.abs(cube).max() <= math.sqrt(3)


@pytest.mark.parametrize("intercept", [False, True])
def test_gaussian_noise_closed_form_equals_quadrature(intercept):
    mean = np.array([0.4, -1.0, 2.0])
    noise = SymmetricNoiseLaw(mean, "gaussian", scale=0.8)
    mixture = GaussianMixtureLaw([1.0], mean[None], (0.64 * np.eye(3))[None])
    model = GLM("squared", intercept=intercept)
    theta = np.array([0.5, -0.3, 0.9, 0.1])[-model.n_params(3) :]
    assert_moments_close(
        noise.moments(theta, -1.0, model),
        mixture.moments(theta, -1.0, model),
        rtol=1e-12,
        atol=1e-12,
    )
    # and the logistic family is delegated to the exact Gaussian quadrature
    logistic = GLM("logistic", intercept=intercept)
    assert_moments_close(
        noise.moments(theta, 1.0, logistic),
        mixture.moments(theta, 1.0, logistic),
        rtol=1e-14,
        atol=1e-15,
    )
    assert not np.any(noise.moments_se(theta, 1.0, logistic).grad)


def test_rademacher_logistic_fallback_is_within_its_reported_error_of_exact_enumeration():
    d = 3
    law = SymmetricNoiseLaw([0.5, 0.0, -0.5], "rademacher", scale=0.9, mc_size=50_000, mc_seed=7)
    model = GLM("logistic", intercept=True)
    theta = np.array([-0.2, 1.0, 0.6, -0.4])
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * d, indexing="ij")).reshape(d, -1).T
    X = law.mean + law.scale * corners
    Z = design(X, True)
    loss, score, curv = ref_terms(Z @ theta, 1.0, "logistic")
    grad = (Z * score[:, None]).mean(0)
    Qc = Z * score[:, None] - grad
    exact = Moments(loss.mean(), grad, (Z * curv[:, None]).T @ Z / len(Z), Qc.T @ Qc / len(Z))
    got, se = law.moments(theta, 1.0, model), law.moments_se(theta, 1.0, model)
    assert se.risk > 0 and np.all(se.grad > 0)
    for name in Moments._fields:
        assert_mc(getattr(got, name), getattr(exact, name), getattr(se, name))
    np.testing.assert_allclose(law.risk_batch(theta[None], 1.0, model), got.risk, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# empirical laws


def test_empirical_law_moments_and_standard_errors_against_exact_gaussian():
    exact = mixture_example()
    empirical = EmpiricalLaw(sampler=exact.sample, n=100_000, seed=8)
    model = GLM("logistic", intercept=True)
    theta = np.array([0.3, -0.6, 0.4, 0.2])
    got, se = empirical.moments(theta, 0.0, model), empirical.moments_se(theta, 0.0, model)
    want = exact.moments(theta, 0.0, model)
    for name in Moments._fields:
        assert_mc(getattr(got, name), getattr(want, name), getattr(se, name))
    # the SEs are those of the sample means: compare with an independent estimate
    _, ref_se = sample_moments(empirical.rows, theta, 0.0, "logistic", True)
    np.testing.assert_allclose(se.grad, ref_se.grad, rtol=1e-8)
    np.testing.assert_allclose(se.hess, ref_se.hess, rtol=1e-6)
    np.testing.assert_allclose(se.score_cov, ref_se.score_cov, rtol=1e-6)
    thetas = rng_for(9).standard_normal((7, 4))
    np.testing.assert_allclose(
        empirical.risk_batch(thetas, 0.0, model),
        [empirical.moments(t, 0.0, model).risk for t in thetas],
        rtol=1e-12,
    )


def test_empirical_law_sampling_shifting_and_scaling():
    rows = rng_for(10).standard_normal((1000, 2))
    law = EmpiricalLaw(rows)
    assert np.array_equal(law.sample(50, rng_for(11)), law.sample(50, rng_for(11)))
    drawn = law.sample(500, rng_for(12))
    assert all((rows == x).all(axis=1).any() for x in drawn)  # resamples the fixed rows
    moved = law.shifted([1.0, 2.0]).scaled(0.5)
    np.testing.assert_allclose(moved.rows, law.mean + [1.0, 2.0] + 0.5 * (rows - law.mean), atol=1e-14)
    sampled = EmpiricalLaw(sampler=lambda n, rng: rng.standard_normal((n, 2)), n=10, seed=1)
    shifted = sampled.shifted([3.0, 0.0])
    np.testing.assert_allclose(shifted.sample(4, rng_for(13)), sampled.sample(4, rng_for(13)) + [3.0, 0.0])


# ---------------------------------------------------------------------------------------------
# vectorisation, speed and input checks


def test_risk_batch_shapes_and_agreement_with_moments():
    law = mixture_example()
    model = GLM("probit", intercept=True)
    thetas = rng_for(14).standard_normal((2, 3, 4))
    got = law.risk_batch(thetas, 1.0, model)
    assert got.shape == (2, 3)
    want = [[law.moments(t, 1.0, model).risk for t in row] for row in thetas]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert np.isnan(law.risk_batch(np.array([np.nan, 0, 0, 0]), 1.0, model))


def test_risk_batch_is_fast_on_two_thousand_thetas():
    law = GaussianMixtureLaw(
        np.full(4, 0.25),
        rng_for(15).standard_normal((4, 20)),
        np.broadcast_to(np.eye(20), (4, 20, 20)),
    )
    model = GLM("logistic")
    thetas = 0.3 * rng_for(16).standard_normal((2000, 20))
    law.risk_batch(thetas, 1.0, model)  # compile
    # CPU time, not wall time: on a shared machine the wait for a core is not the code's cost
    start = time.process_time()
    law.risk_batch(thetas, 1.0, model)
    assert time.process_time() - start < 1.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureLaw([0.6, 0.6], np.zeros((2, 2)), np.broadcast_to(np.eye(2), (2, 2, 2)))
    with pytest.raises(ValueError, match="covs must have shape"):
        GaussianMixtureLaw([1.0], np.zeros((1, 2)), np.eye(3)[None])
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianMixtureLaw([1.0], np.zeros((1, 2)), np.diag([1.0, -1.0])[None])
    with pytest.raises(ValueError, match="noise must be one of"):
        SymmetricNoiseLaw(np.zeros(2), "laplace")
    with pytest.raises(ValueError, match="scale"):
        SymmetricNoiseLaw(np.zeros(2), scale=0.0)
    with pytest.raises(ValueError, match="neither"):
        EmpiricalLaw()
    law = GaussianMixtureLaw([1.0], np.zeros((1, 2)), np.eye(2)[None])
    with pytest.raises(ValueError, match=r"theta must be a 1-D array of shape \(3,\)"):
        law.moments(np.zeros(2), 1.0, GLM("logistic", intercept=True))
    with pytest.raises(ValueError, match=r"thetas must have shape \(\.\.\., 2\)"):
        law.risk_batch(np.zeros((5, 3)), 1.0, GLM("logistic"))
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        law.sample(3, 0)
    with pytest.raises(ValueError, match="n must be an integer"):
        law.sample(-1, rng_for(0))
    with pytest.raises(ValueError, match="delta"):
        law.shifted([1.0])
    with pytest.raises(ValueError, match="scale factor s"):
        law.scaled(-1.0)
    with pytest.raises(ValueError, match="model must be"):
        law.moments(np.zeros(2), 1.0, get_family("logistic"))
