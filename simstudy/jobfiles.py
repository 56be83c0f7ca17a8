"""Job files: the on-disk contract of one job directory.

* Every file is written atomically: to a temporary sibling with a name unique to the writing
  process and thread, then renamed, so a killed job never leaves a half-written file and two
  writers never share a temporary file.
* ``summary.json`` is written last and lists the job's other outputs with their SHA-256
  digests; a job is complete only when its summary is readable, says ``status: ok`` for the
  same config hash, and every listed output is present with the listed digest
  (``complete_summary``). Anything less is redone.
* ``job_lock`` serialises the processes that run the same job directory (two runs of one sweep
  at once): the second waits, then finds the job complete and skips it. The lock is held on
  the directory itself, so it leaves no file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import threading
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

import simstudy

SUMMARY = "summary.json"
VERSIONED = (
    "numpy",
    "scipy",
    "jax",
    "jaxlib",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "imbalanced-learn",
    "hydra-core",
    "omegaconf",
)


def versions() -> dict:
    """The versions of Python, simstudy and the packages that compute a job's numbers.

    Each job's summary.json records them.

    Returns
    -------
    dict of str to str or None
        "python", "simstudy" and each package of ``VERSIONED``; None for a package that is not
        installed.
    """
    out = {"python": platform.python_version(), "simstudy": simstudy.__version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def json_number(x):
    """x as a float for summary.json, None when missing or not finite (JSON has no NaN).

    Parameters
    ----------
    x : float-like or None
        A number.

    Returns
    -------
    float or None
        ``float(x)``, or None when x is None, NaN or infinite.
    """
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def json_numbers(a) -> list:
    """An array as a flat list of json_number values.

    Parameters
    ----------
    a : array_like
        Numbers, any shape (converted to float).

    Returns
    -------
    list of float or None
        The flattened values, None where not finite.
    """
    return [json_number(v) for v in np.asarray(a, dtype=float).ravel()]


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside path that no other process or thread uses at the same time.

    Parameters
    ----------
    path : str or pathlib.Path
        The final file.

    Returns
    -------
    pathlib.Path
        ``.<name>.<pid>-<thread id>-<8 random hex digits>.tmp`` in path's folder.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path atomically (module docstring).

    The parent folders are created; the bytes go to a ``temporary_sibling``, are flushed and
    fsynced, and the file is renamed over path; the temporary file is removed if anything fails.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    data : bytes
        Its new contents.

    Returns
    -------
    None
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to path atomically, encoded as UTF-8 (``atomic_write_bytes``).

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    text : str
        Its new contents.

    Returns
    -------
    None
    """
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    """Write obj to path atomically as JSON: indented by 2, keys sorted, NaN allowed, a final newline.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    obj : object
        JSON-serialisable data.

    Returns
    -------
    None
    """
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet without pandas' index metadata, so equal tables give equal bytes.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table (its index is not written).

    Returns
    -------
    bytes
        The parquet file's bytes, written by pyarrow.
    """
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write frame to path as parquet (``parquet_bytes``), atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : str or pathlib.Path
        The file to write.

    Returns
    -------
    None
    """
    atomic_write_bytes(path, parquet_bytes(frame))


def write_table(frame: pd.DataFrame, stem: Path) -> None:
    """stem.parquet and stem.csv.

    Both are written atomically, without the index.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    stem : str or pathlib.Path
        The files' path without suffix (a suffix it has is replaced).

    Returns
    -------
    None
    """
    stem = Path(stem)
    write_parquet(frame, stem.with_suffix(".parquet"))
    atomic_write_text(stem.with_suffix(".csv"), frame.to_csv(index=False))


def file_digest(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes (its identity: an edited file has another).

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    OSError
        If the file cannot be read (FileNotFoundError when it is missing).
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def output_digests(out_dir: Path, names) -> dict[str, str]:
    """{name: SHA-256} of the job's output files, for the summary's ``outputs``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    names : iterable of str
        The output files' names in out_dir.

    Returns
    -------
    dict of str to str
        Each name's ``file_digest``, in sorted name order.

    Raises
    ------
    OSError
        If a file cannot be read.
    """
    return {name: file_digest(Path(out_dir) / name) for name in sorted(names)}


def read_summary(path: Path) -> dict | None:
    """The summary at path, or None when it is missing, truncated or not a JSON object.

    Parameters
    ----------
    path : str or pathlib.Path
        The summary.json file.

    Returns
    -------
    dict or None
        The parsed summary.
    """
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) else None


def output_problem(out_dir: Path, summary: dict) -> str | None:
    """What keeps a summary from vouching for the job directory's files, or None.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    summary : dict
        A parsed summary.

    Returns
    -------
    str or None
        The first problem, the rows tables checked first: no ``outputs`` mapping, a listed file
        missing, or one with another digest; None when every listed output is intact.
    """
    outputs = summary.get("outputs")
    if not isinstance(outputs, dict):
        return f"{SUMMARY} lists no outputs"
    for name in sorted(outputs, key=lambda n: not n.startswith("replications.")):
        path = Path(out_dir) / name
        if not path.is_file():
            return f"{name}, listed in {SUMMARY}, is missing"
        if file_digest(path) != outputs[name]:
            return f"{name} changed since {SUMMARY} listed it"
    return None


def outputs_intact(out_dir: Path, summary: dict) -> bool:
    """Every output the summary lists is present with the digest it lists (``output_problem``).

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    summary : dict
        A parsed summary.

    Returns
    -------
    bool
        False when the summary has no ``outputs`` mapping, or a listed file is missing or has
        another digest.
    """
    return output_problem(out_dir, summary) is None


def complete_summary(out_dir: Path, config_hash: str) -> dict | None:
    """The job's summary when the job in out_dir is complete for this config, else None.

    Complete as in the module docstring: the summary is readable, says ``status: ok`` for this
    config hash, and every listed output is intact.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    config_hash : str
        The config hash the summary must carry.

    Returns
    -------
    dict or None
        The summary, or None when the job must be redone.
    """
    summary = read_summary(Path(out_dir) / SUMMARY)
    if summary is None or summary.get("status") != "ok" or summary.get("config_hash") != config_hash:
        return None
    return summary if outputs_intact(out_dir, summary) else None


@contextlib.contextmanager
def job_lock(out_dir: Path):
    """Hold an exclusive lock on the job directory, blocking while another process holds it.

    An advisory ``flock`` on the directory: the kernel releases it when its holder exits, even
    by SIGKILL, so a killed run never leaves a stale lock. On file systems without flock (some
    NFS mounts) it is a no-op; there a sweep's jobs still each own their directory.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory (created if missing).

    Yields
    ------
    None
        While the lock is held.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def copy_figures(paths, figures_dir, stem: str) -> None:
    """Copy a job's or sweep's figure files to figures_dir/<stem>.<ext>, atomically.

    Two runs that copy at once leave one whole file.

    Parameters
    ----------
    paths : iterable of str or pathlib.Path
        The figure files; each keeps its suffix.
    figures_dir : str or pathlib.Path
        The destination folder (created if missing).
    stem : str
        The destination files' name without suffix.

    Returns
    -------
    None

    Raises
    ------
    OSError
        If a figure cannot be read or written.
    """
    figures_dir = Path(figures_dir)
    for path in paths:
        atomic_write_bytes(figures_dir / f"{stem}{Path(path).suffix}", Path(path).read_bytes())


def finish_job(out_dir: Path, summary: dict, outputs) -> dict:
    """Write summary.json, the job's last file, listing its other ``outputs`` with their digests.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    summary : dict
        The summary's contents (not modified).
    outputs : iterable of str
        File names in out_dir, already written.

    Returns
    -------
    dict
        The summary as written: ``summary`` with "outputs" set to ``output_digests``.

    Raises
    ------
    OSError
        If an output cannot be read or the summary cannot be written.
    """
    summary = {**summary, "outputs": output_digests(out_dir, outputs)}
    atomic_write_json(Path(out_dir) / SUMMARY, summary)
    return summary


PENDING = ".simstudy-outputs.json"
"""Names of the files written into a job directory by runs that have not finished cleanly
(``JobOutputs``): what the next finished run removes unless it writes them again."""


class JobOutputs:
    """The files one job writes into its directory, tracked so that none outlives its config.

    A job directory can hold the files of an earlier run: a finished one of another config
    (listed in its summary.json), or one that failed or was interrupted after writing some
    files (listed nowhere else). Every name this run writes is first added to ``PENDING``
    (together with the previous summary's outputs), so that whichever way a run ends, the next
    run that finishes knows every file an earlier run left, and ``finish`` deletes those it did
    not write again. Only names simstudy itself wrote are ever deleted.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The job directory.
    """

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.names: list[str] = []
        previous = read_summary(self.out_dir / SUMMARY) or {}
        listed = previous.get("outputs") if isinstance(previous.get("outputs"), dict) else {}
        self._earlier = set(self._pending()) | set(listed)
        if listed:
            # kept before anything else happens: a failure summary replaces the one listing them
            atomic_write_json(self.out_dir / PENDING, sorted(self._earlier))

    def _pending(self) -> list[str]:
        try:
            names = json.loads((self.out_dir / PENDING).read_text())
        except (OSError, ValueError):
            return []
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def add(self, *names: str) -> None:
        """Record that this run is about to write ``names`` (call before writing them).

        Parameters
        ----------
        *names : str
            File names in the job directory.

        Returns
        -------
        None
        """
        self.names += [n for n in names if n not in self.names]
        atomic_write_json(self.out_dir / PENDING, sorted(self._earlier | set(self.names)))

    def finish(self, summary: dict) -> dict:
        """Write summary.json listing this run's files (``finish_job``), then delete the files
        earlier runs left that this one did not write, and the pending list.

        Parameters
        ----------
        summary : dict
            The summary's contents.

        Returns
        -------
        dict
            The summary as written.
        """
        summary = finish_job(self.out_dir, summary, self.names)
        for name in self._earlier - set(self.names):
            path = self.out_dir / name
            if path.parent == self.out_dir and path.is_file() and name not in (SUMMARY, PENDING):
                path.unlink()
        (self.out_dir / PENDING).unlink(missing_ok=True)
        return summary
