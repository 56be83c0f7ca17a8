"""``python -m simstudy.status``: a sweep's cells as done, missing, failed or stale with their
costs, and the dry run of a command (``--plan``), which finds the cells already complete in the
directories Hydra would use and writes nothing.

One real sweep of four tiny cells (ls_symmetric, R = 2, 3 gammas, 4 refits) is run once per module,
in-process, by ``simstudy.app.main``; each test that damages cells works on a copy of it (which
also checks that a moved sweep directory is still read)."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simstudy import status
from simstudy.app import main as simstudy_main
from simstudy.jobfiles import SUMMARY, atomic_write_json, read_summary

ROOT = Path(__file__).resolve().parent.parent
# excluded keys (workers, study, figures_dir) among the others, in no sorted order: the
# directory names must still be Hydra's. ls_symmetric's cells are the cheapest.
TINY = [
    "workers=1",
    "study=ls_symmetric",
    "design.reps=2",
    "theory.refits=4",
    "design.gammas=[0.0,1.0,2.0]",
    "figures_dir=null",
]
SEEDS = [0, 1, 2, 3]


def _seeds(seeds) -> str:
    return "seed=" + ",".join(map(str, seeds))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished sweep of four cells (seeds 0-3), as python -m simstudy -m writes it."""
    out = tmp_path_factory.mktemp("status") / "sweep"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            simstudy_main(["-m", *TINY, _seeds(SEEDS), f"hydra.sweep.dir={out}"])
        except SystemExit as exit_:
            assert exit_.code in (0, None), err.getvalue()[-2000:]
    return out


def run_status(args, capsys):
    """(exit status, stdout, stderr) of ``python -m simstudy.status args``, in-process."""
    capsys.readouterr()
    code = status.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def by_seed(cells) -> dict[int, status.CellStatus]:
    return {int(next(o for o in c.overrides if o.startswith("seed=")).split("=")[1]): c for c in cells}


def tree(folder: Path) -> dict:
    """Every path below folder with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).rglob("*"))}


def test_a_finished_sweep_is_all_done_in_hydras_directories(sweep, capsys):
    code, out, err = run_status([sweep], capsys)
    assert code == 0, err
    cells = status.sweep_status(sweep)
    assert [c.state for c in cells] == ["done"] * 4
    # the directories found are the ones Hydra made (override_dirname without excluded keys)
    assert {c.job_dir for c in cells} == {p.parent for p in sweep.glob(f"*/{SUMMARY}")}
    assert all("workers" not in c.job_dir.name and "study" not in c.job_dir.name for c in cells)
    for c in cells:
        assert c.recorded and c.seconds == read_summary(c.job_dir / SUMMARY)["seconds"]
    assert "done         4 cells" in out and "missing      0 cells" in out
    assert len(out.splitlines()) == 1 + 1 + 4 + 1 + 4  # title, header, cells, blank, one total per state


def test_a_stale_cell_names_the_keys_that_changed(sweep, tmp_path):
    # as a preset edited since the cell ran: the job's config.yaml (and hash) say theory.refits=3
    copy = tmp_path / "edited"
    shutil.copytree(sweep, copy)
    cell = by_seed(status.sweep_status(copy))[0]
    ran = (cell.job_dir / "config.yaml").read_text()
    assert ran.count("refits: 4\n") == ran.count("  reps: 2\n") == 1
    (cell.job_dir / "config.yaml").write_text(
        ran.replace("refits: 4\n", "refits: 3\n").replace("  reps: 2\n", "  reps: 5\n")
    )
    atomic_write_json(cell.job_dir / SUMMARY, {**read_summary(cell.job_dir / SUMMARY), "config_hash": "1" * 64})
    stale = by_seed(status.sweep_status(copy))[0]
    assert stale.state == "stale"
    assert stale.detail.endswith("(design.reps: 5 -> 2, theory.refits: 3 -> 4)"), stale.detail
    # a config the job ran that no longer validates only loses the detail
    (cell.job_dir / "config.yaml").write_text(ran.replace("refits: 4\n", "refits: -3\n"))
    assert by_seed(status.sweep_status(copy))[0].detail.endswith("the config changed since the cell ran")


def test_done_missing_failed_and_stale_are_told_apart(sweep, tmp_path, capsys):
    copy = tmp_path / "moved"
    shutil.copytree(sweep, copy)
    cells = by_seed(status.sweep_status(copy))
    shutil.rmtree(cells[1].job_dir)  # missing
    failed = read_summary(cells[2].job_dir / SUMMARY)
    atomic_write_json(cells[2].job_dir / SUMMARY, {**failed, "status": "failed", "error": "RuntimeError: boom"})
    stale = read_summary(cells[3].job_dir / SUMMARY)
    atomic_write_json(cells[3].job_dir / SUMMARY, {**stale, "config_hash": "0" * 64})

    code, out, err = run_status([copy, "--json"], capsys)
    assert code == 1, err
    report = json.loads(out)
    states = {int(next(o for o in c["overrides"] if o.startswith("seed="))[5:]): c for c in report["cells"]}
    assert {seed: c["state"] for seed, c in states.items()} == {0: "done", 1: "missing", 2: "failed", 3: "stale"}
    assert states[0]["cost"] == "recorded"
    assert all(states[s]["cost"] == "estimate" and states[s]["seconds"] > 0 for s in (1, 2, 3))
    assert states[2]["detail"] == "RuntimeError: boom"
    assert "config changed" in states[3]["detail"]
    assert {s: t["cells"] for s, t in report["totals"].items()} == {"done": 1, "missing": 1, "failed": 1, "stale": 1}
    assert report["all_done"] is False

    code, out, _ = run_status([copy], capsys)
    assert code == 1
    for state in status.STATES:
        assert sum(line.startswith(f"{state:8s}") for line in out.splitlines()) == 2  # its cell and its total


def test_a_damaged_output_makes_a_cell_missing(sweep, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    cell = by_seed(status.sweep_status(copy))[0]
    (cell.job_dir / "figure.png").unlink()
    code, _, _ = run_status([copy], capsys)
    assert code == 1
    again = by_seed(status.sweep_status(copy))[0]
    assert again.state == "missing" and "damaged" in again.detail and not again.recorded


def test_the_plan_counts_existing_cells_and_writes_nothing(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tree(sweep.parent)
    argv = ["-m", *TINY, _seeds([*SEEDS, 4]), f"hydra.sweep.dir={sweep}"]
    code, out, err = run_status(["--plan", *argv, "--json"], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert [c["state"] for c in plan["cells"]] == ["done"] * 4 + ["missing"]
    assert {Path(c["job_dir"]) for c in plan["cells"][:4]} == {p.parent for p in sweep.glob(f"*/{SUMMARY}")}
    todo = plan["cells"][4]
    assert "seed=4" in Path(todo["job_dir"]).name and not Path(todo["job_dir"]).exists()
    assert todo["cost"] == "estimate" and todo["seconds"] > 0
    assert plan["to_run"]["cells"] == 1 and plan["to_run"]["seconds"] == todo["seconds"]

    code, out, _ = run_status(["--plan", *argv], capsys)
    assert code == 0 and "to run: 1 cell, about" in out and "skipped: complete for their config" in out
    # a single run's plan: a new timestamped directory, not made
    code, out, _ = run_status(["--plan", *TINY], capsys)
    assert code == 0 and "missing      1 cell " in out
    assert tree(sweep.parent) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--plan", "-m", "design.reps=-1"],
        ["--plan", "-m", "sweep=no_such_sweep"],
        ["--plan", "-m", "design.reps=2", "design.reps=3"],
        ["--plan", "--cfg", "job"],
        ["--plan", "-m", "dgp.nonsense=1"],
        [],
        ["a", "b"],
    ],
    ids=["bad-value", "unknown-sweep", "key-twice", "unknown-flag", "unknown-key", "no-args", "two-dirs"],
)
def test_bad_input_exits_2_with_one_line(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_status(args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_a_sweep_exits_2_with_one_line(tmp_path, capsys):
    code, out, err = run_status([tmp_path], capsys)
    assert code == 2 and out == "" and "no multirun.yaml" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "multirun.yaml").write_text("hydra: [unclosed\n")
    code, out, err = run_status([tmp_path], capsys)
    assert code == 2 and out == "" and "unreadable" in err and len(err.strip().splitlines()) == 1


def test_the_module_runs_as_a_command(sweep):
    proc = subprocess.run(
        [sys.executable, "-m", "simstudy.status", "--json", str(sweep)],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["totals"]["done"]["cells"] == 4


def test_cells_without_an_estimate_are_not_said_to_cost_0_s(tmp_path, capsys, monkeypatch):
    """simstudy.resources has no estimate for diagnostics cells: the plan says so instead of
    summing nothing to "0 s"; where some cells have one, the sum and the others' count stay."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_status(["--plan", "-m", "study=symmetry_test_size", "design.n1=50,60"], capsys)
    assert code == 0, err
    assert "missing      2 cells  no estimate for these cells" in out
    assert "to run: 2 cells, no estimate for these cells" in out
    assert " 0 s" not in out and "without an estimate" not in out
    assert list(tmp_path.iterdir()) == []
    some = {"cells": 3, "seconds": 4.0, "unknown": 1, "recorded": False}
    assert status._total_line("missing", some).endswith("  4 s estimated on one core (1 without an estimate)")
    one = {"cells": 1, "seconds": 0, "unknown": 1, "recorded": True}
    assert status._total_line("done", one) == "done         1 cell   no estimate for this cell"
