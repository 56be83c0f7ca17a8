"""The real-data study's job contract (issue 13): a generator that fails keeps the rest of the
job and is reported; a job's identity is the bytes of the file it reads; data and sizes the job
cannot use are refused before it starts; identifier columns are named.

References are independent of the code under test: digests come from hashlib on the file's
bytes, the bundled datasets' stream keys are the literal values of the published runs, and
expected summaries are computed by hand from the rows given.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import simstudy  # noqa: F401
from simstudy.app import CONFIG_PATH, config_hash, main
from simstudy.config import ConfigError, validate
from simstudy.metrics import METRICS
from simstudy.studies.real_data import load_real_datasets, markdown_table, summarise_real_data

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "study=real_data",
    "design.reps=2",
    "design.gammas=[0.0,1.0]",
    "selection.gammas=[0.0,1.0]",
    "selection.cv=holdout",
    "figures_dir=null",
]


def write_table(path: Path, n0: int = 60, n1: int = 15, shift: float = 1.0, seed: int = 0, **extra) -> Path:
    """Two Gaussian columns, the minority ('yes') shifted by ``shift``; ``extra`` columns added."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    X = np.vstack([rng.standard_normal((n0, 2)), rng.standard_normal((n1, 2)) + shift])
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": ["no"] * n0 + ["yes"] * n1})
    for name, values in extra.items():
        frame[name] = values
    frame.to_csv(path, index=False)
    return path


def composed(overrides):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def user_run(path: Path, *overrides):
    return validate(composed([*TINY, "data.datasets=null", f"data.path={path}", "data.target=label", *overrides]))


def cli(args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "simstudy", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


# ---------------------------------------------------------------------------------------------
# item 2: a generator that fails on every split


def test_a_generator_failing_on_every_split_is_reported_and_the_rest_kept(tmp_path):
    # classes 8 SDs apart: no minority point is in danger (Borderline-SMOTE makes nothing) and
    # no minority point has a majority neighbour (ADASYN refuses)
    path = write_table(tmp_path / "separated.csv", n0=120, n1=20, shift=8.0)
    out = tmp_path / "job"
    proc = cli(
        [
            *TINY,
            "data.datasets=null",
            f"data.path={path}",
            "data.target=label",
            "data.generators=[SMOTE,BorderlineSMOTE,ADASYN]",
            f"hydra.run.dir={out}",
        ],
        ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "failed" in proc.stderr and "summary.json" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    failed = {(f["generator"], f["method"], f["split"]) for f in summary["failures"]}
    assert failed == {
        (g, m, s)
        for g in ("BorderlineSMOTE", "ADASYN")
        for m in ("curve", "balanced", "vtss", "tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated")
        for s in (0, 1)
    }
    assert all(f["dataset"] == "separated" and f["error"].startswith("RuntimeError: ") for f in summary["failures"])
    assert any("no new minority points" in f["error"] for f in summary["failures"])
    # what worked is kept: the raw fit, the weights and every SMOTE method
    methods = {(m["generator"], m["method"]): m for m in summary["methods"]}
    for key in [("none", "raw"), ("none", "reweighting"), ("SMOTE", "balanced"), ("SMOTE", "vtss")]:
        assert methods[key]["n_errors"] == 0 and methods[key]["auroc"]["mean"] is not None, key
    assert methods[("ADASYN", "vtss")]["n_errors"] == 2 and methods[("ADASYN", "vtss")]["auroc"]["mean"] is None
    curves = {c["generator"]: c for c in summary["curves"]}
    assert all(v is not None for v in curves["SMOTE"]["mean"])
    assert curves["BorderlineSMOTE"]["mean"] == [None, None]
    rows = pd.read_parquet(out / "replications.parquet")
    assert set(rows["generator"]) == {"none", "SMOTE", "BorderlineSMOTE", "ADASYN"}
    table = (out / "table.md").read_text()
    assert "| BorderlineSMOTE | curve | 2 of 2 | RuntimeError: BorderlineSMOTE made no new" in table
    assert "| ADASYN | tg_vtss | 2 of 2 | RuntimeError:" in table
    assert (out / "figure.png").is_file() and (out / "methods.png").is_file()


def tidy_row(split, generator, method, gamma=math.nan, loss=math.nan, error=""):
    """A row as ``real_data_split`` writes it, with the columns the summary reads."""
    metrics = {m: (math.nan if error else loss + i) for i, m in enumerate(METRICS)}
    metrics["balanced_log_loss"] = math.nan if error else loss
    return {
        "dataset": "t",
        "split": split,
        "n_train0": 40,
        "n_train1": 10,
        "n_test_per_class": 3,
        "n_features": 2,
        "generator": generator,
        "method": method,
        "gamma": gamma,
        "weight": math.nan,
        "separated": False,
        "error": error,
        **metrics,
    }


def test_the_curve_summary_copes_with_failed_and_missing_curve_rows():
    gammas = [0.0, 1.0, 2.0]
    rows = []
    for s in range(3):
        rows.append(tidy_row(s, "none", "raw", 0.0, 0.5))
        rows += [tidy_row(s, "ok", "curve", g, 0.4 + 0.1 * g + 0.01 * s) for g in gammas]
        rows.append(tidy_row(s, "ok", "vtss", 1.0, 0.45))
        # "dead" fails on every split: one failed curve row, gamma unknown
        rows += [tidy_row(s, "dead", m, error="RuntimeError: nothing made") for m in ("curve", "vtss")]
        # "gappy": split 1 failed, split 2 lacks the gamma = 2 row
        if s == 1:
            rows.append(tidy_row(s, "gappy", "curve", error="ValueError: too few rows"))
        else:
            rows += [tidy_row(s, "gappy", "curve", g, 0.3 + g + s) for g in gammas[: 3 if s == 0 else 2]]
        # "bare" has no curve rows at all
        rows.append(tidy_row(s, "bare", "vtss", 0.0, 0.6))
    numbers = summarise_real_data(pd.DataFrame(rows), gammas)
    curves = {c["generator"]: c for c in numbers["curves"]}
    assert list(curves) == ["ok", "dead", "gappy", "bare"]
    assert curves["ok"]["mean"] == pytest.approx([0.41, 0.51, 0.61])
    assert curves["dead"]["mean"] == curves["bare"]["mean"] == [None, None, None]
    assert curves["gappy"]["mean"] == pytest.approx([(0.3 + 2.3) / 2, (1.3 + 3.3) / 2, 2.3])
    assert curves["gappy"]["half_width"][2] is None  # one split: no SE
    dead = "RuntimeError: nothing made"
    assert [(f["generator"], f["method"], f["split"], f["error"]) for f in numbers["failures"]] == [
        ("dead", "curve", 0, dead),
        ("dead", "vtss", 0, dead),
        ("dead", "curve", 1, dead),
        ("dead", "vtss", 1, dead),
        ("gappy", "curve", 1, "ValueError: too few rows"),
        ("dead", "curve", 2, dead),
        ("dead", "vtss", 2, dead),
    ]
    assert all(f["dataset"] == "t" for f in numbers["failures"])
    assert numbers["datasets"]["t"]["n_splits"] == 3
    text = markdown_table(numbers)
    assert "| dead | curve | 3 of 3 | RuntimeError: nothing made |" in text
    assert "| gappy | curve | 1 of 3 | ValueError: too few rows |" in text


# ---------------------------------------------------------------------------------------------
# item 4: a job's identity is the bytes of its data file


def test_the_jobs_identity_and_streams_follow_the_files_bytes(tmp_path):
    path = write_table(tmp_path / "mine.csv")
    original = path.read_bytes()
    first = user_run(path)
    assert first.data.sha256 == hashlib.sha256(original).hexdigest()
    key = load_real_datasets(first.data)[0].key

    frame = pd.read_csv(path)
    frame.loc[3, "a"] += 1.0  # same path, same shape, one value edited
    frame.to_csv(path, index=False)
    edited = user_run(path)
    assert config_hash(edited) != config_hash(first)
    assert load_real_datasets(edited.data)[0].key != key

    path.write_bytes(original)
    assert config_hash(user_run(path)) == config_hash(first)
    # the streams follow the contents, not the location: a copy elsewhere draws the same numbers
    elsewhere = tmp_path / "copy" / "mine.csv"
    elsewhere.parent.mkdir()
    shutil.copyfile(path, elsewhere)
    assert load_real_datasets(user_run(elsewhere).data)[0].key == key


def test_a_file_edited_after_validation_is_not_read_under_the_old_identity(tmp_path):
    path = write_table(tmp_path / "mine.csv")
    run = user_run(path)
    write_table(path, seed=1)
    with pytest.raises(ValueError, match="changed after the job's config was validated"):
        load_real_datasets(run.data)


def test_data_sha256_pins_the_file(tmp_path):
    path = write_table(tmp_path / "mine.csv")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert user_run(path, f"+data.sha256={digest}").data.sha256 == digest
    with pytest.raises(ConfigError) as info:
        user_run(path, f"+data.sha256={'0' * 64}")
    assert info.value.key == "data.sha256" and digest in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate(composed([*TINY, "data.datasets=[nwtco]", f"+data.sha256={digest}"]))
    assert info.value.key == "data.sha256"


def test_bundled_datasets_keep_their_published_stream_keys():
    run = validate(composed([*TINY, "data.datasets=[caravan,nwtco,breast_cancer]"]))
    keys = {ds.name: ds.key for ds in load_real_datasets(run.data)}
    assert keys == {
        "caravan": (2422645684, 3997642637, 1011813131, 4004064217),
        "nwtco": (3240689728, 2174156532, 1571192288, 4229997414),
        "breast_cancer": (2373043836, 3270117921, 4034846959, 2474775091),
    }


@pytest.mark.slow
def test_a_rerun_after_editing_the_file_is_not_skipped(tmp_path):
    path = write_table(tmp_path / "mine.csv", n0=80, n1=20)
    args = [
        *TINY,
        "data.datasets=null",
        f"data.path={path}",
        "data.target=label",
        "data.generators=[SMOTE]",
        f"hydra.run.dir={tmp_path / 'job'}",
    ]
    assert cli(args, ROOT).returncode == 0
    assert "skipped" in cli(args, ROOT).stderr
    write_table(path, n0=80, n1=20, seed=1)
    again = cli(args, ROOT)
    assert again.returncode == 0 and "skipped" not in again.stderr
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["data"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# item 9: what the job cannot use is refused before it starts


def bad_tables(tmp_path: Path) -> dict:
    """Files with one problem each, by name."""
    out = {"good": write_table(tmp_path / "good.csv")}
    out["one_class"] = write_table(tmp_path / "one.csv", label=["no"] * 75)
    out["three_classes"] = write_table(tmp_path / "three.csv", label=["u", "v", "w"] * 25)
    out["nan_target"] = write_table(tmp_path / "nan.csv", label=["no"] * 60 + ["yes"] * 14 + [None])
    out["five_minority"] = write_table(tmp_path / "five.csv", n0=60, n1=5)
    out["two_minority"] = write_table(tmp_path / "two.csv", n0=60, n1=2)
    out["constant"] = write_table(tmp_path / "constant.csv", a=1.0, b=2.0)
    (tmp_path / "empty.csv").write_text("")
    out["empty"] = tmp_path / "empty.csv"
    (tmp_path / "header.csv").write_text("a,label\n")
    out["header_only"] = tmp_path / "header.csv"
    (tmp_path / "junk.csv").write_bytes(bytes(range(256)) * 8)
    out["unreadable"] = tmp_path / "junk.csv"
    return out


BAD_DATA = [
    # (table, overrides, the key the error names)
    ("good", ["data.target=outcome"], "data.target"),
    ("one_class", ["data.target=label"], "data.target"),
    ("three_classes", ["data.target=label"], "data.target"),
    ("nan_target", ["data.target=label"], "data.target"),
    ("empty", ["data.target=label"], "data.path"),
    ("header_only", ["data.target=label"], "data.path"),
    ("unreadable", ["data.target=label"], "data.path"),
    ("constant", ["data.target=label"], "data.path"),
    ("good", ["data.target=label", "data.positive=maybe"], "data.positive"),
    ("good", ["data.target=label", "data.positive=no"], "data.positive"),
    ("good", ["data.target=label", "data.generators=[{name:SMOTE,k_neighbors:abc}]"], "data.generators"),
    ("good", ["data.target=label", "data.generators=[{name:SMOTE,k_neighbors:-1}]"], "data.generators"),
    ("good", ["data.target=label", "data.generators=[{name:ADASYN,n_neighbors:0.5}]"], "data.generators"),
    # 15 minority rows: 12 in training, as few as 9 in a fit of the selectors
    ("good", ["data.target=label", "data.generators=[{name:SMOTE,k_neighbors:9}]"], "data.generators"),
    ("good", ["data.target=label", "data.generators=[{name:smote,k:9}]"], "data.generators"),
    ("good", ["data.target=label", "selection.cv=13"], "selection.cv"),
    ("five_minority", ["data.target=label"], "data.generators"),
    ("two_minority", ["data.target=label", "data.generators=[jitter]"], "data.path"),
    ("good", ["data.target=label", "data.test_size=0.95"], "data.test_size"),
]


@pytest.mark.parametrize("table, overrides, key", BAD_DATA)
def test_data_the_job_cannot_use_is_a_config_error(tmp_path, table, overrides, key):
    path = bad_tables(tmp_path)[table]
    with pytest.raises(ConfigError) as info:
        validate(composed([*TINY, "data.datasets=null", f"data.path={path}", *overrides]))
    assert info.value.key == key


def test_sizes_that_just_work_are_accepted(tmp_path):
    path = write_table(tmp_path / "good.csv")
    assert user_run(path, "data.generators=[{name:SMOTE,k_neighbors:8}]").data.generators == (
        {"name": "SMOTE", "k_neighbors": 8},
    )
    assert user_run(path, "selection.cv=12").selection.cv == 12


def test_a_label_option_without_a_file_names_itself():
    with pytest.raises(ConfigError) as info:
        validate(composed([*TINY, "data.datasets=[nwtco]", "data.positive=1"]))
    assert info.value.key == "data.positive"


def test_a_bundled_dataset_too_small_for_an_option_is_refused():
    # breast_cancer: 36 malignant, 29 in training, 23 in a selector's fit
    with pytest.raises(ConfigError) as info:
        validate(composed([*TINY, "data.datasets=[breast_cancer]", "data.generators=[{name:SMOTE,k_neighbors:23}]"]))
    assert info.value.key == "data.generators" and "breast_cancer" in str(info.value)
    validate(composed([*TINY, "data.datasets=[breast_cancer]", "data.generators=[{name:SMOTE,k_neighbors:22}]"]))


def run_main(args, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    return exit_info.value.code, err.getvalue()


@pytest.mark.parametrize(
    "table, overrides, key",
    [
        ("good", ["data.generators=[{name:SMOTE,k_neighbors:abc}]"], "k_neighbors"),
        ("nan_target", [], "data.target"),
        ("five_minority", [], "data.generators"),
    ],
)
def test_the_command_exits_2_with_one_line_and_writes_nothing(tmp_path, table, overrides, key):
    path = bad_tables(tmp_path)[table]
    code, err = run_main([*TINY, "data.datasets=null", f"data.path={path}", "data.target=label", *overrides], tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("simstudy: config error:") and key in lines[0]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# item 10: identifier columns


def test_identifier_columns_of_a_users_table_are_named_on_stderr(tmp_path, capsys):
    n = 75
    path = write_table(
        tmp_path / "mine.csv",
        id=np.arange(1000, 1000 + n),
        patient=[f"p{i:03d}" for i in range(n)],
        ward=["x", "y", "z"] * 25,
    )
    run = user_run(path)
    assert capsys.readouterr().err == ""  # validation stays silent: its errors are one line
    (ds,) = load_real_datasets(run.data)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "'id'" in lines[0] and "'patient'" in lines[1]
    assert all(line.startswith("simstudy: warning:") and "mine.csv" in line for line in lines)
    assert ds.X.shape[1] == 2 + 1 + (n - 1) + 2  # a, b, id, patient one-hot, ward one-hot


def test_plain_features_raise_no_identifier_warning(tmp_path, capsys):
    run = user_run(write_table(tmp_path / "mine.csv"))  # a, b: distinct measurements, not identifiers
    capsys.readouterr()
    load_real_datasets(run.data)
    assert capsys.readouterr().err == ""


def test_the_resolved_config_round_trips_through_validation(tmp_path):
    # a job's config.yaml holds the resolved config without the digest; it validates to the same run
    path = write_table(tmp_path / "mine.csv")
    cfg = composed([*TINY, "data.datasets=null", f"data.path={path}", "data.target=label"])
    again = validate(OmegaConf.create(OmegaConf.to_yaml(cfg)))
    assert config_hash(again) == config_hash(validate(cfg))


def test_an_identifier_column_is_warned_about_once_per_process(tmp_path, capsys):
    # the app loads a job's data twice in one process (the preflight's check, then the run),
    # and replicate once per replication: the warning is printed the first time only
    path = write_table(tmp_path / "mine.csv", id=np.arange(75))
    run = user_run(path)
    capsys.readouterr()
    for _ in range(3):
        load_real_datasets(run.data)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'id'" in lines[0], lines


# ---------------------------------------------------------------------------------------------
# non-finite feature values and unreadable files


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinite_feature_value_is_refused_naming_the_column(tmp_path, value):
    # an empty cell is a missing value and is imputed; inf is not, and it used to drop its
    # whole column in preprocessing without a word (the table said 2 features of 3)
    c = np.linspace(-1.0, 1.0, 75)
    c[7] = value
    path = write_table(tmp_path / "inf.csv", c=c)
    with pytest.raises(ConfigError) as info:
        user_run(path)
    assert info.value.key == "data.path"
    assert "'c'" in str(info.value) and "infinite" in str(info.value)
    code, err = run_main([*TINY, "data.datasets=null", f"data.path={path}", "data.target=label"], tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("simstudy: config error: data.path=") and "'c'" in err and "infinite" in err
    assert not (tmp_path / "run").exists()


def test_a_missing_feature_value_is_still_imputed(tmp_path):
    c = np.linspace(-1.0, 1.0, 75)
    c[7] = np.nan
    (ds,) = load_real_datasets(user_run(write_table(tmp_path / "nan.csv", c=c)).data)
    assert ds.X.shape[1] == 3 and np.isnan(ds.X[:, 2]).sum() == 1


def test_an_unreadable_file_is_refused_in_exactly_one_line(tmp_path):
    # pandas' C parser ends its message with a newline, which made the error two lines
    path = bad_tables(tmp_path)["unreadable"]
    code, err = run_main([*TINY, "data.datasets=null", f"data.path={path}", "data.target=label"], tmp_path)
    assert code == 2 and err.count("\n") == 1 and err.endswith("\n"), repr(err)
    assert err.startswith("simstudy: config error: data.path=")
