"""The process catalog and its population quantities against closed forms and Monte Carlo."""

import math
import time

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from simstudy.fitting import GLM
from simstudy.laws import GaussianMixtureLaw, SymmetricNoiseLaw
from simstudy.population import Population
from simstudy.processes import (
    PROCESSES,
    Process,
    gaussian_classes,
    make_process,
    mixture_minority,
    noisy_ring,
    symmetric_mean_shift,
    tuned_logistic_mixture,
)

NOISES = ["gaussian", "uniform_cube", "rademacher", "uniform_sphere"]


def rng_for(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def assert_z(estimate, truth, se, family_alpha=1e-3):
    estimate, truth, se = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (estimate, truth, se))
    z = stats.norm.isf(family_alpha / (2 * estimate.size))
    zs = np.abs(estimate - truth) / se
    assert zs.max() < z, f"max |z| = {zs.max():.2f} >= {z:.2f}"


# ---------------------------------------------------------------------------------------------
# study 1: symmetric mean shift


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("delta", [1.0, 0.4])
def test_symmetric_mean_shift_theta_star_and_risk_closed_forms(noise, delta):
    d = 20
    pop = Population(symmetric_mean_shift(d=d, delta=delta, noise=noise), GLM("squared"))
    mu = delta * np.eye(d)[0]
    np.testing.assert_allclose(pop.theta_star, mu / (1 + delta**2), atol=1e-14)
    assert pop.regime == "symmetry" and np.linalg.norm(pop.g) < 1e-10
    assert pop.foc_norm <= 1e-10
    thetas = rng_for(1).standard_normal((50, d))
    risk = (1 - thetas @ mu) ** 2 + np.sum(thetas**2, axis=1)  # THEORY.md section 6, both classes
    y0, y1 = pop.process.labels
    assert (y0, y1) == (-1.0, 1.0)
    np.testing.assert_allclose(pop.process.law0.risk_batch(thetas, y0, pop.model), risk, rtol=1e-12)
    np.testing.assert_allclose(pop.process.law1.risk_batch(thetas, y1, pop.model), risk, rtol=1e-12)
    np.testing.assert_allclose(pop.excess(thetas), risk - 1 / (1 + delta**2), rtol=1e-11, atol=1e-13)
    # H = 2 (I + mu mu') for both classes
    np.testing.assert_allclose(pop.H, 2 * (np.eye(d) + np.outer(mu, mu)), atol=1e-13)


# ---------------------------------------------------------------------------------------------
# study 2: the tuned logistic mixture


def plain_sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("params", [dict(), dict(d=6, a=3.0, b=0.5, c=2.0, m=1.0, shift_coords=(2, 5))])
def test_tuned_logistic_mixture_is_locally_symmetric_at_c_e1(params):
    proc = tuned_logistic_mixture(**params)
    a, b, c = params.get("a", 5.0), params.get("b", 1.0), params.get("c", 1.0)
    sa, sb = plain_sigmoid(c * a), plain_sigmoid(c * b)
    alpha = b * sb * (1 - sb) / (a * sa * (1 - sa) + b * sb * (1 - sb))
    assert proc.info["alpha"] == pytest.approx(alpha, rel=1e-14)
    prior1 = alpha * plain_sigmoid(-c * a) + (1 - alpha) * plain_sigmoid(c * b)
    assert proc.info["prior1"] == pytest.approx(prior1, rel=1e-14)
    pop = Population(proc, GLM("logistic"))
    e1 = np.eye(proc.dim)[0]
    np.testing.assert_allclose(pop.theta_star, c * e1, atol=1e-10)
    assert np.linalg.norm(pop.g) < 1e-10 and pop.regime == "symmetry"
    assert pop.foc_norm <= 1e-10
    if not params:
        assert alpha == pytest.approx(0.855, abs=1e-3)
        assert proc.info["imbalance"] == pytest.approx(8.0, abs=0.1)  # "about 8:1"


def test_tuned_mixture_class_sampling_matches_the_joint_law():
    """Class-by-class sampling against rejection from the joint law P(X) P(Y | X)."""
    d, a, b, c, m = 6, 5.0, 1.0, 1.0, 2.5
    proc = tuned_logistic_mixture(d=d, a=a, b=b, c=c, m=m, shift_coords=(1, 2, 3))
    alpha = proc.info["alpha"]
    rng = rng_for(2)
    n = 400_000
    T = np.where(rng.random(n) < alpha, -a, b)
    s = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    X = rng.standard_normal((n, d))
    X[:, 0] = T
    X[:, 1:4] += s[:, None] * m
    Y = rng.random(n) < expit(c * X[:, 0])
    for k, law in ((0, proc.law0), (1, proc.law1)):
        joint = X[Y == bool(k)]
        own = law.sample(joint.shape[0], rng)
        feats = [
            lambda x: x[:, 0],
            lambda x: x[:, 0] == -a,
            lambda x: x[:, 1],
            lambda x: x[:, 1] ** 2,
            lambda x: x[:, 1] * x[:, 2],
        ]
        for f in feats:
            u, v = f(joint).astype(float), f(own).astype(float)
            se = math.sqrt(u.var() / u.size + v.var() / v.size)
            assert_z(u.mean(), v.mean(), se, family_alpha=1e-3 / 10)


def test_tuned_mixture_score_covariance_matches_monte_carlo():
    proc = tuned_logistic_mixture(d=5, shift_coords=(1, 2))
    pop = Population(proc, GLM("logistic"))
    X = proc.law1.sample(200_000, rng_for(3))
    Q = X * (expit(X @ pop.theta_star) - 1.0)[:, None]
    Qc = Q - Q.mean(0)
    prods = Qc[:, :, None] * Qc[:, None, :]
    assert_z(Q.mean(0), -pop.g, Q.std(0) / math.sqrt(len(Q)))
    assert_z(prods.mean(0), pop.Sigma1, prods.std(0) / math.sqrt(len(Q)))


# ---------------------------------------------------------------------------------------------
# studies 3-5: Gaussian classes


def test_gaussian_classes_squared_loss_closed_forms():
    pop = Population(gaussian_classes(), GLM("squared"))
    e1 = np.array([1.0, 0.0])
    # R_bal = E0 (x'theta)^2 / 2 + E1 (1 - x'theta)^2 / 2  =>  (2 I + e1 e1') theta = e1
    np.testing.assert_allclose(pop.theta_star, e1 / 3, atol=1e-15)
    np.testing.assert_allclose(pop.g, 2 * e1 / 3, atol=1e-15)
    np.testing.assert_allclose(pop.g_phi, 4 * e1 / 3, atol=1e-15)
    np.testing.assert_allclose(pop.H0, 2 * np.eye(2), atol=1e-15)
    np.testing.assert_allclose(pop.H1, 2 * (np.eye(2) + np.outer(e1, e1)), atol=1e-15)
    assert pop.regime == "asymmetry"
    # squared loss: the excess is the exact quadratic form (theta - theta*)' H (theta - theta*) / 2
    thetas = rng_for(4).standard_normal((3, 4, 2))
    diff = thetas - pop.theta_star
    np.testing.assert_allclose(pop.excess(thetas), 0.5 * np.einsum("...i,ij,...j->...", diff, pop.H, diff), rtol=1e-12)
    # Sigma0 = Cov(2 (x'theta) x), x ~ N(0, I): 4 (|theta|^2 I + theta theta')  (Isserlis)
    t = pop.theta_star
    np.testing.assert_allclose(pop.Sigma0, 4 * ((t @ t) * np.eye(2) + np.outer(t, t)), atol=1e-14)


def test_gaussian_classes_logistic_with_intercept_recovers_the_bayes_rule():
    # equal covariances and balanced weights: the log-odds x' S^-1 (mu1 - mu0) - (mu1'S^-1 mu1 -
    # mu0'S^-1 mu0) / 2 is linear, so balanced logistic regression is well specified
    rng = rng_for(5)
    A = rng.standard_normal((3, 3))
    S = A @ A.T + 0.5 * np.eye(3)
    mu0, mu1 = np.array([0.2, -0.5, 1.0]), np.array([1.0, 0.5, 0.0])
    pop = Population(gaussian_classes(mu0, mu1, S), GLM("logistic", intercept=True))
    Si = np.linalg.inv(S)
    want = np.r_[-(mu1 @ Si @ mu1 - mu0 @ Si @ mu0) / 2, Si @ (mu1 - mu0)]
    np.testing.assert_allclose(pop.theta_star, want, atol=1e-10)
    assert pop.foc_norm <= 1e-10 and pop.regime == "asymmetry"


def test_excess_matches_monte_carlo_with_common_random_numbers():
    proc = mixture_minority()
    pop = Population(proc, GLM("logistic", intercept=True))
    theta = pop.theta_star + np.array([0.3, -0.2, 0.1, 0.0, 0.2, -0.1])
    rng = rng_for(6)
    n = 200_000
    diffs = []
    for law, y in ((proc.law0, 0.0), (proc.law1, 1.0)):
        Z = np.hstack([np.ones((n, 1)), law.sample(n, rng)])
        loss = lambda t: np.logaddexp(0.0, Z @ t) - y * (Z @ t)  # noqa: E731
        diffs.append(loss(theta) - loss(pop.theta_star))
    estimate = 0.5 * (diffs[0].mean() + diffs[1].mean())
    se = 0.5 * math.sqrt(diffs[0].var() / n + diffs[1].var() / n)
    assert_z(estimate, pop.excess(theta), se)
    assert pop.excess(pop.theta_star) == 0.0
    assert pop.risk_bal(theta) == pytest.approx(pop.risk_star + float(pop.excess(theta)), rel=1e-14)


# ---------------------------------------------------------------------------------------------
# the whole catalog


CATALOG = [
    ("symmetric_mean_shift", {}, GLM("squared"), "symmetry"),
    # an intercept breaks study 1's symmetry: the intercept score E_k 2 (x'theta* - y_k) is
    # -+2/(1 + delta^2)
    ("symmetric_mean_shift", {"noise": "rademacher"}, GLM("squared", intercept=True), "asymmetry"),
    ("tuned_logistic_mixture", {}, GLM("logistic"), "symmetry"),
    ("gaussian_classes", {}, GLM("squared"), "asymmetry"),
    ("gaussian_classes", {}, GLM("logistic"), "asymmetry"),
    (
        "gaussian_classes",
        {"mu0": [0, 0, 0], "mu1": [1, 1, 0]},
        GLM("probit", intercept=True),
        "asymmetry",
    ),
    ("mixture_minority", {}, GLM("logistic", intercept=True), "asymmetry"),
    ("noisy_ring", {"mc_size": 50_000}, GLM("logistic", intercept=True), "asymmetry"),
]


@pytest.mark.parametrize("name, kwargs, model, regime", CATALOG)
def test_catalog_first_order_condition_and_regime(name, kwargs, model, regime):
    pop = Population(make_process(name, **kwargs), model)
    assert np.linalg.norm(pop.grad_bal(pop.theta_star)) <= 1e-10
    assert pop.regime == regime
    np.testing.assert_allclose(pop.g, -pop.moments(pop.theta_star)[1].grad, atol=1e-10)
    np.testing.assert_allclose(pop.H, (pop.H0 + pop.H1) / 2)
    assert np.all(np.linalg.eigvalsh(pop.H) > 0)
    thetas = pop.theta_star + 0.3 * rng_for(7).standard_normal((20, pop.p))
    assert np.all(pop.excess(thetas) > 0)


def test_process_sampling_counts_and_reproducibility():
    for name in PROCESSES:
        proc = make_process(name, **({"mc_size": 1000} if name == "noisy_ring" else {}))
        X0, X1 = proc.sample(37, 5, rng_for(8))
        assert X0.shape == (37, proc.dim) and X1.shape == (5, proc.dim)
        Y0, Y1 = proc.sample(37, 5, rng_for(8))
        assert np.array_equal(X0, Y0) and np.array_equal(X1, Y1)
        Z0, _ = proc.sample(37, 5, rng_for(9))
        assert not np.array_equal(X0, Z0)


def test_noisy_ring_geometry():
    proc = noisy_ring(mc_size=1000)
    X1 = proc.law1.sample(100_000, rng_for(10))
    radius = np.hypot(X1[:, 0] - 4.8, X1[:, 1])
    assert_z(radius.mean(), 2.2, radius.std() / math.sqrt(radius.size))
    assert radius.std() == pytest.approx(0.3, rel=0.02)
    X0 = proc.law0.sample(100_000, rng_for(11))
    # 0.7 N(0, C) + 0.3 N((4.8, 0, ...), C), corr(X1, X2) = 0.5 in C: mean 0.3 * 4.8 e1, and
    # covariance C + 0.3 * 0.7 * 4.8^2 e1 e1'
    mean = np.r_[0.3 * 4.8, np.zeros(4)]
    cov = np.eye(5)
    cov[0, 1] = cov[1, 0] = 0.5
    cov[0, 0] += 0.21 * 4.8**2
    assert_z(X0.mean(0), mean, X0.std(0) / math.sqrt(len(X0)))
    prods = (X0 - mean)[:, :2, None] * (X0 - mean)[:, None, :2]
    assert_z(prods.mean(0), cov[:2, :2], prods.std(0) / math.sqrt(len(X0)))


def test_mixture_minority_design():
    proc = mixture_minority()
    assert isinstance(proc.law1, GaussianMixtureLaw)
    np.testing.assert_allclose(proc.law1.means[:, :2], [[2.0, 1.75], [2.0, -1.75]])
    np.testing.assert_allclose(proc.law1.mean, [2.0, 0, 0, 0, 0], atol=1e-15)


def test_excess_on_two_thousand_thetas_is_fast():
    # CPU time, not wall time: on a shared machine the wait for a core is not the code's cost
    start = time.process_time()
    pop = Population(tuned_logistic_mixture(), GLM("logistic"))
    build = time.process_time() - start
    thetas = pop.theta_star + 0.1 * rng_for(12).standard_normal((2000, pop.p))
    pop.excess(thetas)
    start = time.process_time()
    pop.excess(thetas)
    assert time.process_time() - start < 0.5
    assert build < 20.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown process 'nope'"):
        make_process("nope")
    with pytest.raises(ValueError, match=r"process 'gaussian_classes' takes no option 'radius'; it takes \['mu0'"):
        make_process("gaussian_classes", mu0=[0.0], radius=1.0)
    with pytest.raises(ValueError, match="needs labels 0/1"):
        Population(symmetric_mean_shift(d=3), GLM("logistic"))
    with pytest.raises(ValueError, match="share one dimension"):
        Process("x", SymmetricNoiseLaw(np.zeros(2)), SymmetricNoiseLaw(np.zeros(3)))
    with pytest.raises(ValueError, match="labels must be two distinct"):
        Process("x", SymmetricNoiseLaw(np.zeros(2)), SymmetricNoiseLaw(np.zeros(2)), labels=(1.0, 1.0))
    with pytest.raises(ValueError, match="shift_coords"):
        tuned_logistic_mixture(d=3, shift_coords=(0, 1))
    with pytest.raises(ValueError, match="noise must be one of"):
        symmetric_mean_shift(noise="laplace")
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        symmetric_mean_shift(d=0)
    with pytest.raises(ValueError, match="rho must lie in"):
        noisy_ring(rho=1.0, mc_size=10)
    pop = Population(gaussian_classes(), GLM("squared"))
    with pytest.raises(ValueError, match=r"theta must have shape \(2,\)"):
        pop.risk_bal(np.zeros(3))
    # separable classes: the logistic minimiser does not exist
    apart = gaussian_classes([0.0], [1.0], cov=[[0.0]])
    with pytest.raises(ValueError, match="no minimiser"):
        Population(apart, GLM("logistic", intercept=True))
