"""A real one-node Slurm cluster on this machine, for the Slurm tests (tests/test_slurm.py) and
for trying ``hydra/launcher=slurm`` by hand.

``start_cluster(folder)`` installs ``slurm-wlm`` and ``munge`` with apt-get when they are absent,
writes a one-node ``slurm.conf`` for localhost (the node's CPUs and memory from ``slurmd -C``,
one partition ``debug``, no accounting, every state, spool, log and pid file under
``folder``), creates the munge key when it is missing, starts munged, slurmctld and slurmd
on free ports and a private munge socket (so that a Slurm or munge already running on the
machine is left alone), and waits until ``sinfo`` shows the node idle. Slurm's commands find
the cluster through ``SLURM_CONF`` (``LocalCluster.env``). ``LocalCluster.stop`` cancels
what is still queued and stops the three daemons it started, by their process ids; nothing
else is restored (the packages and the munge key stay).

By hand, as root::

    .venv/bin/python tests/slurm_cluster.py start /tmp/slurm   # prints: export SLURM_CONF=...
    .venv/bin/python tests/slurm_cluster.py stop /tmp/slurm

Anything that makes the cluster impossible here (not root, no apt-get, a failed install, a
daemon that does not come up) raises ``SlurmUnavailable`` with one line saying why; the test
fixture turns it into a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "munged")
MUNGE_KEY = Path("/etc/munge/munge.key")
NODE = "localhost"
PARTITION = "debug"
IDLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PIDS = "pids.json"


class SlurmUnavailable(RuntimeError):
    """The local cluster cannot run on this machine; the message says why, in one line."""


def _run(args, timeout=60.0, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def install() -> None:
    """Install slurm-wlm and munge with apt-get unless their commands are already there.

    Raises
    ------
    SlurmUnavailable
        When not root, without apt-get, or when the install fails (its last line of output).
    """
    if all(shutil.which(c) for c in COMMANDS):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("installing slurm-wlm and munge needs root")
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable("slurm-wlm and munge are not installed and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        try:
            proc = _run(args, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{' '.join(args)} did not finish in 10 minutes") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise SlurmUnavailable(f"{' '.join(args)} failed (exit {proc.returncode}): {last}")
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        raise SlurmUnavailable(f"installed {' '.join(PACKAGES)} but {', '.join(missing)} is still missing")


def node_resources() -> dict[str, int]:
    """This machine's CPUs and RealMemory (MB), as slurmd itself reports them (``slurmd -C``)."""
    proc = _run(["slurmd", "-C"])
    fields = dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)
    try:
        return {"CPUs": int(fields["CPUs"]), "RealMemory": int(fields["RealMemory"])}
    except (KeyError, ValueError):
        raise SlurmUnavailable(f"cannot read slurmd -C: {proc.stdout.strip() or proc.stderr.strip()}") from None


def _free_port() -> int:
    # ports picked now, not Slurm's defaults, so that a cluster already on this machine (or a
    # second test session) does not collide with this one
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path) -> Path:
    """Write ``folder/slurm.conf`` for a one-node cluster on localhost and return its path."""
    for sub in ("state", "spool", "log", "munge"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # munged refuses a socket directory that others may write
    (folder / "munge").chmod(0o755)
    res = node_resources()
    lines = [
        "ClusterName=simstudy-local",
        f"SlurmctldHost={NODE}",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge' / 'munge.socket.2'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "MailProg=/bin/true",
        # a node that comes back (slurmd restarted) takes jobs again without an scontrol update
        "ReturnToService=2",
        "SlurmdTimeout=30",
        "KillWait=5",
        "InactiveLimit=0",
        f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={res['CPUs']} RealMemory={res['RealMemory']} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = folder / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def ensure_munge_key() -> None:
    """Create /etc/munge/munge.key (owned by munge when that user exists) when it is missing."""
    if MUNGE_KEY.is_file():
        return
    MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(["mungekey", "--create", f"--keyfile={MUNGE_KEY}"])
    if proc.returncode != 0 or not MUNGE_KEY.is_file():
        raise SlurmUnavailable(f"cannot create {MUNGE_KEY}: {proc.stderr.strip()}")
    if _has_user("munge"):  # munged run by the munge user (a system one) must read it too
        shutil.chown(MUNGE_KEY, user="munge", group="munge")


def _has_user(name: str) -> bool:
    return _run(["id", "-u", name]).returncode == 0


class LocalCluster:
    """The daemons of a one-node cluster started under ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : Path
        Holds slurm.conf, the state, spool and log folders, the munge socket and ``pids.json``.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.procs: dict[str, subprocess.Popen] = {}

    # ---------------------------------------------------------------------------------------
    # commands

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """A Slurm command against this cluster (``SLURM_CONF`` set); output captured as text."""
        return _run(list(args), timeout=timeout, env=self.env)

    def node_state(self) -> str:
        """The node's state as ``sinfo`` prints it (``idle``, ``mix``, ``down*`` ...), or ''."""
        try:
            proc = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def queue(self) -> list[str]:
        """The job ids in the queue (array tasks as ``<job>_<task>``)."""
        proc = self.run("squeue", "-h", "-o", "%i")
        return proc.stdout.split() if proc.returncode == 0 else []

    # ---------------------------------------------------------------------------------------
    # daemons

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the daemon keeps it
        self.procs[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        self._save_pids()

    def _save_pids(self) -> None:
        pids = {name: proc.pid for name, proc in self.procs.items()}
        (self.folder / PIDS).write_text(json.dumps(pids))

    def _wait_for(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{dead[0]} exited at start; see {self.folder / 'log'}")
            if ready():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"{what} not ready after {timeout:.0f} s; see {self.folder / 'log'}")

    def start(self) -> None:
        """Start munged, slurmctld and slurmd and wait (bounded) until the node is idle."""
        socket_path = self.folder / "munge" / "munge.socket.2"
        munged = [
            "munged",
            "--foreground",
            "--force",  # root runs it here, not the munge user
            f"--socket={socket_path}",
            f"--key-file={MUNGE_KEY}",
            f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
            f"--log-file={self.folder / 'log' / 'munged.log'}",
            f"--seed-file={self.folder / 'munge' / 'munged.seed'}",
        ]
        self._start("munged", munged)
        self._wait_for("munged", socket_path.exists, 20)
        self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait_for("slurmctld", lambda: self.run("scontrol", "ping", timeout=10).returncode == 0, 30)
        self.start_slurmd()

    def start_slurmd(self) -> None:
        """Start slurmd (again) and wait until the node is idle."""
        self._start("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self.wait_idle()

    def wait_idle(self, timeout: float = IDLE_TIMEOUT_S) -> None:
        """Wait until ``sinfo`` shows the node idle (raises SlurmUnavailable after ``timeout``)."""
        self._wait_for(f"node {NODE} (sinfo: {self.node_state()!r})", lambda: self.node_state() == "idle", timeout)

    def stop_slurmd(self) -> None:
        """Stop slurmd alone (jobs it runs lose their node), as a node crash would."""
        proc = self.procs.pop("slurmd", None)
        if proc is not None:
            _terminate(proc.pid, proc)
        self._save_pids()

    def cancel_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Cancel every job of the cluster and wait (bounded) until the queue is empty."""
        self.run("scancel", f"--partition={PARTITION}")
        deadline = time.monotonic() + timeout
        while self.queue() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel what is queued, then stop slurmd, slurmctld and munged (by their ids)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.cancel_all()
            except subprocess.TimeoutExpired:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _terminate(proc.pid, proc)
        self._save_pids()


def _terminate(pid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; reaps ``proc`` when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if proc is not None:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_cluster(folder: Path) -> LocalCluster:
    """Install what is missing, configure and start a one-node cluster under ``folder``.

    Raises
    ------
    SlurmUnavailable
        With the reason, after stopping whatever it had started.
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("the local Slurm cluster runs its daemons as root; not root")
    install()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ensure_munge_key()
    write_config(folder)
    cluster = LocalCluster(folder)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def stop_cluster(folder: Path) -> None:
    """Stop the daemons recorded in ``folder/pids.json`` (the command-line ``stop``)."""
    pids = json.loads((Path(folder) / PIDS).read_text())
    cluster = LocalCluster(folder)
    if "slurmctld" in pids and _alive(pids["slurmctld"]):
        cluster.cancel_all()
    for name in ("slurmd", "slurmctld", "munged"):
        if name in pids:
            _terminate(pids[name])
    (Path(folder) / PIDS).write_text("{}")


if __name__ == "__main__":
    usage = "usage: slurm_cluster.py start|stop FOLDER"
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        raise SystemExit(usage)
    target = Path(sys.argv[2]).resolve()
    try:
        if sys.argv[1] == "start":
            start_cluster(target)
            print(f"export SLURM_CONF={target / 'slurm.conf'}")
        else:
            stop_cluster(target)
    except SlurmUnavailable as err:
        raise SystemExit(f"slurm_cluster: {err}") from None
