"""Compiled XLA programs kept on disk between processes (JAX's persistent compilation cache).

A job compiles some 30-50 programs (the batched fits, the theory's quadratures, the selectors);
a later process that meets the same programs at the same shapes loads them instead of
compiling them again (benchmarks/README.md, "A job's fixed cost", has the time it saves). A
loaded program is the one the first process compiled, so the cache changes no number, only
the time to the first fit.

``SIMSTUDY_COMPILE_CACHE`` names the folder, or turns the cache off ("off"). The default is
``$XDG_CACHE_HOME/simstudy/jax`` (``~/.cache/simstudy/jax`` without XDG_CACHE_HOME). Each CPU
model gets its own subfolder: XLA compiles for the host's instruction set, so a folder shared
by the nodes of a cluster must not hand one CPU's programs to another.

The folder is JAX's file layout ("<key>-cache" files), kept by ``DiskStore`` instead of JAX's
own store (``enable`` has JAX build one at its first compilation), for two repairs: an entry is
written whole or not at all (a temporary file renamed into place), and an entry that cannot be
read (torn by a process killed while JAX wrote it, or damaged since) is replaced by the next
process that compiles the program; JAX's store never replaces an existing file, so such an
entry used to be compiled again by every process. The folder is also kept under ``MAX_BYTES``
(or ``jax_compilation_cache_max_size`` when set), least recently used entries first; JAX's own
limit needs the ``filelock`` package. An entry that cannot be written (the folder deleted
mid-run, a full disk) is not kept; JAX's messages for unreadable and unwritable entries are
silenced in simstudy's command-line processes. Deleting the folder is always safe. A folder
that cannot be made or written, or a "~user" path of no user, leaves the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import time
import uuid
import warnings
from pathlib import Path

import jax
from jax._src import compilation_cache as jax_cache
from jax._src.compilation_cache_interface import CacheInterface

ENV = "SIMSTUDY_COMPILE_CACHE"
"""The environment variable naming the cache folder, or "off"."""

OFF = ("off", "0", "false", "no", "none")
"""Values of ``ENV`` that turn the cache off."""

CACHE_TROUBLE = ("Error reading persistent compilation cache entry", "Error writing persistent compilation cache entry")
"""The starts of JAX's warnings for an entry it cannot load (it compiles the program instead)
or cannot store (the folder was deleted mid-run, the disk is full): neither touches a number."""

MAX_BYTES = 1 << 30
"""The size ``enable`` keeps a cache folder under, unless ``jax_compilation_cache_max_size`` is
set (-1, its default, means "no limit" to JAX; here it means this one)."""

_SUFFIX = "-cache"  # JAX's name for an entry: "<key>-cache"
_TEMPORARY = ".tmp"
_ORPHAN_SECONDS = 3600.0  # a temporary file this old was left by a killed process


class DiskStore(CacheInterface):
    """JAX's persistent-cache interface on a folder of "<key>-cache" files, as JAX's own store
    (jax._src.lru_cache.LRUCache) lays them out, with whole writes, replacement of unreadable
    entries and a size limit that needs no file lock.

    Parameters
    ----------
    path : Path
        The folder; it must exist.
    max_bytes : int
        Before each write, the entries read or written longest ago are deleted until the new
        entry fits under this total; an entry larger than it is not kept (0 keeps nothing).

    Notes
    -----
    JAX calls ``put`` only for a program it has just compiled, that is, one whose entry was
    missing or could not be read, so ``put`` replaces whatever file holds the key. A read sets
    the entry's modification time, which is the recency the limit evicts by. Each write
    measures the folder afresh (a millisecond for a few hundred entries, against 10-300 ms to
    compile the program), so processes sharing the folder keep it under the limit together,
    but for the writes in flight; they may evict each other's entries, which costs a
    compilation only.
    """

    def __init__(self, path: Path, max_bytes: int):
        self._path = Path(path)
        self.max_bytes = max_bytes

    def _entry(self, key: str) -> Path:
        if not key:
            raise ValueError("key cannot be empty")
        return self._path / f"{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        entry = self._entry(key)
        try:
            value = entry.read_bytes()
            os.utime(entry)
        except OSError:  # missing, or evicted by another process meanwhile
            return None
        return value

    def put(self, key: str, value: bytes) -> None:
        entry = self._entry(key)
        if len(value) > self.max_bytes:
            return
        self._evict(self.max_bytes - len(value), entry)
        # short (an entry's own name may be near the file system's limit) and unique across the
        # processes and nodes sharing the folder; written with the umask's mode, as JAX's store
        temporary = self._path / f".{uuid.uuid4().hex}{_TEMPORARY}"
        try:
            temporary.write_bytes(value)
            os.replace(temporary, entry)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise

    def _evict(self, target: int, replaced: Path) -> None:
        """Delete the least recently used entries until the others' total is at most
        ``target`` (the entry about to be ``replaced`` does not count); delete temporary files
        that killed processes left."""
        entries, now = [], time.time()
        for path in self._path.iterdir():
            try:
                status = path.stat()
                if path.name.endswith(_SUFFIX) and path != replaced:
                    entries.append((status.st_mtime_ns, status.st_size, path))
                elif path.name.endswith(_TEMPORARY) and now - status.st_mtime > _ORPHAN_SECONDS:
                    path.unlink()
            except OSError:  # gone meanwhile
                continue
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size


@functools.cache  # run_cell enables the cache for every cell; the host does not change
def host_tag() -> str:
    """The host's machine type and a digest of its CPU's instruction-set flags (Linux
    /proc/cpuinfo; elsewhere the processor name), e.g. "x86_64-3f2a9c1e"."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    text = flags or platform.processor() or platform.platform()
    return f"{platform.machine() or 'cpu'}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def cache_dir(environ=None) -> Path | None:
    """The folder this host's compiled programs go to, or None when ``ENV`` turns the cache off.

    Parameters
    ----------
    environ : mapping, optional
        The environment (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    try:
        if value:
            root = Path(value).expanduser()
        else:
            root = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simstudy" / "jax"
    except RuntimeError:  # "~user/..." of an unknown user, or no home directory at all
        return None
    return root / host_tag()


def enable(environ=None) -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir`` and cache every program.

    Call it before the process compiles anything: JAX decides at its first compilation whether
    the cache is used. A folder that cannot be created or written leaves the cache off (the
    run is only slower). Returns the folder, or None when the cache is off.
    """
    path = cache_dir(environ)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # a job's programs compile in 0.01-0.3 s each, below JAX's default threshold of 1 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax_cache.get_file_cache = _file_cache
    for trouble in CACHE_TROUBLE:
        warnings.filterwarnings("ignore", message=trouble)
    return path


def _file_cache(path: str):
    """``jax._src.compilation_cache.get_file_cache`` with a ``DiskStore`` in place of JAX's
    store: JAX calls it at its first compilation with a folder set, as it would its own."""
    limit = jax.config.jax_compilation_cache_max_size
    store = DiskStore(Path(path), MAX_BYTES if limit == -1 else limit)
    if jax.config.jax_compilation_cache_check_contents:
        return jax_cache.VerificationCache(store), path
    return store, path
