"""The symmetry test's design (AUTHORS_DESIGNS.md section D), its bootstrap calibration and
TG-VTSS's decision rules, against closed forms and independent recomputations."""

import math

import numpy as np
import pytest
from scipy.stats import chi2

from simstudy.diagnostics import _counts, _resampled_stats, class_score_stats, diagnose, wald_symmetry_test
from simstudy.fitting import GLM
from simstudy.generators.classic import Oracle
from simstudy.laws import GaussianMixtureLaw, SymmetricNoiseLaw
from simstudy.population import Population
from simstudy.processes import local_b, local_g1, make_process
from simstudy.selection import TGVTSSClassifier, theory_guided_grid

SQUARED = GLM("squared", intercept=False, ridge=0.0)


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence([20261205, *key]))


@pytest.mark.parametrize("intercept", [False, True])
def test_per_coordinate_scales_match_the_gaussian_closed_form(intercept):
    """X = mean + diag(s) xi with Gaussian xi is N(mean, diag(s^2)): GaussianMixtureLaw's
    moments are an independent closed form for the reduction to one scale."""
    model = GLM("squared", intercept=intercept, ridge=0.0)
    mean, scale = np.array([-1.0, 0.3, 0.2]), np.array([2.0, 1.0, 0.5])
    law = SymmetricNoiseLaw(mean, "gaussian", scale)
    reference = GaussianMixtureLaw(np.ones(1), mean[None], np.diag(scale**2)[None])
    theta = np.array([0.3, -0.2, 0.7, 0.1])[: model.n_params(3)]
    for got, want in zip(law.moments(theta, 0.5, model), reference.moments(theta, 0.5, model)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(law.risk_batch(theta[None], 0.5, model), [reference.moments(theta, 0.5, model).risk])


def test_per_coordinate_scales_equal_to_one_number_give_the_one_scale_law():
    mean = np.array([0.4, -0.1])
    one, per = SymmetricNoiseLaw(mean, "uniform_cube", 1.5), SymmetricNoiseLaw(mean, "uniform_cube", [1.5, 1.5])
    for got, want in zip(per.moments([0.2, 0.9], -0.5, SQUARED), one.moments([0.2, 0.9], -0.5, SQUARED)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="scale"):
        SymmetricNoiseLaw(mean, "uniform_cube", [1.0, -1.0])
    with pytest.raises(ValueError, match="scale"):
        SymmetricNoiseLaw(mean, "uniform_cube", [1.0, 1.0, 1.0])


@pytest.mark.parametrize("d", [1, 2, 5])
def test_unequal_covariance_null_has_the_closed_form_pilot_and_zero_g(d):
    """Section D: theta*_1 = (1 + b) / (2 (6 + b^2)) and g_phi = (g1(b), 0, ...); the null
    b0 = (5 - sqrt 21) / 2 makes g vanish (checked numerically from the laws' moments)."""
    process = make_process("unequal_covariance", d=d)
    b = process.info["b"]
    assert b == pytest.approx((5 - math.sqrt(21)) / 2, rel=1e-15)
    pop = Population(process, SQUARED)
    np.testing.assert_allclose(pop.theta_star, np.eye(d)[0] * (1 + b) / (2 * (6 + b * b)), rtol=1e-13)
    np.testing.assert_allclose(pop.g, 0.0, atol=1e-15)
    assert pop.regime == "symmetry"


@pytest.mark.parametrize("h, n1, kappa", [(2.0, 250, 5), (-4.0, 50, 20), (4.0, 50, 5)])
def test_local_alternative_has_g_phi_h_over_root_n_eff(h, n1, kappa):
    """g_phi = grad R0 - grad R1 = 2 grad R0 at theta* (Population.g is grad R0)."""
    process = make_process("unequal_covariance", d=5, h=h, n1=n1, kappa=kappa)
    n0 = kappa * n1
    g_phi = 2 * Population(process, SQUARED).g
    np.testing.assert_allclose(g_phi, np.eye(5)[0] * h / math.sqrt(n0 * n1 / (n0 + n1)), rtol=1e-12)
    assert local_g1(local_b(0.3)) == pytest.approx(0.3, rel=1e-13)


def test_unequal_covariance_refuses_bad_options():
    with pytest.raises(ValueError, match="not both"):
        make_process("unequal_covariance", b=0.5, h=1.0)
    with pytest.raises(ValueError, match="needs n1 and kappa"):
        make_process("unequal_covariance", h=1.0)
    with pytest.raises(ValueError, match="too far"):
        local_b(5.0)


def test_unequal_covariance_samples_its_laws():
    """Majority -e1 + diag(2, 1, ..) U, minority b e1 + U, U uniform on [-sqrt 3, sqrt 3]."""
    X0, X1 = make_process("unequal_covariance", d=3).sample(20_000, 20_000, _rng(1))
    b = (5 - math.sqrt(21)) / 2
    assert np.all(np.abs(X0[:, 0] + 1) <= 2 * math.sqrt(3)) and np.all(np.abs(X0[:, 1:]) <= math.sqrt(3))
    assert np.all(np.abs(X1[:, 0] - b) <= math.sqrt(3))
    se = 2 / math.sqrt(20_000)
    assert abs(X0[:, 0].mean() + 1) < 4 * se and abs(X1[:, 0].mean() - b) < 4 * se / 2
    assert abs(X0[:, 0].var() / 4 - 1) < 0.05 and abs(X1[:, 1].var() - 1) < 0.05


# ---------------------------------------------------------------- the bootstrap calibration


@pytest.mark.parametrize("family", ["squared", "logistic"])
def test_resampled_stats_equal_the_stats_of_the_gathered_rows(family):
    """Counts-weighted moments are class_score_stats of the resample written out row by row."""
    model = GLM(family, intercept=True, ridge=1e-8)
    rng = _rng(2)
    X = rng.standard_normal((40, 3))
    Z = np.asarray(model.features(X))
    idx = rng.integers(0, 40, size=(4, 40))
    theta = rng.standard_normal((4, 4)) * 0.3
    outer = (Z[:, :, None] * Z[:, None, :]).reshape(40, 16)
    for stored in (outer, None):
        got = _resampled_stats(theta, Z, stored, _counts(idx, 40), 1.0, model)
        for b in range(4):
            want = class_score_stats(theta[b], X[idx[b]], 1.0, model)
            np.testing.assert_allclose(got.mean[b], want.mean, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got.hessian[b], want.hessian, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got.cov[b], want.cov, rtol=1e-10, atol=1e-13)


def test_bootstrap_p_value_counts_the_resamples_and_batches_like_a_loop():
    process = make_process("unequal_covariance", d=3)
    X0, X1 = process.sample(300, 60, _rng(3))
    one = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="bootstrap", rng=_rng(4), n_boot=39)
    assert one.reference == "bootstrap" and one.boot_statistics.shape == (39,)
    assert one.p_value == (1 + np.sum(one.boot_statistics >= one.statistic)) / 40
    chi = wald_symmetry_test(X0, X1, SQUARED, process.labels)
    assert chi.reference == "chi2" and chi.boot_statistics is None
    assert one.statistic == chi.statistic and chi.p_value == chi2.sf(chi.statistic, 3)
    X0b, X1b = process.sample(300, 60, _rng(5))
    batch = wald_symmetry_test(
        np.stack([X0, X0b]), np.stack([X1, X1b]), SQUARED, process.labels, reference="bootstrap", rng=_rng(4), n_boot=39
    )
    np.testing.assert_array_equal(batch.boot_statistics[0], one.boot_statistics)
    rng = _rng(4)
    wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="bootstrap", rng=rng, n_boot=39)
    second = wald_symmetry_test(X0b, X1b, SQUARED, process.labels, reference="bootstrap", rng=rng, n_boot=39)
    np.testing.assert_array_equal(batch.boot_statistics[1], second.boot_statistics)


def test_bootstrap_statistics_are_centred_studentised_wald_statistics():
    """T*_b recomputed by refitting the pilot on the gathered resample (wald_symmetry_test on it)."""
    process = make_process("unequal_covariance", d=2)
    X0, X1 = process.sample(200, 40, _rng(6))
    res = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="bootstrap", rng=_rng(7), n_boot=19)
    rng = _rng(7)
    idx0, idx1 = rng.integers(0, 200, size=(19, 200)), rng.integers(0, 40, size=(19, 40))
    for b in (0, 7, 18):
        w = wald_symmetry_test(X0[idx0[b]], X1[idx1[b]], SQUARED, process.labels)
        centred = w.g_phi_hat - res.g_phi_hat
        np.testing.assert_allclose(res.boot_statistics[b], centred @ np.linalg.solve(w.V, centred), rtol=1e-8)


def test_bad_bootstrap_arguments_raise():
    X0, X1 = make_process("unequal_covariance", d=2).sample(50, 20, _rng(8))
    with pytest.raises(ValueError, match="reference"):
        wald_symmetry_test(X0, X1, SQUARED, (-0.5, 0.5), reference="exact")
    with pytest.raises(ValueError, match="needs rng"):
        wald_symmetry_test(X0, X1, SQUARED, (-0.5, 0.5), reference="bootstrap")
    with pytest.raises(ValueError, match="n_boot"):
        wald_symmetry_test(X0, X1, SQUARED, (-0.5, 0.5), reference="bootstrap", rng=_rng(1), n_boot=5)


# ---------------------------------------------------------------- TG-VTSS's decision rules


def test_theory_guided_grid_follows_each_rule():
    X0, X1 = make_process("gaussian_classes").sample(400, 40, _rng(9))
    diag = diagnose(
        X0,
        X1,
        Oracle(GaussianMixtureLaw(np.ones(1), np.array([[1.0, 0.0]]), np.eye(2)[None])),
        GLM("squared"),
        _rng(10),
    )
    gqs = diag.gqs
    branch, grid = theory_guided_grid(0.5, 0.05)
    assert branch == "symmetry" and grid.max() == pytest.approx(0.2)
    assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_threshold=gqs.gqs - 1)[0] == "high_gqs"
    assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_threshold=gqs.gqs + 1)[0] == "low_gqs"
    for level, branch in ((min(gqs.p_value * 2, 0.99), "high_gqs"), (gqs.p_value / 2, "low_gqs")):
        assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_rule="calibrated", gqs_level=level)[0] == branch
    _, window = theory_guided_grid(0.01, 0.05, gqs, 1.5, gqs_threshold=np.inf)
    np.testing.assert_allclose(
        window, np.unique(np.round(np.r_[np.arange(0.8, 1.21, 0.05), np.arange(1.3, 1.71, 0.05)], 10))
    )


@pytest.mark.parametrize("symmetry_test, gqs_rule", [("chi2", "threshold"), ("bootstrap", "calibrated")])
def test_tg_vtss_records_the_rules_that_ran(symmetry_test, gqs_rule):
    rng = _rng(11)
    X = np.concatenate([rng.standard_normal((300, 2)), rng.standard_normal((30, 2)) + [1.0, 0.0]])
    y = np.r_[np.zeros(300), np.ones(30)]
    est = TGVTSSClassifier(
        generator="gaussian_fit",
        family="squared",
        intercept=False,
        cv=3,
        random_state=0,
        symmetry_test=symmetry_test,
        gqs_rule=gqs_rule,
        n_boot=39,
    ).fit(X, y)
    assert est.rules_ == f"{symmetry_test}/{gqs_rule}" and est.wald_.reference == symmetry_test
    assert est.branch_ in ("symmetry", "low_gqs", "high_gqs")
    with pytest.raises(ValueError, match="gqs_rule"):
        TGVTSSClassifier(gqs_rule="sometimes").fit(X, y)
    with pytest.raises(ValueError, match="symmetry_test"):
        TGVTSSClassifier(symmetry_test="exact").fit(X, y)
