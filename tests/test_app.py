"""The Hydra app: every study and sweep composes and validates; a job honours the output
contract; sweeps aggregate, resume and give the same numbers on every launcher."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from simstudy.app import CONFIG_PATH, config_hash, main, run_job
from simstudy.config import validate

ROOT = Path(__file__).resolve().parent.parent
STUDIES = sorted(p.stem for p in (ROOT / "conf" / "study").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml"))
SUMMARY_KEYS = {
    "study",
    "dgp",
    "generator",
    "model",
    "n0",
    "n1",
    "reps",
    "seed",
    "regime",
    "gammas",
    "n_tilde",
    "excess_mean",
    "excess_mcse",
    "param_error_mean",
    "param_error_mcse",
    "population_excess",
    "theory_excess",
    "alignment_c",
    "mismatch_norm",
    "mismatch_angle_deg",
    "gamma_star_theory",
    "gamma_star_theory_total",
    "gamma_star_empirical",
    "gamma_star_empirical_ci",
    "n_failed_fits",
    "verdict",
    "versions",
    "seconds",
}
SMALL = ["design.reps=4", "design.gammas=[0.0,1.0,2.0]", "theory.refits=4", "figures_dir=null"]


def composed(overrides):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=False)


def env():
    return dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")


def simstudy(args, cwd, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "simstudy", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_composes_and_validates(study):
    run = validate(composed([f"study={study}"]))
    assert run.study == study
    assert run.design.n0 > run.design.n1 >= 2


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_composes_with_explicit_lists(sweep):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert len(params) >= 1
    assert all("," in str(values) for values in params.values())
    assert cfg.hydra.sweep.dir == f"multirun/{cfg.study.name}"
    validate({k: v for k, v in cfg.items() if k != "hydra"})


@pytest.mark.parametrize("study", ["quickstart", "asym_biased", "ls_symmetric", "alignment_map"])
def test_a_small_job_writes_the_contract(tmp_path, study):
    cfg = composed([f"study={study}", *SMALL])
    run = validate(cfg)
    summary = run_job(run, tmp_path, "resolved: yaml\n")
    assert SUMMARY_KEYS <= set(summary)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(on_disk) and on_disk["config_hash"] == config_hash(run)
    rows = pd.read_parquet(tmp_path / "replications.parquet")
    assert len(rows) == 4 * 3
    assert {"replication", "gamma", "n_tilde", "excess", "param_error", "converged"} <= set(rows)
    np.testing.assert_allclose(on_disk["excess_mean"], rows.groupby("gamma")["excess"].mean())
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert (tmp_path / "figure.pdf").exists()
    expected_regime = "symmetry" if study == "ls_symmetric" else "asymmetry"
    assert on_disk["regime"] == expected_regime


def test_the_quick_start_job_runs_from_the_command_line(tmp_path):
    out = tmp_path / "job"
    proc = simstudy(["design.reps=6", f"hydra.run.dir={out}", f"figures_dir={tmp_path / 'fig'}"], ROOT)
    assert "replications" in proc.stderr  # progress lines
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"] == "quickstart" and summary["reps"] == 6
    assert (tmp_path / "fig" / "quickstart.png").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "figure.pdf",
        "figure.png",
        "replications.parquet",
        "summary.json",
    ]


def _numbers(sweep_dir: Path) -> dict:
    out = {}
    for path in sorted(sweep_dir.glob("*/summary.json")):
        s = json.loads(path.read_text())
        for volatile in ("seconds", "versions"):
            s.pop(volatile)
        out[path.parent.name] = (json.dumps(s, sort_keys=True), (path.parent / "replications.parquet").read_bytes())
    return out


SWEEP_ARGS = [
    "-m",
    "generator.angle_deg=0.0,90.0",
    "design.reps=5",
    "design.gammas=[0.0,1.0,2.0]",
    "theory.refits=4",
    "figures_dir=null",
]


@pytest.mark.slow
def test_multirun_aggregates_and_resumes(tmp_path):
    sweep = tmp_path / "sweep"
    simstudy([*SWEEP_ARGS, f"hydra.sweep.dir={sweep}"], ROOT)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    for name in ("cells.parquet", "cells.csv", "curves.parquet", "curves.csv", "figure.png", "figure.pdf", "report.md"):
        assert (sweep / name).exists(), name
    cells = pd.read_parquet(sweep / "cells.parquet")
    assert len(cells) == 2 and (cells["status"] == "ok").all()
    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/replications.parquet")}
    again = simstudy([*SWEEP_ARGS, f"hydra.sweep.dir={sweep}"], ROOT)
    assert again.stderr.count("skipped") == 2
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/replications.parquet")} == before


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local_joblib", "local_submitit"])
def test_launchers_give_identical_numbers(tmp_path, launcher):
    basic = tmp_path / "basic"
    other = tmp_path / launcher
    simstudy([*SWEEP_ARGS, f"hydra.sweep.dir={basic}"], ROOT)
    simstudy([*SWEEP_ARGS, f"hydra.sweep.dir={other}", f"hydra/launcher={launcher}"], ROOT)
    assert _numbers(basic) == _numbers(other) and len(_numbers(basic)) == 2


def test_the_quick_start_study_writes_its_figure_into_figures():
    # a study preset's values must win over the root config's defaults
    assert validate(composed([])).figures_dir == "figures"
    assert validate(composed(["study=asym_biased"])).figures_dir is None


def run_main(args) -> str:
    """``python -m simstudy args`` in this process (simstudy.app.main); returns its stderr.

    A job run here reuses the programs XLA compiled for the same cell earlier in the session,
    where a child process compiles all of them again."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), err.getvalue()[-3000:]
    return err.getvalue()


# The cells of tests/test_selection_study.py's in-process jobs (TINY_LINEAR and the bundled
# dataset's job), so that whichever runs second finds their fits compiled. The same commands in a
# child process: tests/test_real_data_contract.py (study 7 from the command line, every test run)
# and test_job_contract's selection sweeps (both kinds, make test-slow).
SELECTION_COMMANDS = {
    "vtss_linear": ["design.n0=1200", "design.n1=80", "design.reps=3", "design.gammas=[0.0,0.5,1.0,1.5]"]
    + ["selection.gammas=[0.0,0.5,1.0,1.5]"],
    "real_data": ["design.reps=2", "design.gammas=[0.0,1.0]", "selection.gammas=[0.0,0.5,1.0]"]
    + ["data.datasets=[breast_cancer]", "data.generators=[SMOTE]"],
}


@pytest.mark.parametrize("study", sorted(SELECTION_COMMANDS))
def test_selection_studies_run_from_the_command_line(tmp_path, study):
    out = tmp_path / "job"
    run_main([f"study={study}", *SELECTION_COMMANDS[study], f"hydra.run.dir={out}"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["study"] == study
    assert (out / "replications.parquet").exists() and (out / "figure.png").exists()


def test_workers_are_validated_and_not_part_of_a_jobs_identity():
    one, three = validate(composed(["workers=1"])), validate(composed(["workers=3"]))
    assert (one.workers, three.workers) == (1, 3)
    assert one.identity() == three.identity() == validate(composed([])).identity()
    assert validate(composed([])).workers is None


def test_saved_figures_are_byte_identical_across_saves(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from simstudy import plotting

    def saved(day):
        # matplotlib dates a PDF from SOURCE_DATE_EPOCH when set: two saves a day apart
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(86400 * day))
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 2])
        return [p.read_bytes() for p in plotting.save(fig, tmp_path / str(day) / "figure")]

    assert saved(0) == saved(1)
