"""The theory's alignment map (simstudy.alignment) and its explorer (simstudy.explore).

Independent references: ``simstudy.theory.Theory`` (the first-order curve by a simultaneous
diagonalisation per fit, the optimal sizes by Brent's method) and the closed forms of THEORY.md
section 3 (aligned psi = c g: gamma* = 1 / (1 - c); c = r cos(phi) / ||g||)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simstudy.alignment import alignment_map, first_order, grid_argmin, mismatch_laws
from simstudy.cell import BuiltCell
from simstudy.composition import job_identity
from simstudy.explore import main as explore_main
from simstudy.explore import overlay_agreement, validate_explore
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.schema import ConfigError
from simstudy.theory import Theory, synthetic_moments

CELLS = [(0.2, 0.0), (0.1, 90.0), (0.4, 135.0), (0.3, 30.0)]


@pytest.fixture(scope="module")
def study5():
    run, _ = job_identity(["study=alignment_map"])
    return run, BuiltCell(run).population


def _theory(population, design, r, phi):
    gen = MismatchGenerator(population, magnitude=r, angle_deg=phi, cov_scale=0.5)
    syn = synthetic_moments(population, gen, design.n1, np.random.default_rng(0), refits=4, n0=design.n0)
    return Theory(population, syn, design.n0, design.n1)


@pytest.mark.parametrize("r, phi", CELLS)
def test_the_maps_curve_is_the_theorys(study5, r, phi):
    run, pop = study5
    d = run.design
    gammas = np.asarray(d.gammas)
    want = _theory(pop, d, r, phi).predict(gammas)
    got = first_order(pop, mismatch_laws(pop, [r], [phi], cov_scale=0.5), d.n0, d.n1, gammas)
    np.testing.assert_allclose(got.excess[0], want.theory_excess, rtol=1e-12)
    np.testing.assert_allclose(got.bias[0], want.bias_term, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got.variance[0], want.variance_term, rtol=1e-12)


@pytest.mark.parametrize("r, phi", CELLS)
def test_the_maps_optimal_sizes_are_the_theorys(study5, r, phi):
    run, pop = study5
    d = run.design
    want = _theory(pop, d, r, phi).optimal_sizes(gamma_max=6.0)
    m = alignment_map(pop, d.n0, d.n1, [r], [phi], cov_scale=0.5, gamma_max=6.0)
    assert m.gamma_star_bias[0, 0] == pytest.approx(want.gamma_star_bias, rel=1e-10)
    # a 601-point grid refined by a parabola against Brent's method
    assert m.gamma_star_total[0, 0] == pytest.approx(want.gamma_star_total, abs=2e-4)
    assert m.alignment_c[0, 0] == pytest.approx(want.alignment_c, rel=1e-12, abs=1e-15)


def test_aligned_mismatch_has_the_closed_form_optimum(study5):
    run, pop = study5
    d = run.design
    r = np.array([0.1, 0.2, 0.4, 0.6])
    m = alignment_map(pop, d.n0, d.n1, r, [0.0], cov_scale=0.5)
    c = r / np.linalg.norm(pop.g)
    np.testing.assert_allclose(m.alignment_c[:, 0], c, rtol=1e-10)
    np.testing.assert_allclose(m.gamma_star_bias[:, 0], 1.0 / (1.0 - c), rtol=1e-9)
    # the bias cancels there: no floor, and tuning gains over full balancing
    np.testing.assert_allclose(m.floor[:, 0], 0.0, atol=1e-12)
    assert np.all(m.gain[:, 0] > 0) and np.all(m.relative_gain[:, 0] <= 1.0)


def test_c_at_least_one_has_no_bias_optimum_and_far_antialignment_is_unreachable(study5):
    run, pop = study5
    d = run.design
    m = alignment_map(pop, d.n0, d.n1, [0.8, 1.0], [0.0, 180.0], cov_scale=0.5)
    assert np.all(m.alignment_c[:, 0] >= 1.0) and np.all(np.isnan(m.gamma_star_bias[:, 0]))
    assert not m.reachable[1, 1] and np.isnan(m.gamma_star_total[1, 1]) and np.isnan(m.gain[1, 1])
    assert m.reachable[:, 0].all()


def test_the_m_angle_equals_the_euclidean_one_along_g(study5):
    run, pop = study5
    d = run.design
    m = alignment_map(pop, d.n0, d.n1, [0.0, 0.3], [0.0, 90.0, 180.0], cov_scale=0.5)
    assert np.all(np.isnan(m.angle_m_deg[0]))  # psi = 0 has no direction
    np.testing.assert_allclose(m.angle_m_deg[1, [0, 2]], [0.0, 180.0], atol=1e-5)
    # H is not isotropic here: a Euclidean-orthogonal psi is not orthogonal in the M-geometry
    assert abs(m.angle_m_deg[1, 1] - 90.0) > 1.0


def test_grid_argmin_refines_a_parabola_exactly():
    grid = np.linspace(0.0, 2.0, 21)
    values = np.array([(grid - 0.7321) ** 2, (grid - 2.5) ** 2, (grid + 1.0) ** 2])
    np.testing.assert_allclose(grid_argmin(grid, values), [0.7321, 2.0, 0.0], atol=1e-12)


def test_symmetry_has_no_alignment_map():
    run, _ = job_identity(["study=ls_symmetric"])
    pop = BuiltCell(run).population
    with pytest.raises(ValueError, match="local asymmetry"):
        alignment_map(pop, run.design.n0, run.design.n1, [0.1], [0.0])


def test_overlay_agreement_counts_by_regime():
    cells = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "failed"],
            "cell.angle_deg": [0.0, 90.0, 180.0, 45.0],
            "gamma_star_theory_total": [1.4, 0.9, 0.6, 1.0],
            "gamma_star_empirical_ci_low": [1.25, 1.0, 0.5, 0.0],
            "gamma_star_empirical_ci_high": [1.5, 1.0, 0.75, 9.0],
            "gamma_star_in_ci": [True, True, False, True],
            "verdict": ["agree", "agree", "disagree", None],
        }
    )
    rows = {r["regime"].split()[0]: r for r in overlay_agreement(cells)}
    assert rows["aligned"] == {
        "regime": "aligned (phi <= 45)",
        "cells": 1,
        "prediction_in_ci": 1,
        "nearest_grid_point_in_ci": 1,
        "verdict_agree": 1,
        "verdict_undetermined": 0,
    }
    assert (rows["oblique"]["cells"], rows["oblique"]["prediction_in_ci"]) == (1, 0)
    assert (rows["anti-aligned"]["prediction_in_ci"], rows["anti-aligned"]["verdict_agree"]) == (1, 0)


@pytest.mark.parametrize(
    "section, key",
    [
        ({"magnitudes": {"num": 1}}, "explore.magnitudes.num"),
        ({"magnitudes": {"start": 0.5, "stop": 0.5}}, "explore.magnitudes.stop"),
        ({"angles": {"num": "many"}}, "explore.angles.num"),
        ({"gamma_max": 1.0}, "explore.gamma_max"),
        ({"directions": {"angles": [0.0, 200.0]}}, "explore.directions.angles"),
        ({"overlay": "/nonexistent"}, "explore.overlay"),
        ({"colour": 1}, "explore.colour"),
    ],
)
def test_bad_explore_values_name_the_key(section, key):
    with pytest.raises(ConfigError) as info:
        validate_explore(section)
    assert info.value.key == key


def _explore(tmp_path, *overrides):
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "simstudy.explore", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_explorer_writes_its_map(tmp_path):
    proc = _explore(
        tmp_path,
        "explore.magnitudes.num=6",
        "explore.angles.num=7",
        "explore.directions.count=2",
        "dgp.mu0=[0.0,0.0,0.0]",
        "dgp.mu1=[1.0,0.0,0.0]",
        "figures_dir=null",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cells"] == 42 and summary["status"] == "ok"
    assert sorted(summary["outputs"]) == [
        "config.yaml",
        "directions.parquet",
        "figure.pdf",
        "figure.png",
        "map.parquet",
    ]
    table = pd.read_parquet(run / "map.parquet")
    assert len(table) == 42 and set(table["angle_deg"]) == set(np.linspace(0.0, 180.0, 7))
    spread = pd.read_parquet(run / "directions.parquet")
    assert len(spread) == 2 * 7


def _explore_here(tmp_path, monkeypatch, *overrides):
    """(exit status, stderr) of ``python -m simstudy.explore`` run in this process."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main sets it for Hydra
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        explore_main([f"hydra.run.dir={tmp_path / 'run'}", *overrides])
    return exit_.value.code, err.getvalue()


@pytest.mark.parametrize(
    "override, key, child",
    [
        ("generator=smote", "generator", True),  # one case as a command in its own process
        ("explore.angles.num=1", "explore.angles.num", False),
        ("+generator.direction=[1.0,0.0]", "generator", False),
        ("dgp=symmetric_mean_shift", "generator", False),  # no angle to g = 0
        ("dgp.d=0", "dgp.d", False),  # Hydra cannot apply it: the preflight names it
        # at p = 2 the directions orthogonal to g are one line: nothing random to draw
        ("explore.directions.count=5", "explore.directions.count", False),
    ],
)
def test_the_explorer_refuses_bad_input_with_one_line(tmp_path, monkeypatch, override, key, child):
    if child:
        proc = _explore(tmp_path, override)
        code, err = proc.returncode, proc.stderr
    else:
        code, err = _explore_here(tmp_path, monkeypatch, override)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert re.match(rf"simstudy: config error: {re.escape(key)}[=:]", err), err
    assert not (tmp_path / "run").exists()
