"""simstudy.batch: a sweep's cells run several to a task give the files, numbers and resume of
the same sweep run by Hydra, one job per cell."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simstudy.app import main as simstudy_main
from simstudy.batch import main
from simstudy.jobfiles import SUMMARY, read_summary
from simstudy.status import sweep_status

# ls_symmetric's cells are the cheapest (the quick start's theory takes three times as long)
SWEEP = ["study=ls_symmetric", "design.reps=3", "design.gammas=[0.0,1.0]", "theory.refits=4", "seed=0,1,2"]


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")


@pytest.fixture(scope="module")
def hydra_sweep(tmp_path_factory):
    """The sweep as ``python -m simstudy -m`` runs it (simstudy.app.main, in this process: Hydra's
    basic launcher, one job per cell)."""
    sweep = tmp_path_factory.mktemp("hydra") / "sweep"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            simstudy_main(["-m", *SWEEP, "figures_dir=null", f"hydra.sweep.dir={sweep}"])
    except SystemExit as exit_:
        assert exit_.code in (0, None), err.getvalue()[-2000:]
    assert "aggregated 3 cells" in err.getvalue(), err.getvalue()[-2000:]
    return sweep


def _cells(sweep: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sweep.glob("*/replications.parquet")}


def test_a_batch_gives_the_multiruns_numbers_and_resumes(hydra_sweep, tmp_path, capsys):
    sweep = tmp_path / "batch"
    args = ["--cluster", "inline", "--cells-per-task", "2", "-m", *SWEEP, "figures_dir=null"]
    args.append(f"hydra.sweep.dir={sweep}")
    assert main(args) == 0
    assert "3 cells in 2 tasks" in capsys.readouterr().err
    assert _cells(sweep) == _cells(hydra_sweep) and len(_cells(sweep)) == 3
    assert {c.state for c in sweep_status(sweep)} == {"done"}
    assert (sweep / "cells.parquet").is_file()
    before = {p: p.read_bytes() for p in sweep.glob(f"*/{SUMMARY}")}
    assert main(args) == 0
    assert "3 of 3 cells finished (3 skipped)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in sweep.glob(f"*/{SUMMARY}")} == before


def test_a_batch_finishes_a_multirun_cut_short(hydra_sweep, tmp_path):
    sweep = tmp_path / "mixed"
    sweep.mkdir()
    for name in _cells(hydra_sweep):  # one cell finished by Hydra, two never run
        if "seed=1" in name.split(","):
            (sweep / name).mkdir()
            for f in (hydra_sweep / name).iterdir():
                (sweep / name / f.name).write_bytes(f.read_bytes())
    finished = {p: p.read_bytes() for p in sweep.glob(f"*/{SUMMARY}")}
    args = ["--cluster", "inline", "--cells-per-task", "5", "-m", *SWEEP, "figures_dir=null"]
    args.append(f"hydra.sweep.dir={sweep}")
    assert main(args) == 0
    assert _cells(sweep) == _cells(hydra_sweep)
    assert len(finished) == 1 and all(p.read_bytes() == data for p, data in finished.items())
    assert all(read_summary(p)["status"] == "ok" for p in sweep.glob(f"*/{SUMMARY}"))


def test_bad_input_exits_2_before_anything_is_submitted(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--cluster", "inline", "-m", "design.reps=0,1", f"hydra.sweep.dir={tmp_path / 's'}"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout-min", "-5"),
        ("--timeout-min", "0"),
        ("--cpus-per-task", "0"),
        ("--mem-gb", "-1"),
        ("--array-parallelism", "0"),
        ("--slurm-partition", ""),
        ("--timeout-min", "abc"),  # argparse's own error, also one line
    ],
)
def test_a_bad_launcher_option_exits_2_before_anything_is_written(tmp_path, capsys, option, value):
    sweep = tmp_path / "s"
    with pytest.raises(SystemExit) as info:
        main(["--cluster", "slurm", option, value, "-m", "study=quickstart", "seed=0,1", f"hydra.sweep.dir={sweep}"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0], err
    assert not sweep.exists()


def test_a_batch_refuses_a_value_that_would_put_a_cell_outside_the_sweep(tmp_path, capsys):
    sweep = tmp_path / "s"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "-m",
                "study=quickstart",
                "seed=0,1",
                "study.description=x/../../notes",
                "figures_dir=null",
                f"hydra.sweep.dir={sweep}",
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "at or above hydra.sweep.dir" in err[0], err
    assert not sweep.exists()


@pytest.mark.slow
def test_a_batch_through_submitits_local_processes(hydra_sweep, tmp_path):
    sweep = tmp_path / "local"
    args = ["--cluster", "local", "--cells-per-task", "2", "-m", *SWEEP, "figures_dir=null", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(
        [sys.executable, "-m", "simstudy.batch", *args], env=_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _cells(sweep) == _cells(hydra_sweep)


def test_a_batch_of_one_unswept_job_and_one_with_a_users_conf(tmp_path, capsys, monkeypatch):
    # only keys the subdir excludes: the one job runs in the sweep dir itself
    one = ["--cluster", "inline", "-m", "study=quickstart", "figures_dir=null", f"hydra.sweep.dir={tmp_path / 'one'}"]
    assert main(one) == 0
    assert "holds one job" in capsys.readouterr().err
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "plugins"))
    users = ["--cluster", "inline", "-m", "hydra.searchpath=[pkg://mypkg.conf]", "generator=mine", "dgp=myprocess"]
    users += ["design.reps=3", "design.gammas=[0.0,1.0]", "theory.refits=4", "seed=0,1", "figures_dir=null"]
    assert main([*users, f"hydra.sweep.dir={tmp_path / 'users'}"]) == 0
    assert "aggregated 2 cells" in capsys.readouterr().err
