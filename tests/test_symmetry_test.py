"""The symmetry test's design (AUTHORS_DESIGNS.md section D), its bootstrap calibration and
TG-VTSS's decision rules, against closed forms and independent recomputations."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.optimize import minimize
from scipy.stats import chi2, ncx2

from simstudy import plotting, schema
from simstudy.aggregate import PlannedCell, aggregate, read_summaries
from simstudy.app import CONFIG_PATH, planned_cells, regenerate_replication, run_cell, same_rows
from simstudy.composition import compose as compose_overrides
from simstudy.composition import job_identity
from simstudy.config import ConfigError, validate
from simstudy.diagnostics import (
    REFERENCES,
    _counts,
    _resampled_stats,
    _row_scores,
    class_score_stats,
    diagnose,
    exponential_tilt,
    median_scale,
    null_tilt,
    wald_symmetry_test,
)
from simstudy.fitting import GLM, fit_glm
from simstudy.generators.classic import Oracle
from simstudy.jobfiles import atomic_write_json
from simstudy.laws import GaussianMixtureLaw, SymmetricNoiseLaw
from simstudy.population import Population
from simstudy.processes import local_b, local_g1, make_process
from simstudy.schema import config_hash, older_config_hashes
from simstudy.selection import GQS_RULES, WINDOW_FACTORS, TGVTSSClassifier, theory_guided_grid
from simstudy.status import classify
from simstudy.studies.diagnostics import STUDY as DIAGNOSTICS
from simstudy.studies.diagnostics import population_prediction, symmetry_rows
from simstudy.studies.job import run_job

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
    with pytest.raises(ValueError, match="tilted reference needs rng"):
        wald_symmetry_test(X0, X1, SQUARED, (-0.5, 0.5), reference="tilted")


# ---------------------------------------------------------------- the tilted bootstrap


def test_exponential_tilt_is_the_kullback_leibler_projection_onto_the_mean():
    """Against scipy's SLSQP minimising KL(pi || b) under sum pi = 1 and sum pi q = target,
    with a base that gives one row no weight."""
    rng = _rng(50)
    Q = rng.standard_normal((25, 2)) * [1.0, 3.0]
    base = rng.uniform(0.5, 1.5, 25)
    base[3] = 0.0
    target = Q.mean(axis=0) + [0.3, -0.5]
    pi = exponential_tilt(Q, target, base)
    assert pi[3] == 0.0 and np.all(pi[base > 0] > 0)
    np.testing.assert_allclose(pi.sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose(pi @ Q, target, atol=1e-9)
    b = base / base.sum()
    keep = b > 0

    def kl(x):
        return float(np.sum(x * np.log(x / b[keep])))

    ref = minimize(
        kl,
        b[keep],
        method="SLSQP",
        bounds=[(1e-12, 1.0)] * int(keep.sum()),
        constraints=[{"type": "eq", "fun": lambda x: np.r_[x.sum() - 1.0, x @ Q[keep] - target]}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert ref.success
    np.testing.assert_allclose(pi[keep], ref.x, atol=1e-6)
    np.testing.assert_allclose(exponential_tilt(Q, Q.mean(axis=0)), np.full(25, 1 / 25), rtol=1e-12)


def test_exponential_tilt_cannot_reach_a_mean_outside_the_hull():
    Q = np.array([[0.0], [0.4], [1.0]])
    assert exponential_tilt(Q, np.array([1.5])) is None
    assert exponential_tilt(Q, np.array([-0.01])) is None
    assert exponential_tilt(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([0.5, 0.6])) is None
    np.testing.assert_allclose(exponential_tilt(Q, np.array([0.9])) @ Q, [0.9], atol=1e-12)


def test_null_tilt_keeps_the_pilot_and_makes_the_class_mean_scores_equal():
    process = make_process("unequal_covariance", d=3)
    X0, X1 = process.sample(300, 60, _rng(51))
    y0, y1 = process.labels
    theta = wald_symmetry_test(X0, X1, SQUARED, process.labels).theta_pilot
    Q0, Q1 = _row_scores(theta, X0, y0, SQUARED)[0], _row_scores(theta, X1, y1, SQUARED)[0]
    pi0, pi1, share = null_tilt(Q0, Q1)
    assert share == 1.0
    np.testing.assert_allclose(pi0 @ Q0, pi1 @ Q1, atol=1e-12)
    X = np.concatenate([X0, X1])
    y = np.r_[np.full(300, y0), np.full(60, y1)]
    refit = fit_glm(X, y, np.r_[pi0, pi1] / 2, model=SQUARED, tol=1e-13)
    np.testing.assert_allclose(refit.theta, theta, atol=1e-9)


def test_a_tilt_well_inside_the_hull_is_reached_to_the_last_digits():
    """Replication 147 of this cell: class 0's tilt stalled at |grad| = 4e-10, where the
    predicted decrease of the log-partition fell below its rounding and the line search
    refused every step, so the test went half way to the null (share 0.5) with g_phi_hat
    small (chi2 p-value 0.32)."""
    run, _ = _compose(["study=symmetry_test_size", "dgp.d=2", "design.n1=50", "design.kappa=5", "design.reps=1000"])
    rows = DIAGNOSTICS.replicate(run, {}, 147)
    assert rows["tilt_share"].tolist() == [1.0]
    rng = _rng(54)
    for _ in range(200):
        Q = rng.standard_normal((50, 3)) ** 3
        target = Q.mean(axis=0) + 0.05 * Q.std(axis=0) * rng.standard_normal(3)
        pi = exponential_tilt(Q, target)
        assert pi is not None
        np.testing.assert_allclose(pi @ Q, target, atol=1e-9 * np.abs(Q).max())


def test_exponential_tilt_moves_in_the_span_of_collinear_rows():
    """A duplicated column or fewer rows than columns: the target inside the rows' affine hull is
    reached (the Hessian is singular in the full space), a target off it is not."""
    rng = _rng(55)
    Q = rng.standard_normal((30, 2))
    doubled = np.c_[Q[:, 0], Q]
    pi = exponential_tilt(doubled, [0.3, 0.3, 0.1])
    np.testing.assert_allclose(pi @ doubled, [0.3, 0.3, 0.1], atol=1e-9)
    assert exponential_tilt(doubled, [0.3, 0.2, 0.1]) is None
    few = rng.standard_normal((3, 5))
    np.testing.assert_allclose(exponential_tilt(few, few[:2].mean(axis=0)) @ few, few[:2].mean(axis=0), atol=1e-9)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.ones(3), [0.0]), "Q must"),
        ((np.ones((3, 1)), [0.0, 1.0]), "target must"),
        ((np.ones((3, 1)), [np.nan]), "target must"),
        ((np.ones((3, 1)), [0.5], np.zeros(3)), "base must"),
        ((np.ones((3, 1)), [0.5], [1.0, -1.0, 1.0]), "base must"),
        ((np.ones((3, 1)), [0.5], [1.0, np.nan, 1.0]), "base must"),
    ],
)
def test_exponential_tilt_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        exponential_tilt(*args)


def test_a_binary_family_with_an_intercept_cannot_be_tilted_to_the_null():
    """Class 0's intercept scores sigma(eta) are > 0 and class 1's sigma(eta) - 1 < 0 on every row,
    so g_phi's intercept entry is positive for every law: the tilt stops short (share < 1)."""
    rng = _rng(56)
    X0, X1 = rng.standard_normal((400, 2)) - [1.0, 0.0], rng.standard_normal((80, 2)) + [1.0, 0.0]
    res = wald_symmetry_test(
        X0, X1, GLM("logistic", intercept=True, ridge=1e-8), reference="tilted", rng=_rng(57), n_boot=19
    )
    assert 0.0 < res.tilt_share < 1.0 and res.g_phi_hat[0] > 0


def test_null_tilt_goes_part_way_when_a_class_cannot_reach_the_null():
    """One coefficient: class 1's scores lie in [-3.1, -2.9] and c = (1 - 3) / 2 = -1, so its
    mean can move at most 0.1 of the 2 towards c: s halves from 1 to 1/32 (0.0625 > 0.05)."""
    Q0 = np.array([[-1.0], [3.0]])
    Q1 = np.array([[-3.1], [-2.95], [-2.9], [-3.05]])
    pi0, pi1, share = null_tilt(Q0, Q1)
    assert share == 1 / 32
    np.testing.assert_allclose(pi0 @ Q0, 1.0 + share * (-1.0 - 1.0), atol=1e-12)
    np.testing.assert_allclose(pi1 @ Q1, -3.0 + share * (-1.0 + 3.0), atol=1e-12)
    _, _, none = null_tilt(Q0, np.array([[-3.0], [-3.0], [-3.0]]))
    assert none == 0.0
    # the halving starts where it is told: below 1/32 the first try is reached
    assert null_tilt(Q0, Q1, start=1 / 64)[2] == 1 / 64
    assert null_tilt(Q0, Q1, start=1 / 8)[2] == 1 / 32
    base0, base1, untilted = null_tilt(Q0, Q1, start=0.0)
    assert untilted == 0.0 and base0.tolist() == [0.5, 0.5] and base1.tolist() == [0.25] * 4


def test_tilted_statistics_are_wald_statistics_of_resamples_from_the_tilted_classes():
    """T*_b recomputed by gathering resample b's rows from the tilted multinomial draw and
    running the test on them; centred at 0, since the tilt reached the null."""
    process = make_process("unequal_covariance", d=2)
    X0, X1 = process.sample(200, 40, _rng(52))
    res = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="tilted", rng=_rng(53), n_boot=19)
    assert res.reference == "tilted" and res.tilt_share == 1.0
    assert res.p_value == (1 + np.sum(res.boot_statistics >= res.statistic)) / 20
    y0, y1 = process.labels
    Q0 = _row_scores(res.theta_pilot, X0, y0, SQUARED)[0]
    Q1 = _row_scores(res.theta_pilot, X1, y1, SQUARED)[0]
    pi0, pi1, _ = null_tilt(Q0, Q1)
    rng = _rng(53)
    c0, c1 = rng.multinomial(200, pi0, size=19), rng.multinomial(40, pi1, size=19)
    for b in (0, 9, 18):
        w = wald_symmetry_test(np.repeat(X0, c0[b], axis=0), np.repeat(X1, c1[b], axis=0), SQUARED, process.labels)
        np.testing.assert_allclose(res.boot_statistics[b], w.statistic, rtol=1e-8)
    batch = wald_symmetry_test(
        np.stack([X0, X0]), np.stack([X1, X1]), SQUARED, process.labels, reference="tilted", rng=_rng(53), n_boot=19
    )
    np.testing.assert_array_equal(batch.boot_statistics[0], res.boot_statistics)
    np.testing.assert_array_equal(batch.tilt_share, [1.0, 1.0])


def test_null_tilt_of_weighted_rows_is_the_tilt_of_the_rows_repeated():
    """Base weights given as counts tilt like the rows written out that many times: each copy
    of a row gets the same exponential factor, so the copies' probabilities summed equal the
    weighted tilt's (rows of count 0 get none)."""
    process = make_process("unequal_covariance", d=3)
    X0, X1 = process.sample(120, 40, _rng(54))
    y0, y1 = process.labels
    theta = wald_symmetry_test(X0, X1, SQUARED, process.labels).theta_pilot
    Q0, Q1 = _row_scores(theta, X0, y0, SQUARED)[0], _row_scores(theta, X1, y1, SQUARED)[0]
    rng = _rng(55)
    c0, c1 = rng.multinomial(120, np.full(120, 1 / 120)), rng.multinomial(40, np.full(40, 1 / 40))
    pi0, pi1, share = null_tilt(Q0, Q1, c0, c1)
    rep0, rep1, rep_share = null_tilt(np.repeat(Q0, c0, axis=0), np.repeat(Q1, c1, axis=0))
    assert share == rep_share == 1.0
    owner0, owner1 = np.repeat(np.arange(120), c0), np.repeat(np.arange(40), c1)
    np.testing.assert_allclose(pi0, np.bincount(owner0, rep0, minlength=120), atol=1e-12)
    np.testing.assert_allclose(pi1, np.bincount(owner1, rep1, minlength=40), atol=1e-12)
    assert np.all(pi0[c0 == 0] == 0) and np.all(pi1[c1 == 0] == 0)


def test_double_tilted_p_value_refers_r_t_to_the_tilted_resamples():
    """The first level is "tilted"'s, resample for resample. The second is recomputed here by
    gathering each first-level resample's rows, tilting them to their own null and running the
    plain test on the rows of the one draw from that law: r = median(T**) / median(T*)."""
    process = make_process("unequal_covariance", d=2)
    X0, X1 = process.sample(200, 40, _rng(56))
    y0, y1 = process.labels
    B = 19
    tilted = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="tilted", rng=_rng(57), n_boot=B)
    res = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="tilted_double", rng=_rng(57), n_boot=B)
    np.testing.assert_array_equal(res.boot_statistics, tilted.boot_statistics)
    assert res.reference == "tilted_double" and res.tilt_share == 1.0
    rng = _rng(57)
    Q0 = _row_scores(res.theta_pilot, X0, y0, SQUARED)[0]
    Q1 = _row_scores(res.theta_pilot, X1, y1, SQUARED)[0]
    pi0, pi1, _ = null_tilt(Q0, Q1)
    c0, c1 = rng.multinomial(200, pi0, size=B), rng.multinomial(40, pi1, size=B)
    second = []
    for b in range(B):
        first = wald_symmetry_test(np.repeat(X0, c0[b], axis=0), np.repeat(X1, c1[b], axis=0), SQUARED, process.labels)
        R0 = _row_scores(first.theta_pilot, X0, y0, SQUARED)[0]
        R1 = _row_scores(first.theta_pilot, X1, y1, SQUARED)[0]
        q0, q1, share = null_tilt(R0, R1, c0[b], c1[b])
        assert share == 1.0  # so T**_b is centred at 0
        d0, d1 = rng.multinomial(200, q0), rng.multinomial(40, q1)
        again = wald_symmetry_test(np.repeat(X0, d0, axis=0), np.repeat(X1, d1, axis=0), SQUARED, process.labels)
        second.append(float(again.statistic))
    r = np.median(second) / np.median(res.boot_statistics)
    assert res.boot_scale == pytest.approx(r, rel=1e-8)
    assert res.p_value == (1 + np.sum(res.boot_statistics >= r * res.statistic)) / (B + 1)
    assert tilted.boot_scale is None and tilted.p_value == (1 + np.sum(tilted.boot_statistics >= res.statistic)) / (
        B + 1
    )
    batch = wald_symmetry_test(
        np.stack([X0, X0]),
        np.stack([X1, X1]),
        SQUARED,
        process.labels,
        reference="tilted_double",
        rng=_rng(57),
        n_boot=B,
    )
    np.testing.assert_array_equal(batch.boot_scale[0], res.boot_scale)
    np.testing.assert_array_equal(batch.boot_statistics[0], res.boot_statistics)


@pytest.mark.parametrize(
    "first, second, want",
    [
        ([1.0, 2.0, 3.0], [2.0, 3.0, 9.0], 1.5),
        ([1.0, np.inf, np.inf], [1.0, 2.0, 3.0], 1.0),  # most of the first level not studentised
        ([1.0, 2.0, 3.0], [np.inf, np.inf, 1.0], 1.0),  # nor of the second: no factor, not an infinite one
    ],
)
def test_median_scale_is_the_ratio_of_medians_or_one(first, second, want):
    assert median_scale(np.array(first), np.array(second)) == want


def test_a_second_level_resample_that_cannot_be_studentised_counts_against_the_data():
    """n1 = 8 rows for p = 5 coefficients: some resamples of both levels repeat rows until a
    class's V* is singular. Each such T*_b or T**_b is inf (one at a time, each at its own
    centre), and the test returns a p-value instead of raising."""
    process = make_process("unequal_covariance", d=5)
    X0, X1 = process.sample(40, 8, _rng(40))
    res = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="tilted_double", rng=_rng(41), n_boot=39)
    tilted = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="tilted", rng=_rng(41), n_boot=39)
    np.testing.assert_array_equal(res.boot_statistics, tilted.boot_statistics)
    assert np.isinf(res.boot_statistics).any() and 0 < res.p_value <= 1 and np.isfinite(res.boot_scale)


def test_a_tilt_whose_newton_step_overflows_is_refused_quietly():
    """Replication 97 of the size grid's d = 10, n1 = 50, n0 = 1000 cell: one second-level
    tilt's Newton step overflowed U @ lambda, and numpy warned (an error under this suite's
    warning filter) before the line search refused the step. The tilt is still refused (the
    numbers were the same before), without a warning."""
    run, _ = _compose(["study=symmetry_test_size", "dgp.d=10", "design.n1=50", "design.kappa=20", "design.reps=1000"])
    rows = symmetry_rows(DIAGNOSTICS.build(run), [97])
    assert rows["tilt_share"].tolist() == [1.0] and 0 < rows["p_tilted_double"].item() <= 1


@pytest.mark.parametrize("start", [-0.5, 1.5, np.nan])
def test_null_tilt_refuses_a_share_outside_zero_one_and_bad_bases(start):
    Q0, Q1 = np.array([[-1.0], [3.0]]), np.array([[-3.1], [-2.9]])
    with pytest.raises(ValueError, match="start"):
        null_tilt(Q0, Q1, start=start)
    with pytest.raises(ValueError, match="base"):
        null_tilt(Q0, Q1, np.array([1.0, -0.5]), None, start=0.0)


# ---------------------------------------------------------------- TG-VTSS's decision rules


def test_the_config_accepts_exactly_the_rules_the_code_runs():
    """schema keeps its own copies of the rule names (importing selection would add about 2 s to
    validating a config); they must stay the ones TG-VTSS and the Wald test take."""
    assert schema.SYMMETRY_TESTS == REFERENCES and schema.GQS_RULES == GQS_RULES


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
    assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_threshold=gqs.gqs / 2)[0] == "high_gqs"
    assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_threshold=gqs.gqs + 1)[0] == "low_gqs"
    for level, branch in ((min(gqs.p_value * 2, 0.99), "high_gqs"), (gqs.p_value / 2, "low_gqs")):
        assert theory_guided_grid(0.01, 0.05, gqs, None, gqs_rule="calibrated", gqs_level=level)[0] == branch
    # the pool-calibrated rule reads pool_p_value, not p_value
    for pool_p, branch in ((0.01, "high_gqs"), (0.5, "low_gqs")):
        other = gqs._replace(p_value=1.0 - pool_p, pool_p_value=pool_p)
        assert theory_guided_grid(0.01, 0.05, other, None, gqs_rule="calibrated_pool")[0] == branch
    _, window = theory_guided_grid(0.01, 0.05, gqs, 1.5, gqs_threshold=gqs.gqs + 1)
    np.testing.assert_allclose(
        window, np.unique(np.round(np.r_[np.arange(0.8, 1.21, 0.05), np.arange(1.3, 1.71, 0.05)], 10))
    )


@pytest.mark.parametrize(
    "symmetry_test, gqs_rule",
    [("chi2", "threshold"), ("bootstrap", "calibrated"), ("tilted", "calibrated_pool"), ("tilted_double", "threshold")],
)
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


# ---------------------------------------------------------------- the diagnostics study


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return validate(OmegaConf.to_container(cfg, resolve=True)), OmegaConf.to_yaml(cfg)


SIZE = ["study=symmetry_test_size", "design.reps=40", "design.chunk=15", "selection.n_boot=19", "dgp.d=2"]


@pytest.fixture(scope="module")
def size_job(tmp_path_factory):
    run, yaml = _compose(SIZE)
    out = tmp_path_factory.mktemp("symmetry_size")
    return run, out, run_job(run, out, yaml)


def test_symmetry_job_rates_and_quantiles_come_from_its_rows(size_job):
    run, out, summary = size_job
    rows = pd.read_parquet(out / "replications.parquet")
    assert list(rows["replication"]) == list(range(40))
    references = ("chi2", "bootstrap", "tilted", "tilted_double")
    for column, key in ((f"p_{name}", f"reject_{name}") for name in references):
        rate = float(np.mean(rows[column] <= 0.05))
        assert summary[key]["rate"] == rate and summary[key]["n"] == 40
        assert summary[key]["mcse"] == pytest.approx(math.sqrt(rate * (1 - rate) / 40))
    np.testing.assert_allclose(rows["p_chi2"], chi2.sf(rows["statistic"], 2), rtol=1e-12)
    np.testing.assert_allclose(
        summary["qq"]["statistic"], np.quantile(rows["statistic"], summary["qq"]["probabilities"])
    )
    assert summary["population"]["null"] and summary["population"]["power"] == 0.05
    stored = json.loads((out / "summary.json").read_text())
    assert stored["reject_chi2"] == summary["reject_chi2"] and (out / "figure.png").is_file()


def test_one_replication_regenerates_alone_and_chunks_do_not_move_numbers(size_job, tmp_path):
    run, out, summary = size_job
    rows = pd.read_parquet(out / "replications.parquet")
    study = DIAGNOSTICS
    again = study.replicate(run, summary, 17)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), rows.iloc[[17]].reset_index(drop=True))
    other, yaml = _compose(SIZE[:2] + ["design.chunk=40"] + SIZE[3:])
    pd.testing.assert_frame_equal(study.run(study.build(other), lambda *a: None), rows)


def test_population_prediction_is_the_covariance_of_g_phi_hat_and_the_noncentral_power():
    """V of the prediction against the spread of g_phi_hat over 400 exact draws (each entry of
    V^{-1/2} Cov V^{-1/2} is a sample covariance of near-standard variables: MCSE about
    sqrt(2 / R) on the diagonal), and the power against scipy's noncentral chi2."""
    run, _ = _compose(["study=symmetry_test_power", "dgp.h=3", "design.n1=250", "design.kappa=5", "dgp.d=3"])
    built = DIAGNOSTICS.build(run)
    pred = population_prediction(built.built, 0.05)
    V, g = np.array(pred["V"]).reshape(3, 3), np.array(pred["g_phi"])
    rng = _rng(30)
    X0, X1 = zip(*(built.built.process.sample(1250, 250, rng) for _ in range(400)))
    wald = wald_symmetry_test(np.stack(X0), np.stack(X1), SQUARED, (-0.5, 0.5))
    L = np.linalg.cholesky(np.linalg.inv(V))
    whitened = (wald.g_phi_hat - g) @ L
    np.testing.assert_allclose(np.cov(whitened, rowvar=False), np.eye(3), atol=4 * math.sqrt(2 / 400))
    assert np.all(np.abs(whitened.mean(0)) < 4 / math.sqrt(400))
    lam = g @ np.linalg.solve(V, g)
    assert pred["noncentrality"] == pytest.approx(lam, rel=1e-12) and not pred["null"]
    assert pred["power"] == pytest.approx(ncx2.sf(chi2.ppf(0.95, 3), 3, lam))


def test_gqs_job_rates_come_from_its_rows(tmp_path):
    run, yaml = _compose(["study=gqs_calibration", "design.reps=12", "design.n1=40", "generator=shifted"])
    summary = run_job(run, tmp_path, yaml)
    rows = pd.read_parquet(tmp_path / "replications.parquet")
    assert summary["biased_threshold"]["rate"] == float(np.mean(rows["gqs"] > 10.0))
    assert summary["biased_calibrated"]["rate"] == float(np.mean(rows["p_gqs"] <= 0.05))
    assert summary["biased_pool"]["rate"] == float(np.mean(rows["p_gqs_pool"] <= 0.05))
    np.testing.assert_array_equal(rows["biased_calibrated"], rows["gqs"] > rows["threshold_calibrated"])
    np.testing.assert_array_equal(rows["biased_pool"], rows["gqs"] > rows["threshold_pool"])


def test_a_sweep_of_diagnostics_cells_draws_its_figure_and_reports_its_rates(tmp_path):
    for n1 in (30, 60):
        run, yaml = _compose(SIZE[:1] + [f"design.n1={n1}", "design.reps=12", "selection.n_boot=19", "dgp.d=2"])
        run_job(run, tmp_path / f"n1={n1}", yaml)
    aggregate(tmp_path, figures_dir=tmp_path / "figures")
    report = (tmp_path / "report.md").read_text()
    assert "## Results" in report and report.count("| unequal_covariance | 2 |") == 2
    assert (tmp_path / "figure.png").is_file() and (tmp_path / "figures" / "symmetry_test_size.png").is_file()
    # a cell that did not run a reference (a summary written before it existed) leaves only its
    # own point out of that reference's line
    summaries = [json.loads((tmp_path / f"n1={n1}" / "summary.json").read_text()) for n1 in (30, 60)]
    del summaries[0]["reject_tilted_double"]
    fig = plotting.diagnostics_sweep_figure(summaries)
    lines = {bars.get_label(): bars.lines[0] for bars in fig.axes[0].containers}
    assert lines["p = 2, double tilted"].get_xdata().size == 1 and lines["p = 2, tilted"].get_xdata().size == 2


def test_the_power_figure_leaves_out_only_the_points_a_reference_did_not_run():
    def cell(h, double):
        rate = {"rate": 0.5, "mcse": 0.02, "n": 300}
        out = {"study": "symmetry_test_power", "measure": "symmetry", "n1": 50, "n0": 250, "df": 5, "reps": 300}
        out |= {"alpha": 0.05, "cell": {"h": h}, "population": {"null": h == 0, "power": 0.3}}
        out |= {"reject_chi2": rate, "reject_bootstrap": rate, "reject_tilted": rate}
        return out | ({"reject_tilted_double": rate} if double else {})

    fig = plotting.diagnostics_sweep_figure([cell(-2.0, True), cell(0.0, False), cell(2.0, True)])
    points = {bars.get_label(): bars.lines[0].get_xdata().tolist() for bars in fig.axes[0].containers}
    assert points["double tilted"] == [-2.0, 2.0] and points["tilted"] == [-2.0, 0.0, 2.0]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["study=symmetry_test_size", "+selection.feature_map={name: rff}"], "selection.feature_map"),
        (["study=gqs_calibration", "design.n0=50"], "design.n0"),
        (["study=symmetry_test_size", "selection.n_boot=7"], "selection.n_boot"),
        (["study=symmetry_test_size", "selection.n_boot=0", "selection.symmetry_test=tilted"], "selection.n_boot"),
        # every reference and rule is reported: choosing one would only change the cell's hash
        (["study=symmetry_test_size", "selection.symmetry_test=tilted_double"], "selection.symmetry_test"),
        (["study=gqs_calibration", "selection.gqs_rule=calibrated_pool"], "selection.gqs_rule"),
        (["study=symmetry_test_size", "selection.gqs_rule=calibrated"], "selection.gqs_rule"),
    ],
)
def test_bad_diagnostics_configs_name_their_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        _compose(overrides)
    assert info.value.key == key


# the config hashes of diagnostics presets from before their selection section had gqs_folds:
# the key at its default (null) must leave them, or every finished job would be redone
PRESET_HASHES = {
    "gqs_calibration": "9e71d1febd9b15a6c926e2e58a444cf03a82263f06103ee2b7df9c1cd0e650d4",
    "gqs_ring": "107ee904fcbd497c75e89f3cf0f3fefc3bfd6caeed1b76e6abbeb1ed450f5341",
    "symmetry_test_size": "82b6eee2bd9c7958d73d040c473833abd4b0b0cf5be19645395ad982afce0e90",
    "symmetry_test_power": "6b40133880e6e26ec9e072fc24ea3dff30005b2fff49abf4e73b10e7e6f07eca",
}


@pytest.mark.parametrize("preset", sorted(PRESET_HASHES))
def test_gqs_folds_is_set_without_plus_and_its_default_keeps_the_hash(preset):
    """selection.gqs_folds=3 was an unknown key (not in struct) for these presets, though
    selection accepts it and +selection.gqs_folds=3 changed the GQS."""
    run, _ = _compose([f"study={preset}"])
    assert run.selection.gqs_folds is None and config_hash(run) == PRESET_HASHES[preset]
    folds, _ = _compose([f"study={preset}", "selection.gqs_folds=3"])
    assert folds.selection.gqs_folds == 3 and config_hash(folds) != PRESET_HASHES[preset]


def test_a_sweep_plans_the_hash_its_jobs_write_when_a_section_interpolates_another():
    """dgp.n1: ${design.n1}: the planned cells resolve it as the jobs do (they were all
    reported missing when the plan kept the interpolation as text)."""
    planned = planned_cells(
        {"design.n1": "50,60"},
        ["study=symmetry_test_size"],
        lambda job: compose_overrides(job, return_hydra_config=True),
    )
    for cell, n1 in zip(planned, (50, 60)):
        run, digest = job_identity(["study=symmetry_test_size", f"design.n1={n1}"])
        assert cell.config_hash == digest and run.dgp["n1"] == n1


def test_a_diagnostics_job_finished_by_older_code_is_redone_not_resumed(tmp_path):
    """A symmetry cell finished before the double tilted bootstrap kept its summary, without the
    double's columns, when a rerun resumed it: the kind's outputs version is part of the config
    hash, so the older hash no longer marks the cell complete; curve jobs keep their hashes."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=[*SIZE[:2], "design.reps=3", "design.chunk=3", "selection.n_boot=19"])
    run = validate(OmegaConf.to_container(cfg, resolve=True))
    older = dict(run.identity())
    assert older.pop("outputs_version") == 2
    older_hash = hashlib.sha256(json.dumps(older, sort_keys=True, default=str).encode()).hexdigest()
    assert older_config_hashes(run) == {older_hash: 1}
    assert "outputs_version" not in _compose(["study=quickstart"])[0].identity()
    out = tmp_path / "cell"
    assert run_cell(cfg, out) == "ok"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config_hash"] == config_hash(run) != older_hash
    older_summary = {k: v for k, v in summary.items() if k not in ("reject_tilted_double", "boot_scale_median")}
    atomic_write_json(out / "summary.json", {**older_summary, "config_hash": older_hash})
    # status and the aggregate name the cause; replicate still checks the columns the job has
    state, _, detail = classify(out, config_hash(run), older_config_hashes(run))
    assert state == "stale" and "older simstudy (outputs version 1)" in detail
    planned = [PlannedCell(("cell",), config_hash(run), {}, tuple(older_config_hashes(run)))]
    assert "older simstudy" in read_summaries(tmp_path, planned)[0]["error"]
    rows, stored = regenerate_replication(out, 1)
    assert same_rows(rows, stored)
    assert run_cell(cfg, out) == "ok"
    assert "reject_tilted_double" in json.loads((out / "summary.json").read_text())
    assert run_cell(cfg, out) == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize(
    "d, n1, kappa, calibrated",
    [
        (5, 50, 20, ("p_bootstrap", "p_tilted", "p_tilted_double")),
        (2, 50, 5, ("p_bootstrap", "p_tilted", "p_tilted_double")),
        (10, 50, 5, ("p_tilted", "p_tilted_double")),  # the bootstrap's size there: 0.073 +- 0.008 (README)
    ],
)
def test_the_bootstraps_hold_the_size_where_the_chi2_does_not(d, n1, kappa, calibrated):
    """1000 null replications (seed 1, not the preset's): each calibrated rejection rate at 0.05
    is within 3 MCSEs of 0.05 (MCSE sqrt(0.05 0.95 / 1000) = 0.0069). The chi2 reference's
    size there was measured at 0.176, 0.094 and 0.322 (README); it must sit above 0.05 by more."""
    run, _ = _compose(
        ["study=symmetry_test_size", f"dgp.d={d}", f"design.n1={n1}", f"design.kappa={kappa}", "design.reps=1000"]
        + ["seed=1"]
    )
    rows = DIAGNOSTICS.run(DIAGNOSTICS.build(run), lambda *a: None)
    mcse = math.sqrt(0.05 * 0.95 / 1000)
    for column in calibrated:
        rate = float(np.mean(rows[column] <= 0.05))
        assert abs(rate - 0.05) / mcse < 3, (column, rate)
    assert (float(np.mean(rows["p_chi2"] <= 0.05)) - 0.05) / mcse > 3


@pytest.mark.slow
def test_the_pool_calibrated_gqs_separates_the_exact_generator_from_the_jitter_on_study_6b():
    """Study 6b's design (gqs_ring; seed 1, not the preset's), 100 replications per generator:
    the pool-calibrated rule calls the exact generator (the ring's own law) biased at most
    3 MCSEs above 0.05 (MCSE sqrt(0.05 0.95 / 100) = 0.022), where the calibrated rule calls it
    biased nearly always (200 of 200 in the preset, README), and the jitter more than half the
    time (0.750 +- 0.031 in the preset)."""
    rates = {}
    for generator in ("oracle", "jitter"):
        run, _ = _compose(["study=gqs_ring", f"generator={generator}", "design.reps=100", "seed=1"])
        rows = DIAGNOSTICS.run(DIAGNOSTICS.build(run), lambda *a: None)
        rates[generator] = (float(rows["biased_pool"].mean()), float(rows["biased_calibrated"].mean()))
    assert rates["oracle"][0] < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 100) < rates["oracle"][1], rates
    assert rates["jitter"][0] > 0.5, rates


# ---------------------------------------------------------------- the reference variant (section C)


def test_stabilised_inverse_matches_the_solve_and_survives_a_singular_matrix():
    from simstudy.diagnostics import _solve

    A = np.array([[2.0, 0.3], [0.3, 1.0]])
    b = np.array([1.0, -2.0])
    np.testing.assert_allclose(_solve(A, b, "A", stabilised=True), np.linalg.solve(A, b), rtol=1e-7)
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="singular"):
        _solve(singular, b, "H")
    assert np.all(np.isfinite(_solve(singular, b, "H", stabilised=True)))


def test_reference_gqs_replays_its_stratified_folds_with_a_pilot_per_fold():
    """Fold 0's delta recomputed by hand from the same random stream: both classes permuted and
    split into K = 3 folds, a balanced pilot on the fold's training rows, the generator fitted
    there, delta = mean synthetic score - mean held-out minority score at that pilot."""
    law = GaussianMixtureLaw(np.ones(1), np.array([[0.7, 0.0]]), np.eye(2)[None])
    X0, X1 = make_process("gaussian_classes").sample(300, 40, _rng(20))
    model = GLM("squared", intercept=False, ridge=1e-8)
    diag = diagnose(X0, X1, Oracle(law), model, _rng(21), n_folds=3, variant="reference", pool_size=500)
    rng = _rng(21)
    out0, out1 = np.array_split(rng.permutation(300), 3)[0], np.array_split(rng.permutation(40), 3)[0]
    in0, in1 = np.setdiff1d(np.arange(300), out0), np.setdiff1d(np.arange(40), out1)
    X = np.vstack([X0[in0], X1[in1]])
    y = np.r_[np.zeros(len(in0)), np.ones(len(in1))]
    w = np.r_[np.full(len(in0), 0.5 / len(in0)), np.full(len(in1), 0.5 / len(in1))]
    theta = np.linalg.solve(X.T @ (w[:, None] * X) + 0.5e-8 * np.eye(2), X.T @ (w * y))
    synthetic = Oracle(law).fit(X1[in1], X0[in0], rng).sample(500, rng)
    score = lambda Z, label: (2 * (Z @ theta - label))[:, None] * Z  # noqa: E731
    np.testing.assert_allclose(
        diag.gqs.delta_folds[0], score(synthetic, 1).mean(0) - score(X1[out1], 1).mean(0), rtol=1e-6
    )
    assert np.isnan(diag.gqs.noise_floor) and 0 < diag.gqs.p_value <= 1


def test_reference_variant_does_not_raise_on_a_constant_zero_feature():
    X0, X1 = make_process("gaussian_classes").sample(200, 30, _rng(22))
    X0, X1 = np.c_[X0, np.zeros(200)], np.c_[X1, np.zeros(30)]
    model = GLM("squared", intercept=False, ridge=0.0)
    gen = Oracle(GaussianMixtureLaw(np.ones(1), np.array([[1.0, 0.0, 0.0]]), np.diag([1.0, 1.0, 0.0])[None]))
    with pytest.raises(ValueError, match="singular"):
        diagnose(X0, X1, gen, model, _rng(23))
    diag = diagnose(X0, X1, gen, model, _rng(23), n_folds=3, variant="reference")
    assert np.isfinite(diag.wald.statistic) and np.isfinite(diag.gqs.gqs)


def test_multiplicative_windows_are_rounded_sizes_around_balancing_and_the_target():
    X0, X1 = make_process("gaussian_classes").sample(400, 40, _rng(24))
    gqs = diagnose(
        X0,
        X1,
        Oracle(GaussianMixtureLaw(np.ones(1), np.array([[1.0, 0.0]]), np.eye(2)[None])),
        GLM("squared"),
        _rng(25),
    ).gqs
    above = gqs.gqs + 1  # not called biased: the windows
    branch, grid = theory_guided_grid(0.0, 0.05, gqs, 1.37, gqs_threshold=above, windows="multiplicative", gap=360)
    f = WINDOW_FACTORS
    assert branch == "low_gqs"
    np.testing.assert_allclose(grid, np.unique(np.r_[np.round(f * 360), np.round(f * 1.37 * 360)] / 360))
    with pytest.raises(ValueError, match="gap"):
        theory_guided_grid(0.0, 0.05, gqs, None, gqs_threshold=above, windows="multiplicative")
    with pytest.raises(ValueError, match="windows"):
        theory_guided_grid(0.0, 0.05, gqs, None, windows="geometric")


def test_tg_vtss_reference_variant_runs_its_diagnostics_and_windows():
    rng = _rng(26)
    X = np.concatenate([rng.standard_normal((300, 2)), rng.standard_normal((30, 2)) + [1.0, 0.0]])
    y = np.r_[np.zeros(300), np.ones(30)]
    common = dict(generator="gaussian_fit", family="squared", intercept=False, cv=3, random_state=0, alpha=1.0)
    est = TGVTSSClassifier(variant="reference", gqs_threshold=1e300, **common).fit(X, y)  # never biased
    assert est.branch_ == "low_gqs" and est.diagnostics_.gqs.delta_folds.shape[0] == 3
    f = WINDOW_FACTORS
    assert set(np.round(np.round(f * 270) / 270, 12)) <= set(np.round(est.candidate_gammas_, 12))
    with pytest.raises(ValueError, match="variant"):
        TGVTSSClassifier(variant="authors", **common).fit(X, y)


def test_a_resample_that_cannot_be_studentised_counts_against_the_data():
    """n1 = 8 rows in d = 5: some resamples repeat rows until V* is singular; they get T* = inf
    (counted as exceeding T) instead of failing the test."""
    process = make_process("unequal_covariance", d=5)
    X0, X1 = process.sample(40, 8, _rng(40))
    res = wald_symmetry_test(X0, X1, SQUARED, process.labels, reference="bootstrap", rng=_rng(41), n_boot=199)
    infinite = np.isinf(res.boot_statistics)
    assert infinite.any() and np.all(np.isfinite(res.boot_statistics[~infinite]))
    assert res.p_value == (1 + np.sum(res.boot_statistics >= res.statistic)) / 200


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["study=symmetry_test_size", "design.n1=5"], "design.n1"),
        (["study=symmetry_test_size", "selection.n_boot=1000000000"], "selection.n_boot"),
    ],
)
def test_sizes_the_test_cannot_take_are_refused_before_running(overrides, key):
    with pytest.raises(ConfigError) as info:
        DIAGNOSTICS.build(_compose(overrides)[0])
    assert info.value.key == key


def test_theory_guided_grid_refuses_bad_rules():
    X0, X1 = make_process("gaussian_classes").sample(400, 40, _rng(42))
    law = GaussianMixtureLaw(np.ones(1), np.array([[1.0, 0.0]]), np.eye(2)[None])
    gqs = diagnose(X0, X1, Oracle(law), GLM("squared"), _rng(43)).gqs
    for kwargs, match in (
        (dict(gqs_rule="Threshold"), "gqs_rule"),
        (dict(gqs_level=5.0), "gqs_level"),
        (dict(gqs_threshold=np.nan), "gqs_threshold"),
        (dict(gqs_threshold=-1.0), "gqs_threshold"),
        (dict(gqs_threshold=np.inf), "gqs_threshold"),
    ):
        with pytest.raises(ValueError, match=match):
            theory_guided_grid(0.0, 0.05, gqs, None, **kwargs)
    with pytest.raises(ValueError, match="gamma_tg"):
        theory_guided_grid(0.0, 0.05, gqs, np.inf)
    with pytest.raises(ValueError, match="level"):
        gqs.threshold(0.0)
