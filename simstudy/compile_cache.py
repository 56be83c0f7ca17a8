"""Compiled XLA programs kept on disk between processes (JAX's persistent compilation cache).

A job compiles some 30-50 programs (the batched fits, the theory's quadratures, the selectors);
a later process that meets the same programs at the same shapes loads them instead of
compiling them again (benchmarks/README.md, "A job's fixed cost", has the time it saves). A
loaded program is the one the first process compiled, so the cache changes no number, only
the time to the first fit.

``SIMSTUDY_COMPILE_CACHE`` names the folder, or turns the cache off ("off"). The default is
``$XDG_CACHE_HOME/simstudy/jax`` (``~/.cache/simstudy/jax`` without XDG_CACHE_HOME). Each CPU
model gets its own subfolder: XLA compiles for the host's instruction set, so a folder shared
by the nodes of a cluster must not hand one CPU's programs to another. An entry that cannot be
read (a process killed while writing it) is compiled again, one that cannot be written (the
folder deleted mid-run, a full disk) is not kept; JAX's messages for both are silenced in
simstudy's command-line processes. Deleting the folder is always safe. A folder that cannot be
made or written, or a "~user" path of no user, leaves the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import warnings
from pathlib import Path

import jax

ENV = "SIMSTUDY_COMPILE_CACHE"
"""The environment variable naming the cache folder, or "off"."""

OFF = ("off", "0", "false", "no", "none")
"""Values of ``ENV`` that turn the cache off."""

CACHE_TROUBLE = ("Error reading persistent compilation cache entry", "Error writing persistent compilation cache entry")
"""The starts of JAX's warnings for an entry it cannot load (it compiles the program instead)
or cannot store (the folder was deleted mid-run, the disk is full): neither touches a number."""


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
    for trouble in CACHE_TROUBLE:
        warnings.filterwarnings("ignore", message=trouble)
    return path
