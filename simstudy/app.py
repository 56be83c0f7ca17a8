"""The Hydra app: ``python -m simstudy`` / ``simstudy`` runs one design cell per job.

A job is a pure function of its config: it validates the config (a bad value exits with status 2
and one line, writing nothing), then the study of its ``study.kind`` (simstudy.studies) builds,
runs and summarises the cell, and the one job writer (``simstudy.studies.job.run_job``)
writes into the job's output directory, atomically and in this order:

* ``config.yaml``: the resolved config of the job;
* the rows table (``replications.parquet``; real data also ``replications.csv``), then the
  study's documents (real data: ``table.md``);
* the figures (``figure.png`` / ``figure.pdf``; real data also ``methods.*``);
* ``summary.json``: the contract of README's "Job outputs", written last and listing the other
  files with their digests. A rerun skips the job only when the summary is readable, finished,
  for the same ``config_hash``, and every listed file is intact (``jobfiles.complete_summary``).

Two processes running the same job directory take turns (``jobfiles.job_lock``): the second
finds the job complete and skips it, and a finished job is never overwritten by a failure.
After a multirun, ``AggregateCallback`` combines exactly the cells of that sweep
(simstudy.aggregate) and exits non-zero if any cell failed or is missing, or if the
aggregation itself fails.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import hydra
import pandas as pd
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from simstudy import compile_cache
from simstudy.aggregate import aggregate_sweep, planned_cells
from simstudy.cluster import check_launcher, quiet_sacct
from simstudy.composition import CONFIG_PATH, compose, config_hash, fixed_overrides, sweep_jobs
from simstudy.config import ConfigError, RunConfig, plugin_study, validate
from simstudy.engine import one_blas_thread
from simstudy.jobfiles import SUMMARY, atomic_write_json, complete_summary, job_lock, output_problem, read_summary
from simstudy.resources import check_budget
from simstudy.schema import older_config_hashes
from simstudy.studies import study_of
from simstudy.studies.job import failure_summary, run_job


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def fail_config(err: ConfigError, out_dir: Path | None) -> None:
    """One line on stderr, nothing left behind, exit status 2."""
    print(f"simstudy: config error: {err}", file=sys.stderr)
    if out_dir is not None:
        _remove_if_empty(out_dir)
        if out_dir.parent.is_dir() and [p.name for p in out_dir.parent.iterdir()] == ["multirun.yaml"]:
            (out_dir.parent / "multirun.yaml").unlink()
            _remove_if_empty(out_dir.parent)
    raise SystemExit(2)


def record_failure(out_dir: Path, run: RunConfig, err: Exception) -> str:
    """Write a failed summary (the cell is redone by the next run) and return the one-line
    message."""
    summary = failure_summary(run, err)
    atomic_write_json(out_dir / SUMMARY, summary)
    return summary["error"]


def run_cell(cfg, out_dir: Path, copy_figures: bool = False) -> str:
    """One cell, a pure function of its composed config ``cfg`` writing only into ``out_dir``:
    validated, skipped when complete for its config, else run (``run_job``) under the
    directory's lock, a failure recorded in its summary. Returns "ok", "skipped" or
    "failed: <error>"; a bad config raises ConfigError. The Hydra task and
    ``simstudy.batch`` run cells through it.

    Only with ``copy_figures`` does the job also copy its figures into ``figures_dir``: a
    sweep's cells leave that to the sweep's aggregate, since each cell's copy would overwrite
    the last one's, and a sweep killed midway would leave one cell's figure as the study's."""
    # a launcher's worker process or a cluster node reaches a cell before it compiles anything
    compile_cache.enable()
    run = validate(cfg)
    if not copy_figures:
        run = replace(run, figures_dir=None)  # not part of the config hash
    out_dir.mkdir(parents=True, exist_ok=True)
    with job_lock(out_dir):
        if complete_summary(out_dir, config_hash(run)) is not None:
            print(f"[{run.study}] {out_dir}: already complete for this config, skipped", file=sys.stderr)
            return "skipped"
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        try:
            with one_blas_thread():
                run_job(run, out_dir, resolved)
            return "ok"
        except ConfigError:
            raise
        except Exception as err:  # a failing cell is recorded, and the sweep goes on
            message = record_failure(out_dir, run, err)
            print(f"simstudy: cell failed: {message}", file=sys.stderr)
            return f"failed: {message}"


def task(cfg) -> None:
    """The Hydra task function (see the module docstring)."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    # a multirun's one job without swept keys runs in the sweep folder and is its own result
    alone = hydra_cfg.mode != RunMode.MULTIRUN or out_dir.resolve() == Path(hydra_cfg.sweep.dir).resolve()
    try:
        outcome = run_cell(cfg, out_dir, copy_figures=alone)
    except ConfigError as err:
        fail_config(err, out_dir)
    if outcome.startswith("failed") and hydra_cfg.mode != RunMode.MULTIRUN:
        raise SystemExit(1)


class ReplicationError(ValueError):
    """A job directory that cannot be replicated (missing or unreadable files)."""


def _job_files(job_dir: Path) -> tuple[RunConfig, dict]:
    for name in ("config.yaml", SUMMARY):
        if not (job_dir / name).is_file():
            raise ReplicationError(f"{job_dir}: no {name}; is it a finished simstudy job directory?")
    summary = read_summary(job_dir / SUMMARY)
    if summary is None or summary.get("status") != "ok":
        raise ReplicationError(f"{job_dir}: {SUMMARY} is unreadable or not a finished job; rerun the job")
    try:
        run = validate(OmegaConf.load(job_dir / "config.yaml"))
    except ConfigError as err:
        raise ReplicationError(f"{job_dir}: config.yaml does not validate ({err})") from None
    # a job of older code is replicated in the columns it has (same_rows ignores the new ones)
    hashes = [config_hash(run), *older_config_hashes(run)]
    if all(complete_summary(job_dir, digest) is None for digest in hashes):
        raise ReplicationError(f"{job_dir}: {_mismatch(job_dir, summary)}; rerun the job")
    return run, summary


def _mismatch(job_dir: Path, summary: dict) -> str:
    """Why a finished summary does not vouch for the directory's files."""
    # with the files intact, config.yaml is another run's (a rerun stopped after writing it)
    return output_problem(job_dir, summary) or f"config.yaml is not the config its {SUMMARY} ran"


def _stored_rows(job_dir: Path, column: str, r: int):
    path = job_dir / "replications.parquet"
    try:
        stored = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ReplicationError(f"{path}: missing or unreadable ({type(err).__name__}); rerun the job") from None
    rows = stored[stored[column] == r].reset_index(drop=True)
    if rows.empty:
        raise ReplicationError(f"{path}: no rows with {column} = {r}")
    rows = rows.dropna(axis=1, how="all")
    rows.attrs["file_columns"] = list(stored.columns)
    return rows


def regenerate_replication(job_dir, r: int):
    """Replication r of a finished job (split r of a real-data job), recomputed from its
    config.yaml (and the warm starts stored in summary.json) alone.

    Returns (regenerated rows, the rows stored in replications.parquet); they are equal to the
    bit when the machine and package versions match the job's. Raises ReplicationError for a
    job directory without its files and ValueError for r out of range."""
    job_dir = Path(job_dir)
    run, summary = _job_files(job_dir)
    if not 0 <= r < run.design.reps:
        raise ValueError(f"replication must be in [0, {run.design.reps}), got {r}")
    study = study_of(run.kind)
    with one_blas_thread():  # as the job ran
        rows = study.replicate(run, summary, r)
    return rows, _stored_rows(job_dir, study.unit, r)


def same_rows(regenerated, stored) -> bool:
    """The regenerated rows equal the stored ones to the bit (columns the stored table has only
    because other replications filled them are ignored, and so are columns a later simstudy
    added that the stored file does not have at all; integer columns that the whole table
    stored as floats compare by value)."""
    regenerated = regenerated.dropna(axis=1, how="all")
    known = stored.attrs.get("file_columns", list(stored.columns))
    regenerated = regenerated[[c for c in regenerated.columns if c in known]]
    if set(regenerated.columns) != set(stored.columns) or len(regenerated) != len(stored):
        return False
    try:
        pd.testing.assert_frame_equal(
            regenerated, stored[list(regenerated.columns)], check_dtype=False, check_exact=True
        )
    except AssertionError:
        return False
    return True


def conclude_sweep(sweep_dir: Path, planned, figures_dir=None) -> int:
    """The end of a sweep (a multirun's callback, ``simstudy.batch``): aggregate its planned
    cells (``planned()`` lists them) and say so in one line. Returns the exit status: 0, or 1
    when a cell failed or is missing or the aggregation failed (one line naming the error)."""
    if (sweep_dir / SUMMARY).is_file():
        # a sweep whose overrides are all excluded from the job's subdir (e.g. only study=...)
        # runs one job in the sweep dir itself: its files are the result
        status = (read_summary(sweep_dir / SUMMARY) or {}).get("status")
        print(f"simstudy: {sweep_dir} holds one job (no swept keys), its own result: {status}", file=sys.stderr)
        return 0 if status == "ok" else 1
    try:
        return 1 if aggregate_sweep(sweep_dir, planned(), figures_dir) else 0
    except Exception as err:  # noqa: BLE001 - under Hydra it would become a warning and exit 0
        print(f"simstudy: aggregating {sweep_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


class AggregateCallback:
    """Hydra callback: after a multirun, aggregate exactly the cells of the sweep that ran, and
    exit non-zero if any of them failed or is missing, or if the aggregation fails."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        loader = GlobalHydra.instance().config_loader()
        status = conclude_sweep(
            sweep_dir,
            lambda: planned_cells(
                config.hydra.sweeper.params,
                config.hydra.overrides.task,
                lambda job: loader.load_sweep_config(config, list(job)),
            ),
            config.get("figures_dir"),
        )
        if status:
            raise SystemExit(status)

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


RUN_FLAGS = {"-m", "--multirun", "-r", "--run"}


def _unparsable(overrides: list[str]) -> str | None:
    """The first override Hydra's grammar cannot read, as one line naming its key."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            key = override.split("=", 1)[0] if "=" in override else override
            return (
                f"{key}: cannot read the override {override!r} (a trailing comma, or a character "
                f"that needs quotes: write {key}='...')"
            )
    return None


def one_line(err: Exception, overrides: list[str]) -> str:
    """Hydra's composition errors, cut to one line that names the override and what is allowed."""
    text = str(err)
    if isinstance(err, MissingConfigException) and "Available options in" in text:
        lines = text.splitlines()
        missing = lines[0].split("Could not find ")[-1].strip("'")
        group = missing.rsplit("/", 1)[0]
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
        options = [line.strip() for line in lines[start + 1 :] if line.startswith("\t")]
        end = next((i for i, line in enumerate(options) if "=" in line or ":" in line), len(options))
        return f"{group}={missing.rsplit('/', 1)[-1]}: unknown option; choose one of {options[:end]}"
    if isinstance(err, OverrideParseException):
        return _unparsable(overrides) or f"{text.splitlines()[0]} (see Hydra's override grammar)"
    cause = err.__cause__
    if cause is not None and "full_key:" in str(cause):
        key = str(cause).split("full_key:")[1].split()[0]
        if isinstance(cause, ValidationError):  # a typed key given another type, not an unknown key
            return f"{key}: wrong type ({str(cause).splitlines()[0]})"
        return f"{key}: unknown key ({str(cause).splitlines()[0]}); add it with +{key}=... only if the group takes it"
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    culprit = _first_failing(overrides)
    return text if culprit is None or culprit.split("=")[0] in text else f"{culprit}: {text}"


def _first_failing(overrides: list[str]) -> str | None:
    """The first override that fails to compose on its own (to name it in an error)."""
    for override in overrides:
        try:
            compose([override], return_hydra_config=True)
        except Exception:  # noqa: BLE001 - any failure names the culprit
            return override
    return None


def refuse(line: str) -> None:
    print(f"simstudy: config error: {line}", file=sys.stderr)
    raise SystemExit(2)


def preflight(argv: list[str]) -> None:
    """Compose, validate and build every job of the command before Hydra starts: bad input
    exits with status 2 and one line, and nothing is written."""
    flags = {a for a in argv if a.startswith("-")}
    if flags - RUN_FLAGS:
        return  # --help, --cfg, --info ...: Hydra's own business
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        planned = sweep_jobs(overrides, multirun=bool(flags & {"-m", "--multirun"}))
        configs = [compose(job) for job in planned.jobs]
        hydra_node = compose(fixed_overrides(overrides), return_hydra_config=True).hydra
        # sbatch and joblib refuse a bad launcher setting only after the sweep folder is written
        check_launcher(hydra_node.launcher)
    except ConfigError as err:
        refuse(str(err))
    except Exception as err:  # Hydra's composition and override-grammar errors, whatever their type
        refuse(one_line(err, overrides))
    try:
        for cfg in configs:
            check_job(validate(cfg))
        if flags & {"-m", "--multirun"}:
            check_folder_names(planned.jobs, hydra_node.job.config.override_dirname)
    except ConfigError as err:
        refuse(str(err))
    for key, (swept, given) in planned.replaced.items():
        print(f"simstudy: {given} replaces the sweep file's {key}={swept}", file=sys.stderr)


def check_folder_names(jobs: list[list[str]], naming) -> None:
    """Refuse a multirun job whose folder would lie outside the sweep's (or be the sweep's
    own): Hydra names it after the job's overrides (``hydra.job.override_dirname``, whose
    settings ``naming`` holds: ``exclude_keys``, ``item_sep``, ``kv_sep``), so ".." segments in
    a value can climb out of ``hydra.sweep.dir`` (``data.path=x/../../y.csv``). The error names
    the first override with a ".." segment."""
    parser = OverridesParser.create()
    for job in jobs:
        # Hydra names the folder after the task's overrides; hydra.* ones are its own settings
        overrides = [o for o in parser.parse_overrides(job) if not o.is_hydra_override()]
        name = get_overrides_dirname(overrides, list(naming.exclude_keys), naming.item_sep, naming.kv_sep)
        folder = os.path.normpath(name)
        # an empty name is a job of excluded keys only: it runs in the sweep folder by design
        if (name and folder == os.curdir) or folder.split(os.sep)[0] == os.pardir:
            climbing = next(o for o in sorted(overrides, key=lambda o: o.input_line) if ".." in o.input_line)
            raise ConfigError(
                climbing.key_or_group,
                climbing.value(),
                f"a sweep names each job's folder after its overrides ({name}), which would put this "
                f"job's folder at or above hydra.sweep.dir: give the path without '..'",
            )


def check_job(run: RunConfig) -> None:
    """Build what a job builds first, so that a bad value fails here, not inside the job."""
    check_budget(run)  # builds the process, which checks the dgp's options
    with plugin_study(run):
        study_of(run.kind).build(run)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quiet_sacct()  # a Slurm cluster without accounting: one line, not a warning per sacct call
    try:
        preflight(argv)
        # after the preflight: a refused command writes nothing, not even the cache folder
        compile_cache.enable()
        sys.argv = [sys.argv[0], *argv]
        hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")(task)()
    except KeyboardInterrupt:
        print(
            "simstudy: interrupted; finished cells are kept, and rerunning the same command resumes the rest",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
