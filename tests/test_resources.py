"""Sizes a machine cannot run are refused before any work (issue 13, item 8): validation of the
design's sizes, the memory and time estimates of simstudy.resources, and the preflight's exit 2.

The estimates are checked against what they model: a real job's peak RSS (getrusage, in its
own process) for the memory bound, and the shipped presets and sweeps (every job of them,
composed as the command line composes it) for what must stay accepted."""

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from simstudy import resources
from simstudy.app import main
from simstudy.composition import compose, sweep_jobs
from simstudy.config import ConfigError, validate, validate_design
from simstudy.resources import cell_sizes, check_budget, estimate

ROOT = Path(__file__).resolve().parent.parent
GB = 1e9


def run_of(*overrides):
    return validate(compose(list(overrides)))


@pytest.fixture
def machine(monkeypatch):
    """A machine with the given memory free (bytes), whatever this one has; no override set."""
    monkeypatch.delenv(resources.OVERRIDE, raising=False)

    def set_free(free_bytes):
        monkeypatch.setattr(resources, "available_bytes", lambda: free_bytes)

    return set_free


def validate_design_only(**section):
    return validate_design({"gammas": [0.0, 1.0], "reps": 10, "chunk": 10, "n0": None, **section})


def _run_main(args, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main([*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    return exit_info.value.code, err.getvalue().strip().splitlines()


@pytest.mark.parametrize("kappa", [1e308, 10**400, 1e17], ids=["1e308", "10**400", "1e17"])
def test_a_kappa_beyond_any_row_count_names_design_kappa(kappa):
    with pytest.raises(ConfigError) as err:
        validate_design_only(n1=100, kappa=kappa)
    assert err.value.key == "design.kappa"


def test_a_largest_gamma_beyond_any_row_count_names_design_gammas():
    with pytest.raises(ConfigError) as err:
        validate_design_only(n1=100, kappa=20, gammas=[0.0, 1e300])
    assert err.value.key == "design.gammas"


def test_kappa_1e308_exits_2_with_one_line(tmp_path):
    code, lines = _run_main(["design.kappa=1e308"], tmp_path)
    assert code == 2 and len(lines) == 1 and "design.kappa" in lines[0], lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("design.reps=1000000000", "design.reps"),
        ("design.n1=100000000", "design.n1"),
        ("design.kappa=2000000", "design.n0"),
    ],
)
def test_sizes_beyond_the_memory_are_refused_naming_the_key(machine, override, key):
    machine(16 * GB)
    run = run_of(override)
    with pytest.raises(ConfigError) as err:
        check_budget(run)
    assert err.value.key == key
    assert "GB" in err.value.allowed and resources.OVERRIDE in err.value.allowed


@pytest.mark.parametrize(
    "override, key", [("design.reps=1000000000", "design.reps"), ("theory.refits=1000000000", "theory.refits")]
)
def test_a_run_of_more_than_a_week_is_refused_naming_the_key(machine, override, key):
    machine(1e18)  # all the memory in the world: only the time can refuse
    with pytest.raises(ConfigError) as err:
        check_budget(run_of(override))
    assert err.value.key == key and "hours" in err.value.allowed


@pytest.mark.parametrize("override", ["design.reps=1000000000", "design.n1=100000000"])
def test_the_preflight_refuses_them_with_exit_2_and_one_line(tmp_path, monkeypatch, override):
    monkeypatch.delenv(resources.OVERRIDE, raising=False)
    code, lines = _run_main([override], tmp_path)
    key = override.split("=")[0]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"simstudy: config error: {key}="), lines
    assert not (tmp_path / "run").exists()


def test_the_override_lets_a_large_config_through(machine, monkeypatch):
    machine(16 * GB)
    run = run_of("design.n1=100000000")
    monkeypatch.setenv(resources.OVERRIDE, "1")
    check_budget(run)


def _shipped_jobs():
    studies = sorted(p.stem for p in (ROOT / "conf" / "study").glob("*.yaml"))
    sweeps = sorted(p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml"))
    return [[f"study={s}"] for s in studies] + [
        job for s in sweeps for job in sweep_jobs([f"sweep={s}"], multirun=True).jobs
    ]


def test_every_shipped_preset_and_sweep_job_fits_a_machine_with_4_gb_free(machine):
    # `make figures` runs these sweeps and presets at their own sizes (R = 100)
    machine(4 * GB)
    jobs = _shipped_jobs()
    assert len(jobs) > 50  # 9 presets and the 50 jobs of the five sweeps
    for job in jobs:
        check_budget(run_of(*job))


def test_the_estimate_scales_with_each_size():
    base = estimate(cell_sizes(run_of("design.n1=1000", "workers=2")))
    wider = estimate(cell_sizes(run_of("design.n1=2000", "workers=2")))
    more = estimate(cell_sizes(run_of("design.n1=1000", "workers=2", "design.reps=20000")))
    busier = estimate(cell_sizes(run_of("design.n1=1000", "workers=4")))
    assert wider.loop_bytes == pytest.approx(2 * base.loop_bytes, rel=1e-3)
    assert more.table_bytes == pytest.approx(100 * base.table_bytes)
    assert more.bootstrap_bytes == pytest.approx(100 * base.bootstrap_bytes)
    assert busier.loop_bytes > 1.8 * base.loop_bytes and busier.table_bytes == base.table_bytes
    assert more.seconds > 10 * base.seconds


@pytest.mark.slow
def test_the_memory_estimate_bounds_a_real_jobs_peak_from_above_within_a_factor_2(tmp_path):
    overrides = [
        "study=quickstart",
        "design.n1=10000",
        "design.reps=4",
        "workers=2",
        "theory.refits=2",
        "figures_dir=null",
    ]
    # the job's own high-water mark: ru_maxrss would carry over pytest's RSS at the fork (Linux
    # folds the old memory's peak into it at exec), so a long test session inflated it past 2x
    script = (
        "import sys\nfrom simstudy.app import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *overrides, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert (tmp_path / "summary.json").is_file(), proc.stderr
    peak = int(proc.stdout.split()[-1]) * 1024  # VmHWM is in kB
    predicted = estimate(cell_sizes(run_of(*overrides))).peak_bytes
    assert peak <= predicted <= 2 * peak
