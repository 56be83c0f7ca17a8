"""Plug-ins (simstudy.plugins): a process and a generator from a user's own package
(tests/plugins/mypkg, with its conf folder) run in a real sweep by README's command; a bad
``_target_`` exits 2 with one line; a ``_target_`` naming a built-in is the same cell, stream
for stream, as its ``name:`` form."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from simstudy.app import main, preflight, regenerate_replication, same_rows
from simstudy.cell import BuiltCell
from simstudy.composition import job_identity
from simstudy.engine import stable_key
from simstudy.families import get_family
from simstudy.fitting import GLM, fit_glm
from simstudy.jobfiles import JobOutputs
from simstudy.studies.job import run_job

PLUGINS = Path(__file__).resolve().parent / "plugins"
SEARCHPATH = "hydra.searchpath=[pkg://mypkg.conf]"
SMALL = ["design.reps=3", "design.gammas=[0.0,1.0]", "theory.refits=4"]


@pytest.fixture
def mypkg(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_a_sweep_with_a_process_and_a_generator_from_a_users_package(tmp_path):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simstudy",
            "-m",
            SEARCHPATH,
            "generator=mine",
            "dgp=myprocess",
            *SMALL,
            "seed=0,1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "aggregated 2 cells" in proc.stderr
    cells = pd.read_parquet(sweep_dir / "cells.parquet")
    assert list(cells["status"]) == ["ok", "ok"]
    assert set(cells["cell.generator._target_"]) == {"mypkg.ShrunkBootstrap"}
    assert set(cells["cell.dgp._target_"]) == {"mypkg.two_gaussians"}
    assert set(cells["generator"]) == {"mine"} and set(cells["dgp"]) == {"myprocess"}
    assert (sweep_dir / "figure.png").is_file()


@pytest.mark.parametrize(
    "override, key",
    [
        ("generator._target_=mypkg.Nope", "generator._target_"),
        ("generator._target_=nopkg.Generator", "generator._target_"),
        ("generator._target_=mypkg.np", "generator._target_"),  # a module: not callable
        ("generator._target_=builtins.dict", "generator._target_"),  # returns no Generator
        ("+generator.bogus=1", "generator.bogus"),  # not an option of the target
        ("generator.shrink=2.0", "generator"),  # the constructor's own check
        ("dgp._target_=mypkg.missing", "dgp._target_"),
        ("+dgp.foo=1", "dgp.foo"),
        ("dgp.d=0", "dgp"),
        ("generator._target_=simstudy.generators.Smote", "generator.name"),  # a built-in, named otherwise
    ],
)
def test_a_bad_plugin_option_exits_2_with_one_line(mypkg, capsys, override, key):
    with pytest.raises(SystemExit) as exit_:
        preflight([SEARCHPATH, "generator=mine", "dgp=myprocess", *SMALL, override])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"simstudy: config error: {key}="), lines


def test_a_bad_target_exits_2_end_to_end(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(PLUGINS))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simstudy",
            SEARCHPATH,
            "generator=mine",
            "dgp=myprocess",
            "generator._target_=mypkg.Nope",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("simstudy: config error: generator._target_='mypkg.Nope': cannot be imported")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, target",
    [
        (["study=quickstart"], "+generator._target_=simstudy.generators.mismatch.MismatchGenerator"),
        (["generator=smote"], "+generator._target_=simstudy.generators.Smote"),
        (["generator=oracle"], "+generator._target_=simstudy.generators.classic.Oracle"),
        (["study=quickstart"], "+dgp._target_=simstudy.processes.gaussian_classes"),
        (["study=ls_symmetric"], "+dgp._target_=simstudy.processes.symmetric_mean_shift"),
    ],
)
def test_a_builtin_target_is_the_named_cell(overrides, target):
    run, digest = job_identity(overrides)
    run_t, digest_t = job_identity([*overrides, target])
    assert run_t == run and digest_t == digest
    built, built_t = BuiltCell(run), BuiltCell(run_t)
    assert built_t.cell.data_key == built.cell.data_key
    assert built_t.cell.generator_key == built.cell.generator_key


def test_a_plugin_target_is_part_of_the_streams_identity(mypkg):
    run, _ = job_identity([SEARCHPATH, "generator=mine", "dgp=myprocess", *SMALL])
    assert run.generator == {"name": "mine", "_target_": "mypkg.ShrunkBootstrap", "shrink": 0.5}
    without_target = {k: v for k, v in run.generator.items() if k != "_target_"}
    assert stable_key(run.generator) != stable_key(without_target)
    assert BuiltCell(run).cell.generator_key == stable_key(run.generator)


def _run_main(args) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m simstudy args`` run in this process."""
    err = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exit_:
        code = exit_.code or 0
    return code, err.getvalue()


def test_a_kind_of_study_from_a_users_package(tmp_path, mypkg, monkeypatch):
    """``study._target_`` runs a user's Study through the one job writer: its files in the
    contract, a sweep aggregated, a rerun skipped, a replication regenerated to the bit.

    README's command runs in this process, mypkg on sys.path; that a child process finds a user's
    package through PYTHONPATH is test_a_sweep_with_a_process_and_a_generator_from_a_users_package's."""
    sweep_dir = tmp_path / "sweep"
    command = ["-m", SEARCHPATH, "study=excess_table", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    monkeypatch.chdir(tmp_path)
    code, err = _run_main(command)
    assert code == 0, err[-3000:]
    assert "aggregated 2 cells" in err
    job = sweep_dir / "seed=0"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["kind"] == "mypkg.ExcessTable" and summary["figure"] == "table"
    assert sorted(summary["outputs"]) == ["config.yaml", "figure.pdf", "figure.png", "replications.parquet", "table.md"]
    assert len(summary["excess_mean"]) == 3
    assert "2 cells of a mypkg.ExcessTable study" in (sweep_dir / "report.md").read_text()
    code, err = _run_main(command)
    assert code == 0 and err.count("already complete for this config, skipped") == 2
    rows, stored = regenerate_replication(job, 1)
    assert same_rows(rows, stored)


def test_a_bad_study_target_exits_2(mypkg, capsys):
    for target, key in (("mypkg.Nope", "study._target_"), ("mypkg.two_gaussians", "study._target_")):
        with pytest.raises(SystemExit) as exit_:
            preflight([SEARCHPATH, "study=excess_table", f"study._target_={target}"])
        assert exit_.value.code == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"simstudy: config error: {key}="), lines


def test_a_job_of_another_kind_in_the_same_directory_leaves_nothing_stale(tmp_path, mypkg):
    """A directory's earlier job listed table.md; the next job (another kind, another config)
    does not write it, so it goes: every file left is one the new summary lists."""
    run_a, _ = job_identity([SEARCHPATH, "study=excess_table", "figures_dir=null"])
    run_job(run_a, tmp_path, "a: 1\n")
    assert (tmp_path / "table.md").is_file()
    run_b, _ = job_identity(["design.reps=2", "design.gammas=[0.0,1.0]", "theory.refits=4", "figures_dir=null"])
    summary = run_job(run_b, tmp_path, "b: 1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*summary["outputs"], "summary.json"])
    assert not (tmp_path / "table.md").exists()


def test_a_family_from_a_users_package_fits_as_statsmodels_does(mypkg, tmp_path):
    """model.family=mypkg.CLOGLOG: a Family by its dotted path; its fit equals statsmodels'
    Binomial GLM under the complementary log-log link, and a job runs with it."""
    family = get_family("mypkg.CLOGLOG")
    eta, y = np.linspace(-3.0, 2.0, 11), np.array([0.0, 1.0] * 5 + [1.0])
    for label in (0.0, 1.0):
        np.testing.assert_allclose(
            jax.vmap(jax.grad(family.loss))(eta, eta * 0 + label), family.score(eta, 0 * eta + label)
        )
        np.testing.assert_allclose(
            jax.vmap(jax.grad(family.score))(eta, eta * 0 + label), family.curvature(eta, 0 * eta + label), rtol=1e-10
        )
    rng = np.random.default_rng(np.random.SeedSequence(3))
    X = rng.standard_normal((400, 2))
    y = (rng.uniform(size=400) < family.probability(0.3 + X @ [0.8, -0.5])).astype(float)
    fit = fit_glm(X, y, model=GLM(family, intercept=True, ridge=0.0))
    link = sm.families.links.CLogLog()
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial(link=link)).fit(tol=1e-12)
    np.testing.assert_allclose(fit.theta, ref.params, rtol=1e-7)
    run, _ = job_identity(
        [
            SEARCHPATH,
            "model.family=mypkg.CLOGLOG",
            "model.intercept=true",
            "generator=oracle",
            *SMALL,
            "figures_dir=null",
        ]
    )
    population = BuiltCell(run).population
    np.testing.assert_allclose(0.5 * (population.g + population.moments_star[1].grad), 0.0, atol=1e-10)
    summary = run_job(run, tmp_path, "family: cloglog\n")
    assert summary["status"] == "ok" and summary["model"] == "mypkg.CLOGLOG + intercept"


@pytest.mark.parametrize("how", ["failed", "interrupted"])
def test_files_of_a_failed_or_interrupted_run_do_not_outlive_it(tmp_path, mypkg, how):
    """A run that failed after a finished one, or that was killed after writing some files,
    leaves names the next finished run removes (jobfiles.JobOutputs)."""
    run_a, _ = job_identity([SEARCHPATH, "study=excess_table", "figures_dir=null"])
    curve = ["design.reps=2", "design.gammas=[0.0,1.0]", "theory.refits=4", "figures_dir=null"]
    run_b, _ = job_identity(curve)
    if how == "failed":
        run_job(run_a, tmp_path, "a: 1\n")  # lists table.md
        JobOutputs(tmp_path)  # the failing run starts, then fails before writing anything
        (tmp_path / "summary.json").write_text('{"status": "failed"}')
    else:
        files = JobOutputs(tmp_path)
        files.add("table.md")
        (tmp_path / "table.md").write_text("| half |")  # killed here: no summary lists it
    summary = run_job(run_b, tmp_path, "b: 1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*summary["outputs"], "summary.json"])
