"""``python -m simstudy.status``: where a sweep stands, and what a command would run.

Two commands, neither of which writes anything:

* ``python -m simstudy.status <sweep dir>`` lists the cells that the sweep last run there
  planned (its ``multirun.yaml``: ``hydra.sweeper.params`` and ``hydra.overrides.task``, expanded
  as ``composition.expand_jobs`` does for the aggregate) in four states:

  - **done**: the cell's directory holds a finished job of its config (``jobfiles.complete_summary``:
    status ok, the same config hash, every listed file intact);
  - **missing**: no summary there, or one whose files were since damaged or that cannot be read;
  - **failed**: a summary of its config with ``status: failed`` (the error is shown);
  - **stale**: a summary of another config hash: the config changed since the cell ran (an
    edited preset or default, or another value of a key left out of the directory's name), or
    an older simstudy finished it before its kind's outputs grew (``schema.OUTPUT_VERSIONS``).

  Each cell has a cost: the seconds its summary records for a done cell, else the estimate of
  ``simstudy.resources`` (seconds on one core) of what a rerun would take. Exit status 0 when every
  cell is done, 1 otherwise, 2 for bad input.
* ``python -m simstudy.status --plan <overrides>`` (a dry run) takes the arguments of a
  ``python -m simstudy`` command (``-m sweep=alignment_dense design.reps=50``), composes,
  validates and builds each of its jobs as the preflight does (bad input exits 2 with the same
  one line), finds the directory Hydra would give each, and classifies the cells as above: the
  done ones would be skipped, the rest run, with the estimate of their cost. Exit status 0.

A job's directory is found the way Hydra finds it: the job's config is composed with its hydra
node (``hydra.job.override_dirname`` is then computed by Hydra's own config loader, with the
``exclude_keys`` of conf/config.yaml), and ``hydra.sweep.dir`` / ``hydra.sweep.subdir`` (or
``hydra.run.dir`` without ``-m``) are resolved with that node installed as Hydra's runtime
config, as the launcher does. ``--json`` prints the table as JSON on stdout instead.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from simstudy.app import RUN_FLAGS, check_job, one_line, refuse
from simstudy.composition import compose, expand_jobs, fixed_overrides, sweep_jobs, without_hydra
from simstudy.config import ConfigError, RunConfig, validate
from simstudy.jobfiles import SUMMARY, complete_summary, read_summary
from simstudy.resources import estimated_seconds
from simstudy.schema import CONFIG_KEYS, config_hash, older_config_hashes

STATES = ("done", "missing", "failed", "stale")
USAGE = "usage: python -m simstudy.status [--json] <sweep dir> | [--json] --plan <python -m simstudy arguments>"


class CellStatus(NamedTuple):
    """One job of a sweep or a command, and where it stands.

    Attributes
    ----------
    overrides : tuple of str
        The job's overrides.
    job_dir : pathlib.Path
        Its directory (where Hydra runs it).
    config_hash : str
        The hash of its config now.
    state : str
        One of ``STATES``.
    seconds : float or None
        Its cost: recorded (done) or estimated on one core (the others); None when no estimate
        exists (``simstudy.resources.estimated_seconds``: the diagnostics and network kinds, a
        user's kind of study).
    recorded : bool
        Whether ``seconds`` is the job's own record.
    detail : str
        Why a cell is not done ("" for done cells).
    """

    overrides: tuple[str, ...]
    job_dir: Path
    config_hash: str
    state: str
    seconds: float | None
    recorded: bool
    detail: str


class StatusError(ValueError):
    """A sweep directory that cannot be read (no or a broken multirun.yaml)."""


# --------------------------------------------------------------------------------------------
# one cell


def classify(job_dir: Path, config_hash_: str, older: dict | None = None) -> tuple[str, dict | None, str]:
    """Where the job of this config hash stands in job_dir (module docstring).

    Parameters
    ----------
    job_dir : pathlib.Path
        The job's directory.
    config_hash_ : str
        The hash of the job's config now.
    older : dict, optional
        {hash: outputs version} of the same config finished by older code
        (``schema.older_config_hashes``).

    Returns
    -------
    state : str
        One of ``STATES``.
    summary : dict or None
        The summary found in job_dir, when readable.
    detail : str
        Why the cell is not done ("" when it is).
    """
    path = Path(job_dir) / SUMMARY
    if not path.is_file():
        return "missing", None, "not run yet (or killed before it finished)"
    summary = read_summary(path)
    if summary is None:
        return "missing", None, f"{SUMMARY} is truncated or not JSON; a rerun redoes the cell"
    if summary.get("config_hash") in (older or {}):
        version = older[summary["config_hash"]]
        return "stale", summary, f"finished by an older simstudy (outputs version {version}); a rerun redoes the cell"
    if summary.get("config_hash") != config_hash_:
        old = str(summary.get("config_hash"))[:12]
        return "stale", summary, f"its {SUMMARY} is for config {old}: the config changed since the cell ran"
    if summary.get("status") == "failed":
        return "failed", summary, str(summary.get("error", "failed"))
    if complete_summary(job_dir, config_hash_) is None:
        return "missing", summary, f"a file its {SUMMARY} lists is missing or damaged; a rerun redoes the cell"
    return "done", summary, ""


def _flat(section, prefix: str = "") -> dict:
    if not isinstance(section, dict):
        return {prefix: section}
    return {k: v for key, value in section.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def changed_keys(job_dir: Path, run: RunConfig, most: int = 3) -> list[str]:
    """What changed between the config a job ran (its config.yaml) and ``run``, as "key: old ->
    new" for at most ``most`` keys (then "and k more"); empty when config.yaml is unreadable or
    no longer valid, or when the two agree (the change was in simstudy's own defaults)."""
    try:
        ran = validate(OmegaConf.load(job_dir / "config.yaml"))
    except Exception:  # noqa: BLE001 - a config the job ran that cannot be read only loses this detail
        return []
    before, after = _flat(ran.identity()), _flat(run.identity())
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    named = [CONFIG_KEYS.get(k.rstrip("."), k.rstrip(".")) for k in keys]
    shown = [f"{name}: {before.get(k)} -> {after.get(k)}" for name, k in zip(named[:most], keys, strict=False)]
    return shown + ([f"and {len(keys) - most} more"] if len(keys) > most else [])


def cell_status(overrides, job_dir: Path, run: RunConfig) -> CellStatus:
    """A job's CellStatus: its state and cost (module docstring).

    Parameters
    ----------
    overrides : iterable of str
        The job's overrides.
    job_dir : pathlib.Path
        Its directory.
    run : simstudy.config.RunConfig
        Its validated config.

    Returns
    -------
    CellStatus
        The job's state, with the seconds its summary records when done, else the estimate.
    """
    digest = config_hash(run)
    older = older_config_hashes(run)
    state, summary, detail = classify(job_dir, digest, older)
    if state == "stale" and summary.get("config_hash") not in older:
        changed = changed_keys(Path(job_dir), run)
        detail += f" ({', '.join(changed)})" if changed else ""
    seconds = summary.get("seconds") if state == "done" else None
    if isinstance(seconds, (int, float)) and math.isfinite(seconds):
        return CellStatus(tuple(overrides), Path(job_dir), digest, state, float(seconds), True, detail)
    return CellStatus(tuple(overrides), Path(job_dir), digest, state, estimated_seconds(run), False, detail)


@contextlib.contextmanager
def _runtime_config(cfg):
    """cfg's hydra node installed as Hydra's runtime config (what ``${hydra:...}`` reads), as
    Hydra's launcher installs it before it resolves a job's directory; the previous one after."""
    holder = HydraConfig.instance()
    previous = holder.cfg
    holder.set_config(cfg)
    try:
        yield
    finally:
        holder.cfg = previous


def composed_job(overrides: list[str], index: int, multirun: bool) -> tuple[RunConfig, Path]:
    """A job's validated config and the directory Hydra would run it in.

    Parameters
    ----------
    overrides : list of str
        Every override of the job, ``hydra.*`` ones included (they may move its directory).
    index : int
        The job's number in its sweep (Hydra's ``hydra.job.num``, which a subdir may name).
    multirun : bool
        Whether the job is one of a multirun (``hydra.sweep.dir`` / ``subdir``) or a single run
        (``hydra.run.dir``).

    Returns
    -------
    run : simstudy.config.RunConfig
        The validated config.
    job_dir : pathlib.Path
        The directory, as Hydra resolves it (relative to the working directory unless absolute).

    Raises
    ------
    simstudy.config.ConfigError
        If the config is invalid.
    hydra.errors.HydraException
        Hydra's own errors for overrides it cannot compose.
    """
    cfg = compose(overrides, return_hydra_config=True)
    # as app.planned_cells (the aggregate's cells): the job's config without its hydra node
    run = validate(without_hydra(cfg))
    with open_dict(cfg):  # the launchers number the jobs before resolving their directories
        cfg.hydra.job.id = str(index)
        cfg.hydra.job.num = index
    with _runtime_config(cfg):
        if multirun:
            job_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        else:
            job_dir = Path(str(cfg.hydra.run.dir))
    return run, job_dir


# --------------------------------------------------------------------------------------------
# a sweep directory


def sweep_status(sweep_dir: Path) -> list[CellStatus]:
    """The cells the sweep last run in sweep_dir planned, in its jobs' order, and their states.

    A job's directory is found as Hydra found it (module docstring) relative to the sweep's own
    ``hydra.sweep.dir``, and then taken below ``sweep_dir``: a sweep directory that was moved or
    is read from another working directory is still read.

    Parameters
    ----------
    sweep_dir : str or pathlib.Path
        A folder holding a sweep's multirun.yaml.

    Returns
    -------
    list of CellStatus
        One per planned job.

    Raises
    ------
    StatusError
        When sweep_dir holds no readable multirun.yaml.
    simstudy.config.ConfigError
        When a planned job's config no longer validates.
    hydra.errors.HydraException
        Hydra's own errors for overrides it cannot compose.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        raise StatusError(f"{sweep_dir}: no multirun.yaml; is it the directory of a sweep (multirun/<study>)?")
    try:
        sweep = OmegaConf.load(path)
        params = OmegaConf.to_container(sweep.hydra.sweeper.params) if sweep.hydra.sweeper.get("params") else {}
        task = list(sweep.hydra.overrides.task)
        hydra_overrides = list(sweep.hydra.overrides.hydra)
    except Exception as err:  # noqa: BLE001 - a YAML or a structure error alike: one line
        text = " ".join(str(err).split())  # YAML errors span lines; the command prints one
        raise StatusError(f"{path}: unreadable ({type(err).__name__}: {text})") from None
    master = compose(hydra_overrides + fixed_overrides(task), return_hydra_config=True)
    with _runtime_config(master):
        recorded_dir = str(master.hydra.sweep.dir)
    cells = []
    for index, job in enumerate(expand_jobs(params, task).jobs):
        run, job_dir = composed_job(hydra_overrides + job, index, multirun=True)
        job_dir = sweep_dir / os.path.relpath(job_dir, recorded_dir)
        cells.append(cell_status(job, Path(os.path.normpath(job_dir)), run))
    return cells


# --------------------------------------------------------------------------------------------
# a command's plan


def plan(argv: list[str]) -> list[CellStatus]:
    """The jobs the command ``python -m simstudy <argv>`` would run, and their states.

    Every job is composed, validated and built as ``app.preflight`` does; nothing is written.

    Parameters
    ----------
    argv : list of str
        The command's arguments: overrides, and ``-m`` / ``--multirun`` for a multirun.

    Returns
    -------
    list of CellStatus
        One per job, with the directory Hydra would use.

    Raises
    ------
    SystemExit
        Status 2 with one line on stderr for bad input (``app.refuse``).
    """
    flags = [a for a in argv if a.startswith("-")]
    unknown = [f for f in flags if f not in RUN_FLAGS]
    if unknown:
        refuse(f"{unknown[0]}: not a flag a plan takes; give the overrides and -m of a run")
    multirun = any(f in ("-m", "--multirun") for f in flags)
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        jobs = sweep_jobs(overrides, multirun=multirun).jobs
        composed = [composed_job(job, index, multirun) for index, job in enumerate(jobs)]
        for run, _ in composed:
            check_job(run)  # the preflight's budget and build checks: what the command would refuse
    except ConfigError as err:
        refuse(str(err))
    except Exception as err:  # noqa: BLE001 - Hydra's composition and grammar errors, whatever their type
        refuse(one_line(err, overrides))
    return [cell_status(job, job_dir, run) for job, (run, job_dir) in zip(jobs, composed, strict=True)]


# --------------------------------------------------------------------------------------------
# output


def totals(cells: list[CellStatus]) -> dict[str, dict]:
    """Per state: the number of cells and their summed seconds.

    Parameters
    ----------
    cells : list of CellStatus
        The cells.

    Returns
    -------
    dict of str to dict
        state -> {"cells": n, "seconds": sum of the known costs, "unknown": cells without an
        estimate, "recorded": whether the seconds are the jobs' own records}, for every state.
    """
    out = {}
    for state in STATES:
        these = [c for c in cells if c.state == state]
        out[state] = {
            "cells": len(these),
            "seconds": sum(c.seconds for c in these if c.seconds is not None),
            "unknown": sum(c.seconds is None for c in these),
            "recorded": state == "done",
        }
    return out


def duration(seconds: float | None) -> str:
    """seconds as '0.015 s', '6.7 s', '12.3 min' or '3.4 h' ('?' for None).

    Parameters
    ----------
    seconds : float or None
        A duration.

    Returns
    -------
    str
        The duration in the unit that keeps it readable.
    """
    if seconds is None:
        return "?"
    if seconds < 10:  # two significant digits, so that a tiny cell's estimate does not read 0.0 s
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _cost(total: dict, known: str, unknown: str) -> str:
    """The cost of ``total``'s cells: ``known`` with ``{seconds}`` their summed cost, then
    ``unknown`` with ``{n}`` the cells without an estimate, if any; 'no estimate for these
    cells' when none has one, since a sum of no estimates is not 0 s (simstudy.resources has
    none for the diagnostics and network kinds)."""
    if total["cells"] and total["unknown"] == total["cells"]:
        return "no estimate for " + ("this cell" if total["cells"] == 1 else "these cells")
    text = known.format(seconds=duration(total["seconds"]))
    return text + (unknown.format(n=total["unknown"]) if total["unknown"] else "")


def _total_line(state: str, total: dict, suffix: str = "") -> str:
    """One state's total: '<state> <n> cells <seconds> recorded|estimated on one core', or
    'no estimate for these cells' when none of them has one (``_cost``)."""
    count = f"{state:8s} {total['cells']:5d} {'cell' if total['cells'] == 1 else 'cells':5s}"
    if not total["cells"]:
        return count.rstrip()
    kind = "recorded" if total["recorded"] else "estimated on one core"
    return f"{count}  {_cost(total, '{seconds} ' + kind, ' ({n} without an estimate)')}{suffix}"


def table(cells: list[CellStatus], relative_to: Path | None = None) -> list[str]:
    """The cells as aligned text lines: state, cost, directory, and why a cell is not done.

    Parameters
    ----------
    cells : list of CellStatus
        The cells.
    relative_to : pathlib.Path, optional
        Show directories relative to this folder.

    Returns
    -------
    list of str
        A header and one line per cell.
    """

    def shown(path: Path) -> str:
        return os.path.relpath(path, relative_to) if relative_to is not None else str(path)

    dirs = [shown(c.job_dir) for c in cells]
    width = max([len("cell directory"), *map(len, dirs)])
    lines = [f"{'state':8s} {'cost':>10s} {'':9s} {'cell directory':{width}s}  detail"]
    for cell, name in zip(cells, dirs, strict=True):
        source = "recorded" if cell.recorded else ("estimate" if cell.seconds is not None else "")
        line = f"{cell.state:8s} {duration(cell.seconds):>10s} {source:9s} {name:{width}s}  {cell.detail}"
        lines.append(line.rstrip())
    return lines


def as_json(cells: list[CellStatus], **header) -> str:
    """The cells and their totals as a JSON document (``header``'s keys first).

    Parameters
    ----------
    cells : list of CellStatus
        The cells.
    **header
        Top-level keys to include (e.g. the sweep directory or the command).

    Returns
    -------
    str
        JSON: the header's keys, ``cells`` (one object per cell: ``state``, ``job_dir``,
        ``overrides``, ``config_hash``, ``seconds``, ``cost``: "recorded" / "estimate" / null,
        ``detail``) and ``totals`` (``totals``).
    """
    rows = [
        {
            "state": c.state,
            "job_dir": str(c.job_dir),
            "overrides": list(c.overrides),
            "config_hash": c.config_hash,
            "seconds": c.seconds,
            "cost": "recorded" if c.recorded else ("estimate" if c.seconds is not None else None),
            "detail": c.detail,
        }
        for c in cells
    ]
    return json.dumps({**header, "cells": rows, "totals": totals(cells)}, indent=2)


def _report_sweep(sweep_dir: Path, cells: list[CellStatus], as_json_: bool) -> None:
    if as_json_:
        print(as_json(cells, sweep_dir=str(sweep_dir), all_done=all(c.state == "done" for c in cells)))
        return
    print(f"{sweep_dir}: {len(cells)} cells planned by its multirun.yaml")
    print("\n".join(table(cells, relative_to=sweep_dir)))
    print()
    for state, total in totals(cells).items():
        print(_total_line(state, total))


def _report_plan(argv: list[str], cells: list[CellStatus], as_json_: bool) -> None:
    todo = [c for c in cells if c.state != "done"]
    to_run = {
        "cells": len(todo),
        "seconds": sum(c.seconds for c in todo if c.seconds is not None),
        "unknown": sum(c.seconds is None for c in todo),
    }
    command = " ".join(["python -m simstudy", *argv])
    if as_json_:
        print(as_json(cells, command=command, to_run=to_run))
        return
    print(f"{command}: {len(cells)} cells (a dry run: nothing was submitted or written)")
    print("\n".join(table(cells)))
    print()
    for state, total in totals(cells).items():
        print(_total_line(state, total, "; skipped: complete for their config" if state == "done" else ""))
    cells_ = "cell" if to_run["cells"] == 1 else "cells"
    cost = _cost(to_run, "about {seconds} on one core", ", {n} without an estimate")
    print(f"to run: {to_run['cells']} {cells_}, {cost}")


def main(argv: list[str] | None = None) -> int:
    """The command (module docstring).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every cell of the sweep is done, or after a plan; 1 when a cell of the sweep is
        not done; 2 for bad input (one line on stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # python -m simstudy takes no --json, so it may stand anywhere, even after --plan's arguments
    as_json_ = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        print(__doc__.split("\n\n")[0].split(": ", 1)[1])
        return 0
    if argv[:1] == ["--plan"]:
        try:
            cells = plan(argv[1:])
        except SystemExit as exit_:  # app.refuse's one line is printed; return its status
            return int(exit_.code)
        _report_plan(argv[1:], cells, as_json_)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(f"simstudy.status: {USAGE}", file=sys.stderr)
        return 2
    sweep_dir = Path(argv[0])
    try:
        cells = sweep_status(sweep_dir)
    except StatusError as err:
        print(f"simstudy.status: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"simstudy.status: {sweep_dir}: config error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - Hydra's composition errors for a recorded override
        print(f"simstudy.status: {sweep_dir}: config error: {one_line(err, [])}", file=sys.stderr)
        return 2
    _report_sweep(sweep_dir, cells, as_json_)
    return 0 if all(c.state == "done" for c in cells) else 1


__all__ = [
    "STATES",
    "CellStatus",
    "StatusError",
    "cell_status",
    "classify",
    "composed_job",
    "main",
    "plan",
    "sweep_status",
    "totals",
]


if __name__ == "__main__":
    sys.exit(main())
