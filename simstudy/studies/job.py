"""The one job layer: a job's metadata (config hash, versions, cell descriptor) and the one
writer every kind of study goes through, which keeps the contract's order: config.yaml, the rows
table, the study's documents, the figures (and their copies in ``figures_dir``), and
summary.json last, listing the other files with their digests (``jobfiles.finish_job``)."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from simstudy import plotting
from simstudy.engine import progress_printer
from simstudy.jobfiles import (
    JobOutputs,
    atomic_write_text,
    copy_figures,
    versions,
    write_parquet,
    write_table,
)
from simstudy.schema import RunConfig, config_hash
from simstudy.studies import study_of


def _scalar(value):
    """A config value as a table cell: scalars as they are, lists and mappings as JSON."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return json.dumps(value, sort_keys=True)


def cell_descriptor(run: RunConfig) -> dict:
    """The facts that tell one cell from another (for tables, panels and reports).

    Parameters
    ----------
    run : RunConfig
        A validated config.

    Returns
    -------
    dict
        The dgp and generator with their options, the sizes, the model, and every other setting
        that changes the numbers (seed, reps, gammas, ridge, theory refits, verdict level), as
        table cells, so that two cells never share a descriptor unless they share a config hash
        (a selection study's sections excepted: one cell per sweep).
    """
    out = {
        "dgp": run.dgp["name"],
        "generator": run.generator["name"],
        "n1": run.design.n1,
        "n0": run.design.n0,
        "family": run.model.family,
        "intercept": run.model.intercept,
        "ridge": run.model.ridge,
        "seed": run.seed,
        "reps": run.design.reps,
        "gammas": _scalar(list(run.design.gammas)),
        "refits": run.theory_refits,
        "alpha": run.verdict_alpha,
    }
    for group, section in (("dgp", run.dgp), ("generator", run.generator)):
        for key, value in section.items():
            if key != "name":  # a plug-in's target under its group's key (simstudy.plugins)
                out.setdefault(f"{group}.{key}" if key.startswith("_") else key, _scalar(value))
    return out


def job_metadata(run: RunConfig) -> dict:
    """The head of every summary.json: study, kind, figure, seed, config hash and cell."""
    return {
        "study": run.study,
        "kind": run.kind,
        "figure": run.figure,
        "seed": run.seed,
        "config_hash": config_hash(run),
        "cell": cell_descriptor(run),
    }


def failure_summary(run: RunConfig, err: Exception) -> dict:
    """The summary.json of a job that raised ``err`` (inside its ``except`` block): status
    ``failed``, the one-line error and the traceback, so that the next run redoes the cell."""
    return {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "traceback": traceback.format_exc(),
        **job_metadata(run),
        "versions": versions(),
    }


def run_job(run: RunConfig, out_dir: Path, resolved_yaml: str) -> dict:
    """Build, run and summarise one job with the study of its ``study.kind`` and write its files
    in the contract's order.

    Parameters
    ----------
    run : RunConfig
        The job's validated config.
    out_dir : Path
        The job's own directory (the only place it writes, apart from the copies of its figures
        in ``run.figures_dir``).
    resolved_yaml : str
        The resolved config, written as config.yaml.

    Returns
    -------
    dict
        The summary written to summary.json.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    study = study_of(run.kind)
    files = JobOutputs(out_dir)
    built = study.build(run)
    label, unit = study.label(built)
    rows = study.run(built, progress_printer(label, unit=unit))
    summary = {"status": "ok", **job_metadata(run), **study.summarise(built, rows)}
    files.add("config.yaml", *(f"replications.{fmt}" for fmt in study.row_tables))
    atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    if study.row_tables == ("parquet",):
        write_parquet(rows, out_dir / "replications.parquet")
    else:
        write_table(rows, out_dir / "replications")
    for name, text in study.documents(summary).items():
        files.add(name)
        atomic_write_text(out_dir / name, text)
    for stem, fig in study.draw(summary).items():
        files.add(f"{stem}.png", f"{stem}.pdf")
        paths = plotting.save(fig, out_dir / stem)
        if run.figures_dir:
            copy_figures(paths, run.figures_dir, run.study if stem == "figure" else f"{run.study}_{stem}")
    summary["versions"] = versions()
    summary["seconds"] = time.perf_counter() - start
    return files.finish(summary)
