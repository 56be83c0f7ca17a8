"""The persistent compile cache (simstudy.compile_cache): where it goes, when it is off, and that
loaded and unreadable entries leave every number as a fresh compilation gives it."""

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pandas as pd
import pytest

from simstudy.compile_cache import ENV, DiskStore, cache_dir, enable, host_tag


def test_cache_dir_follows_the_environment(tmp_path):
    tag = host_tag()
    assert cache_dir({ENV: str(tmp_path / "c")}) == tmp_path / "c" / tag
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "simstudy" / "jax" / tag
    assert cache_dir({}) == Path.home() / ".cache" / "simstudy" / "jax" / tag
    for off in ("off", "OFF", " 0 ", "false", "none"):
        assert cache_dir({ENV: off}) is None


def test_host_tag_is_stable_and_names_the_machine():
    tag = host_tag()
    assert tag == host_tag()
    machine, digest = tag.rsplit("-", 1)
    assert machine and len(digest) == 8 and int(digest, 16) >= 0


def test_a_folder_that_cannot_be_made_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert enable({ENV: str(blocker / "cache")}) is None
    assert enable({ENV: "off"}) is None
    assert enable({ENV: "~no-such-user-of-simstudy/cache"}) is None


def test_a_folder_deleted_mid_run_costs_no_message(tmp_path):
    # JAX warns once per program it cannot store; a run whose cache folder vanished (or whose
    # disk is full) must still print nothing but its own lines
    script = (
        "import shutil, sys, jax, jax.numpy as jnp\n"
        "from simstudy.compile_cache import enable\n"
        "shutil.rmtree(enable().parent)\n"
        "print(float(jax.jit(lambda x: jnp.cos(x) * 2.5 - 0.125)(jnp.ones(3))[0]))\n"
    )
    env = {**os.environ, ENV: str(tmp_path / "gone"), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "compilation cache" not in done.stderr, done.stderr


def test_a_refused_command_makes_no_cache_folder(tmp_path):
    env = {**os.environ, ENV: str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu"}
    argv = [sys.executable, "-m", "simstudy", "+dgp.bogus=1", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def _compile_once(cache: Path) -> subprocess.CompletedProcess:
    script = (
        "import jax, jax.numpy as jnp\n"
        "from simstudy.compile_cache import enable\n"
        "enable()\n"
        "print(float(jax.jit(lambda x: jnp.sin(x) * 1.5 + 0.25)(jnp.ones(3))[0]))\n"
    )
    env = {**os.environ, ENV: str(cache), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)


def test_a_torn_entry_is_replaced_by_the_next_process_that_compiles_it(tmp_path):
    first = _compile_once(tmp_path)
    assert first.returncode == 0, first.stderr
    entries = {p: p.read_bytes() for p in tmp_path.rglob("*-cache")}
    assert entries, "the first process cached no program"
    for entry, whole in entries.items():
        entry.write_bytes(whole[: len(whole) // 3])
    second = _compile_once(tmp_path)
    assert second.returncode == 0 and second.stdout == first.stdout, second.stderr
    assert "compilation cache" not in second.stderr
    # JAX's own store never replaced a file: every later process compiled the program again
    for entry, whole in entries.items():
        repaired = entry.read_bytes()
        assert len(repaired) == len(whole)
        zlib.decompress(repaired)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def _aged(path: Path, seconds_ago: float) -> None:
    stamp = path.stat().st_mtime - seconds_ago
    os.utime(path, (stamp, stamp))


def test_the_store_replaces_an_entry_whole(tmp_path):
    store = DiskStore(tmp_path, max_bytes=1000)
    assert store.get("k") is None
    (tmp_path / "k-cache").write_bytes(b"torn")
    store.put("k", b"the whole program")
    assert store.get("k") == b"the whole program"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-cache"]
    with pytest.raises(ValueError, match="empty"):
        store.get("")


def test_the_store_evicts_the_least_recently_used_entries(tmp_path):
    store = DiskStore(tmp_path, max_bytes=100)
    store.put("a", b"a" * 40)
    store.put("b", b"b" * 40)
    _aged(tmp_path / "a-cache", 20)
    _aged(tmp_path / "b-cache", 10)
    assert store.get("a") == b"a" * 40  # a read makes "a" the most recent
    store.put("c", b"c" * 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-cache", "c-cache"]
    store.put("c", b"C" * 60)  # a replaced entry's old size does not count
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-cache", "c-cache"]
    store.put("d", b"d" * 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-cache"]
    store.put("e", b"e" * 101)  # larger than the limit: not kept, as JAX's store does
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-cache"]


def test_processes_sharing_a_folder_keep_it_under_the_limit_together(tmp_path):
    first, second = DiskStore(tmp_path, max_bytes=250), DiskStore(tmp_path, max_bytes=250)
    for i in range(6):
        (first if i % 2 else second).put(f"k{i}", bytes(100))
        assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 250


def test_the_store_deletes_only_old_temporary_files(tmp_path):
    orphan, writing = tmp_path / ".0123abcd.tmp", tmp_path / ".4567ef01.tmp"
    orphan.write_bytes(b"left by a killed process")
    writing.write_bytes(b"another process is writing")
    _aged(orphan, 7200)
    DiskStore(tmp_path, max_bytes=1000).put("k", b"program")
    assert not orphan.exists() and writing.exists()


def test_the_store_keeps_entries_whose_names_are_near_the_file_system_limit(tmp_path):
    key = "k" * (255 - len("-cache"))
    DiskStore(tmp_path, max_bytes=1000).put(key, b"program")
    assert DiskStore(tmp_path, max_bytes=1000).get(key) == b"program"


def test_the_store_writes_nothing_into_a_deleted_folder(tmp_path):
    store = DiskStore(tmp_path / "gone", max_bytes=1000)
    with pytest.raises(OSError):
        store.put("k", b"program")
    assert not (tmp_path / "gone").exists()


def test_jax_builds_the_store_with_its_own_limit_and_content_check(tmp_path):
    script = (
        "import jax, jax.numpy as jnp\n"
        "from jax._src import compilation_cache as jax_cache\n"
        "from simstudy.compile_cache import MAX_BYTES, enable\n"
        "enable()\n"
        "jax.config.update('jax_compilation_cache_max_size', int(__import__('sys').argv[1]))\n"
        "jax.config.update('jax_compilation_cache_check_contents', __import__('sys').argv[2] == 'check')\n"
        "jax.jit(lambda x: x + 1.0)(jnp.ones(2)).block_until_ready()\n"
        "store = getattr(jax_cache._cache, '_base_cache', jax_cache._cache)\n"
        "print(type(jax_cache._cache).__name__, type(store).__name__, store.max_bytes == MAX_BYTES, store.max_bytes)\n"
    )
    env = {**os.environ, ENV: str(tmp_path), "JAX_PLATFORMS": "cpu"}
    for argv, expected in (
        (["-1", "no"], "DiskStore DiskStore True"),
        (["5000", "check"], "VerificationCache DiskStore False 5000"),
    ):
        argv = [sys.executable, "-c", script, *argv]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(expected), done.stdout


def _job(out: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV: str(cache), "JAX_PLATFORMS": "cpu"}
    argv = [sys.executable, "-m", "simstudy", "design.reps=3", f"hydra.run.dir={out}", "figures_dir=null"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_loaded_and_unreadable_entries_give_the_fresh_numbers(tmp_path):
    cache = tmp_path / "cache"
    cold = _job(tmp_path / "cold", cache)
    assert cold.returncode == 0, cold.stderr
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert entries, "the first run cached no program"
    fresh = pd.read_parquet(tmp_path / "cold" / "replications.parquet")

    warm = _job(tmp_path / "warm", cache)
    assert warm.returncode == 0, warm.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "warm" / "replications.parquet"), fresh, check_exact=True)

    # a process killed while writing leaves a truncated entry: it is compiled again, silently
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 3])
    torn = _job(tmp_path / "torn", cache)
    assert torn.returncode == 0, torn.stderr
    assert "compilation cache" not in torn.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "torn" / "replications.parquet"), fresh, check_exact=True)
    # and the torn entries were written again whole, so the next process loads them
    for entry in entries:
        zlib.decompress(entry.read_bytes())
