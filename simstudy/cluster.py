"""Slurm without accounting: submitit's job watcher made quiet, and able to see a job end.

submitit (behind ``hydra/launcher=slurm``) follows its jobs from the launching process by
calling ``sacct`` (at 0, 2, 4, 8 ... s after a submission, then at least every 10 minutes). On a
cluster without Slurm accounting (no slurmdbd, as on a one-node or a small lab cluster) every
call fails, and each failure reached the user twice over: sacct's own error on the terminal
("Slurm accounting storage is disabled") and submitit's warning "Call #N - Bypassing sacct
error ..., status may be inaccurate." on stderr, on stdout and in Hydra's log, a wall of lines
for the length of the sweep. The job states then stay UNKNOWN, which submitit counts as
unfinished, so a job that ends without writing its result (cancelled with ``scancel``, lost
with its node, out of time) was waited for forever.

``quiet_sacct`` (called by ``simstudy.app.main``) replaces submitit's Slurm watcher with
``SqueueFallbackWatcher``: it calls sacct as submitit does, with sacct's error output captured;
when sacct fails it says so in one line (once per command) and asks ``squeue`` instead. A job
that squeue no longer lists has left the queue: it counts as finished (state ``NOT_IN_QUEUE``),
so submitit reads its result, or reports that it has none and the command exits non-zero;
rerunning the same command then finishes the sweep (README, "Resume"). Where sacct works,
nothing changes.

``check_launcher`` checks the launcher settings of a composed config (``hydra.launcher``: those
of Hydra's submitit launchers, ``hydra/launcher=slurm`` and ``local_submitit``, and of its
joblib launcher, ``local_joblib``) before anything runs. Hydra checks only their types, so a
timeout of -5 minutes, 0 CPUs or an empty partition used to reach sbatch or joblib, which
refused it with a traceback after the sweep folder, its multirun.yaml and .submitit/ were
written. ``check_launcher_settings`` holds the rules; ``simstudy.batch`` checks its own options
(``--timeout-min`` ...) with them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from omegaconf.errors import OmegaConfBaseException
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from simstudy.schema import ConfigError

LEFT_QUEUE = "NOT_IN_QUEUE"
"""The state of a job that squeue no longer lists (not one of submitit's unfinished states)."""
COMMAND_TIMEOUT_S = 60.0
SQUEUE_FIELDS = "JobID|State|NodeList"  # the names submitit's read_info looks for, as sacct prints them


def _call(command: list[str]) -> tuple[str | None, str]:
    """Run a Slurm command; (its output, '') on success, else (None, the first line of its error)."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"{type(err).__name__}: {err}"
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return None, lines[0] if lines else f"{command[0]} exited with status {proc.returncode}"
    return proc.stdout, ""


class SqueueFallbackWatcher(SlurmInfoWatcher):
    """submitit's Slurm watcher, asking squeue when sacct fails (see the module docstring).

    Parameters
    ----------
    delay_s : int
        The longest wait between two calls, as submitit's (``SlurmJob.watcher``'s) own.
    """

    said = False
    """Whether this process has already told the user that sacct fails (one line per command)."""

    def update(self) -> None:
        """Refresh the states of the unfinished jobs: from sacct, else from squeue."""
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        output, why = _call(command)
        if output is not None:
            self._output = output
            self._info_dict.update(self.read_info(output))
        else:
            self._say_once(why)
            self._info_dict.update(self._from_squeue())
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _from_squeue(self) -> dict[str, dict[str, str]]:
        """The states squeue gives for the unfinished jobs; those it does not list have left the
        queue. Empty when squeue itself cannot answer (the controller is down: ask again later)."""
        pending = sorted(self._registered - self._finished)
        ids = sorted({job_id.split("_")[0] for job_id in pending})
        if not ids:
            return {}
        output, why = _call(["squeue", "--states=all", "--noheader", "--format=%i|%T|%N", f"--jobs={','.join(ids)}"])
        if output is None:
            if "Invalid job id" not in why:  # squeue's answer when none of the jobs is known any more
                return {}
            output = ""
        info = self.read_info(f"{SQUEUE_FIELDS}\n{output}")
        for job_id in pending:
            info.setdefault(job_id, {"JobID": job_id, "State": LEFT_QUEUE, "NodeList": ""})
        return info

    @classmethod
    def _say_once(cls, why: str) -> None:
        if not cls.said:
            cls.said = True
            print(
                f"simstudy: sacct cannot report Slurm job states ({why}); following the jobs with squeue",
                file=sys.stderr,
            )


def quiet_sacct() -> None:
    """Make submitit's Slurm jobs use ``SqueueFallbackWatcher`` (idempotent; affects only this
    process, the one that submits and waits for the jobs)."""
    if not isinstance(SlurmJob.watcher, SqueueFallbackWatcher):
        SlurmJob.watcher = SqueueFallbackWatcher(delay_s=SlurmJob.watcher._delay_s)


# --------------------------------------------------------------------------------------------
# launcher settings

LAUNCHER_COUNTS: dict[str, tuple[int, bool]] = {
    "timeout_min": (1, False),
    "nodes": (1, False),
    "tasks_per_node": (1, False),
    "cpus_per_task": (1, True),
    "gpus_per_node": (0, True),
    "gpus_per_task": (1, True),
    "cpus_per_gpu": (1, True),
    "array_parallelism": (1, False),
}
"""The count settings of Hydra's submitit launchers: key -> (least value, whether null is
allowed). Least values are sbatch's (a job of no minutes, nodes, tasks or CPUs is refused; no
GPUs is a GPU count); null leaves the setting to the cluster (submitit passes no option)."""


def check_launcher_settings(
    settings: Mapping, name: Callable[[str], str] = lambda key: f"hydra.launcher.{key}", unset: str = "null"
) -> None:
    """Check launcher settings by the keys of Hydra's submitit and joblib launchers.

    Parameters
    ----------
    settings : mapping
        Setting -> value (plain values); keys without a rule are left alone, and an absent
        key is not checked.
    name : callable, default ``"hydra.launcher.<key>"``
        How the error names a setting (``simstudy.batch`` names its command-line option).
    unset : str, default "null"
        How the user leaves an optional setting unset, as the error says it; "" for a caller
        that has no way to (the error then does not offer it).

    Raises
    ------
    simstudy.config.ConfigError
        For the first bad value, naming ``name(key)``.
    """

    def alternative(what: str) -> str:
        return f", or {unset}{what}" if unset else ""

    for key, (least, nullable) in LAUNCHER_COUNTS.items():
        if key not in settings or (nullable and settings[key] is None):
            continue
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(
                name(key), value, f"must be an integer >= {least}" + (alternative("") if nullable else "")
            )
    if "mem_gb" in settings and settings["mem_gb"] is not None:
        value = settings["mem_gb"]
        # a bool is an int to Python, and sbatch reads --mem=0 as all of a node's memory
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(name("mem_gb"), value, "must be a number of GB > 0" + alternative(" (no memory request)"))
    if "partition" in settings and settings["partition"] is not None:
        value = settings["partition"]
        # sbatch refuses an empty partition; one with spaces would split its #SBATCH line
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise ConfigError(
                name("partition"),
                value,
                "must name a Slurm partition (non-empty, without spaces)" + alternative(" for the cluster's default"),
            )
    if "n_jobs" in settings:
        value = settings["n_jobs"]
        # joblib reads a negative count as all cores but |n_jobs| - 1 (-1: all of them) and refuses 0
        if isinstance(value, bool) or not isinstance(value, int) or value == 0:
            raise ConfigError(name("n_jobs"), value, "must be a non-zero integer (workers; -1 for every core)")


def check_launcher(launcher) -> None:
    """Check the launcher settings of a composed config before anything runs.

    Parameters
    ----------
    launcher : omegaconf.DictConfig or mapping
        The ``hydra.launcher`` node of a config composed with its hydra node
        (``simstudy.composition.compose(overrides, return_hydra_config=True)``). Hydra's basic
        launcher (no settings) passes.

    Raises
    ------
    simstudy.config.ConfigError
        For the first bad setting (see ``check_launcher_settings``), naming its key, such as
        ``hydra.launcher.timeout_min``; also for a setting whose interpolation cannot resolve.
    """
    settings = {}
    for key in (*LAUNCHER_COUNTS, "mem_gb", "partition", "n_jobs"):
        if key not in launcher:
            continue
        try:  # a DictConfig resolves the one value read (the node's other interpolations need a Hydra run)
            settings[key] = launcher[key]
        except OmegaConfBaseException as err:
            raise ConfigError(f"hydra.launcher.{key}", None, str(err).splitlines()[0]) from None
    check_launcher_settings(settings)
