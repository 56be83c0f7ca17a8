"""The persistent compile cache (simstudy.compile_cache): where it goes, when it is off, and that
loaded and unreadable entries leave every number as a fresh compilation gives it."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simstudy.compile_cache import ENV, cache_dir, enable, host_tag


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
