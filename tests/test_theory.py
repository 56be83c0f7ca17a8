"""Tests of the theory engine (simstudy.theory) against independent references.

References, all derived here from scratch:

* squared loss with Gaussian classes, no intercept: R_k(theta) = E(y_k - x'theta)^2 =
  (y_k - m_k'theta)^2 + theta' S_k theta, so grad R_k = 2 (E_k[x x'] theta - y_k m_k),
  hess R_k = 2 E_k[x x'] and the pooled population limit is one linear solve;
* the semi-oracle in the symmetric Gaussian design: with delta = x̄1 - mu1 ~ N(0, I/n1),
  psi = A delta + 2 delta delta' theta (A = -2 (e I - mu1 theta'), e = y1 - mu1'theta), so
  E psi = 2 V theta, Cov psi = A V A' + 4 [(theta'V theta) V + V theta theta' V], V = I / n1;
  the minority sample's mean score deviation is e1 = A delta + 2 (S^ - I) theta, and the Gaussian
  fourth moments give Cov(psi, e1) = Cov psi;
* Monte Carlo means of real fits (simstudy.fitting.fit_glm, replications batched), compared
  with |estimate - prediction| / SE < Z, SE combining the fits' Monte Carlo standard error and
  the prediction's own (its average over generator fits).

Measured (this file's designs, refits = 4000, 4000 replications): the first-order prediction
matches within 0.5% in the asymmetric d = 2 design for the Gaussian fit and the semi-oracle at
gamma in (0.5, 4); at gamma = 0 (a Theta(1) bias) it is 0.25% high (z = -3.6 at 8000
replications): the O(1/N) second-order mean shift of theta_hat that first-order theory omits.
In the symmetric d = 3 design with n1 = 100 the semi-oracle and SMOTE are 3-4% above the
prediction (z ~ 2), 0.3-1.9% at n1 = 400: also second order, shrinking with n1.
"""

from __future__ import annotations

import numpy as np
import pytest

import simstudy  # noqa: F401
from simstudy import newton
from simstudy.fitting import GLM, fit_glm
from simstudy.generators import GaussianFit, Oracle, SemiOracle, Smote
from simstudy.generators.base import FittedGenerator, Generator
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.laws import GaussianMixtureLaw
from simstudy.population import Population
from simstudy.processes import gaussian_classes, symmetric_mean_shift
from simstudy.theory import (
    OptimalSize,
    SyntheticMoments,
    Theory,
    _FirstOrderTerms,
    bias_linearisation,
    optimal_sizes,
    predict,
    predicted_slopes,
    synthetic_moments,
)

Z = 4.0
SQUARED = GLM("squared")


def rng_from(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def gaussian(mean, cov=None):
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.eye(mean.size) if cov is None else np.asarray(cov, dtype=np.float64)
    return GaussianMixtureLaw(np.ones(1), mean[None], cov[None])


# ---------------------------------------------------------------------------------------------
# closed forms for squared loss, no intercept (module docstring)


def second_moment(mean, cov):
    return cov + np.outer(mean, mean)


def grad_sq(theta, y, mean, cov):
    return 2.0 * (second_moment(mean, cov) @ theta - y * mean)


def risk_sq(theta, y, mean, cov):
    return (y - mean @ theta) ** 2 + theta @ cov @ theta


ASYM = dict(mu0=np.zeros(2), mu1=np.array([1.0, 0.0]), cov=np.eye(2), y0=0.0, y1=1.0)


def asym_truth():
    """theta*, g and R_bal(theta*) of N(0, I) vs N((1, 0), I), labels 0/1."""
    A = second_moment(ASYM["mu0"], ASYM["cov"]) + second_moment(ASYM["mu1"], ASYM["cov"])
    theta = np.linalg.solve(A, ASYM["y0"] * ASYM["mu0"] + ASYM["y1"] * ASYM["mu1"])
    g = grad_sq(theta, ASYM["y0"], ASYM["mu0"], ASYM["cov"])
    return theta, g


def asym_excess(theta, theta_star):
    def rbal(t):
        return 0.5 * (risk_sq(t, 0.0, ASYM["mu0"], ASYM["cov"]) + risk_sq(t, 1.0, ASYM["mu1"], ASYM["cov"]))

    return rbal(theta) - rbal(theta_star)


def pooled_limit(n0, n1, nt, syn_mean, syn_cov):
    """Root of n0 grad R0 + n1 grad R1 + n~ grad R~1 = 0: one linear solve for squared loss."""
    A = (
        n0 * second_moment(ASYM["mu0"], ASYM["cov"])
        + n1 * second_moment(ASYM["mu1"], ASYM["cov"])
        + nt * second_moment(syn_mean, syn_cov)
    )
    return np.linalg.solve(A, n1 * ASYM["mu1"] + nt * syn_mean)


@pytest.fixture(scope="module")
def asym_pop():
    return Population(gaussian_classes(), SQUARED)


@pytest.fixture(scope="module")
def sym_pop():
    return Population(symmetric_mean_shift(d=3), SQUARED)


# ---------------------------------------------------------------------------------------------
# the first-order terms against their definition


def _first_order_by_inverses(pop, syn, n0, n1, nt):
    """The module docstring's per-fit averages with H_w,r^{-1} inverted for every (size, fit)."""
    R = syn.fit_psi.shape[0]
    unbias = R / (R - 1)
    noise = n1 * syn.fit_e1 + n0 * syn.fit_e0
    out = []
    for a in nt:
        N = n0 + n1 + a
        Hw_inv = np.linalg.inv((n0 * pop.H0 + n1 * pop.H1 + a * syn.fit_H) / N)
        M = Hw_inv @ pop.H @ Hw_inv
        W = np.swapaxes(Hw_inv, -1, -2) @ Hw_inv
        b = (n0 - n1 - a) * pop.g + a * syn.fit_psi
        V = n0 * pop.Sigma0 + n1 * pop.Sigma1 + a * syn.fit_Sigma
        Mb, Wb = np.einsum("rij,rj->ri", M, b), np.einsum("rij,rj->ri", W, b)
        pool_var = a * a * syn.fit_Sigma / syn.pool if syn.pool else 0.0 * syn.fit_Sigma
        bias = (np.einsum("ri,ri->r", b, Mb) - np.einsum("rij,rji->r", M, pool_var)) / (2 * N * N)
        cross = 2 * unbias * np.einsum("ri,ri->r", Mb - Mb.mean(0), noise) / (2 * N * N)
        variance = np.einsum("rij,rji->r", M, V) / (2 * N * N)
        param = (
            np.einsum("ri,ri->r", b, Wb)
            + 2 * unbias * np.einsum("ri,ri->r", Wb - Wb.mean(0), noise)
            + np.einsum("rij,rji->r", W, V)
            - np.einsum("rij,rji->r", W, pool_var)
        ) / (N * N)
        out.append([x.mean() for x in (bias, cross, variance, param)])
    return np.array(out).T


@pytest.mark.parametrize("generator", ["semi_oracle", "smote"])
def test_diagonalised_first_order_terms_equal_the_inverse_formulas(asym_pop, generator):
    gen = SemiOracle(asym_pop.process.law1) if generator == "semi_oracle" else Smote(k=5)
    syn = synthetic_moments(asym_pop, gen, 60, rng_from(31), refits=40, pool=3000, n0=600)
    assert (syn.pool > 0) == (generator == "smote")
    nt = np.array([0.0, 17.0, 270.0, 540.0, 1600.5])
    got = _FirstOrderTerms(asym_pop, syn, 600, 60)(nt)
    want = _first_order_by_inverses(asym_pop, syn, 600, 60, nt)
    for name, expected in zip(("bias", "cross", "variance", "param_sq"), want):
        np.testing.assert_allclose(
            getattr(got, name), expected, rtol=1e-10, atol=1e-14 * np.abs(expected).max(), err_msg=name
        )


def test_bias_linearisation_is_exact_for_squared_loss(asym_pop):
    # squared loss: theta_bar_r - theta* = -H_w,r^{-1} b_r / N exactly and the excess is
    # quadratic, so the exact per-fit excess and the first-order bias term coincide
    for gen in (GaussianFit(), SemiOracle(asym_pop.process.law1)):
        out = bias_linearisation(asym_pop, gen, 600, 60, [0.0, 0.5, 2.0], rng_from(32), refits=6)
        assert np.all(out.exact > 0)
        np.testing.assert_allclose(out.first_order, out.exact, rtol=1e-9, atol=1e-15)


def test_bias_linearisation_needs_a_fitted_law(asym_pop):
    with pytest.raises(ValueError, match="no fitted law"):
        bias_linearisation(asym_pop, Smote(k=5), 600, 60, [1.0], rng_from(33), refits=2)


# ---------------------------------------------------------------------------------------------
# optimal sizes: aligned, over-aligned, orthogonal


def test_aligned_mismatch_gives_gamma_star_one_over_one_minus_c(asym_pop):
    a = 0.5  # synthetic N((a, 0), I), biased toward the majority along g
    syn_mean = np.array([a, 0.0])
    theta, g = asym_truth()
    psi = grad_sq(theta, 1.0, syn_mean, np.eye(2)) - grad_sq(theta, 1.0, ASYM["mu1"], np.eye(2))
    c = psi @ g / (g @ g)
    assert abs(psi[1]) < 1e-15 and 0 < c < 1  # aligned
    gamma_star = 1.0 / (1.0 - c)

    gen = Oracle(gaussian(syn_mean))
    syn = synthetic_moments(asym_pop, gen, 100, rng_from(1))
    np.testing.assert_allclose(asym_pop.theta_star, theta, atol=1e-12)
    np.testing.assert_allclose(syn.psi_mean, psi, atol=1e-12)
    assert syn.refits == 1 and not np.any(syn.psi_cov) and not np.any(syn.se_psi_mean)

    n0, n1 = 2000, 100
    opt = optimal_sizes(asym_pop, syn, n0, n1, gamma_max=6.0)
    assert isinstance(opt, OptimalSize)
    assert opt.alignment_c == pytest.approx(c, abs=1e-12)
    assert opt.gamma_star_bias == pytest.approx(gamma_star, abs=1e-10)
    assert opt.gamma_star_bias_per_point == pytest.approx(gamma_star, abs=1e-10)
    assert opt.mismatch_norm == pytest.approx(np.linalg.norm(psi), abs=1e-12)
    assert opt.mismatch_angle_deg == pytest.approx(0.0, abs=1e-5)
    assert opt.gamma_star_population == pytest.approx(gamma_star, abs=1e-5)
    # gamma* (n0 - n1) = 7600 is an integer, so the rounded size cancels the bias exactly
    pred = predict(asym_pop, syn, n0, n1, [0.0, 1.0, gamma_star])
    assert pred.n_tilde[-1] == 7600
    assert abs(pred.population_excess[-1]) < 1e-12
    assert pred.bias_term[-1] < 1e-12
    assert np.all(pred.population_excess[:2] > 1e-4)
    assert "no or minimal" not in opt.recommendation


def test_no_size_cancels_an_over_aligned_bias(asym_pop):
    a = 0.2  # psi = c g with c > 1: every synthetic point is more majority-like than helpful
    theta, g = asym_truth()
    psi = grad_sq(theta, 1.0, np.array([a, 0.0]), np.eye(2)) - grad_sq(theta, 1.0, ASYM["mu1"], np.eye(2))
    c = psi @ g / (g @ g)
    assert c > 1
    syn = synthetic_moments(asym_pop, Oracle(gaussian([a, 0.0])), 100, rng_from(2))
    n0, n1 = 2000, 100
    opt = optimal_sizes(asym_pop, syn, n0, n1)
    assert opt.gamma_star_bias is None and opt.gamma_star_bias_per_point is None
    assert "c = " in opt.reason
    assert opt.alignment_c == pytest.approx(c, abs=1e-12)
    # ||b|| = (G + n~ (c - 1)) ||g|| grows, but per point b / N falls from G / (n0 + n1) toward
    # c - 1 < G / (n0 + n1): the exact bias-only excess keeps falling to gamma_max
    assert c - 1 < (n0 - n1) / (n0 + n1)
    assert opt.gamma_star_population == pytest.approx(4.0, abs=1e-6)
    pred = predict(asym_pop, syn, n0, n1, [0.0, 1.0, 4.0])
    assert np.all(np.diff(pred.population_excess) < 0)


def test_orthogonal_mismatch_gives_gamma_star_below_one_and_a_floor(asym_pop):
    b = 0.5
    syn_mean = np.array([1.0, b])
    # covariance chosen so that E[x x'] (hence H~) equals H1: psi = -2 (m~ - mu1) is then
    # M-orthogonal to g, M being diagonal
    syn_cov = second_moment(ASYM["mu1"], np.eye(2)) - np.outer(syn_mean, syn_mean)
    assert np.all(np.linalg.eigvalsh(syn_cov) > 0)
    theta, g = asym_truth()
    psi = grad_sq(theta, 1.0, syn_mean, syn_cov) - grad_sq(theta, 1.0, ASYM["mu1"], np.eye(2))
    np.testing.assert_allclose(psi, [0.0, -2.0 * b], atol=1e-14)

    n0, n1 = 2000, 100
    syn = synthetic_moments(asym_pop, Oracle(gaussian(syn_mean, syn_cov)), n1, rng_from(3))
    opt = optimal_sizes(asym_pop, syn, n0, n1, gamma_max=2.0)
    assert opt.alignment_c == pytest.approx(0.0, abs=1e-12)
    assert opt.mismatch_angle_deg == pytest.approx(90.0, abs=1e-9)

    # THEORY.md: gamma* = ||g||_M^2 / (||g||_M^2 + ||psi||_M^2), M at gamma* itself
    H0 = 2.0 * second_moment(ASYM["mu0"], np.eye(2))
    H1 = 2.0 * second_moment(ASYM["mu1"], np.eye(2))
    gs = opt.gamma_star_bias
    nt = gs * (n0 - n1)
    Hw_inv = np.linalg.inv((n0 * H0 + (n1 + nt) * H1) / (n0 + n1 + nt))
    M = Hw_inv @ (0.5 * (H0 + H1)) @ Hw_inv
    assert gs == pytest.approx((g @ M @ g) / (g @ M @ g + psi @ M @ psi), abs=1e-10)
    assert 0 < gs < 1

    # the exact population optimum, against a dense scan of the closed-form limit
    grid = np.linspace(0.0, 2.0, 20001)
    curve = np.array([asym_excess(pooled_limit(n0, n1, x * (n0 - n1), syn_mean, syn_cov), theta) for x in grid])
    assert opt.gamma_star_population == pytest.approx(grid[np.argmin(curve)], abs=2e-4)
    assert opt.gamma_star_population < 1
    floor = asym_excess(pooled_limit(n0, n1, opt.gamma_star_population * (n0 - n1), syn_mean, syn_cov), theta)
    assert floor > 1e-3 and floor <= curve.min() + 1e-12


def test_squared_loss_population_limit_and_first_order_bias_are_exact(asym_pop):
    theta, _ = asym_truth()
    n0, n1 = 1000, 50
    gammas = np.array([0.0, 0.3, 1.0, 2.5])
    for syn_mean, syn_cov in [([0.5, 0.0], np.eye(2)), ([1.2, -0.4], [[0.5, 0.1], [0.1, 2.0]])]:
        syn_mean, syn_cov = np.asarray(syn_mean), np.asarray(syn_cov)
        syn = synthetic_moments(asym_pop, Oracle(gaussian(syn_mean, syn_cov)), n1, rng_from(4))
        pred = predict(asym_pop, syn, n0, n1, gammas)
        assert pred.exact_population
        nt = np.rint(gammas * (n0 - n1))
        np.testing.assert_array_equal(pred.n_tilde, nt)
        ref = np.array([pooled_limit(n0, n1, k, syn_mean, syn_cov) for k in nt])
        np.testing.assert_allclose(pred.theta_bar, ref, atol=1e-12)
        np.testing.assert_allclose(pred.population_excess, [asym_excess(t, theta) for t in ref], rtol=1e-9, atol=1e-15)
        # the squared-loss FOC is linear in theta, so the "first-order" bias is exact
        np.testing.assert_allclose(pred.bias_term, pred.population_excess, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(pred.population_param_error, np.linalg.norm(ref - theta, axis=1), atol=1e-12)


def test_the_warm_start_and_the_prediction_solve_the_same_limits(asym_pop):
    """Two routes to theta_bar(n~): the continuation, one size after another, that the fits
    start from, and the prediction's batched solve of all sizes at once. Squared loss against
    the closed form; logistic loss with a data-dependent generator (the second-order synthetic
    risk) and with a fixed Gaussian law (its exact risk), the two routes against each other."""
    n0, n1 = 1000, 50
    gammas = np.array([0.0, 0.3, 1.0, 1.0, 2.5])  # a repeated size too
    syn_mean, syn_cov = np.array([1.2, -0.4]), np.array([[0.5, 0.1], [0.1, 2.0]])
    syn = synthetic_moments(asym_pop, Oracle(gaussian(syn_mean, syn_cov)), n1, rng_from(4))
    ref = np.array([pooled_limit(n0, n1, k, syn_mean, syn_cov) for k in np.rint(gammas * (n0 - n1))])
    np.testing.assert_allclose(Theory(asym_pop, syn, n0, n1).warm_start(gammas), ref, atol=1e-12)

    pop = Population(gaussian_classes(), GLM("logistic", intercept=True))
    for generator in (GaussianFit(), Oracle(pop.process.law1.shifted(np.array([0.4, -0.3])))):
        syn = synthetic_moments(pop, generator, n1, rng_from(12), refits=10)
        theory = Theory(pop, syn, n0, n1)
        np.testing.assert_allclose(theory.predict(gammas).theta_bar, theory.warm_start(gammas), rtol=0, atol=1e-12)


def test_every_fit_limit_is_found_from_a_far_start():
    """On a coarse grid the refined curve's path predictor starts some fits far out, where the
    logistic risk is flat: there full Newton steps lower Phi while the gradient shrinks slowly
    (not a stall), and the first step would leap to ||theta|| ~ 7e5, where the quadrature needs
    tens of GB (it is shortened). Found in review: fit 7 of these refits stopped at
    ||grad Phi|| = 0.23, and the job failed. The limits must equal those solved from theta*."""
    pop = Population(gaussian_classes(), GLM("logistic", intercept=True))
    n0, n1, gammas = 1000, 50, np.array([0.0, 0.3, 1.0, 2.5])
    syn = synthetic_moments(pop, GaussianFit(), n1, rng_from(1), refits=12)
    refined = Theory(pop, syn, n0, n1).refined_prediction(gammas)
    risks = Theory(pop, syn, n0, n1)._fit_risks
    for g, nt in enumerate(np.rint(gammas * (n0 - n1))):
        N = n0 + n1 + nt
        roots, info = newton.minimise_batch(
            lambda th, N=N, nt=nt: risks.derivatives(th, (n0 / N, n1 / N, nt / N)), np.tile(pop.theta_star, (12, 1))
        )
        assert np.all(info.stop == "tolerance")
        np.testing.assert_allclose(refined.exact_bias[g], pop.excess(roots).mean(), rtol=1e-9, atol=1e-15)


def test_first_order_bias_approaches_the_exact_curve_at_rate_one_over_n():
    """Logistic loss with intercept, a generator consistent at rate 1/n1, full balancing: the
    g-term cancels, theta_bar - theta* = O(1/n1), and the linearisation error of the bias is
    one order smaller than the bias, so the relative gap halves when n1 doubles."""
    pop = Population(gaussian_classes(), GLM("logistic", intercept=True))
    n1s = np.array([50, 100, 200, 400, 800])
    gaps = []
    for n1 in n1s:
        law = pop.process.law1.shifted(np.array([-0.5, 0.5]) * 50.0 / n1)
        syn = synthetic_moments(pop, Oracle(law), int(n1), rng_from(5))
        pred = predict(pop, syn, 10 * int(n1), int(n1), [1.0])
        assert pred.exact_population
        gaps.append(abs(pred.population_excess[0] - pred.bias_term[0]) / pred.population_excess[0])
    gaps = np.array(gaps)
    ratios = gaps[1:] / gaps[:-1]
    assert np.all((ratios > 0.4) & (ratios < 0.6)), ratios
    assert gaps[-1] < 0.03


# ---------------------------------------------------------------------------------------------
# synthetic moments


def test_oracle_has_exactly_zero_mismatch(sym_pop, asym_pop):
    for pop in (sym_pop, asym_pop):
        syn = synthetic_moments(pop, Oracle(pop.process.law1), 30, rng_from(6))
        assert np.array_equal(syn.psi_mean, np.zeros(pop.p))
        assert not np.any(syn.psi_cov) and not np.any(syn.cross1) and not np.any(syn.fit_e1)
        assert syn.law is pop.process.law1
        np.testing.assert_allclose(syn.H_tilde, pop.H1, atol=1e-13)
        np.testing.assert_allclose(syn.Sigma_tilde, pop.Sigma1, atol=1e-13)


def test_mismatch_generator_psi_is_reproduced(asym_pop):
    gen = MismatchGenerator(asym_pop, magnitude=0.3, angle_deg=60.0)
    syn = synthetic_moments(asym_pop, gen, 50, rng_from(7))
    np.testing.assert_allclose(syn.psi_mean, gen.psi, atol=1e-12)
    opt = optimal_sizes(asym_pop, syn, 1000, 50)
    assert opt.mismatch_angle_deg == pytest.approx(60.0, abs=1e-6)
    assert opt.mismatch_norm == pytest.approx(0.3, abs=1e-8)


def semi_oracle_truth(pop, n1):
    """Closed-form moments of the semi-oracle in the symmetric Gaussian squared-loss design."""
    theta = pop.theta_star
    mu1 = pop.process.law1.mean
    y1 = pop.process.labels[1]
    d = theta.size
    V = np.eye(d) / n1
    e = y1 - mu1 @ theta
    A = -2.0 * (e * np.eye(d) - np.outer(mu1, theta))
    Vt = V @ theta
    cov = A @ V @ A.T + 4.0 * ((theta @ Vt) * V + np.outer(Vt, Vt))
    # E over delta of the shifted law's score covariance 4 [e_m^2 I + e_m (t m' + m t') +
    # |t|^2 m m' + |t|^2 I + t t'], m = mu1 + delta, e_m = m't - y1
    e0 = mu1 @ theta - y1
    E_e2 = e0**2 + theta @ Vt
    E_em = e0 * mu1 + Vt
    E_mm = np.outer(mu1, mu1) + V
    tt = theta @ theta
    sigma = 4.0 * (
        E_e2 * np.eye(d)
        + np.outer(theta, E_em)
        + np.outer(E_em, theta)
        + tt * E_mm
        + tt * np.eye(d)
        + np.outer(theta, theta)
    )
    return dict(psi_mean=2.0 * Vt, psi_cov=cov, cross1=cov, H_tilde=pop.H1 + 2.0 * V, Sigma_tilde=sigma)


class _LawHidden(Generator):
    """The semi-oracle with its law hidden, to exercise the pooled-sample path."""

    name = "semi_oracle_pool"
    data_dependent = True

    def __init__(self, law1):
        self.inner = SemiOracle(law1)

    def fit(self, X1, X0, rng):
        return _HiddenFit(self.inner.fit(X1, X0, rng))


class _HiddenFit(FittedGenerator):
    def __init__(self, fitted):
        self.fitted = fitted
        self.dim = fitted.dim

    def _sample(self, m, rng):
        return self.fitted.sample(m, rng)


def covariance_se(cov_a, cov_b, cross_ab, R):
    """Entrywise SE of a sample Cov(a, b) from R pairs, Gaussian fourth moments."""
    return np.sqrt((np.outer(np.diag(cov_a), np.diag(cov_b)) + cross_ab * cross_ab.T) / R)


@pytest.mark.parametrize("hidden", [False, True], ids=["law", "pool"])
def test_semi_oracle_moments_match_closed_form(sym_pop, hidden):
    n1, R = 50, 1500
    truth = semi_oracle_truth(sym_pop, n1)
    law1 = sym_pop.process.law1
    gen = _LawHidden(law1) if hidden else SemiOracle(law1)
    # a small pool makes its noise (Sigma~ / pool, a quarter of Cov psi) visible: the
    # correction in synthetic_moments must remove it
    syn = synthetic_moments(sym_pop, gen, n1, rng_from(8, int(hidden)), refits=R, pool=800)
    assert isinstance(syn, SyntheticMoments) and syn.law is None and syn.refits == R
    assert syn.pool == (800 if hidden else 0)
    z_mean = np.abs(syn.psi_mean - truth["psi_mean"]) / syn.se_psi_mean
    assert np.all(z_mean < Z), z_mean
    se_cov = covariance_se(truth["psi_cov"], truth["psi_cov"], truth["psi_cov"], R)
    if hidden:
        # Cov of the pooled estimate is Cov psi + Sigma~ / pool: its sampling error is larger
        noisy = truth["psi_cov"] + truth["Sigma_tilde"] / 800
        se_cov = covariance_se(noisy, noisy, noisy, R)
    assert np.all(np.abs(syn.psi_cov - truth["psi_cov"]) < Z * se_cov + 1e-12)
    e1_cov = sym_pop.Sigma1 / n1
    se_cross = covariance_se(truth["psi_cov"], e1_cov, truth["cross1"], R)
    assert np.all(np.abs(syn.cross1 - truth["cross1"]) < Z * se_cross + 1e-12)
    se_H = syn.fit_H.std(axis=0, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(syn.H_tilde - truth["H_tilde"]) <= Z * se_H + 1e-12)
    se_S = syn.fit_Sigma.std(axis=0, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(syn.Sigma_tilde - truth["Sigma_tilde"]) <= Z * se_S + 1e-12)
    # grad R~1(theta*) = grad R1(theta*) + E psi = -g + 2 V theta*
    z_grad = np.abs(syn.grad_tilde - (-sym_pop.g + truth["psi_mean"])) / syn.se_psi_mean
    assert np.all(z_grad < Z), z_grad


# ---------------------------------------------------------------------------------------------
# predictions against Monte Carlo fits


def monte_carlo(pop, gen, n0, n1, gammas, R, seed):
    """Mean excess and E||theta_hat - theta*||^2 (with MCSEs) of R replications, every gamma
    fitted on nested prefixes of one synthetic pool, all replications in one batched call."""
    nts = np.rint(np.asarray(gammas) * (n0 - n1)).astype(int)
    n_max = int(nts.max())
    y0, y1 = pop.process.labels
    y = np.r_[np.full(n0, y0), np.full(n1 + n_max, y1)]
    w = (np.arange(n0 + n1 + n_max)[None, :] < (n0 + n1 + nts)[:, None]).astype(np.float64)
    X = np.empty((R, n0 + n1 + n_max, pop.d))
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(R)):
        rng = np.random.default_rng(child)
        X0, X1 = pop.process.sample(n0, n1, rng)
        X[r] = np.vstack([X0, X1, gen.fit(X1, X0, rng).sample(n_max, rng)])
    fit = fit_glm(X[:, None], y, w, model=pop.model)
    assert np.all(fit.info.converged)
    excess = pop.excess(fit.theta)
    sq = np.sum((fit.theta - pop.theta_star) ** 2, axis=-1)
    return excess.mean(0), excess.std(0, ddof=1) / np.sqrt(R), sq.mean(0), sq.std(0, ddof=1) / np.sqrt(R)


def assert_matches(pred, mc):
    mean, se, sq, sq_se = mc
    z = np.abs(mean - pred.theory_excess) / np.hypot(se, pred.theory_excess_se)
    assert np.all(z < Z), (z, mean, pred.theory_excess)
    sq_pred = pred.param_error_theory**2
    sq_pred_se = 2.0 * pred.param_error_theory * pred.param_error_theory_se
    z_sq = np.abs(sq - sq_pred) / np.hypot(sq_se, sq_pred_se)
    assert np.all(z_sq < Z), (z_sq, sq, sq_pred)


@pytest.mark.parametrize("which", ["oracle", "semi_oracle", "smote"])
def test_prediction_matches_fits_under_symmetry(sym_pop, which):
    n0, n1, gammas = 1000, 100, [0.0, 0.5, 1.0, 3.0]
    law1 = sym_pop.process.law1
    gen = {"oracle": Oracle(law1), "semi_oracle": SemiOracle(law1), "smote": Smote(k=5)}[which]
    # SMOTE has no law: psi_r is measured on a pool, kept small here so that its noise
    # (Sigma~ / pool, about 0.8 Cov psi at pool = 100, n1 = 100) must be subtracted for the
    # match (measured: z of -11 to -18 without the correction)
    syn = synthetic_moments(sym_pop, gen, n1, rng_from(9), refits=3000, pool=100)
    pred = predict(sym_pop, syn, n0, n1, gammas)
    mc = monte_carlo(sym_pop, gen, n0, n1, gammas, R=1500, seed=10)
    assert_matches(pred, mc)
    if which == "semi_oracle":
        # without the cross term (the synthetic points copy x̄1's error) the fits reject it
        z = np.abs(mc[0] - pred.theory_excess + pred.cross_term) / np.hypot(mc[1], pred.theory_excess_se)
        assert np.max(z) > Z, z


@pytest.mark.parametrize("which", ["mismatch", "semi_oracle"])
def test_prediction_matches_fits_under_asymmetry(asym_pop, which):
    n0, n1 = 1000, 100
    theta, g = asym_truth()
    if which == "mismatch":
        gen = Oracle(gaussian([0.5, 0.0]))  # aligned, c = 0.75, gamma* = 4
        gammas = [0.0, 0.5, 1.0, 4.0]
    else:
        gen = SemiOracle(asym_pop.process.law1)
        gammas = [0.0, 0.5, 1.0, 3.0]
    syn = synthetic_moments(asym_pop, gen, n1, rng_from(11), refits=3000)
    pred = predict(asym_pop, syn, n0, n1, gammas)
    assert_matches(pred, monte_carlo(asym_pop, gen, n0, n1, gammas, R=800, seed=12))


# ---------------------------------------------------------------------------------------------
# recommendations and rates


def test_symmetry_recommendations(sym_pop):
    n0, n1 = 1000, 100
    law1 = sym_pop.process.law1
    ideal = optimal_sizes(sym_pop, synthetic_moments(sym_pop, Oracle(law1), n1, rng_from(13)), n0, n1)
    assert ideal.gamma_star_bias is None and ideal.gamma_star_population is None
    assert ideal.gamma_star_total == pytest.approx(4.0)
    assert ideal.alignment_c is None and ideal.mismatch_angle_deg is None
    semi = optimal_sizes(sym_pop, synthetic_moments(sym_pop, SemiOracle(law1), n1, rng_from(14), refits=400), n0, n1)
    assert semi.gamma_star_bias == 0.0
    assert semi.gamma_star_total < 0.2
    assert "no or minimal augmentation" in semi.recommendation
    assert semi.alignment_c is None


def test_predicted_slopes_floor_versus_d_over_n(asym_pop):
    gen = Oracle(gaussian([0.5, 0.0]))  # c = 0.75: gamma* = 4
    n1_grid = [25, 50, 100, 200, 400, 800, 1600, 3200]
    curves = predicted_slopes(asym_pop, gen, n1_grid, 20, rng_from(15), gammas=(0.0, 1.0, "star"))
    assert set(curves) == {0.0, 1.0, "star"}
    for lab in (0.0, 1.0):
        assert curves[lab].excess_exponent == 0.0 and curves[lab].param_exponent == 0.0
        assert abs(curves[lab].excess_slopes[-1]) < 0.02
    star = curves["star"]
    np.testing.assert_allclose(star.gamma, 4.0, atol=1e-10)
    assert star.excess_exponent == -1.0 and star.param_exponent == -0.5
    np.testing.assert_allclose(star.excess_slopes, -1.0, atol=0.02)
    np.testing.assert_allclose(star.param_slopes, -0.5, atol=0.01)


def test_predicted_slopes_of_a_generator_consistent_in_n1(asym_pop):
    """A fixed law given per n1 whose mean approaches mu1 like n1^{-1/2} (study 4's kind):
    at full balancing b = (n0 - n1) psi with psi = a n1^{-1/2} + O(1/n1), so the bias falls like
    1/n1 with a relative correction O(n1^{-1/2}): the local slope tends to -1, its distance
    halving when n1 quadruples. No structural exponent is claimed for a callable."""
    mu1 = asym_pop.process.law1.mean

    def gen_at(n1):
        return Oracle(gaussian(mu1 * (1.0 - 1.0 / np.sqrt(n1))))

    curve = predicted_slopes(asym_pop, gen_at, [100, 400, 1600, 6400], 20, rng_from(17), gammas=(1.0,))[1.0]
    assert curve.excess_exponent is None and curve.param_exponent is None
    gap = np.abs(curve.excess_slopes + 1.0)
    ratios = gap[1:] / gap[:-1]
    assert np.all((ratios > 0.4) & (ratios < 0.6)) and gap[-1] < 0.03, curve.excess_slopes


def test_predicted_slopes_of_a_data_dependent_generator(asym_pop):
    """Semi-oracle at full balancing: b = (n0 - n1) psi with psi = O(n1^{-1/2}) random, so the
    excess falls like 1/n1 (no floor), a rate the fixed-law structure argument cannot give."""
    gen = SemiOracle(asym_pop.process.law1)
    curves = predicted_slopes(asym_pop, gen, [50, 100, 200, 400], 10, rng_from(16), gammas=(1.0,), refits=300)
    curve = curves[1.0]
    assert curve.excess_exponent is None
    assert np.all(np.abs(curve.excess_slopes + 1.0) < 0.25), curve.excess_slopes


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_inputs_raise(asym_pop, sym_pop):
    gen = SemiOracle(asym_pop.process.law1)
    with pytest.raises(ValueError, match="rng"):
        synthetic_moments(asym_pop, gen, 20, 0)
    with pytest.raises(ValueError, match="refits"):
        synthetic_moments(asym_pop, gen, 20, rng_from(0), refits=1)
    with pytest.raises(ValueError, match="n1"):
        synthetic_moments(asym_pop, gen, 1, rng_from(0))
    with pytest.raises(ValueError, match="generator"):
        synthetic_moments(asym_pop, "smote", 20, rng_from(0))
    syn = synthetic_moments(asym_pop, gen, 20, rng_from(0), refits=5)
    with pytest.raises(ValueError, match="n1=20"):
        predict(asym_pop, syn, 400, 30, [1.0])
    with pytest.raises(ValueError, match="n0"):
        predict(asym_pop, syn, 20, 20, [1.0])
    with pytest.raises(ValueError, match="gammas"):
        predict(asym_pop, syn, 400, 20, [-0.5])
    with pytest.raises(ValueError, match="parameters"):
        predict(sym_pop, syn, 400, 20, [1.0])
    with pytest.raises(ValueError, match="gamma_max"):
        optimal_sizes(asym_pop, syn, 400, 20, gamma_max=0.0)
    with pytest.raises(ValueError, match="gammas entries"):
        predicted_slopes(asym_pop, gen, [20, 40], 10, rng_from(0), gammas=("best",))
    with pytest.raises(ValueError, match="kappa"):
        predicted_slopes(asym_pop, gen, [20, 40], 1.0, rng_from(0))
    with pytest.raises(ValueError, match="n0 must exceed n1"):
        predicted_slopes(asym_pop, gen, [2, 3], 1.1, rng_from(0))
    with pytest.raises(ValueError, match="n1_grid"):
        predicted_slopes(asym_pop, gen, [40, 20], 10, rng_from(0))
