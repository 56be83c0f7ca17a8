"""Aggregate a sweep: read the job summaries of the sweep's cells, write one table of cells and
one of curves (parquet and CSV), draw the study's figure and a markdown report of every cell's
verdict. Used by the Hydra callback after a multirun, and from the command line:

    python -m simstudy.aggregate multirun/<study> [--figures-dir figures] [--all]

re-aggregates the sweep last run into the directory (its multirun.yaml); with --all, every job
summary found below the directory instead. It exits 1 when a cell failed, is missing or is
unreadable, and 2 when the directory holds no sweep.

A sweep directory may hold cells of earlier sweeps of the same study (another grid, another R).
Given the sweep's ``planned`` cells (their config hashes, from its multirun.yaml), the aggregate
covers exactly those: a planned cell without a finished summary of its own config is reported
missing, and cells of other sweeps are left out. Unreadable summaries, and summaries whose
listed files are missing or changed, are reported, never trusted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from omegaconf import OmegaConf

from simstudy import plotting
from simstudy.composition import compose, config_hash, expand_jobs, without_hydra
from simstudy.config import ConfigError, validate
from simstudy.engine import MIN_VERDICT_REPLICATIONS
from simstudy.jobfiles import SUMMARY, atomic_write_text, copy_figures, output_problem, read_summary, write_table
from simstudy.schema import older_config_hashes
from simstudy.studies import study_of
from simstudy.studies.job import cell_descriptor


class PlannedCell(NamedTuple):
    """One job of a sweep: its overrides, config hash, cell descriptor, the hashes its job
    carries when older code finished it (``schema.older_config_hashes``) and its study kind."""

    overrides: tuple[str, ...]
    config_hash: str
    cell: dict
    older_hashes: tuple[str, ...] = ()
    kind: str = "curve"


CURVE_FIELDS = (
    "excess_mean",
    "excess_mcse",
    "param_error_mean",
    "param_error_mcse",
    "param_error_rms",
    "param_error_rms_mcse",
    "param_error_theory",
    "population_excess",
    "theory_excess",
    "theory_excess_se",
    "theory_excess_refined",
    "theory_excess_refined_se",
)


def _order(summary: dict) -> tuple:
    """Sort key: the cell's descriptors, numbers by value."""
    return tuple(
        (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
        for _, v in sorted(summary.get("cell", {}).items())
    )


def read_summaries(sweep_dir: Path, planned: list[PlannedCell] | None = None) -> list[dict]:
    """The job summaries below sweep_dir, ordered by cell.

    Without ``planned``: every summary; an unreadable one as ``status: unreadable``, and a
    finished one whose listed files are missing or changed as ``status: missing``. With it: one
    entry per planned cell, its own summary when one with its config hash exists (failed and
    damaged ones included), else ``status: missing``; an unreadable summary stands for the one
    planned cell its folder's name fits (Hydra names a job's folder after its overrides), else
    it is added as such."""
    sweep_dir = Path(sweep_dir)
    found, unreadable = [], []
    for path in sorted(sweep_dir.glob(f"**/{SUMMARY}")):
        job_dir = str(path.parent.relative_to(sweep_dir))
        summary = read_summary(path)
        if summary is None or summary.get("status") not in ("ok", "failed"):
            what = "is truncated or not JSON" if summary is None else "is not a finished or failed job's"
            unreadable.append(
                {
                    "status": "unreadable",
                    "job_dir": job_dir,
                    "cell": {},
                    "error": f"{job_dir}/{SUMMARY} {what}; rerun the sweep",
                }
            )
            continue
        problem = output_problem(path.parent, summary) if summary["status"] == "ok" else None
        if problem is not None:
            summary = {
                "status": "missing",
                "cell": summary.get("cell", {}),
                "kind": summary.get("kind", "curve"),
                "config_hash": summary.get("config_hash"),
                "error": f"{problem}; rerun the sweep",
            }
        found.append({**summary, "job_dir": job_dir})
    if planned is not None:
        by_hash = {}
        for summary in found:
            by_hash.setdefault(summary.get("config_hash"), summary)
        found = [by_hash.get(cell.config_hash) or _missing_cell(cell, by_hash) for cell in planned]
        unreadable = _place_unreadable(unreadable, found)
    return sorted(found + unreadable, key=lambda s: (_order(s), s["job_dir"]))


def _place_unreadable(unreadable: list[dict], entries: list[dict]) -> list[dict]:
    """Put each unreadable summary in place of the one missing planned cell whose overrides
    include every part of its folder's name; returns the unreadable summaries left over."""
    left = []
    for bad in unreadable:
        parts = set(bad["job_dir"].replace("/", ",").split(","))
        fits = [e for e in entries if e.get("planned") and parts <= set(e["planned"])]
        if len(fits) == 1:
            fits[0].update(status="unreadable", job_dir=bad["job_dir"], error=bad["error"], planned=())
        else:
            left.append(bad)
    for entry in entries:
        entry.pop("planned", None)
    return left


def _missing_cell(cell: PlannedCell, by_hash: dict) -> dict:
    older = next((by_hash[digest] for digest in cell.older_hashes if digest in by_hash), None)
    return {
        "status": "missing",
        "job_dir": ",".join(cell.overrides) if older is None else older["job_dir"],
        "cell": cell.cell,
        "kind": cell.kind,
        "config_hash": cell.config_hash,
        "planned": cell.overrides if older is None else (),
        "error": "no summary for this config (not run yet, killed, or unreadable); rerun the sweep"
        if older is None
        else "finished by an older simstudy, without the outputs this one writes; rerun the sweep",
    }


def _verdict_fields(v: dict | None, suffix: str) -> dict:
    """A verdict's scalars as table columns (all None when the cell has no such verdict)."""
    v = v or {}
    worst = v.get("largest_relative_error") or {}
    low, high = worst.get("ci") or (None, None)
    fields = {
        "verdict": v.get("label"),
        "verdict_alpha": v.get("alpha"),
        "max_abs_z": v.get("max_abs_z"),
        "critical_z": v.get("critical_z"),
        "curve_p_value": v.get("curve_p_value"),
        "gamma_star_in_ci": v.get("gamma_star_in_ci"),
        "largest_relative_error": worst.get("value"),
        "largest_relative_error_gamma": worst.get("gamma"),
        "largest_relative_error_ci_low": low,
        "largest_relative_error_ci_high": high,
    }
    return {f"{key}{suffix}": value for key, value in fields.items()}


def cell_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per job: its cell descriptors and scalar results."""
    rows = []
    for s in summaries:
        row = {"job_dir": s["job_dir"], "status": s.get("status", "ok"), "error": s.get("error")}
        row.update({f"cell.{k}": v for k, v in s.get("cell", {}).items()})
        for key, value in s.items():
            if key in ("cell", "versions", "verdict", "theory_grid") or isinstance(value, (list, dict)):
                continue
            row[key] = value
        if s.get("status", "ok") == "ok" and "verdict" in s:
            low, high = s["gamma_star_empirical_ci"]
            row.update(gamma_star_empirical_ci_low=low, gamma_star_empirical_ci_high=high)
            row.update(_verdict_fields(s["verdict"], ""))
            row.update(_verdict_fields(s.get("verdict_refined"), "_refined"))
        rows.append(row)
    return pd.DataFrame(rows)


def curve_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per (job, gamma) with the simulated and predicted curves of the curve studies
    (other kinds keep their curves in their own job files)."""
    frames = []
    for s in summaries:
        if s.get("status", "ok") != "ok" or s.get("kind", "curve") != "curve":
            continue
        frame = pd.DataFrame({"gamma": s["gammas"], "n_tilde": s["n_tilde"], **{k: s[k] for k in CURVE_FIELDS}})
        frame.insert(0, "job_dir", s["job_dir"])
        for k, v in s.get("cell", {}).items():
            frame[f"cell.{k}"] = v
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v))


def _relative(row, suffix: str = "") -> str:
    """The largest relative error as '+18% [12%, 24%] at γ = 2'."""
    value = row.get(f"largest_relative_error{suffix}")
    if _missing(value):
        return "—"
    low, high = row.get(f"largest_relative_error_ci_low{suffix}"), row.get(f"largest_relative_error_ci_high{suffix}")
    ci = "" if _missing(low) or _missing(high) else f" [{low:+.0%}, {high:+.0%}]"
    return f"{value:+.1%}{ci} at γ = {row[f'largest_relative_error_gamma{suffix}']:g}"


def _refined(row) -> str:
    label = row.get("verdict_refined")
    if _missing(label):
        return "—"
    return f"{label} ({row['max_abs_z_refined']:.2f} / {row['critical_z_refined']:.2f}; {_relative(row, '_refined')})"


def report(summaries: list[dict], cells: pd.DataFrame) -> str:
    """Markdown: one line per cell with its verdict and the size of the disagreement (THEORY.md
    section 7's reporting)."""
    lines = ["# Sweep report", ""]
    failed = cells[cells["status"] != "ok"] if len(cells) else cells
    ok = cells[cells["status"] == "ok"] if len(cells) else cells
    lines.append(f"{len(cells)} cells: {_counts(cells)}.")
    if len(ok):
        agree = int((ok["verdict"] == "agree").sum())
        undetermined = int((ok["verdict"] == "undetermined").sum())
        alphas = sorted({float(a) for a in ok["verdict_alpha"].dropna()}) if "verdict_alpha" in ok else []
        level = ", ".join(f"{a:g}" for a in alphas) or "?"
        lines.append(
            f"Theory and simulation agree in {agree} of {len(ok)} finished cells at family-wise level "
            f"α = {level}: the whole predicted curve inside the simulated curve's simultaneous band at "
            f"level α/2 (max-|t| bootstrap over replications, the theory's own Monte Carlo error included; "
            f"max |z| is compared with the cell's critical z), and the grid point nearest the predicted γ* "
            f"inside the (1 − α/2) bootstrap CI of the empirical argmin. An exact prediction reads "
            f'"disagree" with probability at most α.'
        )
        if undetermined:
            lines.append(
                f"{undetermined} cells are undetermined: fewer than {MIN_VERDICT_REPLICATIONS} replications (or a "
                "degenerate bootstrap), too few for a test at the stated level."
            )
        if "verdict_refined" in ok and ok["verdict_refined"].notna().any():
            refined = ok[ok["verdict_refined"].notna()]
            lines.append(
                f"Refined prediction (each generator fit's bias solved exactly, data-dependent generators): "
                f"agrees in {int((refined['verdict_refined'] == 'agree').sum())} of {len(refined)} cells."
            )
    lines += [
        "",
        "| cell | regime | γ* bias-only | γ* total | empirical γ* [95% CI] | max abs z / critical z "
        "| largest relative error [95% CI] | failed fits (non-converged, separated) | verdict "
        "| refined: verdict (max abs z / critical; largest relative error) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = plotting.varying_columns(cells) or ["cell.dgp", "cell.generator", "cell.n1"]
    for _, row in ok.iterrows():
        desc = ", ".join(f"{c[5:]}={row[c]}" for c in shown if c in row and not pd.isna(row[c]))
        fmt = lambda v: "none" if _missing(v) else f"{v:.3g}"  # noqa: E731
        # an undetermined cell's band rests on too few replications to print (critical z ~ 1e8 at R = 3)
        undetermined = _missing(row.get("critical_z")) or row["verdict"] == "undetermined"
        band = "—" if undetermined else f"{row['max_abs_z']:.2f} / {row['critical_z']:.2f}"
        lines.append(
            f"| {desc} | {row['regime']} | {fmt(row['gamma_star_theory'])} | "
            f"{fmt(row['gamma_star_theory_total'])} | {row['gamma_star_empirical']:.3g} "
            f"[{row['gamma_star_empirical_ci_low']:.3g}, {row['gamma_star_empirical_ci_high']:.3g}] | "
            f"{band} | {_relative(row)} | {int(row['n_failed_fits'])} ({int(row['n_nonconverged_fits'])}, "
            f"{int(row['n_separated_fits'])}) | {row['verdict']} | {_refined(row)} |"
        )
    if len(failed):
        lines += ["", "## Failed, missing or unreadable cells", ""]
        lines += [f"- `{row['job_dir']}` ({row['status']}): {row['error']}" for _, row in failed.iterrows()]
    return "\n".join(lines) + "\n"


def _counts(cells: pd.DataFrame) -> str:
    """How many cells finished and failed, and how many are missing or unreadable when any are,
    e.g. "3 finished, 0 failed, 1 missing"."""
    counts = cells["status"].value_counts() if len(cells) else pd.Series(dtype=int)
    parts = [f"{int(counts.get('ok', 0))} finished", f"{int(counts.get('failed', 0))} failed"]
    parts += [f"{int(counts[status])} {status}" for status in ("missing", "unreadable") if counts.get(status, 0)]
    return ", ".join(parts)


def jobs_report(cells: pd.DataFrame, kind: str) -> str:
    """Markdown for a sweep of a study without a theory verdict (every kind but ``curve``: the
    selection studies 6 and 7, a user's study): the cells and their status; each job directory
    holds its own figures, tables and summary.json."""
    lines = [
        "# Sweep report",
        "",
        f"{len(cells)} cells of a {kind} study: each job directory holds "
        "its own figures and summary.json (real data also its table.md); there is no theory verdict.",
        "",
        "| job | status |",
        "|---|---|",
    ]
    lines += [f"| `{row['job_dir']}` | {row['status']} |" for _, row in cells.iterrows()]
    problems = cells[cells["status"] != "ok"]
    if len(problems):
        lines += ["", "## Failed, missing or unreadable cells", ""]
        lines += [f"- `{row['job_dir']}` ({row['status']}): {row['error']}" for _, row in problems.iterrows()]
    return "\n".join(lines) + "\n"


def _kind_sweep(kind: str, summaries: list[dict], cells: pd.DataFrame):
    """A kind without a theory verdict: its own sweep figure and report section when it has
    them (an optional ``sweep(summaries) -> (figure or None, markdown)`` of its Study), after
    the table of jobs."""
    text = jobs_report(cells, kind)
    sweep = getattr(study_of(kind), "sweep", None)
    if sweep is None:
        return None, text
    fig, section = sweep(summaries)
    return fig, text + ("\n## Results\n\n" + section if section else "")


def aggregate(sweep_dir, figures_dir=None, planned: list[PlannedCell] | None = None) -> pd.DataFrame:
    """Combine a sweep directory's job summaries (those of the ``planned`` cells when given, see
    the module docstring); returns the cell table.

    Writes cells.{parquet,csv}, curves.{parquet,csv} and report.md into sweep_dir; for curve
    studies (``kind`` curve) also the sweep figure.{png,pdf} (``study.figure`` says which) and a
    copy of it in figures_dir/<study>.{png,pdf} when given. Other kinds draw their figures per
    job, and a sweep figure when their Study has ``sweep`` (the diagnostics kind).
    """
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / SUMMARY).is_file():
        # its figure and tables are the job's own: aggregating would overwrite them
        raise ValueError(f"{sweep_dir} is a job directory (it has a {SUMMARY}), not a sweep: aggregate its parent")
    summaries = read_summaries(sweep_dir, planned)
    if not summaries:
        raise FileNotFoundError(f"no job {SUMMARY} found under {sweep_dir}")
    cells = cell_table(summaries)
    curves = curve_table(summaries)
    kind = next((s["kind"] for s in summaries if s.get("kind")), "curve")
    figure = next((s["figure"] for s in summaries if s.get("figure")), "curve")
    # everything is drawn before anything is written: a failure leaves the earlier aggregate
    # whole, never new tables beside an old figure and report
    if kind == "curve":
        fig, text = plotting.sweep_figure(figure, cells, curves), report(summaries, cells)
    else:
        fig, text = _kind_sweep(kind, summaries, cells)
    write_table(cells, sweep_dir / "cells")
    write_table(curves, sweep_dir / "curves")
    if fig is not None:
        paths = plotting.save(fig, sweep_dir / "figure")
        if figures_dir is not None:
            copy_figures(paths, figures_dir, next(s["study"] for s in summaries if s.get("study")))
    else:  # no figure for these cells: an earlier sweep's must not pass for theirs
        for ext in ("png", "pdf"):
            (sweep_dir / f"figure.{ext}").unlink(missing_ok=True)
    atomic_write_text(sweep_dir / "report.md", text)
    return cells


def failures(cells: pd.DataFrame) -> int:
    return int((cells["status"] != "ok").sum()) if len(cells) else 0


def planned_cells(params, task_overrides, compose_job) -> list[PlannedCell]:
    """The PlannedCells of a sweep from its sweep-file ``params`` and command-line
    ``task_overrides``; ``compose_job(overrides)`` gives a job's composed config."""
    out = []
    for job in expand_jobs(params, list(task_overrides)).jobs:
        run = validate(without_hydra(compose_job(job)))
        digest, older = config_hash(run), tuple(older_config_hashes(run))
        out.append(PlannedCell(tuple(job), digest, cell_descriptor(run), older, run.kind))
    return out


def aggregate_sweep(sweep_dir: Path, planned, figures_dir=None) -> int:
    """Aggregate a sweep and print one line; returns the number of cells not finished."""
    cells = aggregate(sweep_dir, figures_dir=figures_dir, planned=planned)
    n_failed = failures(cells)
    print(f"simstudy: aggregated {len(cells)} cells into {sweep_dir} ({_counts(cells)})", file=sys.stderr)
    return n_failed


def main(argv: list[str] | None = None) -> int:
    """``python -m simstudy.aggregate`` (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m simstudy.aggregate", description="Re-aggregate a sweep directory (module docstring)."
    )
    parser.add_argument("sweep_dir")
    parser.add_argument("--figures-dir", default=None, help="also copy the figure here")
    parser.add_argument(
        "--all", action="store_true", help="every summary below the directory, not only the last sweep's cells"
    )
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    planned = None
    try:
        if not args.all:
            sweep = OmegaConf.load(sweep_dir / "multirun.yaml")
            hydra_overrides = list(sweep.hydra.overrides.hydra)  # e.g. a user's hydra.searchpath
            planned = planned_cells(
                sweep.hydra.sweeper.params, sweep.hydra.overrides.task, lambda job: compose([*hydra_overrides, *job])
            )
        return 1 if aggregate_sweep(sweep_dir, planned, args.figures_dir) else 0
    except (OSError, ValueError) as err:  # no sweep there, an unreadable multirun.yaml, a config error
        kind = "config error" if isinstance(err, ConfigError) else type(err).__name__
        print(f"aggregate: {sweep_dir}: {kind}: {err}", file=sys.stderr)
        return 2


__all__ = [
    "PlannedCell",
    "aggregate",
    "aggregate_sweep",
    "cell_table",
    "curve_table",
    "failures",
    "planned_cells",
    "read_summaries",
    "report",
]

if __name__ == "__main__":
    sys.exit(main())
