"""The mismatch-controlled generator hits the requested (r, phi), checked independently.

psi of the synthetic law is recomputed here without simstudy's moments: by the squared-loss
closed form from the law's mean and covariance, by scipy.integrate.quad for the logistic
family, and by Monte Carlo on the generator's own samples.
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import expit

from simstudy.fitting import GLM
from simstudy.generators import make_generator
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.population import Population
from simstudy.processes import (
    gaussian_classes,
    symmetric_mean_shift,
    tuned_logistic_mixture,
)


def rng_for(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def gaussian_of(law):
    assert law.weights.size == 1
    return law.means[0], law.covs[0]


def squared_grad(mu, S, theta, y, intercept):
    """E 2 (theta'z - y) z for x ~ (mu, S): 2 (E[z z'] theta - y E z)."""
    if intercept:
        mu, S = np.r_[1.0, mu], np.pad(S, ((1, 0), (1, 0)))
    return 2.0 * ((np.outer(mu, mu) + S) @ theta - y * mu)


def logistic_grad(mu, S, theta, y, intercept):
    """E (sigmoid(theta'z) - y) z for x ~ N(mu, S), by scipy quad along eta = theta'z.

    z = mu_z + S_z theta (eta - m) / v + independent noise, so
    E[h z] = E[h] mu_z + S_z theta E[(eta - m) h] / v.
    """
    if intercept:
        mu, S = np.r_[1.0, mu], np.pad(S, ((1, 0), (1, 0)))
    m, v = theta @ mu, theta @ S @ theta
    sd = math.sqrt(v)

    def expect(f):
        kink = -m / sd
        opts = dict(epsabs=1e-14, epsrel=1e-13, limit=200)
        g = lambda u: f(u) * (expit(m + sd * u) - y) * stats.norm.pdf(u)  # noqa: E731
        return integrate.quad(g, -np.inf, kink, **opts)[0] + integrate.quad(g, kink, np.inf, **opts)[0]

    return expect(lambda u: 1.0) * mu + (S @ theta) * expect(lambda u: u) / sd


def independent_psi(gen, grad_fn):
    pop = gen.population
    y1 = pop.process.labels[1]
    mu1, S1 = gaussian_of(pop.process.law1)
    mut, St = gaussian_of(gen.law)
    return grad_fn(mut, St, pop.theta_star, y1, pop.model.intercept) - grad_fn(
        mu1, S1, pop.theta_star, y1, pop.model.intercept
    )


def requested(gen):
    u, v = gen.axes
    rad = math.radians(gen.angle_deg)
    return gen.magnitude * (math.cos(rad) * u + math.sin(rad) * v)


# ---------------------------------------------------------------------------------------------
# study 5 design with squared loss: exact


SQUARED_GRID = [(r, phi) for r in (0.05, 0.1, 0.16) for phi in (0, 30, 60, 90, 120, 150, 180)]


@pytest.fixture(scope="module")
def squared_population():
    return Population(gaussian_classes(), GLM("squared"))


@pytest.mark.parametrize("r, phi", SQUARED_GRID)
def test_squared_gaussian_design_hits_r_and_phi_exactly(squared_population, r, phi):
    pop = squared_population
    gen = MismatchGenerator(pop, r, phi)
    psi = independent_psi(gen, squared_grad)
    np.testing.assert_allclose(psi, requested(gen), atol=1e-12)
    assert np.linalg.norm(psi) == pytest.approx(r, abs=1e-8)
    g = pop.g
    angle = math.degrees(math.atan2(abs(psi[0] * g[1] - psi[1] * g[0]), psi @ g))
    assert angle == pytest.approx(phi, abs=1e-8)
    assert gen.magnitude_realised == pytest.approx(r, abs=1e-12)
    assert gen.angle_deg_realised == pytest.approx(phi, abs=1e-9)
    # g = (2/3) e1: c = <psi, g> / |g|^2 = r cos(phi) / |g|
    assert gen.alignment_c == pytest.approx(r * math.cos(math.radians(phi)) / (2 / 3), abs=1e-12)
    np.testing.assert_allclose(gen.law.covs[0], np.eye(2))  # a pure mean shift


def test_squared_mean_shift_limits_and_the_covariance_scale(squared_population):
    # here theta*' psi >= -1/18 for any mean shift, i.e. r cos(phi) >= -1/6 (module docstring)
    with pytest.raises(ValueError, match="no mean shift reaches"):
        MismatchGenerator(squared_population, 0.3, 180)
    gen = MismatchGenerator(squared_population, 0.3, 180, cov_scale=0.5)
    np.testing.assert_allclose(independent_psi(gen, squared_grad), requested(gen), atol=1e-12)
    np.testing.assert_allclose(gen.law.covs[0], 0.25 * np.eye(2))
    # study 3's biased generator N((0.5, 0), I) has psi = (1/2) e1, c = 3/4: recovered from (r, phi)
    study3 = MismatchGenerator(squared_population, 0.5, 0)
    np.testing.assert_allclose(study3.law.means[0], [0.5, 0.0], atol=1e-14)
    assert study3.alignment_c == pytest.approx(0.75, abs=1e-14)


# ---------------------------------------------------------------------------------------------
# logistic: Newton on quadrature moments


LOGISTIC_GRID = [(r, phi) for r in (0.02, 0.05) for phi in (0, 45, 90, 135, 180)] + [
    (0.1, 0),
    (0.1, 60),
    (0.1, 90),
]


@pytest.fixture(scope="module")
def logistic_population():
    return Population(gaussian_classes([0.0, 0.0, 0.0], [1.0, 0.5, 0.0]), GLM("logistic"))


@pytest.mark.parametrize("r, phi", LOGISTIC_GRID)
def test_logistic_design_hits_r_and_phi_to_quadrature_accuracy(logistic_population, r, phi):
    gen = MismatchGenerator(logistic_population, r, phi)
    psi = independent_psi(gen, logistic_grad)
    np.testing.assert_allclose(psi, requested(gen), atol=1e-9)
    assert gen.residual < 1e-12
    assert gen.magnitude_realised == pytest.approx(r, abs=1e-12)
    assert gen.angle_deg_realised == pytest.approx(phi, abs=1e-8)


def test_logistic_psi_against_monte_carlo_of_the_generator_samples(logistic_population):
    pop = logistic_population
    gen = MismatchGenerator(pop, 0.1, 60)
    theta = pop.theta_star
    n = 200_000
    Xt = gen.sample(n, rng_for(1))
    X1 = pop.process.law1.sample(n, rng_for(1))
    # the same normal draws drive both samples (one Gaussian component each), so the
    # difference of the two means has a far smaller error than either
    diff = Xt * (expit(Xt @ theta) - 1.0)[:, None] - X1 * (expit(X1 @ theta) - 1.0)[:, None]
    se = diff.std(0) / math.sqrt(n)
    z = np.abs(diff.mean(0) - gen.psi) / se
    assert z.max() < stats.norm.isf(1e-3 / 6)


def test_intercept_least_squares_and_solved_covariance_scale():
    pop = Population(gaussian_classes([0.0, 0.0, 0.0], [1.0, 0.5, 0.0]), GLM("logistic", intercept=True))
    assert pop.p == 4
    gen = MismatchGenerator(pop, 0.05, 45)
    psi = independent_psi(gen, logistic_grad)
    np.testing.assert_allclose(psi, gen.psi, atol=1e-10)
    target = requested(gen)
    assert gen.residual == pytest.approx(np.linalg.norm(psi - target), abs=1e-10)
    assert gen.residual > 1e-3  # three shift coordinates cannot reach a generic 4-vector
    # least squares: no nearby shift does better
    rng = rng_for(3)
    for _ in range(6):
        nudged = gen._law(gen.delta + 1e-3 * rng.standard_normal(3), 1.0)
        assert np.linalg.norm(gen._psi(nudged) - target) >= gen.residual - 1e-12
    # with the covariance scale as a fourth unknown the target is hit exactly
    solved = MismatchGenerator(pop, 0.05, 45, cov_scale=None)
    assert solved.cov_scale_solved and solved.cov_scale != 1.0
    np.testing.assert_allclose(independent_psi(solved, logistic_grad), target, atol=1e-9)
    np.testing.assert_allclose(solved.law.covs[0], solved.cov_scale**2 * np.eye(3), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# local symmetry: the reference is the user's direction


def test_symmetry_needs_a_direction_and_then_hits_the_target():
    pop = Population(symmetric_mean_shift(d=4), GLM("squared"))
    assert pop.regime == "symmetry"
    with pytest.raises(ValueError, match="pass direction"):
        MismatchGenerator(pop, 0.1, 30)
    direction = np.array([1.0, 1.0, 0.0, 0.0])
    gen = MismatchGenerator(pop, 0.1, 30, direction=direction)
    mu1, S1 = pop.process.law1.mean, np.eye(4)
    mut = gen.law.mean
    psi = squared_grad(mut, S1, pop.theta_star, 1.0, False) - squared_grad(mu1, S1, pop.theta_star, 1.0, False)
    np.testing.assert_allclose(psi, requested(gen), atol=1e-12)
    u = direction / np.linalg.norm(direction)
    assert math.degrees(math.acos(psi @ u / np.linalg.norm(psi))) == pytest.approx(30, abs=1e-7)
    assert math.isnan(gen.alignment_c)


def test_symmetric_logistic_mixture_via_newton():
    pop = Population(tuned_logistic_mixture(d=4, shift_coords=(1, 2)), GLM("logistic"))
    assert pop.regime == "symmetry"
    gen = MismatchGenerator(pop, 0.03, 120, direction=np.array([1.0, 0.0, 0.0, 0.0]))
    assert gen.residual < 1e-12
    # psi by Monte Carlo: the shifted law is the minority law plus delta, drawn with the same noise
    n = 200_000
    X1 = pop.process.law1.sample(n, rng_for(4))
    Xt = gen.law.sample(n, rng_for(4))
    np.testing.assert_allclose(Xt - X1, np.broadcast_to(gen.delta, X1.shape), atol=1e-12)
    theta = pop.theta_star
    diff = Xt * (expit(Xt @ theta) - 1.0)[:, None] - X1 * (expit(X1 @ theta) - 1.0)[:, None]
    z = np.abs(diff.mean(0) - requested(gen)) / (diff.std(0) / math.sqrt(n))
    assert z.max() < stats.norm.isf(1e-3 / 8)


# ---------------------------------------------------------------------------------------------
# the generator interface


def test_generator_interface_and_reproducibility(squared_population):
    gen = make_generator("mismatch", population=squared_population, magnitude=0.1, angle_deg=90)
    assert isinstance(gen, MismatchGenerator)
    X1, X0 = squared_population.process.sample(20, 5, rng_for(5))[::-1]
    assert gen.fit(X1, X0, rng_for(6)) is gen
    a, b = gen.sample(50, rng_for(7)), gen.sample(50, rng_for(7))
    assert a.shape == (50, 2) and np.array_equal(a, b)
    assert not np.array_equal(a, gen.sample(50, rng_for(8)))
    assert gen.sample(0, rng_for(7)).shape == (0, 2)
    big = gen.sample(100_000, rng_for(9))
    z = np.abs(big.mean(0) - gen.law.mean) / (big.std(0) / math.sqrt(len(big)))
    assert z.max() < 4.0
    assert gen.magnitude == 0.1 and MismatchGenerator(squared_population, 0.0, 0).magnitude_realised == 0.0


def test_bad_inputs_raise_clear_errors(squared_population):
    pop = squared_population
    with pytest.raises(ValueError, match="magnitude must be"):
        MismatchGenerator(pop, -0.1, 0)
    with pytest.raises(ValueError, match=r"angle_deg must lie in \[0, 180\]"):
        MismatchGenerator(pop, 0.1, 200)
    with pytest.raises(ValueError, match="cov_scale must be"):
        MismatchGenerator(pop, 0.1, 0, cov_scale=0.0)
    with pytest.raises(ValueError, match="needs a model with an intercept"):
        MismatchGenerator(pop, 0.1, 0, cov_scale=None)
    with pytest.raises(ValueError, match=r"direction must be a finite non-zero vector of shape \(2,\)"):
        MismatchGenerator(pop, 0.1, 0, direction=np.ones(3))
    with pytest.raises(ValueError, match="must not be parallel to g"):
        MismatchGenerator(pop, 0.1, 0, direction=np.array([2.0, 0.0]))
    with pytest.raises(ValueError, match="population must be"):
        MismatchGenerator(pop.process, 0.1, 0)
    gen = MismatchGenerator(pop, 0.1, 0)
    with pytest.raises(ValueError, match="X1 has 3 columns"):
        gen.fit(np.zeros((4, 3)), None, rng_for(0))
