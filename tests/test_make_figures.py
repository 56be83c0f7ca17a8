"""scripts/make_figures.py's command line: a name it does not know, or none, runs nothing and
leaves figures/REPORT.md as it is."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "figures" / "REPORT.md"


@pytest.mark.parametrize("only", [["nope"], ["asym_biased", "nope"], []])
def test_an_unknown_or_missing_study_name_runs_nothing(only, tmp_path):
    before = REPORT.stat().st_mtime_ns
    argv = [sys.executable, str(ROOT / "scripts" / "make_figures.py"), "--only", *only]
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "+ " not in proc.stdout and REPORT.stat().st_mtime_ns == before
    if only:
        assert proc.stderr.count("\n") == 1 and "--only nope" in proc.stderr
