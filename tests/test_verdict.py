"""The theory check (simstudy.engine.verdict and its parts) and the refined prediction
(simstudy.theory.refined_prediction), against independent references.

References, derived here:

* max-|t| critical values: for G independent standard normal z's, P(max |z| <= c) =
  (2 Phi(c) - 1)^G (Sidak); for G identical ones, c = Phi^{-1}(1 - alpha / 2);
* the band's false-alarm rate on skewed, strongly correlated draws whose mean the prediction
  gets exactly right (with and without Monte Carlo noise in the prediction), within a binomial
  tolerance of alpha;
* the relative error's delta-method interval against a direct bootstrap of m* / t*;
* the optimum check on study 4's non-uniform grid (0.1 near the optimum, 1.0 in the tail):
  the predicted gamma* is matched by its nearest grid point, i.e. the CI widened by half the
  local spacing, not half the largest one;
* the refined prediction's exact per-fit bias against ``predict`` run on each fit's law as a
  fixed law (the single-fit population-limit solver), and for squared loss against the
  first-order bias term, which is then exact.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

import simstudy  # noqa: F401
from simstudy.engine import (
    bootstrap_counts,
    empirical_optimum,
    nearest_grid_points,
    relative_error,
    simultaneous_band,
    summarise_curve,
    verdict,
)
from simstudy.fitting import GLM
from simstudy.generators import GaussianFit, Oracle, SemiOracle, Smote
from simstudy.population import Population
from simstudy.processes import gaussian_classes
from simstudy.theory import predict, refined_prediction, refinement_unavailable, synthetic_moments

STUDY4_GRID = (
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    2.1,
    2.2,
    2.3,
    2.4,
    2.5,
    2.6,
    2.7,
    2.8,
    2.9,
    3.0,
    3.1,
    3.2,
    3.3,
    3.4,
    3.5,
    4.0,
    5.0,
    6.0,
)


def rng_from(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


# ---------------------------------------------------------------------------------------------
# bootstrap pieces


def test_bootstrap_counts_are_resampling_with_replacement():
    values = rng_from(1).normal(size=(30, 4))
    counts = bootstrap_counts(30, 50, rng_from(2))
    idx = rng_from(2).integers(0, 30, size=(50, 30))  # the same draws, as indices
    assert counts.shape == (50, 30) and np.all(counts.sum(axis=1) == 30)
    np.testing.assert_allclose(counts @ values / 30, values[idx].mean(axis=1), rtol=1e-12)


def test_empirical_optimum_ci_ends_on_the_grid():
    gammas = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    flat = rng_from(3).normal(size=(60, 5))  # no optimum: the argmin wanders over the grid
    opt = empirical_optimum(flat, gammas, rng_from(4))
    assert set(opt.ci) <= set(gammas) and opt.ci[0] < opt.ci[1]


# ---------------------------------------------------------------------------------------------
# the simultaneous band


@pytest.mark.parametrize("correlated", [False, True])
def test_band_critical_value_against_sidak_and_one_gamma(correlated):
    G, alpha = 10, 0.05
    z = rng_from(5).standard_normal((4000, 1 if correlated else G))
    values = np.repeat(z, G, axis=1) if correlated else z
    band = simultaneous_band(values, np.zeros((1, G)), rng_from(6), alpha, n_boot=4000)
    want = norm.ppf(1 - alpha / 2) if correlated else norm.ppf((1 + (1 - alpha) ** (1 / G)) / 2)
    # the bootstrap quantile's own Monte Carlo error is about 0.03
    assert abs(band.critical - want) < 0.1, (band.critical, want)


def _skewed(rng, R, G):
    """Exponential draws sharing a common part: skewness up to 2, correlation 0.8 between gammas."""
    common = rng.exponential(size=(R, 1))
    return 0.8 * common + 0.2 * rng.exponential(size=(R, G)) * np.linspace(1.0, 3.0, G)


@pytest.mark.parametrize("theory_noise", [False, True])
def test_band_false_alarm_rate_is_alpha(theory_noise):
    G, R, F, alpha, sets = 8, 100, 150, 0.1, 400
    truth = 0.8 + 0.2 * np.linspace(1.0, 3.0, G)
    rng = rng_from(7, int(theory_noise))
    rejected = 0
    for _ in range(sets):
        fits = truth[None]
        if theory_noise:
            # per-fit terms with mean truth, correlated over gammas, SE comparable to the MCSE
            fits = truth + 2.0 * rng.standard_normal((F, 1)) + rng.standard_normal((F, G))
        rejected += not simultaneous_band(_skewed(rng, R, G), fits, rng, alpha, n_boot=500).inside
    sd = np.sqrt(alpha * (1 - alpha) / sets)
    assert abs(rejected / sets - alpha) < 3 * sd, rejected / sets


def test_band_z_folds_the_theory_standard_error_in():
    values = rng_from(8).normal(size=(50, 3))
    fits = rng_from(9).normal(loc=0.3, size=(80, 3))
    band = simultaneous_band(values, fits, rng_from(10))
    curve, theory = summarise_curve(values), summarise_curve(fits)
    se = np.hypot(curve.mcse, theory.mcse)
    np.testing.assert_allclose(band.se, se, rtol=1e-12)
    np.testing.assert_allclose(band.z, (curve.mean - theory.mean) / se, rtol=1e-12)
    assert band.max_abs_z == pytest.approx(np.abs(band.z).max())
    assert band.inside == (band.max_abs_z <= band.critical) and 0 < band.p_value <= 1


# ---------------------------------------------------------------------------------------------
# the size of the disagreement


def test_relative_error_against_a_bootstrap_of_the_ratio():
    values = rng_from(11).gamma(2.0, size=(400, 3)) * [1.0, 2.0, 3.0]
    fits = rng_from(12).normal(loc=[2.2, 3.9, 6.5], scale=[0.5, 1.0, 3.0], size=(300, 3))
    rel = relative_error(values, fits)
    m, t = values.mean(axis=0), fits.mean(axis=0)
    np.testing.assert_allclose(rel.value, m / t - 1, rtol=1e-12)
    boot = (bootstrap_counts(400, 4000, rng_from(13)) @ values / 400) / (
        bootstrap_counts(300, 4000, rng_from(14)) @ fits / 300
    )
    np.testing.assert_allclose((rel.high - rel.low) / (2 * norm.ppf(0.975)), boot.std(axis=0), rtol=0.1)
    worst = rel.largest([0.0, 1.0, 2.0])
    i = int(np.argmax(np.abs(rel.value)))
    assert worst == {"gamma": float(i), "value": rel.value[i], "ci": [rel.low[i], rel.high[i]]}


def test_relative_error_is_nan_where_the_prediction_is_not_positive():
    rel = relative_error(np.ones((5, 2)) + np.arange(5)[:, None], np.array([[0.0, 3.0]]))
    assert np.isnan(rel.value[0]) and rel.value[1] == pytest.approx(0.0)
    assert rel.largest([0.0, 1.0])["gamma"] == 1.0


# ---------------------------------------------------------------------------------------------
# the verdict: the optimum check on a non-uniform grid, the label, the record


def _sharp_curve(gammas, at, R=50):
    """Replications of a curve with a sharp minimum at the grid point ``at`` (CI [at, at])."""
    gammas = np.asarray(gammas)
    truth = 1.0 + np.abs(gammas - at)
    return truth + 1e-3 * rng_from(15, int(100 * at)).standard_normal((R, gammas.size)), truth


@pytest.mark.parametrize(
    "at, star, inside",
    [
        (2.3, 2.34, True),  # nearest grid point 2.3
        (2.3, 2.36, False),  # nearest is 2.4; half the largest spacing (0.5) would have accepted it
        (2.3, 2.25, True),  # a tie between 2.2 and 2.3: either counts
        (4.0, 4.45, True),  # tail spacing 1.0: nearest is still 4.0
        (4.0, 4.55, False),
        (6.0, 7.0, True),  # beyond the grid: its nearest point is the last one
    ],
)
def test_optimum_check_uses_the_local_grid_spacing(at, star, inside):
    values, truth = _sharp_curve(STUDY4_GRID, at)
    v = verdict(values, truth[None], star, STUDY4_GRID, rng_from(16))
    assert v["gamma_star_ci"] == [at, at]
    assert v["gamma_star_in_ci"] is inside
    assert v["curve_inside_band"] and v["label"] == ("agree" if inside else "disagree")


def test_nearest_grid_points():
    assert list(nearest_grid_points(STUDY4_GRID, 2.34)) == [2.3]
    np.testing.assert_allclose(nearest_grid_points(STUDY4_GRID, 2.25), [2.2, 2.3])
    assert list(nearest_grid_points(STUDY4_GRID, -1.0)) == [0.0]


def test_verdict_splits_alpha_between_its_two_checks_and_records_them():
    gammas = np.array([0.0, 1.0, 2.0, 3.0])
    values, truth = _sharp_curve(gammas, 1.0, R=80)
    v = verdict(values, truth[None] * 1.0, 1.0, gammas, rng_from(17), alpha=0.1)
    again = verdict(values, truth[None] * 1.0, 1.0, gammas, rng_from(17), alpha=0.1)
    assert v == again  # deterministic given the rng
    json.dumps(v, allow_nan=False)
    assert v["alpha"] == 0.1 and v["gamma_star_ci_level"] == pytest.approx(0.95)
    # the band's critical value is the bootstrap quantile at alpha / 2
    band = simultaneous_band(values, truth[None], rng_from(17), 0.05)
    assert v["critical_z"] == band.critical and v["max_abs_z"] == band.max_abs_z
    assert len(v["z"]) == len(v["relative_error"]) == len(v["relative_error_ci"]) == 4
    off = verdict(values, truth[None] * 1.1, 1.0, gammas, rng_from(17))
    assert off["label"] == "disagree" and not off["curve_inside_band"] and off["gamma_star_in_ci"]
    assert off["largest_relative_error"]["value"] == pytest.approx(1 / 1.1 - 1, abs=1e-3)
    unknown = verdict(values, truth[None], None, gammas, rng_from(17))
    assert unknown["gamma_star_in_ci"] is None and unknown["label"] == "agree"


# ---------------------------------------------------------------------------------------------
# the refined prediction


@pytest.fixture(scope="module")
def logistic_pop():
    return Population(gaussian_classes(), GLM("logistic"))


@pytest.fixture(scope="module")
def squared_pop():
    return Population(gaussian_classes(), GLM("squared"))


def _per_fit_exact(pop, syn, n0, n1, gammas):
    """Each fit's exact population excess by the single-fit solver (its law as a fixed law)."""
    return np.array(
        [
            predict(pop, synthetic_moments(pop, Oracle(law), n1, rng_from(18)), n0, n1, gammas).population_excess
            for law in syn.fit_laws
        ]
    )


def test_refined_bias_is_each_fits_exact_population_excess(logistic_pop):
    n0, n1, gammas = 400, 40, [0.0, 0.5, 2.0, 4.0]
    syn = synthetic_moments(logistic_pop, GaussianFit(), n1, rng_from(19), refits=6, n0=n0)
    refined = refined_prediction(logistic_pop, syn, n0, n1, gammas)
    exact = _per_fit_exact(logistic_pop, syn, n0, n1, gammas)
    np.testing.assert_allclose(refined.exact_bias, exact.mean(axis=0), rtol=1e-9, atol=1e-15)
    first = predict(logistic_pop, syn, n0, n1, gammas)
    # only the bias term changes; the fits, cross and variance terms are predict's
    np.testing.assert_allclose(
        refined.theory_excess, first.theory_excess - first.bias_term + refined.exact_bias, rtol=1e-12
    )
    np.testing.assert_allclose(refined.fit_excess.mean(axis=0), refined.theory_excess, rtol=1e-12)
    np.testing.assert_allclose(refined.theory_excess_se, refined.fit_excess.std(axis=0, ddof=1) / np.sqrt(6))
    # a binary family's random bias is linearised: the first-order term differs from the exact one
    assert abs(first.bias_term[-1] / refined.exact_bias[-1] - 1) > 1e-3
    assert refined.method.startswith("exact")


def test_refined_equals_first_order_for_squared_loss(squared_pop):
    n0, n1, gammas = 600, 60, [0.0, 0.5, 2.0]
    for gen in (GaussianFit(), SemiOracle(squared_pop.process.law1)):
        syn = synthetic_moments(squared_pop, gen, n1, rng_from(20), refits=5, n0=n0)
        refined = refined_prediction(squared_pop, syn, n0, n1, gammas)
        first = predict(squared_pop, syn, n0, n1, gammas)
        np.testing.assert_allclose(refined.theory_excess, first.theory_excess, rtol=1e-14)
        # the identity it rests on: each fit's exact excess is its first-order bias term
        np.testing.assert_allclose(
            refined.exact_bias, _per_fit_exact(squared_pop, syn, n0, n1, gammas).mean(axis=0), rtol=1e-9, atol=1e-15
        )
        assert refined.method.startswith("identical")


def test_refinement_is_unavailable_without_per_fit_laws(logistic_pop):
    fixed = synthetic_moments(logistic_pop, Oracle(logistic_pop.process.law1), 40, rng_from(21))
    assert "fixed synthetic law" in refinement_unavailable(logistic_pop, fixed)
    smote = synthetic_moments(logistic_pop, Smote(k=5), 40, rng_from(22), refits=3, pool=500)
    assert "no fitted law" in refinement_unavailable(logistic_pop, smote)
    with pytest.raises(ValueError, match="no fitted law"):
        refined_prediction(logistic_pop, smote, 400, 40, [1.0])
    fitted = synthetic_moments(logistic_pop, GaussianFit(), 40, rng_from(23), refits=3)
    assert refinement_unavailable(logistic_pop, fitted) is None
