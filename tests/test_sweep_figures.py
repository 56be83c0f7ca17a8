"""Sweep figures are drawn from the sweep's two tidy tables alone (cells.parquet and
curves.parquet), as README's "Sweeps" shows a user redrawing them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from simstudy import plotting

GAMMAS = np.array([0.0, 0.5, 1.0, 1.5, 2.0])


def _tables(cells: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cells and a curves table of the aggregate's layout, one row per cell / (cell, gamma)."""
    rows, curves = [], []
    for i, desc in enumerate(cells):
        job = f"job{i}"
        star = desc.pop("star", 1.0)
        rows.append(
            {
                "job_dir": job,
                "status": "ok",
                "study": "toy",
                "n1": desc.get("n1", 50),
                "gamma_star_theory": star,
                "gamma_star_theory_total": star,
                "gamma_star_empirical": star,
                "gamma_star_empirical_ci_low": star - 0.5,
                "gamma_star_empirical_ci_high": star + 0.5,
                "max_abs_z": 1.0 + i,
                "critical_z": 3.0,
                "verdict": "agree",
                **{f"cell.{k}": v for k, v in desc.items()},
            }
        )
        excess = 0.01 + (GAMMAS - star) ** 2 / (1 + i)
        curves.append(
            pd.DataFrame(
                {
                    "job_dir": job,
                    "gamma": GAMMAS,
                    "n_tilde": (GAMMAS * 100).astype(int),
                    "excess_mean": excess,
                    "excess_mcse": 0.001 + 0 * excess,
                    "theory_excess": excess * 1.01,
                    "theory_excess_refined": np.nan,
                    "population_excess": excess - 0.01,
                    "param_error_rms": np.sqrt(excess),
                    "param_error_rms_mcse": 0.001 + 0 * excess,
                    "param_error_theory": np.sqrt(excess) * 1.01,
                    **{f"cell.{k}": v for k, v in desc.items()},
                }
            )
        )
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def test_varying_columns_are_the_descriptors_that_differ_generator_last():
    cells, _ = _tables([{"generator": "a", "noise": "x", "seed": 0}, {"generator": "b", "noise": "y", "seed": 0}])
    assert plotting.varying_columns(cells) == ["cell.noise", "cell.generator"]


def test_a_curve_sweep_is_a_facet_grid_of_its_cells():
    cells, curves = _tables(
        [{"generator": g, "noise": n} for g in ("oracle", "smote") for n in ("gaussian", "uniform", "rademacher")]
    )
    fig = plotting.sweep_figure("curve", cells, curves)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 6
    # each panel draws its own cell's simulated curve
    drawn = sorted(round(float(line.get_ydata()[0]), 12) for ax in panels for line in ax.lines[:1])
    assert drawn == sorted(round(float(v), 12) for v in curves.groupby("job_dir")["excess_mean"].first())
    plt.close(fig)


def test_a_rates_sweep_has_one_series_per_choice_of_size():
    cells, curves = _tables([{"n1": n1, "star": 1.5} for n1 in (10, 20, 40)])
    cells["n1"] = [10, 20, 40]
    table = plotting.rates_table(cells, curves)
    assert set(table["choice"]) == {"no augmentation (γ = 0)", "full balancing (γ = 1)", "predicted γ*"}
    at_star = table[(table["choice"] == "predicted γ*") & (table["measure"] == "excess balanced risk")]
    np.testing.assert_allclose(at_star["mean"], 0.01)  # the grid point 1.5 is the curve's minimum
    fig = plotting.sweep_figure("rates", cells, curves)
    assert len(fig.axes) == 2 and all(len(ax.lines) >= 3 for ax in fig.axes)
    plt.close(fig)


def test_an_alignment_sweep_draws_its_band_ratios_as_a_heatmap():
    cells, curves = _tables([{"magnitude": r, "angle_deg": a} for r in (0.1, 0.2) for a in (0.0, 90.0)])
    fig = plotting.sweep_figure("alignment", cells, curves)
    heat = fig.axes[1]
    texts = sorted(float(t.get_text()) for t in heat.texts)
    assert texts == pytest.approx(sorted((1.0 + i) / 3.0 for i in range(4)), abs=0.005)
    plt.close(fig)


def test_no_finished_cell_no_figure():
    cells, curves = _tables([{"generator": "a"}])
    cells["status"] = "failed"
    assert plotting.sweep_figure("curve", cells, curves) is None


def test_an_alignment_sweep_of_undetermined_verdicts_draws_no_ratio():
    cells, curves = _tables([{"magnitude": r, "angle_deg": a} for r in (0.1, 0.2) for a in (0.0, 90.0)])
    cells["verdict"] = "undetermined"
    cells["critical_z"] = 0.0  # R = 2: the band's bootstrap degenerates
    fig = plotting.sweep_figure("alignment", cells, curves)
    assert "undetermined" in " ".join(t.get_text() for t in fig.axes[1].texts)
    plt.close(fig)
