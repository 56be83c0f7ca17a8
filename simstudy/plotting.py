"""Figures: simulated curves with Monte Carlo bands, the theory's curves and optimal sizes laid
over them, in the paper's notation (gamma, n~, n1). Every function takes plain summaries
(dicts / DataFrames as written by the jobs) and returns a matplotlib Figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import NullLocator, PercentFormatter  # noqa: E402

from simstudy.jobfiles import temporary_sibling  # noqa: E402

SIM = "#1f4e79"
THEORY = "#c0392b"
REFINED = "#e67e22"
POPULATION = "#7f8c8d"


def save(fig, path_stem: Path) -> list[Path]:
    """Write PNG and PDF beside each other, byte-identical for the same figure; returns the two
    paths."""
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        tmp = temporary_sibling(path)
        # no creation date in the PDF, so a rerun writes the same bytes
        metadata = {"CreationDate": None} if ext == "pdf" else None
        try:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext, metadata=metadata)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        out.append(path)
    plt.close(fig)
    return out


def _curve_panel(ax, s: dict, *, title: str | None = None, legend: bool = True, log: bool = False):
    """One cell: simulated mean excess +- 1.96 MCSE, predicted and population curves, gamma*."""
    g = np.asarray(s["gammas"])
    mean, mcse = np.asarray(s["excess_mean"]), np.asarray(s["excess_mcse"])
    ax.fill_between(g, mean - 1.96 * mcse, mean + 1.96 * mcse, color=SIM, alpha=0.2, lw=0)
    ax.plot(g, mean, "o-", color=SIM, ms=3, lw=1.2, label="simulated mean (±1.96 MCSE)")
    if s.get("theory_grid") is not None:
        ax.plot(
            s["theory_grid"]["gammas"],
            s["theory_grid"]["theory_excess"],
            "-",
            color=THEORY,
            lw=1.2,
            label="first-order prediction",
        )
    else:
        ax.plot(g, s["theory_excess"], "-", color=THEORY, lw=1.2, label="first-order prediction")
    if s.get("theory_excess_refined") is not None:
        # known on the simulation's grid only (each point solves every generator fit's limit)
        ax.plot(g, s["theory_excess_refined"], "-.", color=REFINED, lw=1.2, marker="x", ms=3, label=_refined_label(s))
    ax.plot(g, s["population_excess"], "--", color=POPULATION, lw=1, label="population limit (bias only)")
    star = s.get("gamma_star_theory_total")
    if star is not None and np.isfinite(star):
        ax.axvline(star, color=THEORY, ls=":", lw=1, label=f"predicted γ* = {star:.2f}")
    emp, ci = s.get("gamma_star_empirical"), s.get("gamma_star_empirical_ci")
    if emp is not None:
        ax.axvspan(ci[0], ci[1], color=SIM, alpha=0.08)
        ax.axvline(emp, color=SIM, ls=":", lw=1, label=f"empirical γ* = {emp:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]")
    ax.axvline(1.0, color="k", lw=0.5, alpha=0.4)
    positive = mean[mean > 0]
    if log or (positive.size and positive.max() / positive.min() > 100):
        # the optimum sits orders of magnitude below gamma = 0's excess under asymmetry
        ax.set_yscale("log")
    ax.set_xlabel("γ = ñ / (n0 − n1)")
    ax.set_ylabel("excess balanced risk E(θ̂)")
    if title:
        ax.set_title(title, fontsize=9)
    if legend:
        ax.legend(fontsize=7, frameon=False)
    secondary = ax.secondary_xaxis(
        "top", functions=(lambda x: x * s["n0"] - x * s["n1"], lambda n: n / (s["n0"] - s["n1"]))
    )
    secondary.set_xlabel("ñ", fontsize=8)
    secondary.tick_params(labelsize=7)


def _refined_label(s: dict) -> str:
    identical = (s.get("theory_refined_note") or "").startswith("identical")
    return "refined = first order (squared loss)" if identical else "refined (exact bias per generator fit)"


def _verdict_text(v: dict | None) -> str:
    if v is None:
        return ""
    worst = v.get("largest_relative_error")
    size = "" if worst is None else f", largest {worst['value']:+.1%} at γ = {worst['gamma']:g}"
    return f"{v['label']} (max |z| {v['max_abs_z']:.2f} vs {v['critical_z']:.2f}{size})"


def _residual_panel(ax, s: dict):
    """Relative error of each prediction, simulated / predicted - 1, with its 95% interval
    (the verdict's ``relative_error``), one marker series per prediction."""
    g = np.asarray(s["gammas"], dtype=float)
    span = (g.max() - g.min()) or 1.0
    series = [("first order", THEORY, s.get("verdict"), -0.006)]
    if s.get("verdict_refined") is not None:
        series.append(("refined", REFINED, s["verdict_refined"], 0.006))
    for _, colour, v, nudge in series:
        value = np.array([np.nan if x is None else x for x in v["relative_error"]], dtype=float)
        ci = np.array([[np.nan if x is None else x for x in pair] for pair in v["relative_error_ci"]], dtype=float)
        # nudged sideways so that two series at one gamma stay apart
        ax.errorbar(
            g + nudge * span,
            value,
            yerr=[value - ci[:, 0], ci[:, 1] - value],
            fmt="o",
            ms=2.5,
            lw=0.8,
            capsize=1.5,
            color=colour,
        )
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_title("\n".join(f"{name}: {_verdict_text(v)}" for name, _, v, _ in series), fontsize=7, loc="left")
    ax.set_xlabel("γ = ñ / (n0 − n1)")
    ax.set_ylabel("simulated / predicted − 1\n(95% CI)", fontsize=7)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(labelsize=7)


def cell_figure(summary: dict):
    """One design cell: excess (with the relative error of the predictions under it) and
    parameter error against gamma, with the theory overlay."""
    fig = plt.figure(figsize=(10, 5.4))
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 1.3))
    ax = fig.add_subplot(grid[0, 0])
    rx = fig.add_subplot(grid[1, 0], sharex=ax)
    bx = fig.add_subplot(grid[:, 1])
    _curve_panel(ax, summary)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelbottom=False)
    _residual_panel(rx, summary)
    g = np.asarray(summary["gammas"])
    pm, pe = np.asarray(summary["param_error_rms"]), np.asarray(summary["param_error_rms_mcse"])
    bx.fill_between(g, pm - 1.96 * pe, pm + 1.96 * pe, color=SIM, alpha=0.2, lw=0)
    bx.plot(g, pm, "o-", color=SIM, ms=3, lw=1.2, label="simulated mean (±1.96 MCSE)")
    if summary.get("param_error_theory") is not None:
        bx.plot(g, summary["param_error_theory"], "-", color=THEORY, lw=1.2, label="first-order prediction")
    bx.set_xlabel("γ = ñ / (n0 − n1)")
    bx.set_ylabel("RMS parameter error (E‖θ̂ − θ*‖²)^½")
    bx.legend(fontsize=7, frameon=False)
    fig.suptitle(
        f"{summary['study']}: {summary['dgp']}, generator {summary['generator']}, {summary['model']}, "
        f"n0 = {summary['n0']}, n1 = {summary['n1']}, R = {summary['reps']} ({summary['regime']})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def varying_columns(cells: pd.DataFrame) -> list[str]:
    """The ``cell.*`` columns of a sweep's finished cells that every cell has and that differ
    between cells (a generator's own options, present only for that generator, follow from the
    generator), with ``cell.generator`` last so that generators become the panel columns."""
    ok = cells[cells["status"] == "ok"]
    keys = [c for c in ok.columns if c.startswith("cell.") and ok[c].notna().all() and ok[c].nunique() > 1]
    return sorted(keys, key=lambda k: k == "cell.generator")


def _facet_curves(data: pd.DataFrame, color=None, stars: dict | None = None, **kwargs):
    """One facet of ``curve_grid``: a cell's simulated mean excess +- 1.96 MCSE, its predicted
    and population curves, and the predicted and empirical gamma* (from the cell table)."""
    ax = plt.gca()
    data = data.sort_values("gamma")
    g, mean, mcse = data["gamma"], data["excess_mean"], data["excess_mcse"]
    ax.fill_between(g, mean - 1.96 * mcse, mean + 1.96 * mcse, color=SIM, alpha=0.2, lw=0)
    ax.plot(g, mean, "o-", color=SIM, ms=3, lw=1.2, label="simulated mean (±1.96 MCSE)")
    ax.plot(g, data["theory_excess"], "-", color=THEORY, lw=1.2, label="first-order prediction")
    if data["theory_excess_refined"].notna().any():
        ax.plot(g, data["theory_excess_refined"], "-.", color=REFINED, lw=1.2, label="refined prediction")
    ax.plot(g, data["population_excess"], "--", color=POPULATION, lw=1, label="population limit (bias only)")
    cell = (stars or {}).get(data["job_dir"].iloc[0])
    if cell is not None:
        if pd.notna(cell["gamma_star_theory_total"]):
            ax.axvline(cell["gamma_star_theory_total"], color=THEORY, ls=":", lw=1, label="predicted γ*")
        if pd.notna(cell["gamma_star_empirical"]):
            ax.axvspan(cell["gamma_star_empirical_ci_low"], cell["gamma_star_empirical_ci_high"], color=SIM, alpha=0.08)
            ax.axvline(cell["gamma_star_empirical"], color=SIM, ls=":", lw=1, label="empirical γ* (95% CI)")
    ax.axvline(1.0, color="k", lw=0.5, alpha=0.4)
    positive = mean[mean > 0]
    if positive.size and positive.max() / positive.min() > 100:
        # the optimum sits orders of magnitude below gamma = 0's excess under asymmetry
        ax.set_yscale("log")


def curve_grid(cells: pd.DataFrame, curves: pd.DataFrame):
    """A sweep's cells as a seaborn facet grid of curves.parquet (one panel per cell, rows and
    columns the two cell descriptors that vary most, ``varying_columns``), each panel as
    ``_facet_curves`` draws it.

    Redraw from a sweep's tables::

        cells = pd.read_parquet("multirun/ls_symmetric/cells.parquet")
        curves = pd.read_parquet("multirun/ls_symmetric/curves.parquet")
        plotting.curve_grid(cells, curves)
    """
    import seaborn as sns  # loaded with the first sweep figure: it brings scipy.stats (see LAZY_ALLOWED)

    ok = cells[cells["status"] == "ok"]
    varying = varying_columns(cells)
    row = varying[0] if len(varying) > 1 else None
    col = varying[-1] if varying else None
    data = curves[curves["job_dir"].isin(ok["job_dir"])]
    stars = {r["job_dir"]: r for _, r in ok.iterrows()}
    grid = sns.FacetGrid(
        data, row=row, col=col, sharey=False, sharex=True, height=2.9, aspect=1.25, margin_titles=True, despine=False
    )
    grid.map_dataframe(_facet_curves, stars=stars)
    grid.set_axis_labels("γ = ñ / (n0 − n1)", "excess balanced risk")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}", size=8)
    handles, labels = grid.axes.flat[0].get_legend_handles_labels()
    grid.figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    grid.figure.tight_layout(rect=(0, 0.05, 1, 1))
    return grid.figure


def rates_table(cells: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Studies 3-4 in long form: per cell (n1) and choice of size (no augmentation, full
    balancing, the grid point nearest the predicted gamma*), the simulated mean and MCSE and the
    first-order prediction of the excess and of the RMS parameter error."""
    ok = cells[cells["status"] == "ok"]
    rows = []
    for _, cell in ok.iterrows():
        data = curves[curves["job_dir"] == cell["job_dir"]].sort_values("gamma")
        star = cell.get("gamma_star_theory")
        star = cell["gamma_star_theory_total"] if pd.isna(star) else star
        for choice, target in (
            ("no augmentation (γ = 0)", 0.0),
            ("full balancing (γ = 1)", 1.0),
            ("predicted γ*", star),
        ):
            at = data.iloc[int(np.argmin(np.abs(data["gamma"].to_numpy() - target)))]
            for measure, mean, mcse, theory in (
                ("excess balanced risk", "excess_mean", "excess_mcse", "theory_excess"),
                ("RMS parameter error", "param_error_rms", "param_error_rms_mcse", "param_error_theory"),
            ):
                rows.append(
                    {
                        "n1": cell["n1"],
                        "choice": choice,
                        "measure": measure,
                        "mean": at[mean],
                        "mcse": at[mcse],
                        "theory": at[theory],
                    }
                )
    return pd.DataFrame(rows)


def _facet_rates(data: pd.DataFrame, color=None, label=None, **kwargs):
    ax = plt.gca()
    data = data.sort_values("n1")
    n1, mean, theory = data["n1"].to_numpy(float), data["mean"].to_numpy(float), data["theory"].to_numpy(float)
    ok = (mean > 0) & (theory > 0)

    def slope(y):
        return np.polyfit(np.log(n1[ok]), np.log(y[ok]), 1)[0] if ok.sum() > 1 else math.nan

    ax.errorbar(
        n1,
        mean,
        yerr=1.96 * data["mcse"],
        fmt="o-",
        ms=4,
        lw=1,
        capsize=2,
        color=color,
        label=f"{label}: slope {slope(mean):.2f} (theory {slope(theory):.2f})",
    )
    ax.plot(n1, theory, "--", color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")


def rates_figure(cells: pd.DataFrame, curves: pd.DataFrame):
    """Studies 3-4: excess and RMS parameter error against n1 (log-log), one facet per measure,
    one colour per choice of size (``rates_table``), with the first-order predictions dashed and
    the fitted slopes in the legend."""
    import seaborn as sns  # loaded with the first sweep figure: it brings scipy.stats (see LAZY_ALLOWED)

    table = rates_table(cells, curves)
    grid = sns.FacetGrid(table, col="measure", hue="choice", sharey=False, height=4, aspect=1.25, despine=False)
    grid.map_dataframe(_facet_rates)
    grid.set_axis_labels("n1 (κ = n0/n1 fixed)", "")
    grid.set_titles(col_template="{col_name}")
    for ax in grid.axes.flat:
        ax.legend(fontsize=7, frameon=False)
    study = cells["study"].dropna().iloc[0] if "study" in cells else ""
    grid.figure.suptitle(f"{study}: dashed = first-order prediction, bars = ±1.96 MCSE", fontsize=9)
    grid.figure.tight_layout()
    return grid.figure


def alignment_figure(cells: pd.DataFrame):
    """Study 5: predicted against empirical gamma* over (r, phi), and curve agreement (each cell's
    max |z| over its critical value, a seaborn heatmap of the cell table's verdict columns)."""
    import seaborn as sns  # loaded with the first sweep figure: it brings scipy.stats (see LAZY_ALLOWED)

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2))
    t = cells[cells["status"] == "ok"].copy()
    t["φ (degrees)"] = t["cell.angle_deg"]
    t["low"] = t["gamma_star_empirical"] - t["gamma_star_empirical_ci_low"]
    t["high"] = t["gamma_star_empirical_ci_high"] - t["gamma_star_empirical"]
    palette = sns.color_palette("viridis", t["φ (degrees)"].nunique())
    for colour, (phi, sub) in zip(palette, t.groupby("φ (degrees)")):
        ax.errorbar(
            sub["gamma_star_theory_total"],
            sub["gamma_star_empirical"],
            yerr=[sub["low"], sub["high"]],
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label=f"φ = {phi:g}°",
        )
    top = np.nanmax(t[["gamma_star_theory_total", "gamma_star_empirical_ci_high"]].to_numpy(dtype=float))
    ax.plot([0, top], [0, top], "k-", lw=0.5)
    ax.set_xlabel("predicted γ* (argmin of the predicted total curve)")
    ax.set_ylabel("empirical γ* (95% bootstrap CI)")
    ax.legend(fontsize=7, frameon=False)
    # each cell's max |z| against its own critical value: above 1 the curve leaves the band
    # an undetermined verdict (too few replications) has no meaningful ratio
    determined = t["verdict"].isin(["agree", "disagree"])
    t["band_ratio"] = (t["max_abs_z"] / t["critical_z"]).where(determined)
    pivot = t.pivot_table(
        index="cell.magnitude", columns="cell.angle_deg", values="band_ratio", aggfunc="max", dropna=False
    )
    pivot = pivot.sort_index(ascending=False)
    if pivot.notna().any().any():
        sns.heatmap(
            pivot, ax=bx, cmap="magma_r", annot=True, fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"shrink": 0.8}
        )
    else:
        bx.text(0.5, 0.5, "every verdict undetermined\n(too few replications)", ha="center", va="center")
        bx.set_xticks([])
        bx.set_yticks([])
    bx.set_xlabel("mismatch angle φ to g (degrees)")
    bx.set_ylabel("mismatch magnitude r = ‖ψ‖")
    bx.set_title("max over γ of |z| / critical z of the family-wise band (> 1: outside)", fontsize=9)
    fig.tight_layout()
    return fig


def sweep_figure(figure: str, cells: pd.DataFrame, curves: pd.DataFrame):
    """A curve sweep's figure from its two tidy tables (cells.parquet, curves.parquet):
    ``figure`` is the sweep's ``study.figure`` (curve, rates or alignment); a sweep of one cell
    draws that cell's curves. None when no cell finished."""
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        return None
    if figure == "rates" and len(ok) > 1:
        return rates_figure(cells, curves)
    if figure == "alignment":
        return alignment_figure(cells)
    return curve_grid(cells, curves)


METHOD_COLOURS = {
    "vtss": "#d35400",
    "tg_vtss": "#27ae60",
    "tg_vtss_calibrated": "#16a085",
    "tg_vtss_reference": "#7dcea0",
    "reweighting": "#8e44ad",
    "cost_sensitive": "#7f8c8d",
    "raw": "#2c3e50",
    "balanced": "#1f4e79",
}
METHOD_LABELS = {
    "no_augmentation": "no augmentation",
    "full_balancing": "full balancing",
    "oracle_best": "oracle-best size",
    "vtss": "VTSS",
    "tg_vtss": "TG-VTSS",
    "tg_vtss_calibrated": "TG-VTSS (calibrated rules)",
    "tg_vtss_reference": "TG-VTSS (authors' reference variant)",
    "reweighting": "reweighting",
    "cost_sensitive": "cost-sensitive",
    "raw": "raw (γ = 0)",
    "balanced": "balanced (γ = 1)",
}


def _vtss_panel(ax, summary: dict, legend: bool):
    n = np.asarray(summary["n_tilde"], dtype=float)
    mean, sd = np.asarray(summary["curve_mean"], dtype=float), np.asarray(summary["curve_sd"], dtype=float)
    ax.fill_between(n, mean - sd, mean + sd, color=SIM, alpha=0.15, lw=0)
    ax.plot(n, mean, "o-", color=SIM, ms=3, lw=1.2, label="augmented fit: mean ± 1 SD")
    gap = summary["n0"] - summary["n1"]
    ax.axvline(gap, color="k", lw=0.8, ls="--", label=f"full balancing (ñ = {gap})")
    methods = summary["methods"]
    best = methods["oracle_best"]
    ax.plot(
        best["gamma"] * gap,
        best["test_loss"]["mean"],
        "*",
        color=THEORY,
        ms=11,
        label=f"oracle-best size (γ = {best['gamma']:.2f})",
    )
    for name in ("vtss", "tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated"):
        m = methods.get(name)
        if m is None or m["n_tilde"]["mean"] is None:
            continue
        ax.errorbar(
            m["n_tilde"]["mean"],
            m["test_loss"]["mean"],
            xerr=m["n_tilde"]["sd"] or 0.0,
            fmt="s",
            color=METHOD_COLOURS[name],
            ms=6,
            capsize=3,
            label=f"{METHOD_LABELS[name]}: γ̂ = {m['gamma']['mean']:.2f} ± {m['gamma']['sd'] or 0:.2f} (SD)",
        )
    for name in ("reweighting", "cost_sensitive"):
        value = methods[name]["test_loss"]["mean"]
        if value is not None:
            ax.axhline(value, color=METHOD_COLOURS[name], lw=1, ls=":", label=METHOD_LABELS[name])
    ax.set_xlabel("ñ (synthetic minority points)")
    ax.set_ylabel("balanced test log-loss" + (" (exact)" if summary["scoring"] == "exact" else ""))
    secondary = ax.secondary_xaxis("top", functions=(lambda x: x / gap, lambda g: g * gap))
    secondary.set_xlabel("γ = ñ / (n0 − n1)", fontsize=8)
    if legend:
        ax.legend(fontsize=7, frameon=False)


def vtss_figure(summary: dict):
    """Study 6: balanced test log-loss against ñ (mean ± 1 SD over replications), full balancing
    marked, VTSS and TG-VTSS at (mean ñ chosen, mean test loss) with their SD of ñ as horizontal
    error bars, the reweighting baselines as horizontal lines. Left the whole grid, right a zoom
    on γ within [γ_oracle − 0.6, γ_oracle + 0.8], where the selections fall."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.4))
    _vtss_panel(ax, summary, legend=False)
    _vtss_panel(bx, summary, legend=True)
    gap = summary["n0"] - summary["n1"]
    g = np.asarray(summary["gammas"], dtype=float)
    best = summary["methods"]["oracle_best"]["gamma"]
    window = (g >= best - 0.6) & (g <= best + 0.8)
    mean, sd = np.asarray(summary["curve_mean"], dtype=float), np.asarray(summary["curve_sd"], dtype=float)
    values = [mean[window] - sd[window], mean[window] + sd[window]]
    values += [
        [summary["methods"][name]["test_loss"]["mean"]]
        for name in ("oracle_best", "vtss", "tg_vtss")
        if summary["methods"][name]["test_loss"]["mean"] is not None
    ]
    low, high = min(np.min(v) for v in values), max(np.max(v) for v in values)
    pad = 0.05 * (high - low)
    bx.set_xlim(max(0.0, best - 0.6) * gap, (best + 0.8) * gap)
    bx.set_ylim(low - pad, high + pad)
    bx.set_title("near the optimum", fontsize=8)
    fig.suptitle(
        f"{summary['study']}: {summary['dgp']}, {summary['generator']}, {summary['model']}, "
        f"n0 = {summary['n0']}, n1 = {summary['n1']}, R = {summary['reps']}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


SWEEP_METHODS = ("full_balancing", "vtss", "tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated", "theory")
"""The arms of a study-6 sweep over n1 (AUTHORS_DESIGNS.md A), in drawing order."""

BRANCH_COLOURS = {"symmetry": "#95a5a6", "low_gqs": "#27ae60", "high_gqs": "#c0392b"}


def vtss_sweep_figure(summaries: list[dict]):
    """A study-6 sweep over n1 (AUTHORS_DESIGNS.md A): the exact excess balanced risk and the
    parameter error ||theta_hat - theta*|| of each arm against n1 (log-log; mean with the
    empirical 2.5% / 97.5% band over replications), and each TG-VTSS variant's branch shares
    per n1 (stacked bars, one bar per variant)."""
    cells = sorted(summaries, key=lambda s: s["n1"])
    n1 = np.array([s["n1"] for s in cells], dtype=float)
    colours = {**METHOD_COLOURS, "full_balancing": SIM, "theory": THEORY}
    labels = {**METHOD_LABELS, "theory": "theory's γ*"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, key, title in (
        (axes[0], "test_loss", "excess balanced risk"),
        (axes[1], "param_error", "parameter error ‖θ̂ − θ*‖"),
    ):
        for name in SWEEP_METHODS:
            # an arm may be absent from some cells (the theory's gamma* does not always exist)
            have = [i for i, s in enumerate(cells) if s["methods"].get(name, {}).get(key, {}).get("mean") is not None]
            if not have:
                continue
            entries = [cells[i]["methods"][name] for i in have]
            shift = np.array([cells[i]["risk_star"] if key == "test_loss" else 0.0 for i in have])
            mean = np.array([e[key]["mean"] for e in entries]) - shift
            band = np.array([e[f"{key}_band"] for e in entries], dtype=float) - shift[:, None]
            ax.fill_between(n1[have], band[:, 0], band[:, 1], color=colours[name], alpha=0.12, lw=0)
            ax.plot(n1[have], mean, "o-", color=colours[name], ms=3, lw=1.2, label=labels[name])
        ax.set_yscale("log")
        _n1_axis(ax, n1)
        ax.set_title(f"{title} (mean, 2.5-97.5% band)", fontsize=9)
    axes[0].legend(fontsize=7)
    variants = [m for m in SWEEP_METHODS if m.startswith("tg_") and all(m in s["methods"] for s in cells)]
    width = 0.8 / max(len(variants), 1)
    for v, name in enumerate(variants):
        bottom = np.zeros(len(cells))
        for branch, colour in BRANCH_COLOURS.items():
            share = np.array([s["methods"][name]["branches"].get(branch, 0) / s["reps"] for s in cells])
            x = np.arange(len(cells)) + (v - (len(variants) - 1) / 2) * width
            axes[2].bar(
                x,
                share,
                width * 0.95,
                bottom=bottom,
                color=colour,
                edgecolor="white",
                lw=0.5,
                label=branch if v == 0 else None,
            )
            bottom += share
    axes[2].set_xticks(np.arange(len(cells)), [str(s["n1"]) for s in cells])
    axes[2].set_xlabel("n1 (bars: " + ", ".join(labels[m] for m in variants) + ")", fontsize=7)
    axes[2].set_ylabel("share of replications")
    axes[2].set_title("TG-VTSS branch shares", fontsize=9)
    axes[2].legend(fontsize=7)
    first = cells[0]
    fig.suptitle(
        f"{first['study']}: {first['dgp']}, {first['generator']}, {first['model']}, "
        f"n0 = {round(first['n0'] / first['n1'])} n1, R = {first['reps']}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _real_data_band(summary: dict, mean, half_width, low, high):
    """(lower, upper, words) of study 7's band: mean ± 1.96 SE, or the splits' 2.5% / 97.5%
    quantiles when the summary's ``data.bands`` is "quantile"; NaN where a number is missing."""

    def numbers(values, missing):
        return np.asarray([missing if v is None else v for v in values], dtype=float)

    mean = numbers(mean, np.nan)
    if (summary.get("data") or {}).get("bands") == "quantile":
        return numbers(low, np.nan), numbers(high, np.nan), "2.5–97.5% of splits"
    hw = numbers(half_width, 0.0)
    return mean - hw, mean + hw, "± 1.96 SE"


def real_data_curves_figure(summary: dict):
    """Study 7: balanced test log-loss against γ (mean over splits with the band of the
    summary's ``data.bands``: ± 1.96 SE, or the splits' 2.5% / 97.5% quantiles), one panel per
    dataset × generator, with VTSS's and TG-VTSS's mean choice (± 1 SD of γ̂) at their mean
    loss, and the raw and reweighted fits as horizontal lines. The x range is the curve's grid."""
    curves = summary["curves"]
    datasets = list(dict.fromkeys(c["dataset"] for c in curves))
    generators = list(dict.fromkeys(c["generator"] for c in curves))
    fig, axes = plt.subplots(
        len(datasets), len(generators), squeeze=False, figsize=(3.2 * len(generators), 2.6 * len(datasets))
    )
    methods = {(m["dataset"], m["generator"], m["method"]): m for m in summary["methods"]}
    for c in curves:
        ax = axes[datasets.index(c["dataset"]), generators.index(c["generator"])]
        g = np.asarray(c["gammas"])
        mean = np.asarray([np.nan if v is None else v for v in c["mean"]], dtype=float)
        low, high, words = _real_data_band(summary, c["mean"], c["half_width"], c.get("q025"), c.get("q975"))
        ax.fill_between(g, low, high, color=SIM, alpha=0.2, lw=0)
        ax.plot(g, mean, "o-", color=SIM, ms=3, lw=1.1, label=f"augmented fit ({words})")
        for name in ("vtss", "tg_vtss"):
            m = methods.get((c["dataset"], c["generator"], name))
            if m and m["gamma"]["mean"] is not None:
                ax.errorbar(
                    m["gamma"]["mean"],
                    m["balanced_log_loss"]["mean"],
                    xerr=m["gamma"]["sd"] or 0.0,
                    fmt="s",
                    color=METHOD_COLOURS[name],
                    ms=4,
                    capsize=2,
                    label=METHOD_LABELS[name],
                )
        for name in ("raw", "reweighting"):
            m = methods.get((c["dataset"], "none", name))
            if m and m["balanced_log_loss"]["mean"] is not None:
                ax.axhline(
                    m["balanced_log_loss"]["mean"],
                    color=METHOD_COLOURS[name],
                    lw=0.8,
                    ls=":",
                    label=METHOD_LABELS[name],
                )
        ax.axvline(1.0, color="k", lw=0.5, alpha=0.4)
        # a selection off the grid (TG-VTSS's plug-in window can leave it) is clipped, not
        # allowed to squash the curve
        span = g.max() - g.min()
        ax.set_xlim(g.min() - 0.05 * span, g.max() + 0.05 * span)
        title = f"{c['dataset']} · {c['generator']}"
        # a generator with options (SMOTE(cap_neighbors=True, k_neighbors=10)) gets its own line
        ax.set_title(title if len(title) <= 40 else f"{c['dataset']}\n{c['generator']}", fontsize=8)
        ax.set_xlabel("γ", fontsize=8)
        ax.set_ylabel("balanced log-loss", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def real_data_methods_figure(summary: dict):
    """Study 7: every method's balanced test log-loss (mean over splits with the band of the
    summary's ``data.bands``), one panel per dataset, in the summary's order."""
    entries = summary["methods"]
    datasets = list(dict.fromkeys(m["dataset"] for m in entries))
    # the row labels carry the generator's options (e.g. SMOTE(cap_neighbors=True, ...)):
    # each panel widens with the longest one, so tight_layout can fit them
    longest = max((len(m["generator"]) for m in entries), default=0)
    width = max(3.6, 2.2 + 0.055 * (42 + longest))
    fig, axes = plt.subplots(1, len(datasets), squeeze=False, figsize=(width * len(datasets), 4.2))
    for ax, dataset in zip(axes[0], datasets):
        rows = [m for m in entries if m["dataset"] == dataset and m["balanced_log_loss"]["mean"] is not None]
        y = np.arange(len(rows))
        for i, m in enumerate(rows):
            loss = m["balanced_log_loss"]
            low, high, words = _real_data_band(
                summary, [loss["mean"]], [loss["half_width"]], [loss.get("q025")], [loss.get("q975")]
            )
            ax.errorbar(
                loss["mean"],
                i,
                # a mean outside its quantile band (a far outlier) draws no bar on that side
                xerr=np.clip(np.nan_to_num([loss["mean"] - low, high - loss["mean"]]), 0.0, None),
                fmt="o",
                ms=4,
                capsize=2,
                color=METHOD_COLOURS.get(m["method"], SIM),
            )
        ax.set_yticks(
            y,
            [
                METHOD_LABELS.get(m["method"], m["method"])
                + ("" if m["generator"] == "none" else f" · {m['generator']}")
                for m in rows
            ],
            fontsize=6,
        )
        ax.invert_yaxis()
        ax.set_xlabel("balanced test log-loss", fontsize=8)
        ax.set_title(f"{dataset} ({words})" if rows else dataset, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def _psi_plane(ax, table: pd.DataFrame, g_norm: float, title: str):
    """Axes of the plane of psi: along g (x) and across it (y), g and the line c = 1 marked."""
    top = float(table["magnitude"].max())
    ax.set_aspect("equal")
    ax.set_xlim(-top * 1.02, top * 1.02)
    ax.set_ylim(0.0, top * 1.02)
    ax.annotate("", xy=(min(g_norm, top) * 0.5, 0.0), xytext=(0.0, 0.0), arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.text(min(g_norm, top) * 0.25, 0.01 * top, "g", fontsize=9, va="bottom")
    if g_norm <= top:
        ax.axvline(g_norm, color="k", lw=0.8, ls="--")
        ax.text(g_norm, top * 0.5, " c = 1", fontsize=7, va="center")
    ax.set_xlabel("ψ along g  (r cos φ)")
    ax.set_ylabel("ψ across g  (r sin φ)")
    ax.set_title(title, fontsize=9)


def _grid(table: pd.DataFrame, column: str):
    wide = table.pivot(index="magnitude", columns="angle_deg", values=column)
    r, a = np.meshgrid(wide.index.to_numpy(float), np.radians(wide.columns.to_numpy(float)), indexing="ij")
    return r * np.cos(a), r * np.sin(a), np.ma.masked_invalid(wide.to_numpy(dtype=float))


def alignment_map_figure(table: pd.DataFrame, summary: dict, overlay=None, spread=None):
    """The theory's alignment map (``simstudy.alignment``) on the plane of psi, four panels with
    shared scales: the total-risk gamma* (diverging at 1, full balancing; the region c >= 1
    where no finite size cancels the bias hatched; points no mean shift reaches left blank),
    the gain of tuning the size as a share of the excess at full balancing, the floor (bias
    left at the bias-optimal size) as a share of that excess, and the M-geometry angle minus
    the Euclidean one. ``overlay`` (a sweep's cell table) adds the Monte Carlo argmins on the
    gamma* panel in the same colours, and a panel of predicted against empirical gamma* with
    the 95% CIs; cells whose CI misses the prediction are ringed in red. ``spread`` (the
    direction table) adds gamma* over random directions at fixed angles (d > 2)."""
    rows = 2 + int(overlay is not None or spread is not None)
    fig, grid = plt.subplots(rows, 2, figsize=(12, 4.6 * rows), squeeze=False)
    axes = grid.ravel()
    g_norm = summary["g_norm"]
    gamma_max = summary["explore"]["gamma_max"]
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=gamma_max)
    X, Y, Z = _grid(table, "gamma_star_total")
    ax = axes[0]
    filled = ax.contourf(X, Y, Z, levels=np.linspace(0.0, gamma_max, 25), cmap="RdBu_r", norm=norm, extend="both")
    lines = ax.contour(X, Y, Z, levels=[0.5, 1.0, 1.5, 2.0, 3.0], colors="k", linewidths=[0.5, 1.4, 0.5, 0.5, 0.5])
    ax.clabel(lines, fmt=lambda v: f"γ* = {v:g}", fontsize=7)
    _, _, B = _grid(table, "gamma_star_bias")
    no_cancel = np.ma.masked_invalid(np.where(np.isnan(B.filled(np.nan)) & ~np.ma.getmaskarray(Z), 1.0, np.nan))
    if no_cancel.count():
        ax.contourf(X, Y, no_cancel, levels=[0.5, 1.5], colors="none", hatches=["///"])
    ax.text(
        0.98,
        0.96,
        "aligned: add more\nthan balancing (γ* > 1)",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=7,
        color="#7b241c",
    )
    ax.text(
        0.02, 0.96, "anti-aligned: add\nless (γ* < 1)", transform=ax.transAxes, va="top", fontsize=7, color="#1b4f72"
    )
    fig.colorbar(filled, ax=ax, shrink=0.8, label="total-risk γ*")
    _psi_plane(ax, table, g_norm, "predicted γ* (total risk); hatched: c ≥ 1, no size cancels the bias")
    if overlay is not None:
        ok = overlay[overlay["status"] == "ok"]
        r, a = ok["cell.magnitude"].to_numpy(float), np.radians(ok["cell.angle_deg"].to_numpy(float))
        emp = ok["gamma_star_empirical"].to_numpy(float)
        low, high = (
            ok["gamma_star_empirical_ci_low"].to_numpy(float),
            ok["gamma_star_empirical_ci_high"].to_numpy(float),
        )
        pred = ok["gamma_star_theory_total"].to_numpy(float)
        # the argmin lives on the simulated grid: as the verdict, ask whether the grid point
        # nearest the prediction is in the CI
        miss = ~ok["gamma_star_in_ci"].to_numpy(bool)
        curve_off = (ok["verdict"] == "disagree").to_numpy()
        ax.scatter(
            r * np.cos(a), r * np.sin(a), c=emp, cmap="RdBu_r", norm=norm, s=28, edgecolors="k", lw=0.6, zorder=3
        )
        ax.scatter(
            (r * np.cos(a))[miss], (r * np.sin(a))[miss], s=90, facecolors="none", edgecolors="red", lw=1.4, zorder=4
        )
        ax.scatter(
            (r * np.cos(a))[curve_off], (r * np.sin(a))[curve_off], s=14, marker="x", color="k", lw=0.8, zorder=5
        )
        cx = axes[4]
        cx.errorbar(
            pred[~miss],
            emp[~miss],
            yerr=[emp[~miss] - low[~miss], high[~miss] - emp[~miss]],
            fmt="o",
            ms=3,
            color=SIM,
            capsize=2,
            lw=0.8,
            label="CI holds the grid point nearest the prediction",
        )
        cx.errorbar(
            pred[miss],
            emp[miss],
            yerr=[emp[miss] - low[miss], high[miss] - emp[miss]],
            fmt="o",
            ms=4,
            color="red",
            capsize=2,
            lw=0.8,
            label="CI misses it",
        )
        top = np.nanmax(np.r_[pred, high])
        cx.plot([0, top], [0, top], "k-", lw=0.5)
        cx.set_xlabel("predicted γ* (the cell's theory, total risk)")
        cx.set_ylabel("empirical γ* (argmin, 95% bootstrap CI)")
        held = f"{int((~miss).sum())} of {miss.size}"
        cx.set_title(f"Monte Carlo: {held} CIs hold the (grid-rounded) prediction", fontsize=9)
        cx.legend(fontsize=7, frameon=False)
        cx.text(
            0.02,
            0.8,
            "on the γ* map: dots are the Monte Carlo argmins (same colours),\n"
            "a red ring a CI that misses the prediction, × a curve verdict that disagrees",
            transform=cx.transAxes,
            fontsize=7,
            va="top",
        )
    for ax, column, title, cmap, label in (
        (axes[1], "relative_gain", "gain of tuning: (E(1) − E(γ*)) / E(1)", "viridis", "share of the excess at γ = 1"),
        (axes[2], "floor_share", "floor: bias left at the bias-optimal size / E(1)", "magma_r", "share"),
    ):
        frame = table.assign(floor_share=table["floor"] / table["excess_full"])
        X, Y, Z = _grid(frame, column)
        filled = ax.contourf(X, Y, Z, levels=np.linspace(0.0, 1.0, 21), cmap=cmap, extend="max")
        lines = ax.contour(X, Y, Z, levels=[0.05, 0.25, 0.5, 0.75], colors="w", linewidths=0.6)
        ax.clabel(lines, fmt=lambda v: f"{v:.0%}", fontsize=7)
        fig.colorbar(filled, ax=ax, shrink=0.8, label=label)
        _psi_plane(ax, table, g_norm, title)
    X, Y, Z = _grid(table.assign(diff=table["angle_m_deg"] - table["angle_deg"]), "diff")
    span = max(1.0, float(np.nanmax(np.abs(Z.filled(np.nan)))))
    filled = axes[3].contourf(X, Y, Z, levels=np.linspace(-span, span, 21), cmap="PuOr")
    fig.colorbar(filled, ax=axes[3], shrink=0.8, label="degrees")
    _psi_plane(axes[3], table, g_norm, "angle in the M-geometry − Euclidean angle")
    if rows == 3 and (overlay is None or spread is None):
        axes[5].set_visible(False)
    if spread is not None:
        sx = axes[5 if overlay is not None else 4]
        stats = spread.groupby("angle_deg")["gamma_star_total"].agg(["min", "median", "max"])
        sx.errorbar(
            stats.index,
            stats["median"],
            yerr=[stats["median"] - stats["min"], stats["max"] - stats["median"]],
            fmt="o-",
            color=SIM,
            capsize=3,
            ms=4,
        )
        sx.axhline(1.0, color="k", lw=0.6, ls="--")
        sx.set_xlabel("angle φ to g (degrees)")
        sx.set_ylabel("total-risk γ* (median, min–max)")
        sx.set_title(f"{spread['direction'].nunique()} random directions at fixed angle", fontsize=9)
    fig.suptitle(
        f"{summary['study']}: {summary['model']}, n0 = {summary['n0']}, n1 = {summary['n1']}, ‖g‖ = {g_norm:.3g}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _qq_panel(ax, s: dict, title: str):
    qq = s["qq"]
    ax.plot(qq["chi2"], qq["statistic"], ".", color=SIM, ms=3)
    top = max(max(qq["chi2"]), max(v for v in qq["statistic"] if v is not None))
    ax.plot([0, top], [0, top], color=THEORY, lw=1)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(f"χ²_{s['df']} quantile", fontsize=8)
    ax.set_ylabel("T quantile", fontsize=8)


def _gqs_rates_text(s: dict) -> str:
    a, b, c = s["biased_threshold"], s["biased_calibrated"], s.get("biased_pool")
    text = (
        f"called biased: GQS > {s['selection']['gqs_threshold']:g} {a['rate']:.3f} ± {a['mcse']:.3f}; "
        f"calibrated (level {s['selection']['gqs_level']:g}) {b['rate']:.3f} ± {b['mcse']:.3f}"
    )
    return text + (f";\npool-calibrated {c['rate']:.3f} ± {c['mcse']:.3f}" if c else "")


def _reported(cells: list[dict], key: str) -> tuple[np.ndarray, list[dict]]:
    """The cells whose summary has the rate ``key`` (mask) and those rates: a rule or reference
    a cell did not compute (no bootstraps, or a summary older than it) leaves only its point out."""
    ran = np.array([bool(s.get(key)) for s in cells], dtype=bool)
    return ran, [s[key] for s in cells if s.get(key)]


GQS_RULES = (
    ("biased_threshold", "o--", "GQS > threshold", SIM),
    ("biased_calibrated", "s-", "calibrated", "#16a085"),
    ("biased_pool", "^-", "pool-calibrated", "#8e44ad"),
)
"""The GQS decision's rules in a diagnostics summary: key, marker, the figures' label, colour."""


SYMMETRY_REFERENCES = (
    ("reject_chi2", "χ²"),
    ("reject_bootstrap", "bootstrap"),
    ("reject_tilted", "tilted"),
    ("reject_tilted_double", "double tilted"),
)
"""The symmetry test's references in a diagnostics summary: its key and the figures' label."""


def diagnostics_cell_figure(summary: dict):
    """One cell of ``study.kind: diagnostics``: the Q-Q plot of T against chi2_p with both
    rejection rates (symmetry), or the GQS decisions' rates (gqs)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    if summary["measure"] == "symmetry":
        _qq_panel(ax, summary, "")
        chi = summary["reject_chi2"]
        lines = [f"rejection at {summary['alpha']:g}: χ² {chi['rate']:.3f} ± {chi['mcse']:.3f}"]
        for key, label in SYMMETRY_REFERENCES[1:]:
            if summary.get(key):
                lines.append(f"{label} {summary[key]['rate']:.3f} ± {summary[key]['mcse']:.3f}")
        lines.append(f"first-order prediction {summary['population']['power']:.3f}")
        ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7)
    else:
        ax.axis("off")
        ax.text(
            0.02,
            0.6,
            f"mean GQS {summary['gqs_mean']:.2f} ± {summary['gqs_mcse']:.2f}\n" + _gqs_rates_text(summary),
            fontsize=8,
        )
    fig.suptitle(
        f"{summary['study']}: {summary['dgp']}, {summary['model']}, n0 = {summary['n0']}, n1 = {summary['n1']}, "
        f"R = {summary['reps']}",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def _cell_value(s: dict, key: str, default=None):
    return s.get("cell", {}).get(key, default)


def diagnostics_sweep_figure(summaries: list[dict]):
    """A sweep of ``study.kind: diagnostics``.

    Symmetry, null cells (every cell's population noncentrality 0): rejection rate at alpha
    against n1, one panel per n0 / n1 ratio, chi2 (open circles), bootstrap (squares), tilted
    bootstrap (triangles) and double tilted bootstrap (diamonds) by dimension with ±1.96 MCSE bars and the band
    [0.035, 0.065]; below, the Q-Q plots of the largest and smallest n1 per panel. Symmetry,
    local alternatives: power against h with the first-order noncentral chi2 prediction, one
    panel per (n1, n0 / n1). GQS: the rate of "biased" calls
    by generator and n1 for both rules."""
    measure = summaries[0]["measure"]
    if measure == "gqs":
        return _gqs_sweep_figure(summaries)
    if not all(s["population"]["null"] for s in summaries):
        return _power_figure(summaries)
    return _size_figure(summaries)


def _n1_axis(ax, n1):
    """A log n1 axis with a tick at each of the design's own n1 values, labelled from the
    largest down wherever a label clears the last one labelled (widths estimated from the
    font size and the panel's width: 400 and 500 overlapped on a 10-500 axis)."""
    values = sorted(set(float(v) for v in n1))
    ax.set_xscale("log")
    ax.set_xticks(values)  # the view now spans every tick
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = np.log10(ax.get_xlim())
    inches = ax.get_position().width * ax.figure.get_figwidth()
    points = ax.xaxis.get_ticklabels()[0].get_fontsize()

    def half_width(text):
        # a digit is about 0.6 em wide; half an em of space between labels
        return (0.6 * len(text) + 0.5) * points / 72 / inches * (hi - lo) / 2

    labels, last = [], None
    for v in reversed(values):
        text = str(int(v)) if v.is_integer() else f"{v:g}"  # 1234567, not 1.23457e+06
        keep = last is None or last[0] - np.log10(v) >= last[1] + half_width(text)
        labels.append(text if keep else "")
        last = (np.log10(v), half_width(text)) if keep else last
    ax.set_xticks(values, labels[::-1])
    ax.set_xlabel("n1")


def _ratio(s: dict) -> int:
    return round(s["n0"] / s["n1"])


def _size_figure(summaries):
    ratios = sorted({_ratio(s) for s in summaries})
    fig, axes = plt.subplots(2, len(ratios), figsize=(4.6 * len(ratios), 7.2), squeeze=False)
    palette = plt.get_cmap("viridis")
    dfs = sorted({s["df"] for s in summaries})
    for j, ratio in enumerate(ratios):
        ax = axes[0, j]
        cells = [s for s in summaries if _ratio(s) == ratio]
        alpha = summaries[0]["alpha"]
        ax.axhspan(0.7 * alpha, 1.3 * alpha, color="0.9", lw=0)  # studies.diagnostics.size_band
        ax.axhline(alpha, color=THEORY, lw=0.8, ls="--")
        for k, df in enumerate(dfs):
            mine = sorted((s for s in cells if s["df"] == df), key=lambda s: s["n1"])
            if not mine:
                continue
            colour = palette(k / max(1, len(dfs) - 1) * 0.85)
            n1 = np.array([s["n1"] for s in mine], dtype=float) * (1 + 0.03 * (k - len(dfs) / 2))
            for (key, label), marker, line in zip(SYMMETRY_REFERENCES, "os^D", ("--", "-", ":", "-.")):
                ran, entries = _reported(mine, key)
                if not entries:
                    continue
                rate = np.array([e["rate"] for e in entries])
                err = 1.96 * np.array([e["mcse"] for e in entries])
                ax.errorbar(
                    n1[ran],
                    rate,
                    yerr=[np.minimum(err, rate), err],  # a rate is never below 0
                    fmt=marker + line,
                    color=colour,
                    mfc="white" if key == "reject_chi2" else colour,
                    ms=5,
                    capsize=2,
                    lw=1,
                    label=f"p = {df}, {label}",
                )
        _n1_axis(ax, [s["n1"] for s in cells])
        ax.set_ylabel(f"rejection rate at {summaries[0]['alpha']:g}")
        ax.set_title(f"n0 = {ratio} n1", fontsize=9)
        ax.legend(fontsize=6, frameon=False, ncol=2)
        bx = axes[1, j]
        for k, df in enumerate(dfs):
            mine = sorted((s for s in cells if s["df"] == df), key=lambda s: s["n1"])
            if not mine:
                continue
            colour = palette(k / max(1, len(dfs) - 1) * 0.85)
            for s, style in ((mine[0], ":"), (mine[-1], "-")):
                qq = s["qq"]
                bx.plot(
                    np.asarray(qq["chi2"]) / df,
                    np.asarray(qq["statistic"]) / df,
                    style,
                    color=colour,
                    lw=1.1,
                    label=f"p = {df}, n1 = {s['n1']}",
                )
        top = max(max(np.asarray(s["qq"]["statistic"], dtype=float)) / s["df"] for s in cells)
        bx.plot([0, top], [0, top], color=THEORY, lw=0.8)
        bx.set_xlabel("χ²_p quantile / p")
        bx.set_ylabel("T quantile / p")
        bx.set_title("Q-Q against χ²_p (scaled by p)", fontsize=9)
        bx.legend(fontsize=6, frameon=False)
    fig.suptitle(
        f"{summaries[0]['study']}: size of the local-symmetry Wald test, R = {summaries[0]['reps']}", fontsize=10
    )
    fig.tight_layout()
    return fig


def _power_figure(summaries):
    n1s, ratios = sorted({s["n1"] for s in summaries}), sorted({_ratio(s) for s in summaries})
    fig, axes = plt.subplots(len(ratios), len(n1s), figsize=(3.6 * len(n1s), 3.3 * len(ratios)), squeeze=False)
    for (n1, ratio), ax in zip(((n1, r) for r in ratios for n1 in n1s), axes.ravel()):
        mine = sorted(
            (s for s in summaries if (s["n1"], _ratio(s)) == (n1, ratio)), key=lambda s: _cell_value(s, "h", 0)
        )
        if not mine:  # a sweep without this (n1, ratio) pair
            ax.axis("off")
            continue
        h = np.array([_cell_value(s, "h", 0.0) for s in mine], dtype=float)
        ax.plot(
            h, [s["population"]["power"] for s in mine], "-", color=THEORY, lw=1.2, label="noncentral χ² prediction"
        )
        for (key, label), marker, colour in zip(SYMMETRY_REFERENCES, "os^D", (SIM, "#16a085", "#8e44ad", "#d35400")):
            ran, entries = _reported(mine, key)
            if entries:
                ax.errorbar(
                    h[ran],
                    [e["rate"] for e in entries],
                    yerr=[1.96 * e["mcse"] for e in entries],
                    fmt=marker,
                    color=colour,
                    ms=4,
                    capsize=2,
                    label=label,
                )
        ax.axhline(mine[0]["alpha"], color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("h  (g1 = h / √n_eff)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"n1 = {n1}, n0 = {ratio} n1", fontsize=9)
    for row in axes:
        row[0].set_ylabel("rejection rate")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(
        f"{summaries[0]['study']}: local power of the Wald test, p = {summaries[0]['df']}, R = {summaries[0]['reps']}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _gqs_sweep_figure(summaries):
    generators = sorted({s.get("generator_label", s["generator"]) for s in summaries})
    fig, axes = plt.subplots(1, len(generators), figsize=(4.2 * len(generators), 3.6), squeeze=False)
    for ax, name in zip(axes[0], generators):
        mine = sorted((s for s in summaries if s.get("generator_label", s["generator"]) == name), key=lambda s: s["n1"])
        n1 = np.array([s["n1"] for s in mine], dtype=float)
        for key, marker, label, colour in GQS_RULES:
            ran, entries = _reported(mine, key)
            if not entries:
                continue
            ax.errorbar(
                n1[ran],
                [e["rate"] for e in entries],
                yerr=[1.96 * e["mcse"] for e in entries],
                fmt=marker,
                color=colour,
                ms=4,
                capsize=2,
                lw=1,
                label=label,
            )
        ax.axhline(mine[0]["selection"]["gqs_level"], color="0.6", lw=0.8, ls="--")
        ax.set_ylim(-0.02, 1.02)
        _n1_axis(ax, n1)
        ax.set_title(f"{name}\n({mine[0]['dgp']})", fontsize=7)
    axes[0, 0].set_ylabel('share called "biased"')
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{summaries[0]['study']}: the GQS decision, R = {summaries[0]['reps']}", fontsize=10)
    fig.tight_layout()
    return fig
