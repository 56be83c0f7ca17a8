"""The study engine: streams, nested prefixes, chunk independence, summaries and verdicts."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from simstudy.engine import (
    MIN_VERDICT_REPLICATIONS,
    Cell,
    Design,
    draw_replication,
    empirical_optimum,
    fit_replications,
    prefix_weights,
    replication_rows,
    replication_streams,
    run_cell,
    stable_key,
    summarise_curve,
    verdict,
)
from simstudy.fitting import GLM, fit_glm
from simstudy.generators import make_generator
from simstudy.population import Population
from simstudy.processes import gaussian_classes


def _cell(generator="gaussian_fit", reps=6, chunk=4, family="squared", gammas=(0.0, 0.5, 1.0, 2.0)):
    process = gaussian_classes()
    model = GLM(family)
    design = Design(n0=300, n1=30, gammas=gammas, reps=reps, seed=7, chunk=chunk)
    gen = make_generator(generator, process)
    cell = Cell(process, gen, model, design, stable_key({"d": 1}), stable_key({"g": generator}))
    return cell, Population(process, model)


def test_design_sizes_and_validation():
    d = Design(n0=2000, n1=100, gammas=(0, 0.25, 1.0, 1.5), reps=2)
    assert d.gap == 1900
    np.testing.assert_array_equal(d.n_tilde, [0, 475, 1900, 2850])
    for bad in (dict(n1=0), dict(n0=50), dict(gammas=()), dict(gammas=(-0.1,)), dict(reps=1), dict(chunk=0)):
        args = dict(n0=200, n1=100, gammas=(0.0, 1.0), reps=2) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            Design(**args)


def test_stable_key_is_deterministic_and_order_free():
    assert stable_key({"a": 1, "b": [1, 2]}) == stable_key({"b": [1, 2], "a": 1})
    assert stable_key({"a": 1}) != stable_key({"a": 2})
    assert all(0 <= k < 2**32 for k in stable_key("x"))


def test_streams_same_seed_same_data_and_common_real_data_across_generators():
    cell, _ = _cell("gaussian_fit")
    X_a, _ = draw_replication(cell, 3)
    X_b, _ = draw_replication(cell, 3)
    np.testing.assert_array_equal(X_a, X_b)
    X_other, _ = draw_replication(cell, 4)
    assert not np.array_equal(X_a[:330], X_other[:330])
    smote = cell._replace(generator=make_generator("smote"), generator_key=stable_key({"g": "smote"}))
    X_s, _ = draw_replication(smote, 3)
    n_real = cell.design.n0 + cell.design.n1
    np.testing.assert_array_equal(X_s[:n_real], X_a[:n_real])  # common random numbers
    assert not np.array_equal(X_s[n_real:], X_a[n_real:])


def test_streams_are_independent_across_replications():
    # correlation of the first uniform across 400 replication streams: |r| / (1/sqrt(n)) < 4
    draws = np.array(
        [
            [replication_streams(0, (1, 2), (3,), r).data.random() for r in range(400)],
            [replication_streams(0, (1, 2), (3,), r + 400).data.random() for r in range(400)],
        ]
    )
    r = np.corrcoef(draws)[0, 1]
    assert abs(r) * np.sqrt(400) < 4
    assert abs(draws.mean() - 0.5) / (np.sqrt(1 / 12) / np.sqrt(800)) < 4


def test_prefix_weights_select_nested_prefixes_of_one_pool():
    d = Design(n0=10, n1=4, gammas=(0.0, 0.5, 1.0), reps=2)
    w = prefix_weights(d)
    assert w.shape == (3, 14 + 6)
    np.testing.assert_array_equal(w[:, :14], 1.0)
    np.testing.assert_array_equal(w[:, 14:].sum(axis=1), d.n_tilde)
    assert np.all(w[1:, 14:] >= w[:-1, 14:])  # each prefix contains the smaller ones
    assert prefix_weights(d) is w and not w.flags.writeable  # built once, shared read-only


def test_fits_equal_direct_fits_on_the_pooled_data():
    cell, population = _cell(family="logistic")
    block = fit_replications(cell, [2])
    X, y = draw_replication(cell, 2)
    n_real = cell.design.n0 + cell.design.n1
    for g, n_tilde in enumerate(cell.design.n_tilde):
        rows = slice(0, n_real + int(n_tilde))
        direct = fit_glm(X[rows], y[rows], model=cell.model)
        np.testing.assert_allclose(block.theta[0, g], direct.theta, rtol=1e-9, atol=1e-11)


def test_results_do_not_depend_on_chunk_size_or_threads():
    cell, population = _cell(family="logistic", reps=7, chunk=3)
    a = run_cell(cell, population, workers=1)
    b = run_cell(cell._replace(design=dataclasses.replace(cell.design, chunk=7)), population, workers=2)
    c = run_cell(cell._replace(design=dataclasses.replace(cell.design, chunk=1)), population, workers=3)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, c, check_exact=True)


@pytest.mark.parametrize("workers", [0, 1.5, "2"])
def test_bad_worker_counts_are_rejected(workers):
    cell, population = _cell(reps=2)
    with pytest.raises(ValueError, match="workers"):
        run_cell(cell, population, workers=workers)


def test_a_single_replication_regenerates_its_rows():
    cell, population = _cell(reps=5, chunk=2)
    table = run_cell(cell, population)
    again = replication_rows(cell, population, [3], fit_replications(cell, [3]))
    pd.testing.assert_frame_equal(table[table.replication == 3].reset_index(drop=True), again, check_exact=True)


def test_rows_hold_exact_excess_and_parameter_error():
    cell, population = _cell(reps=3)
    table = run_cell(cell, population)
    p = population.p
    theta = table[[f"theta_{j}" for j in range(p)]].to_numpy()
    np.testing.assert_allclose(table["excess"], population.excess(theta), rtol=1e-12)
    np.testing.assert_allclose(table["param_error"], np.linalg.norm(theta - population.theta_star, axis=1))
    assert len(table) == 3 * len(cell.design.gammas)
    assert table["converged"].all()


def test_progress_is_reported_per_chunk():
    cell, population = _cell(reps=5, chunk=2)
    seen = []
    run_cell(cell, population, progress=lambda done, total, elapsed: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_summaries_against_numpy():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, size=(50, 4))
    s = summarise_curve(values)
    np.testing.assert_allclose(s.mean, values.mean(0))
    np.testing.assert_allclose(s.mcse, values.std(0, ddof=1) / np.sqrt(50))
    np.testing.assert_allclose(s.quantiles[1], np.median(values, 0))


def test_empirical_optimum_is_the_argmin_with_a_bootstrap_ci():
    rng = np.random.default_rng(1)
    gammas = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    truth = (gammas - 1.0) ** 2 + 1
    values = truth + rng.normal(scale=0.05, size=(200, 5))
    opt = empirical_optimum(values, gammas, np.random.default_rng(2))
    assert opt.gamma == gammas[np.argmin(values.mean(0))] == 1.0
    assert opt.ci[0] <= 1.0 <= opt.ci[1]
    noisy = truth * 0 + rng.normal(scale=1.0, size=(200, 5))  # flat curve: wide CI
    wide = empirical_optimum(noisy, gammas, np.random.default_rng(3))
    assert wide.ci[1] - wide.ci[0] >= 1.0


def test_verdict_flags_disagreement():
    gammas = np.array([0.0, 1.0, 2.0])
    draws = np.random.default_rng(0).normal(loc=[3.0, 1.0, 2.0], scale=0.1, size=(100, 3))
    truth = np.array([[3.0, 1.0, 2.0]])

    def check(theory, star):
        return verdict(draws, theory, star, gammas, np.random.default_rng(1))

    good = check(truth, 1.0)
    assert good["label"] == "agree" and good["gamma_star_in_ci"]
    far = check(truth, 2.0 + 1.0)
    assert far["label"] == "disagree" and far["gamma_star_in_ci"] is False
    shifted = check(truth + [0.5, 0.0, 0.0], 1.0)
    assert shifted["label"] == "disagree" and shifted["gammas_outside_band"] == [0.0]


def test_root_mean_square_and_its_mcse_against_a_direct_bootstrap():
    from simstudy.engine import root_mean_square

    rng = np.random.default_rng(4)
    values = np.abs(rng.normal(size=(400, 2))) * [1.0, 3.0]
    rms = root_mean_square(values)
    np.testing.assert_allclose(rms.value, np.sqrt((values**2).mean(0)))
    boot = np.array([np.sqrt((values[rng.integers(0, 400, 400)] ** 2).mean(0)) for _ in range(2000)])
    np.testing.assert_allclose(rms.mcse, boot.std(0), rtol=0.1)


def test_verdict_counts_the_theory_monte_carlo_error():
    gammas = np.array([0.0, 1.0])
    draws = np.random.default_rng(5).normal(loc=[1.0, 2.0], scale=0.1, size=(100, 2))
    curve = summarise_curve(draws)
    off = curve.mean + 6 * curve.mcse
    assert verdict(draws, off[None], 0.0, gammas, np.random.default_rng(1))["label"] == "disagree"
    # 400 fits whose mean is off and whose standard error is 3 MCSE
    spread = np.random.default_rng(6).standard_normal((400, 1))
    fits = off + (spread - spread.mean()) / spread.std(ddof=1) * 3 * curve.mcse * np.sqrt(400)
    noisy_theory = verdict(draws, fits, 0.0, gammas, np.random.default_rng(1))
    assert noisy_theory["label"] == "agree"
    np.testing.assert_allclose(noisy_theory["max_abs_z"], 6 / np.sqrt(10), rtol=1e-9)


def test_too_few_replications_leave_the_verdict_undetermined():
    gammas = np.array([0.0, 1.0, 2.0])
    truth = np.array([[3.0, 1.0, 2.0]])
    for reps in (2, MIN_VERDICT_REPLICATIONS - 1):
        draws = np.random.default_rng(0).normal(loc=truth[0], scale=0.1, size=(reps, 3))
        v = verdict(draws, truth + 5.0, 1.0, gammas, np.random.default_rng(1))
        assert v["label"] == "undetermined"  # however far off the prediction is
    draws = np.random.default_rng(0).normal(loc=truth[0], scale=0.1, size=(MIN_VERDICT_REPLICATIONS, 3))
    assert verdict(draws, truth + 5.0, 1.0, gammas, np.random.default_rng(1))["label"] == "disagree"
