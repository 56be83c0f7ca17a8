"""Reliability (issue 7): bad input fails fast and cleanly, numbers are reproducible to the bit,
sweeps survive SIGKILL and failing cells."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simstudy.app import main, regenerate_replication, run_job
from simstudy.config import validate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from test_app import SMALL, composed, simstudy  # noqa: E402

BAD_VALUES = {
    "design.n1": ["0", "1", "-5", "2.5", "abc"],
    "design.kappa": ["1", "0.5", "-1", "nan", "inf"],
    "design.reps": ["1", "0", "-3"],
    "design.chunk": ["0"],
    "design.gammas": ["[]", "[-1.0]", "[0.0,nan]", "[2.0,1.0]", "[1.0,1.0]", "abc"],
    "generator.magnitude": ["-1", "nan", "inf"],
    "generator.angle_deg": ["-10", "181", "720"],
    "seed": ["-1", "1.5"],
    "workers": ["0", "2.5", "many"],
    "model.ridge": ["-1", "nan"],
    "model.family": ["cauchy"],
    "model.intercept": ["maybe"],
    "study": ["nope"],
    "generator": ["nope"],
    "design.bogus": ["1"],
    "dgp.mu1": ["[1.0,0.0,0.0]"],
}
VALID_NOISE = {"design.reps": ["3", "7"], "seed": ["0", "5"], "design.n1": ["20", "40"]}


def _run_main(args, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main([*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    return exit_info.value.code, err.getvalue()


@settings(max_examples=40, deadline=None)
@given(
    bad=st.sampled_from(sorted(BAD_VALUES)).flatmap(
        lambda key: st.tuples(st.just(key), st.sampled_from(BAD_VALUES[key]))
    ),
    noise=st.dictionaries(st.sampled_from(sorted(VALID_NOISE)), st.sampled_from(["0"]), max_size=2),
    multirun=st.booleans(),
)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path_factory, bad, noise, multirun):
    tmp_path = tmp_path_factory.mktemp("bad")
    key, value = bad
    extra = [f"{k}={VALID_NOISE[k][0]}" for k in noise if k != key]
    args = [f"{key}={value}", *extra]
    if multirun:  # swept on a key given nowhere else (a key given twice is its own error)
        swept = next(k for k in ("design.reps", "seed", "theory.refits") if k not in (key, *noise))
        args = ["-m", *args, f"{swept}=3,4"]
    code, err = _run_main(args, tmp_path)
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("simstudy: config error:"), err
    assert "Traceback" not in err
    name = key.split(".")[-1] if key not in ("study", "generator") else key
    assert name in lines[0] or value in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_same_config_gives_byte_identical_outputs(tmp_path):
    run = validate(composed(["study=ls_symmetric", *SMALL]))
    first = run_job(run, tmp_path / "a", "x: 1\n")
    second = run_job(run, tmp_path / "b", "x: 1\n")
    assert (tmp_path / "a" / "replications.parquet").read_bytes() == (
        tmp_path / "b" / "replications.parquet"
    ).read_bytes()
    for s in (first, second):
        s.pop("seconds")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_any_replication_regenerates_from_config_alone(tmp_path):
    # the job runs in this process; a child process regenerates one of its replications from
    # the job's files alone
    job = tmp_path / "job"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            main(["study=ls_symmetric", *SMALL, f"hydra.run.dir={job}"])
    except SystemExit as exit_:
        assert exit_.code in (0, None), err.getvalue()[-2000:]
    for r in (0, 3):
        rows, stored = regenerate_replication(job, r)
        pd.testing.assert_frame_equal(rows, stored, check_exact=True)
    proc = subprocess.run(
        [sys.executable, "scripts/replicate.py", str(job), "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 0 and "identical to the stored rows: True" in proc.stdout


@pytest.mark.slow
def test_failing_cell_is_recorded_and_the_sweep_exits_nonzero(tmp_path):
    sweep = tmp_path / "sweep"
    proc = simstudy(
        [
            "-m",
            "dgp.mu1=[1.0,0.0],[10.0,0.0]",
            "generator=imblearn",
            "generator.sampler=BorderlineSMOTE",
            "design.reps=3",
            "design.gammas=[0.0,1.0]",
            "theory.refits=3",
            "figures_dir=null",
            f"hydra.sweep.dir={sweep}",
        ],
        ROOT,
        check=False,
    )
    assert proc.returncode != 0
    cells = pd.read_parquet(sweep / "cells.parquet")
    assert sorted(cells["status"]) == ["failed", "ok"]
    assert "BorderlineSMOTE" in cells.loc[cells.status == "failed", "error"].item()
    assert "## Failed, missing or unreadable cells" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_sigkill_midway_then_rerun_finishes_every_cell_once(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "simstudy",
        "-m",
        "design.n1=20,30,40,50",
        "design.reps=60",
        "theory.refits=4",
        "figures_dir=null",
        f"hydra.sweep.dir={sweep}",
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(sweep.glob("*/summary.json"))) < 1:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sweep.glob("*/summary.json")}
    assert 1 <= len(finished) < 4, "kill the sweep midway"
    finished_rows = {p.parent: (p.parent / "replications.parquet").read_bytes() for p in finished}
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=900)
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 4
    assert sorted(json.loads(p.read_text())["n1"] for p in summaries) == [20, 30, 40, 50]
    for path, (data, mtime) in finished.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
        assert (path.parent / "replications.parquet").read_bytes() == finished_rows[path.parent]
    assert len(pd.read_parquet(sweep / "cells.parquet")) == 4
