"""``python -m simstudy.batch``: a sweep of many small cells as a few tasks of many cells each.

A Hydra multirun submits one job per cell: on Slurm, a sweep of thousands of small cells (the
dense alignment map) becomes thousands of array tasks, each paying a process start and its
compilation for seconds of work. This command takes the same arguments as
``python -m simstudy -m ...`` plus ``--cells-per-task K`` and runs the sweep's cells in
ceil(cells / K) tasks through submitit (``--cluster slurm`` with ``--slurm-*`` options, or
``local`` processes), or ``inline``: one after another in this process. Each cell is the same pure function of its
config as under Hydra (``app.run_cell``: the same job directory, ``multirun/<study>/<override
dirname>``, the same files and numbers, the same lock and resume rule: a cell complete for its
config is skipped), so a batch and a plain multirun of one sweep give byte-identical
replications, and either resumes the other. It writes the sweep's multirun.yaml as Hydra would
(so ``simstudy.status`` and ``simstudy.aggregate`` read it) and aggregates at the end; exit 1
when a cell failed or is missing, 2 for bad input (one line, before anything is submitted).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import submitit
from omegaconf import OmegaConf, open_dict

from simstudy.app import check_folder_names, check_job, conclude_sweep, one_line, planned_cells, refuse, run_cell
from simstudy.cluster import check_launcher_settings
from simstudy.composition import compose, fixed_overrides, sweep_jobs
from simstudy.config import ConfigError
from simstudy.status import composed_job

LAUNCHER_OPTIONS = {
    "timeout_min": "timeout_min",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "array_parallelism": "array_parallelism",
    "partition": "slurm_partition",
}
"""The launcher setting (``simstudy.cluster.check_launcher_settings``) -> the option's
argparse destination (``--slurm-partition`` is ``slurm_partition``)."""


def run_cells(cells: list[tuple[list[str], str]]) -> list[str]:
    """One task: each (overrides, job directory) in turn (``app.run_cell``); returns each
    cell's outcome ("ok", "skipped" or "failed: <error>")."""
    return [run_cell(compose(overrides), Path(job_dir)) for overrides, job_dir in cells]


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its errors (``--timeout-min abc``) as one line and exit status 2, as for
    any bad input, instead of the usage text and the error."""

    def error(self, message: str):
        refuse(message)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m simstudy.batch",
        description="Run a sweep's cells in tasks of several cells each (same numbers and resume as a multirun).",
    )
    parser.add_argument("--cells-per-task", type=int, default=16, help="cells run one after another in one task")
    parser.add_argument(
        "--cluster",
        choices=("local", "slurm", "inline"),
        default="local",
        help="submitit's local processes or Slurm, or inline: the tasks one after another in this process",
    )
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--timeout-min", type=int, default=240, help="per task")
    parser.add_argument("--cpus-per-task", type=int, default=2)
    parser.add_argument("--mem-gb", type=int, default=8)
    parser.add_argument("--array-parallelism", type=int, default=64, help="tasks running at once")
    parser.add_argument("overrides", nargs="*", help="the overrides of `python -m simstudy -m ...`")
    return parser


def _sweep_record(overrides: list[str]):
    """The sweep's record as Hydra writes it to multirun.yaml: the composed config with the
    sweep file's params and the command's own overrides (``hydra.overrides.task`` / ``hydra``),
    which status and aggregate read."""
    hydra_overrides = [o for o in overrides if o.startswith(("hydra.", "hydra/"))]
    record = compose(fixed_overrides(overrides), return_hydra_config=True)
    with open_dict(record):
        record.hydra.overrides.task = [o for o in overrides if o not in hydra_overrides]
        record.hydra.overrides.hydra = hydra_overrides
    return record


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # -m as in `python -m simstudy -m ...`: a batch is always a multirun
    args = _parser().parse_args([a for a in argv if a not in ("-m", "--multirun")])
    if args.cells_per_task < 1:
        refuse(f"--cells-per-task={args.cells_per_task}: must be an integer >= 1")
    try:  # the rules of hydra/launcher=slurm's settings, which these options are (sbatch's traceback otherwise)
        check_launcher_settings(
            {key: getattr(args, dest) for key, dest in LAUNCHER_OPTIONS.items()},
            name=lambda key: "--" + LAUNCHER_OPTIONS[key].replace("_", "-"),
            unset="",  # an option left out takes its default, not null
        )
    except ConfigError as err:
        refuse(str(err))
    overrides = list(args.overrides)
    try:
        jobs = sweep_jobs(overrides, multirun=True).jobs
        composed = [composed_job(job, index, multirun=True) for index, job in enumerate(jobs)]
        for run, _ in composed:
            check_job(run)  # the preflight: bad input fails here, before anything is submitted
        sweep = _sweep_record(overrides)
        check_folder_names(jobs, sweep.hydra.job.config.override_dirname)
        sweep_dir = Path(str(sweep.hydra.sweep.dir))
    except ConfigError as err:
        refuse(str(err))
    except Exception as err:  # noqa: BLE001 - Hydra's composition and grammar errors, whatever their type
        refuse(one_line(err, overrides))
    cells = [(job, str(job_dir)) for job, (_, job_dir) in zip(jobs, composed, strict=True)]
    size = args.cells_per_task
    tasks = [cells[i : i + size] for i in range(0, len(cells), size)]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweep, sweep_dir / "multirun.yaml")
    print(
        f"simstudy.batch: {len(cells)} cells in {len(tasks)} tasks of up to {size} "
        f"({math.ceil(len(cells) / max(len(tasks), 1))} on average) on {args.cluster}",
        file=sys.stderr,
    )
    outcomes = []
    if args.cluster == "inline":
        for task in tasks:
            outcomes += run_cells(task)
    else:
        executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit", cluster=args.cluster)
        executor.update_parameters(timeout_min=args.timeout_min, slurm_array_parallelism=args.array_parallelism)
        if args.cluster == "slurm":
            executor.update_parameters(
                slurm_partition=args.slurm_partition, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb
            )
        for job in executor.map_array(run_cells, tasks):
            try:
                outcomes += job.result()
            except Exception as err:  # a task that died (killed, timed out): its cells show as missing
                print(f"simstudy.batch: task {job.job_id} failed: {type(err).__name__}: {err}", file=sys.stderr)
    done, skipped = sum(o in ("ok", "skipped") for o in outcomes), outcomes.count("skipped")
    print(f"simstudy.batch: {done} of {len(cells)} cells finished ({skipped} skipped)", file=sys.stderr)
    hydra_overrides = list(sweep.hydra.overrides.hydra)  # e.g. a user's hydra.searchpath
    return conclude_sweep(
        sweep_dir,
        lambda: planned_cells(
            sweep.hydra.sweeper.params, sweep.hydra.overrides.task, lambda job: compose([*hydra_overrides, *job])
        ),
        sweep.get("figures_dir"),
    )


def cli() -> int:
    """The console entry point: ``main`` with Ctrl-C as one line (exit 130)."""
    try:
        return main()
    except KeyboardInterrupt:
        print(
            "simstudy.batch: interrupted; finished cells are kept, and rerunning the same command resumes the rest",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(cli())
