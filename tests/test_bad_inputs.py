"""Bad or odd command lines, as a new user types them (issue 13), get README's promise: exit
status 2, exactly one stderr line ``simstudy: config error: ...`` naming the key, no traceback,
nothing written.

The table (over 300 command lines: every config group and key, sizes, data files, sampler
options, path-like names, override grammar, sweeps, unknown options, wrong types) lives in
``scripts/bad_input_census.py``, which also prints the census counts. Each case runs
``simstudy.app.preflight`` in-process: it is what decides exit 2 before Hydra starts, and a case
that passes it would launch the job, so here it only counts as "silently accepted". A few cases
go through ``simstudy.app.main`` and Hydra end to end, with the job functions replaced by a
guard so that a case that slipped through can never start real work.
"""

import contextlib
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import bad_input_census as census  # noqa: E402

CASES = {case.id: case for case in census.CASES}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return census.write_data_files(tmp_path_factory.mktemp("data"))


def _choice(case, group: str) -> str:
    """The option of ``group`` a case composes: given on its command line, else its study's,
    else the primary config's default (real_data keeps the default dgp it never builds)."""
    argv = [a.lstrip("+") for a in case.argv]
    for arg in argv:
        if arg.startswith(f"{group}="):
            return arg.split("=", 1)[1]
    study = next((a.split("=", 1)[1] for a in argv if a.startswith("study=")), "quickstart")
    for path, prefix in (
        (ROOT / "conf" / "study" / f"{study}.yaml", f"- override /{group}:"),
        (ROOT / "conf" / "config.yaml", f"- {group}:"),
    ):
        for line in path.read_text().splitlines():
            if line.strip().startswith(prefix):
                return line.split(":", 1)[1].split("#")[0].strip()
    raise AssertionError(f"neither {study} nor config.yaml sets {group}")


def test_the_table_covers_every_kind_of_input():
    assert len(census.CASES) >= 150
    topics = {case.topic for case in census.CASES}
    assert {
        "design",
        "model",
        "dgp",
        "generator",
        "sampler",
        "seed",
        "workers",
        "theory",
        "figures_dir",
        "selection",
        "data",
        "data file",
        "size",
        "path name",
        "override grammar",
        "sweep",
        "unknown key",
        "unknown option",
        "wrong type",
    } <= topics
    argv = [a for case in census.CASES for a in case.argv]
    for study in ("study=vtss_linear", "study=vtss_ring", "study=real_data"):
        assert study in argv
    for group in ("dgp", "generator"):
        # a case that sets one of the group's options, for every option file of the group
        options = {
            _choice(case, group)
            for case in census.CASES
            if any(a.lstrip("+").startswith(f"{group}.") for a in case.argv)
        }
        missing = {p.stem for p in (ROOT / "conf" / group).glob("*.yaml")} - options
        assert not missing, f"no case sets an option of {group}={sorted(missing)}"


@pytest.mark.parametrize("case", census.CASES, ids=lambda case: case.id)
def test_bad_input_exits_2_with_one_line_naming_the_key(case, data_dir, tmp_path):
    result = census.run_preflight(case, data_dir, tmp_path / "work")
    assert result.error is None, f"crash (a traceback for the user):\n{result.error}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code is not None, "silently accepted: the preflight returned, so the job would run"
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("simstudy: config error:"), lines[0]
    assert census.names_key(lines[0], case.key), f"the line does not name {case.key!r}: {lines[0]}"
    assert result.written == []


VALID = [
    (),
    ("study=vtss_linear",),
    ("study=vtss_ring",),
    ("study=real_data", "data.datasets=null", f"data.path={census.DATA}/good.csv", "data.target=y"),
    ("-m", "design.n1=20,40", "seed=0,1"),
    ("generator=imblearn", "generator.sampler=BorderlineSMOTE", "+generator.k_neighbors=3"),
]


@pytest.mark.parametrize("argv", VALID, ids=lambda argv: " ".join(argv) or "(defaults)")
def test_valid_command_lines_pass_the_preflight(argv, data_dir, tmp_path):
    """The census's counterpart: a good command line is not refused (nor run: the preflight
    only checks it)."""
    result = census.run_preflight(census.Case("valid", "", tuple(argv), "valid"), data_dir, tmp_path / "work")
    assert result.error is None, result.error
    assert result.code is None, result.stderr
    assert result.written == []


END_TO_END = [
    "design.n1=abc",
    "dgp=nope",
    "trailing comma",
    "-m key swept and fixed",
    "data file: missing target column",
    "design.kappa=1e308",
]


def _no_job(*args, **kwargs):
    raise AssertionError("the job would have run")


@pytest.mark.parametrize("case_id", END_TO_END)
def test_bad_input_end_to_end_through_main(case_id, data_dir, tmp_path, monkeypatch):
    """``simstudy.app.main`` (the console entry point) on a few cases: exit 2, one line, nothing
    written under the run and sweep dirs or the working folder. The job functions are guarded,
    so a case that passes the preflight fails here without starting real work."""
    from simstudy import app

    monkeypatch.setattr(app, "run_job", _no_job)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        app.main(census.argv_of(CASES[case_id], data_dir, work))
    lines = err.getvalue().strip().splitlines()
    assert exit_info.value.code == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("simstudy: config error:"), err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert census.names_key(lines[0], CASES[case_id].key), lines[0]
    assert list(work.iterdir()) == []
