"""The job contract under reruns, concurrency, corruption and bad input (issue 13): nothing lost,
nothing stale, nothing silently wrong."""

import contextlib
import fcntl
import hashlib
import io
import json
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from simstudy import app, plotting
from simstudy.aggregate import PlannedCell, aggregate, read_summaries
from simstudy.app import main, regenerate_replication, run_job
from simstudy.composition import DuplicateOverride, compose, config_dir, config_hash, sweep_jobs
from simstudy.config import ConfigError, validate
from simstudy.jobfiles import SUMMARY, complete_summary, file_digest, job_lock, read_summary, temporary_sibling
from simstudy.studies.job import cell_descriptor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from test_app import SMALL, composed, env, simstudy  # noqa: E402

QUICK = ["design.reps=4", "design.gammas=[0.0,1.0,2.0]", "theory.refits=4", "figures_dir=null"]


def _main(args, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main([*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    return exit_info.value.code, err.getvalue()


def run_main(args) -> str:
    """``python -m simstudy args`` run to success in this process; returns its stderr."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), err.getvalue()[-2000:]
    return err.getvalue()


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    """A finished quickstart job directory, written by run_job."""
    from omegaconf import OmegaConf

    out = tmp_path_factory.mktemp("job")
    cfg = composed(["study=quickstart", *SMALL])
    run = validate(cfg)
    run_job(run, out, OmegaConf.to_yaml(cfg, resolve=True))
    return out, run


# --- write order and resume (items 5, 7) ------------------------------------------------------


def test_summary_is_written_last_and_lists_every_output(finished_job):
    out, run = finished_job
    summary = read_summary(out / SUMMARY)
    assert sorted(summary["outputs"]) == ["config.yaml", "figure.pdf", "figure.png", "replications.parquet"]
    last = max((out / name).stat().st_mtime_ns for name in summary["outputs"])
    assert (out / SUMMARY).stat().st_mtime_ns >= last
    assert complete_summary(out, config_hash(run)) == summary


@pytest.mark.parametrize("damage", ["delete", "truncate"])
@pytest.mark.parametrize("name", ["figure.png", "replications.parquet", "config.yaml"])
def test_a_job_with_a_missing_or_damaged_output_is_not_complete(finished_job, tmp_path, damage, name):
    out, run = finished_job
    copy = tmp_path / "job"
    copy.mkdir()
    for path in out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    if damage == "delete":
        (copy / name).unlink()
    else:
        data = (copy / name).read_bytes()
        (copy / name).write_bytes(data[: len(data) // 2])
    assert complete_summary(copy, config_hash(run)) is None


@pytest.mark.parametrize("text", ["", '{"status": "ok", "conf', "[1, 2]", "\x00\xff"])
def test_an_unreadable_summary_means_incomplete_and_is_reported(finished_job, tmp_path, text):
    out, run = finished_job
    job = tmp_path / "sweep" / "job"
    job.mkdir(parents=True)
    (job / SUMMARY).write_bytes(text.encode("latin-1"))
    assert read_summary(job / SUMMARY) is None
    assert complete_summary(job, config_hash(run)) is None
    [entry] = read_summaries(tmp_path / "sweep")
    assert entry["status"] == "unreadable" and "truncated" in entry["error"]


def test_a_deleted_figure_is_redone_by_the_next_run_and_the_numbers_stay(tmp_path):
    # the command in this process, on a cheap cell
    out = tmp_path / "job"
    args = ["study=ls_symmetric", *QUICK, f"hydra.run.dir={out}"]
    run_main(args)
    rows = (out / "replications.parquet").read_bytes()
    (out / "figure.png").unlink()
    (out / SUMMARY).write_text((out / SUMMARY).read_text()[:40])  # and a truncated summary
    again = run_main(args)
    assert "skipped" not in again
    assert (out / "figure.png").exists() and (out / "replications.parquet").read_bytes() == rows
    assert read_summary(out / SUMMARY)["status"] == "ok"
    assert "skipped" in run_main(args)


# --- concurrency (item 3) ---------------------------------------------------------------------


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,t\n1,0\n")
    assert file_digest(path) == hashlib.sha256(b"a,t\n1,0\n").hexdigest()


def test_temporary_names_are_unique_across_threads(tmp_path):
    names = set()
    threads = [
        threading.Thread(target=lambda: names.update(temporary_sibling(tmp_path / "f") for _ in range(50)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == 200


def test_figures_saved_at_once_to_one_stem_all_succeed(tmp_path):
    errors = []

    def save():
        try:
            fig, ax = plt.subplots()
            ax.plot([0, 1], [1, 0])
            plotting.save(fig, tmp_path / "figure")
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.pdf", "figure.png"]


def test_the_job_lock_excludes_another_process_and_leaves_no_file(tmp_path):
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except BlockingIOError:\n    print('held')"
    )
    job = tmp_path / "job"

    def other():
        return subprocess.run([sys.executable, "-c", probe, str(job)], capture_output=True, text=True).stdout.strip()

    with job_lock(job):
        assert other() == "held"
    assert other() == "free"
    assert list(job.iterdir()) == []
    assert fcntl  # the lock is flock-based


@pytest.mark.slow
def test_two_runs_of_one_sweep_at_once_finish_every_cell_once(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "simstudy",
        "-m",
        "design.n1=20,30,40",
        *QUICK[:-1],
        f"hydra.sweep.dir={sweep}",
        f"figures_dir={tmp_path / 'fig'}",
    ]
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    summaries = [read_summary(p) for p in sorted(sweep.glob(f"*/{SUMMARY}"))]
    assert len(summaries) == 3 and all(s["status"] == "ok" for s in summaries)
    skipped = sum(r[1].count("skipped") for r in results)
    assert skipped == 3  # each cell computed once, found complete by the other run
    assert not list(sweep.glob("**/.*tmp")) and not list((tmp_path / "fig").glob(".*"))


# --- the aggregate covers exactly its sweep (item 1) -----------------------------------------


@pytest.mark.slow
def test_a_rerun_with_another_grid_aggregates_only_its_own_cells(tmp_path):
    sweep = tmp_path / "sweep"
    simstudy(["-m", "design.n1=20,40,80", *QUICK, f"hydra.sweep.dir={sweep}"], ROOT)
    simstudy(["-m", "design.n1=20,40", *QUICK[1:], "design.reps=5", f"hydra.sweep.dir={sweep}"], ROOT)
    cells = pd.read_csv(sweep / "cells.csv")
    assert sorted(cells["n1"]) == [20, 40] and set(cells["reps"]) == {5}
    assert sorted(cells["cell.n1"]) == [20, 40] and set(cells["cell.reps"]) == {5}
    proc = subprocess.run(
        [sys.executable, "-m", "simstudy.aggregate", str(sweep)],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(sweep / "cells.csv")) == 2


def test_planned_cells_select_their_own_summaries_and_report_missing_ones(finished_job, tmp_path):
    out, run = finished_job
    sweep = tmp_path / "sweep"
    for name, reps in (("a", 4), ("b", 5)):
        _finished_copy(out, sweep / name, f"hash-{reps}", reps)
    planned = [
        PlannedCell(("design.reps=5",), "hash-5", {"reps": 5}),
        PlannedCell(("design.reps=6",), "hash-6", {"reps": 6}),
    ]
    entries = read_summaries(sweep, planned)
    assert [(e["status"], e["cell"]["reps"]) for e in entries] == [("ok", 5), ("missing", 6)]
    assert entries[1]["job_dir"] == "design.reps=6"


def _finished_copy(job: Path, to: Path, digest: str, reps: int) -> None:
    """A copy of a finished job as the job of another config (its hash and reps)."""
    shutil.copytree(job, to)
    summary = {**read_summary(job / SUMMARY), "config_hash": digest}
    summary["cell"] = {**summary["cell"], "reps": reps}
    (to / SUMMARY).write_text(json.dumps(summary))


@pytest.mark.parametrize("planned", [True, False])
def test_the_aggregate_trusts_no_cell_whose_listed_files_are_missing(finished_job, tmp_path, planned):
    # status calls such a cell missing; the aggregate used to report it ok, with its rates
    out, _ = finished_job
    sweep = tmp_path / "sweep"
    _finished_copy(out, sweep / "design.reps=5", "hash-5", 5)
    _finished_copy(out, sweep / "design.reps=6", "hash-6", 6)
    (sweep / "design.reps=5" / "replications.parquet").unlink()
    cells = [PlannedCell((f"design.reps={r}",), f"hash-{r}", {"reps": r}) for r in (5, 6)]
    entries = read_summaries(sweep, cells if planned else None)
    assert [(e["status"], e["job_dir"]) for e in entries] == [("missing", "design.reps=5"), ("ok", "design.reps=6")]
    assert "replications.parquet, listed in summary.json, is missing" in entries[0]["error"]


@pytest.mark.parametrize("content", ["{}", '{"status": "running"}', "[1, 2]"])
def test_a_summary_of_no_finished_or_failed_job_is_unreadable_not_a_crash(finished_job, tmp_path, content):
    # --all read {} as a finished curve cell and died on its missing fields (KeyError: 'gammas')
    out, _ = finished_job
    sweep = tmp_path / "sweep"
    _finished_copy(out, sweep / "design.reps=5", "hash-5", 5)
    (sweep / "odd").mkdir()
    (sweep / "odd" / SUMMARY).write_text(content)
    cells = aggregate(sweep)
    states = sorted(zip(cells["job_dir"], cells["status"], strict=True))
    assert states == [("design.reps=5", "ok"), ("odd", "unreadable")]


def test_an_undetermined_cell_shows_no_band_in_the_report(finished_job, tmp_path):
    # its critical z rests on 4 replications (about 1e8 at R = 3), not a number to read
    out, _ = finished_job
    sweep = tmp_path / "sweep"
    _finished_copy(out, sweep / "design.reps=4", "hash-4", 4)
    cells = aggregate(sweep)
    assert cells["verdict"].tolist() == ["undetermined"] and cells["critical_z"].notna().all()
    [row] = [line for line in (sweep / "report.md").read_text().splitlines() if line.startswith("| dgp=")]
    assert row.split(" | ")[5] == "—", row


def test_an_unreadable_summary_is_listed_once_under_its_folder(finished_job, tmp_path):
    out, _ = finished_job
    sweep = tmp_path / "sweep"
    _finished_copy(out, sweep / "design.reps=5", "hash-5", 5)
    (sweep / "design.reps=5" / SUMMARY).write_text('{"status": "o')
    cells = [PlannedCell(("study=quickstart", f"design.reps={r}"), f"hash-{r}", {"reps": r}) for r in (5, 6)]
    entries = read_summaries(sweep, cells)
    assert sorted((e["status"], e["job_dir"]) for e in entries) == [
        ("missing", "study=quickstart,design.reps=6"),
        ("unreadable", "design.reps=5"),
    ]
    assert all("planned" not in e for e in entries)
    # a folder name that fits two planned cells stands for neither: it is listed apart
    both = [PlannedCell(("design.reps=5", f"seed={s}"), f"hash-{s}", {"seed": s}) for s in (1, 2)]
    assert sorted(e["status"] for e in read_summaries(sweep, both)) == ["missing", "missing", "unreadable"]


def test_a_cell_finished_by_older_code_is_listed_under_its_folder_with_its_kind(finished_job, tmp_path):
    out, _ = finished_job
    sweep = tmp_path / "sweep"
    _finished_copy(out, sweep / "n1=50", "old-hash", 5)
    cell = PlannedCell(("study=gqs_calibration", "design.n1=50"), "new-hash", {"reps": 5}, ("old-hash",), "diagnostics")
    [entry] = read_summaries(sweep, [cell])
    assert (entry["status"], entry["job_dir"], entry["kind"]) == ("missing", "n1=50", "diagnostics")
    assert "older simstudy" in entry["error"]


def test_the_aggregate_command_ships_with_the_package_and_refuses_a_folder_without_a_sweep(tmp_path):
    argv = [sys.executable, "-m", "simstudy.aggregate", str(tmp_path / "nowhere")]
    proc = subprocess.run(argv, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "nowhere" in proc.stderr and not (tmp_path / "nowhere").exists()


def test_cell_descriptors_differ_whenever_config_hashes_differ():
    base = ["study=quickstart"]
    variants = [
        [],
        ["design.reps=7"],
        ["seed=3"],
        ["design.gammas=[0.0,1.0]"],
        ["model.ridge=1e-4"],
        ["theory.refits=9"],
        ["design.kappa=10"],
        ["theory.alpha=0.1"],
    ]
    runs = [validate(composed(base + v)) for v in variants]
    descriptors = {json.dumps(cell_descriptor(r), sort_keys=True) for r in runs}
    assert len({config_hash(r) for r in runs}) == len(descriptors) == len(variants)


def test_an_aggregation_error_exits_nonzero_with_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "sweep").mkdir()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    class Loader:
        def config_loader(self):
            return None

    monkeypatch.setattr(app, "planned_cells", broken)
    monkeypatch.setattr("hydra.core.global_hydra.GlobalHydra.instance", lambda: Loader())
    config = {
        "hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "sweeper": {"params": {}}, "overrides": {"task": []}}
    }
    from omegaconf import OmegaConf

    with pytest.raises(SystemExit) as exit_info:
        app.AggregateCallback().on_multirun_end(OmegaConf.create(config))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk full" in err[0]


# --- bad input before anything runs (item 10) ------------------------------------------------


@pytest.mark.parametrize(
    "args, key",
    [
        (["study.name=../../../x"], "study.name"),
        (["study.name=.hidden"], "study.name"),
        (["study.name=a/b"], "study.name"),
        (["design.n1=20", "design.n1=40"], "design.n1"),
        (["-m", "design.n1=20,40", "design.n1=80"], "design.n1"),
        (["-m", "design.n1=range(5,5)"], "design.n1"),
        (["-m", "design.n1=20,40,"], "design.n1"),
        (["study.name=héllo wörld"], "study.name"),
    ],
)
def test_bad_command_lines_exit_2_naming_the_key(tmp_path, args, key):
    code, err = _main(args, tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("simstudy: config error:"), err
    assert key in lines[0] and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_a_command_line_key_replacing_a_swept_one_is_said():
    jobs = sweep_jobs(["sweep=asym_biased", "design.n1=100"], multirun=True)
    assert [job for job in jobs.jobs if "design.n1=100" in job] == jobs.jobs and len(jobs.jobs) == 1
    assert jobs.replaced["design.n1"][1] == "design.n1=100"
    with pytest.raises(DuplicateOverride):
        sweep_jobs(["seed=1", "seed=2"], multirun=False)


def test_sigint_says_one_line_and_exits_130(tmp_path):
    # a suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # an ignored signal stays ignored across exec: the job ran to the end and exited 0. A handler
    # in this process is reset to the default at exec instead (a preexec_fn would fork, which
    # JAX warns about)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simstudy",
                "design.reps=2000",
                "theory.refits=4",
                "figures_dir=null",
                f"hydra.run.dir={tmp_path / 'job'}",
            ],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, inherited)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "job").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("simstudy: interrupted")


# --- replicate and aggregate every kind of job (items 10, 14) ---------------------------------


def test_replicate_refuses_a_directory_without_its_files(finished_job, tmp_path, monkeypatch, capsys):
    out, _ = finished_job
    job = tmp_path / "job"
    job.mkdir()
    for name in ("config.yaml", SUMMARY):
        (job / name).write_bytes((out / name).read_bytes())
    script = [sys.executable, "scripts/replicate.py", str(job), "0"]
    proc = subprocess.run(script, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("replicate:") and "replications.parquet" in proc.stderr
    # the same script in this process (the child above has shown its exit status and stderr)
    monkeypatch.setattr(sys, "argv", [script[1], str(tmp_path / "nowhere"), "0"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / script[1]), run_name="__main__")
    assert exit_.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "study, extra",
    [
        ("vtss_linear", ["design.n1=50", "design.n0=500", "selection.gammas=[0.0,0.5,1.0]"]),
        ("real_data", ["selection.gammas=[0.0,1.0]", "data.datasets=[nwtco]", "data.generators=[SMOTE]"]),
    ],
)
def test_selection_jobs_replicate_and_their_sweeps_aggregate(tmp_path, study, extra):
    sweep = tmp_path / "sweep"
    simstudy(
        [
            "-m",
            f"study={study}",
            "design.reps=2",
            "design.gammas=[0.0,1.0]",
            "seed=0,1",
            *extra,
            f"hydra.sweep.dir={sweep}",
        ],
        ROOT,
    )
    cells = pd.read_csv(sweep / "cells.csv")
    assert len(cells) == 2 and (cells["status"] == "ok").all()
    assert "no theory verdict" in (sweep / "report.md").read_text()
    job = next(p.parent for p in sweep.glob(f"*/{SUMMARY}"))
    rows, stored = regenerate_replication(job, 1)
    assert app.same_rows(rows, stored)


# --- shipped configs (item 12) ----------------------------------------------------------------


def test_the_configs_come_from_the_repository_in_a_checkout():
    assert config_dir() == ROOT / "conf"
    assert validate(compose(["study=asym_biased"])).study == "asym_biased"


def test_the_wheel_lists_every_subpackage():
    """pyproject's explicit package list misses nothing under simstudy/ (a missing one installs
    fine and fails on import, outside editable mode only)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "simstudy").rglob("__init__.py")}
    assert found - listed == set()


@pytest.mark.slow
def test_a_built_wheel_runs_a_preset_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the dependencies come from this environment; simstudy itself only from the wheel
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(next(wheels.glob("*.whl")))],
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [str(python), "-m", "simstudy", "study=asym_biased", *QUICK, "design.n1=20", "hydra.run.dir=job"],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_summary(work / "job" / SUMMARY)["status"] == "ok"
    explore = subprocess.run(
        [
            str(venv / "bin" / "simstudy-explore"),
            "explore.magnitudes.num=4",
            "explore.angles.num=5",
            "hydra.run.dir=map",
        ],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert explore.returncode == 0, explore.stderr[-3000:]
    assert read_summary(work / "map" / SUMMARY)["cells"] == 20
    where = subprocess.run(
        [str(python), "-c", "import simstudy.composition as c; print(c.config_dir())"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(site) and where.endswith("simstudy/conf")


def test_a_sweep_refuses_a_value_that_would_put_its_folders_outside_the_sweep(tmp_path, capsys):
    # the job's folder is named after its overrides: data.path=x/../../y.csv climbed out of it
    argv = ["-m", "study=real_data", "data.datasets=null", "data.path=x/../../y.csv", "data.target=y", "seed=0,1"]
    with pytest.raises(SystemExit) as exit_:
        app.preflight([*argv, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("simstudy: config error: data.path=")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "job, outside",
    [
        (["data.path=x/../../y.csv", "seed=1"], True),
        (["+data.path=x/../../y", "seed=1"], True),  # the name "+data.path=x/../../y,seed=1"
        (["+data.path=x/../..", "seed=1"], False),  # "+data.path=x/../..,seed=1": a folder "..,seed=1"
        (["data.path=x/..", "a=1"], True),  # "a=1,data.path=x/..": the sweep folder itself
        (["data.path=../x.csv", "seed=1"], False),  # a folder named "data.path=.." inside the sweep
        (["data.path=a..b", "seed=1"], False),
        (["figures_dir=../../figures", "seed=1"], False),  # excluded: it does not name the folder
        (["figures_dir=x"], False),  # only excluded keys: the one job runs in the sweep folder
        # hydra.* overrides are Hydra's settings, not part of the name
        (["hydra.sweep.dir=/t/s", "seed=0", "z.path=x/../../y"], True),
        (["data.path=x/.."], True),  # the sweep folder itself, with another job's files
    ],
)
def test_a_folder_is_refused_only_where_hydra_would_put_it_outside_the_sweep(job, outside):
    naming = compose(["study=quickstart"], return_hydra_config=True).hydra.job.config.override_dirname
    if outside:
        with pytest.raises(ConfigError, match="at or above hydra.sweep.dir") as info:
            app.check_folder_names([job], naming)
        assert info.value.key == next(o.split("=")[0].lstrip("+") for o in job if ".." in o)
    else:
        app.check_folder_names([job], naming)


def test_a_sweeps_cells_leave_the_figure_copy_to_the_aggregate(tmp_path):
    # each cell used to copy its figure to figures/<study>.png: a sweep killed midway left one
    # cell's figure there as the study's
    figs = tmp_path / "figs"
    cfg = composed(["study=quickstart", *SMALL[:-1], f"figures_dir={figs}"])
    assert app.run_cell(cfg, tmp_path / "cell") == "ok"
    assert (tmp_path / "cell" / "figure.png").is_file() and not figs.exists()
    assert app.run_cell(cfg, tmp_path / "single", copy_figures=True) == "ok"
    assert sorted(p.name for p in figs.iterdir()) == ["quickstart.pdf", "quickstart.png"]
    # the job's identity ignores where figures are copied: the copying run skipped nothing
    assert (
        read_summary(tmp_path / "cell" / SUMMARY)["config_hash"]
        == read_summary(tmp_path / "single" / SUMMARY)["config_hash"]
    )


def test_a_multirun_of_one_unswept_job_keeps_its_own_figure(tmp_path, monkeypatch):
    """Only excluded keys on the command line: the one job runs in the sweep dir itself, and
    the end of the multirun must not aggregate over (and overwrite) its files."""
    sweep = tmp_path / "sweep"
    # the command in this process: test_batch's unswept quickstart job has compiled its fits
    monkeypatch.chdir(tmp_path)
    err = run_main(["-m", "study=quickstart", "figures_dir=null", f"hydra.sweep.dir={sweep}"])
    assert "holds one job" in err
    assert complete_summary(sweep, read_summary(sweep / SUMMARY)["config_hash"]) is not None
    assert not (sweep / "cells.parquet").exists()
    again = subprocess.run(
        [sys.executable, "-m", "simstudy.aggregate", "--all", str(sweep)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "is a job directory" in again.stderr
    assert complete_summary(sweep, read_summary(sweep / SUMMARY)["config_hash"]) is not None
