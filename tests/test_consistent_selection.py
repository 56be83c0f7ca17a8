"""Study 4 with the selectors (AUTHORS_DESIGNS.md A): the slowly consistent generator whose
accuracy follows the minority rows it is fitted on, the theory arm and the parameter error of
``study.kind: vtss``, and the sweep's table and figure.

Independent references used here:

* the generator's law against the closed form N(mu1 + shift / sqrt(log m), I);
* the theory arm's gamma* against THEORY.md's closed form 1 / (1 - c) for an aligned mismatch;
* the theory and curve rows' losses and parameter errors against fits recomputed with
  ``fit_glm`` on the replication's own draw and the population's exact risk.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import simstudy  # noqa: F401
from simstudy.app import CONFIG_PATH, same_rows
from simstudy.config import ConfigError, validate
from simstudy.engine import draw_replication, prefix_weights
from simstudy.fitting import fit_glm
from simstudy.generators import ConsistentShift, Oracle
from simstudy.processes import make_process
from simstudy.studies.vtss import STUDY, build_vtss_cell, summarise_vtss, sweep_report, vtss_replication
from simstudy.theory import Theory, synthetic_moments

SHIFT = np.array([-1.0, 0.0])


def _law1():
    return make_process("gaussian_classes", mu0=[0.0, 0.0], mu1=[1.0, 0.0]).law1


@pytest.mark.parametrize("m", [2, 8, 80, 400])
def test_consistent_shift_follows_the_fitting_count(m):
    law1 = _law1()
    rows = np.zeros((m, 2))
    fitted = ConsistentShift(law1, SHIFT).fit(rows, None, np.random.default_rng(0))
    X = fitted.sample(20_000, np.random.default_rng(1))
    want = np.array([1.0, 0.0]) + SHIFT / math.sqrt(math.log(m))
    # the sample mean against the closed form, at 4 Monte Carlo SEs (unit variances)
    assert np.all(np.abs(X.mean(axis=0) - want) < 4 / math.sqrt(20_000))
    np.testing.assert_allclose(np.cov(X.T), np.eye(2), atol=0.05)


def test_consistent_shift_at_n1_is_the_curve_studys_oracle():
    law1 = _law1()
    n1 = 100
    rows = np.random.default_rng(2).normal(size=(n1, 2))
    got = ConsistentShift(law1, SHIFT).fit(rows, None, None).sample(50, np.random.default_rng(3))
    oracle = Oracle(law1.shifted(SHIFT * (1.0 / math.sqrt(math.log(n1)))))
    want = oracle.fit(rows, None, None).sample(50, np.random.default_rng(3))
    np.testing.assert_array_equal(got, want)


def test_consistent_shift_refuses_bad_input():
    law1 = _law1()
    with pytest.raises(ValueError, match="shift"):
        ConsistentShift(law1, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="shift"):
        ConsistentShift(law1, [np.nan, 0.0])
    with pytest.raises(ValueError):
        ConsistentShift(law1, SHIFT).fit(np.zeros((1, 2)), None, None)  # log 1 = 0


def _run(n1: int, reps: int = 2, gammas: str = "[0.0,1.0,2.0,3.0,4.0,5.0]"):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "study=asym_consistent_vtss",
                f"design.n1={n1}",
                f"design.reps={reps}",
                f"design.gammas={gammas}",
                "selection.gammas=[0.0,1.0,2.0]",
                "selection.cv=2",
                "selection.n_boot=19",
            ],
        )
    return validate(OmegaConf.to_container(cfg, resolve=True))


@pytest.fixture(scope="module")
def cell():
    return build_vtss_cell(_run(40))


def test_theory_gamma_is_the_aligned_closed_form(cell):
    pop, design = cell.population, cell.cell.design
    synthetic = synthetic_moments(pop, cell.cell.generator, design.n1, np.random.default_rng(0), n0=design.n0)
    c = Theory(pop, synthetic, design.n0, design.n1).optimal_sizes(4.0).alignment_c
    assert 0 < c < 1
    assert cell.gamma_star == pytest.approx(1 / (1 - c), rel=1e-9)


def test_theory_and_curve_rows_are_recomputed_fits(cell):
    rows = vtss_replication(cell, 1)
    X, y = draw_replication(cell.cell, 1)
    design, pop = cell.cell.design, cell.population
    theta = fit_glm(X, y, prefix_weights(design), model=cell.cell.model).theta
    curve = rows[rows["method"] == "curve"]
    np.testing.assert_allclose(curve["param_error"], np.linalg.norm(theta - pop.theta_star, axis=1), rtol=1e-10)
    theory = rows[rows["method"] == "theory"].iloc[0]
    n_star = int(np.rint(cell.gamma_star * (design.n0 - design.n1)))
    assert theory["n_tilde"] == n_star and theory["gamma"] == cell.gamma_star
    real = design.n0 + design.n1
    w = np.r_[np.ones(real), np.arange(len(y) - real) < n_star].astype(float)
    theta_star_fit = fit_glm(X, y, w[None], model=cell.cell.model).theta[0]
    assert theory["test_loss"] == pytest.approx(float(pop.risk_bal(theta_star_fit)), rel=1e-9)
    assert theory["param_error"] == pytest.approx(np.linalg.norm(theta_star_fit - pop.theta_star), rel=1e-9)
    tg = rows[rows["method"] == "tg_vtss"].iloc[0]
    assert tg["candidate_max"] >= tg["gamma"]


def test_gamma_star_beyond_the_curve_is_an_error_row():
    vc = build_vtss_cell(_run(40, gammas="[0.0,1.0,2.0]"))  # gamma* = 4.8 at n1 = 40
    theory = vtss_replication(vc, 0).set_index("method").loc["theory"]
    assert "extend design.gammas" in theory["error"] and math.isnan(theory["test_loss"])


def test_no_theory_arm_where_gamma_star_does_not_exist():
    # n1 = 10: the synthetic mean overshoots (c > 1), no positive size reduces the bias
    vc = build_vtss_cell(_run(10))
    assert vc.gamma_star is None
    assert "theory" not in set(vtss_replication(vc, 0)["method"])


def test_summary_bands_and_the_sweep_table(cell):
    rows = pd.concat([vtss_replication(cell, r) for r in range(2)], ignore_index=True)
    summary = summarise_vtss(cell, rows)
    theory = summary["methods"]["theory"]
    losses = rows.loc[rows["method"] == "theory", "test_loss"].to_numpy()
    np.testing.assert_allclose(theory["test_loss_band"], np.quantile(losses, [0.025, 0.975]))
    for name in ("tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated"):
        sub = rows[rows["method"] == name]
        assert summary["methods"][name]["grid_excludes_gamma_star"] == int(
            (sub["candidate_max"] < cell.gamma_star).sum()
        )
    base = {"study": "s", "dgp": "d", "generator": "g", "model": "m", "n0": 800, "reps": 2, "status": "ok"}
    cells = [{**base, **summary, "n1": 40}, {**base, **summary, "n1": 80, "gamma_star": None}]
    del cells[1]["methods"]["theory"]
    text = sweep_report(cells)
    assert "| 40 | 800 | 2 |" in text and "| 80 | 800 | 2 | — |" in text
    assert text.count("theory") == 0 and "γ*" in text
    fig, section = STUDY.sweep(cells)
    assert fig is not None and section == text
    assert STUDY.sweep(cells[:1]) == (None, "")


def test_a_job_written_before_a_column_existed_still_replicates():
    regenerated = pd.DataFrame({"replication": [0, 0], "test_loss": [0.5, 0.25], "param_error": [0.1, 0.2]})
    stored = regenerated[["replication", "test_loss"]].copy()
    stored.attrs["file_columns"] = ["replication", "test_loss"]  # the old file had no param_error
    assert same_rows(regenerated, stored)
    changed = stored.copy()
    changed.loc[1, "test_loss"] = 0.25 + 1e-16 * 4
    changed.attrs["file_columns"] = stored.attrs["file_columns"]
    assert not same_rows(regenerated, changed)
    # a column the stored file has must still be regenerated
    stored.attrs["file_columns"] = ["replication", "test_loss", "gamma"]
    stored["gamma"] = [1.0, 2.0]
    assert not same_rows(regenerated, stored)


def test_gqs_folds_beyond_n1_is_refused():
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=["study=asym_consistent_vtss", "design.n1=10", "selection.gqs_folds=11"])
    with pytest.raises(ConfigError, match=r"selection\.gqs_folds"):
        validate(OmegaConf.to_container(cfg, resolve=True))
