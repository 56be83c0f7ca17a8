"""The real-data study as the paper's authors ran it (AUTHORS_DESIGNS.md section F) beside
simstudy's defaults: the added metrics, the reference fit behind the excess risk, mean
imputation, a user's table with dropped columns, chosen features and several targets, the
neighbour cap of the SMOTE family, quantile bands, TG-VTSS's branch counts and the
``real_data_authors`` preset.

Independent references: scikit-learn's precision_score, recall_score, jaccard_score and
balanced_accuracy_score (Youden = 2 balanced accuracy - 1), a scikit-learn LogisticRegression
with C = 1e8 (ridge 1e-8 in simstudy's convention) fitted on the test rows for the excess
risk's reference, SimpleImputer(mean) + StandardScaler for the preprocessing, pandas column
selection for the feature tables, imbalanced-learn's own SMOTE with k = n1 - 1 for the cap,
and quantiles and counts written out by hand.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.special import expit
from sklearn import metrics as skm
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import simstudy  # noqa: F401
from simstudy.app import CONFIG_PATH
from simstudy.config import ConfigError, validate
from simstudy.fitting import GLM, fit_glm
from simstudy.generators import ImblearnGenerator
from simstudy.metrics import METRICS, classification_metrics, reference_loss
from simstudy.preprocessing import preprocess
from simstudy.schema import config_hash
from simstudy.studies.job import run_job
from simstudy.studies.real_data import (
    load_real_datasets,
    markdown_table,
    outer_split,
    real_data_split,
    summarise_real_data,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "study=real_data",
    "design.reps=2",
    "design.gammas=[0.0,1.0]",
    "selection.gammas=[0.0,1.0]",
    "selection.cv=holdout",
    "selection.n_boot=19",
    "figures_dir=null",
]


def composed(overrides):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """Features a, b (with holes), c; two outcomes (label: 30 'yes' of 150; event: 40 of 150,
    each tied to the features), a row id and a text column."""
    rng = np.random.default_rng(np.random.SeedSequence(41))
    n = 150
    X = rng.standard_normal((n, 3))
    label = np.zeros(n, bool)
    label[np.argsort(-(X[:, 0] + rng.standard_normal(n)))[:30]] = True
    event = np.zeros(n, bool)
    event[np.argsort(-(X[:, 1] - X[:, 2] + rng.standard_normal(n)))[:40]] = True
    frame = pd.DataFrame({"id": np.arange(1000, 1000 + n), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    frame.loc[rng.random(n) < 0.15, "b"] = np.nan
    frame["label"] = np.where(label, "yes", "no")
    frame["event"] = event.astype(int)
    frame["ward"] = ["x", "y", "z"] * (n // 3)
    path = tmp_path_factory.mktemp("protocol") / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


def user_run(path: Path, *overrides):
    return validate(composed([*TINY, "data.datasets=null", f"data.path={path}", *overrides]))


# ---------------------------------------------------------------------------------------------
# metrics


@pytest.mark.parametrize("shift", [0.0, -5.0, 5.0])  # mixed, nothing predicted positive, all
def test_precision_recall_jaccard_youden_match_sklearn(shift):
    rng = np.random.default_rng(np.random.SeedSequence(17))
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    eta = rng.standard_normal(100) + y + shift
    pred = (expit(eta) > 0.5).astype(int)
    got = classification_metrics("logistic", eta, y, 0.0)
    assert set(got) == set(METRICS)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0.0), abs=1e-15)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-15)
    assert got["jaccard"] == pytest.approx(skm.jaccard_score(y, pred, zero_division=0.0), abs=1e-15)
    assert got["youden"] == pytest.approx(2 * skm.balanced_accuracy_score(y, pred) - 1, abs=1e-15)


@pytest.mark.parametrize("n0", [50, 80])  # a balanced test set (unit weights) and an unbalanced one
def test_the_excess_risks_reference_is_a_nearly_unpenalised_sklearn_fit_on_the_test_rows(n0):
    rng = np.random.default_rng(np.random.SeedSequence(5))
    n1 = 50
    X = np.vstack([rng.standard_normal((n0, 3)), rng.standard_normal((n1, 3)) + [0.8, 0.0, -0.4]])
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    weight = np.where(y == 1, (n0 + n1) / (2 * n1), (n0 + n1) / (2 * n0))
    # sklearn minimises sum_i w_i l_i + ||w||^2 / (2 C): C = 1 / ridge
    ref = LogisticRegression(C=1e8, solver="newton-cholesky", tol=1e-12, max_iter=200)
    ref.fit(X, y, sample_weight=weight)
    expected = skm.log_loss(y, ref.predict_proba(X)[:, 1], sample_weight=weight)
    assert reference_loss("logistic", X, y) == pytest.approx(expected, rel=1e-8)
    # any rule linear in X does worse on these rows
    eta = X @ [1.0, 0.2, -0.1] - 0.3
    got = classification_metrics("logistic", eta, y, reference_loss("logistic", X, y))
    p = expit(eta)
    assert got["excess_risk"] == pytest.approx(skm.log_loss(y, p, sample_weight=weight) - expected, rel=1e-8)
    assert got["excess_risk"] > 0


# ---------------------------------------------------------------------------------------------
# imputation


def test_mean_imputation_matches_sklearn_and_drops_empty_and_constant_columns():
    rng = np.random.default_rng(np.random.SeedSequence(9))
    X = rng.standard_normal((40, 4)) * [1.0, 3.0, 1.0, 1.0] + [0.0, 5.0, 0.0, 0.0]
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 2] = np.nan  # empty: sklearn's SimpleImputer drops it too
    X[:, 3] = np.where(np.isnan(X[:, 3]), np.nan, 7.0)  # constant where observed
    prep = preprocess(X, "mean")
    assert prep.keep.tolist() == [0, 1]
    imputer = SimpleImputer(strategy="mean")
    with pytest.warns(UserWarning, match="Skipping features without any observed values"):
        imputed = imputer.fit_transform(X)  # columns 0, 1, 3
    expected = StandardScaler().fit_transform(imputed[:, :2])
    np.testing.assert_allclose(prep.transform(X), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prep.fill, imputer.statistics_[:2], rtol=1e-13)
    with pytest.raises(ValueError, match="imputation"):
        preprocess(X, "mode")
    with pytest.raises(ValueError, match="no training column"):
        preprocess(np.full((5, 2), np.nan), "mean")


def test_mean_imputation_keeps_the_splits(table):
    run = user_run(table, "data.target=label", "data.drop=[id]")
    (ds,) = load_real_datasets(run.data)
    median, mean = (outer_split(ds, run.seed, 1, 0.2, rule) for rule in ("median", "mean"))
    np.testing.assert_array_equal(median.test_idx, mean.test_idx)
    np.testing.assert_array_equal(median.train_idx, mean.train_idx)
    assert not np.allclose(median.X_train, mean.X_train)  # column b has holes


# ---------------------------------------------------------------------------------------------
# the feature table


def test_drop_and_features_choose_the_columns(table):
    frame = pd.read_csv(table)
    (every,) = load_real_datasets(user_run(table, "data.target=label").data)
    (dropped,) = load_real_datasets(user_run(table, "data.target=label", "data.drop=[id,event,ward]").data)
    (chosen,) = load_real_datasets(user_run(table, "data.target=label", "data.features=[c,a]").data)
    np.testing.assert_array_equal(dropped.X, frame[["a", "b", "c"]].to_numpy(float))
    np.testing.assert_array_equal(chosen.X, frame[["c", "a"]].to_numpy(float))
    assert every.X.shape == (150, 1 + 3 + 1 + 2)  # id, a, b, c, event, ward one-hot
    np.testing.assert_array_equal(dropped.y, (frame["label"] == "yes").to_numpy(int))
    # the splits depend on the file and the label, not on the features (common random numbers)
    assert every.key == dropped.key == chosen.key


def test_several_targets_are_datasets_with_the_splits_of_each_alone(table):
    frame = pd.read_csv(table)
    both = load_real_datasets(user_run(table, "data.targets=[label,event]", "data.drop=[id]").data)
    assert [ds.name for ds in both] == ["cohort:label", "cohort:event"]
    features = frame[["a", "b", "c"]].to_numpy(float)
    for ds, column, positive in zip(both, ["label", "event"], ["yes", 1]):
        np.testing.assert_array_equal(ds.y, (frame[column] == positive).to_numpy(int))
        np.testing.assert_array_equal(ds.X[:, :3], features)  # then ward one-hot; no outcome
        assert ds.X.shape == (150, 5)
        other = "event" if column == "label" else "label"
        (alone,) = load_real_datasets(user_run(table, f"data.target={column}", f"data.drop=[id,{other}]").data)
        assert ds.key == alone.key
        np.testing.assert_array_equal(ds.X, alone.X)


def test_ridge_one_is_sklearns_c_one():
    # the authors' C = 1: simstudy's GLM minimises sum_i w_i l_i + (ridge / 2) ||theta||^2
    rng = np.random.default_rng(np.random.SeedSequence(12))
    X = np.vstack([rng.standard_normal((90, 4)), rng.standard_normal((30, 4)) + [1.0, 0.5, 0.0, -0.5]])
    y = np.r_[np.zeros(90), np.ones(30)]
    fit = fit_glm(X, y, model=GLM("logistic", intercept=True, ridge=1.0))
    ref = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(X, y)
    np.testing.assert_allclose(fit.theta, np.r_[ref.intercept_, ref.coef_[0]], rtol=1e-7, atol=1e-9)


def authors_run(path: Path, *overrides):
    """The authors' preset at test size on a user's table."""
    small = [
        "design.reps=2",
        "design.gammas=[0.0,1.0]",
        "selection.gammas=[0.0,1.0]",
        "selection.cv=[repeated,2,2]",
        "selection.n_boot=19",
        "figures_dir=null",
    ]
    cfg = composed(["study=real_data_authors", *small, "data.datasets=null", f"data.path={path}", *overrides])
    return validate(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.slow  # about 15 s, most of it compiling the selectors' fits for this table's shapes
def test_one_target_of_several_runs_as_it_does_alone_with_the_authors_settings(table):
    # 30 minority rows, 24 in training, 12 in a fit of the 2-fold CV: k = min(10, n1 - 1) = 10
    # in every fit here; the cap itself is checked against imbalanced-learn below
    common = ["data.generators=[{name:SMOTE,k_neighbors:10,cap_neighbors:true}]"]
    run = authors_run(table, "data.targets=[label,event]", "data.drop=[id,ward]", *common)
    alone = authors_run(table, "data.target=label", "data.drop=[id,ward,event]", *common)
    got = real_data_split(load_real_datasets(run.data)[0], run, 0)
    ref = real_data_split(load_real_datasets(alone.data)[0], alone, 0)
    assert (got["dataset"] == "cohort:label").all() and (ref["dataset"] == "cohort").all()
    pd.testing.assert_frame_equal(got.drop(columns="dataset"), ref.drop(columns="dataset"))
    assert (got["error"] == "").all()
    # every fit is linear in the test rows' features: none beats the reference fit on them
    assert (got["excess_risk"] > -1e-9).all()
    sd = outer_split(load_real_datasets(run.data)[0], run.seed, 0, 0.2, "mean")
    raw = got[got["method"] == "raw"].iloc[0]
    # ridge = 1 is sklearn's C = 1; the excess risk's reference is C = 1e8 on the test rows
    fitted = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(sd.X_train, sd.y_train)
    best = LogisticRegression(C=1e8, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(sd.X_test, sd.y_test)
    loss = skm.log_loss(sd.y_test, fitted.predict_proba(sd.X_test)[:, 1])
    assert raw["balanced_log_loss"] == pytest.approx(loss, rel=1e-8)
    assert raw["excess_risk"] == pytest.approx(loss - skm.log_loss(sd.y_test, best.predict_proba(sd.X_test)[:, 1]))
    assert raw["precision"] == pytest.approx(skm.precision_score(sd.y_test, fitted.predict(sd.X_test)))


BAD = [
    # (overrides, the key the error names)
    (["data.target=label", "data.drop=[nope]"], "data.drop"),
    (["data.target=label", "data.drop=[label]"], "data.drop"),  # the target dropped
    (["data.target=label", "data.drop=[a,a]"], "data.drop"),
    (["data.target=label", "data.drop=a"], "data.drop"),
    (["data.target=label", "data.drop=[1]"], "data.drop"),
    (["data.target=label", "data.drop=[id,a,b,c,event,ward]"], "data.drop"),  # nothing left
    (["data.target=label", "data.features=[nope]"], "data.features"),
    (["data.target=label", "data.features=[]"], "data.features"),
    (["data.target=label", "data.features=[label,a]"], "data.features"),
    (["data.targets=[label,event]", "data.features=[a,event]"], "data.features"),  # another target
    (["data.target=label", "data.features=[a]", "data.drop=[id]"], "data.drop"),
    (["data.targets=[label,label]"], "data.targets"),
    (["data.targets=[]"], "data.targets"),
    (["data.targets=label"], "data.targets"),
    (["data.targets=[label,nope]"], "data.targets"),
    (["data.targets=[label,ward]"], "data.targets"),  # three values
    (["data.targets=[label,a]"], "data.targets"),  # continuous
    (["data.targets=[label,event]", "data.drop=[event]"], "data.drop"),
    (["data.target=label", "data.targets=[event]"], "data.targets"),
    (["data.targets=[label,event]", "data.positive=yes"], "data.positive"),  # not a value of event
    (["data.target=label", "data.imputation=mode"], "data.imputation"),
    (["data.target=label", "data.bands=sd"], "data.bands"),
    (["data.target=label", "data.generators=[{name:SMOTE,cap_neighbors:maybe}]"], "data.generators"),
    (["data.target=label", "data.generators=[{name:jitter,cap_neighbors:true}]"], "data.generators"),
]


@pytest.mark.parametrize("overrides, key", BAD)
def test_a_feature_table_the_job_cannot_use_is_a_config_error(table, overrides, key):
    with pytest.raises(ConfigError) as info:
        user_run(table, *overrides)
    assert info.value.key == key


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.drop=[id]", "data.drop"),
        ("data.features=[a]", "data.features"),
        ("data.targets=[y]", "data.targets"),
        ("data.drop=null", "data.drop"),
    ],
)
def test_column_options_need_a_users_file(override, key):
    with pytest.raises(ConfigError) as info:
        validate(composed([*TINY, "data.datasets=[nwtco]", override]))
    assert info.value.key == key


def test_a_small_target_of_several_names_itself(tmp_path):
    frame = pd.DataFrame(
        {"a": np.arange(80.0), "big": [1] * 20 + [0] * 60, "tiny": [1, 1] + [0] * 78, "id2": np.arange(80) % 7}
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError) as info:
        user_run(tmp_path / "t.csv", "data.targets=[big,tiny]", "data.generators=[jitter]")
    assert info.value.key == "data.targets" and info.value.value == "tiny"


# ---------------------------------------------------------------------------------------------
# the SMOTE family's k = min(k, n1 - 1)


@pytest.mark.parametrize("sampler, key", [("SMOTE", "k_neighbors"), ("ADASYN", "n_neighbors")])
@pytest.mark.parametrize("n1", [4, 15])
def test_cap_neighbors_uses_min_k_and_n1_minus_1(sampler, key, n1):
    rng = np.random.default_rng(np.random.SeedSequence(3))
    X0, X1 = rng.standard_normal((60, 2)), rng.standard_normal((n1, 2)) + 0.7
    capped = ImblearnGenerator(sampler, cap_neighbors=True, **{key: 10}).fit(X1, X0, None)
    plain = ImblearnGenerator(sampler, **{key: min(10, n1 - 1)}).fit(X1, X0, None)
    seed = np.random.SeedSequence(8)
    np.testing.assert_array_equal(
        capped.sample(25, np.random.default_rng(seed)), plain.sample(25, np.random.default_rng(seed))
    )
    with pytest.raises(ValueError, match="at least 2 minority points"):
        ImblearnGenerator(sampler, cap_neighbors=True).fit(X1[:1], X0, None)


# ---------------------------------------------------------------------------------------------
# summaries: quantile bands and TG-VTSS's branches


def test_quantile_bands_and_branch_counts(tmp_path):
    # 41 splits with losses 0, 1, ..., 40: the linear-rule 2.5% / 97.5% quantiles are 1 and 39
    rows = []
    for s in range(41):
        base = {"dataset": "t", "split": s, "n_train0": 40, "n_train1": 10, "n_test_per_class": 3, "n_features": 2}
        metrics = {m: float(s) for m in METRICS}
        branch = "symmetry" if s < 5 else ("low_gqs" if s < 30 else "high_gqs")
        common = {"weight": math.nan, "separated": False, "rules": ""}
        rows.append({**base, "generator": "G", "method": "curve", "gamma": 1.0, "branch": "", "error": ""})
        rows[-1].update({**common, **metrics})
        error = "RuntimeError: x" if s == 40 else ""
        rows.append({**base, "generator": "G", "method": "tg_vtss", "gamma": 1.0, "branch": branch, "error": error})
        rows[-1].update({**common, **{m: (math.nan if error else v) for m, v in metrics.items()}})
    numbers = summarise_real_data(pd.DataFrame(rows), [1.0])
    (curve,) = numbers["curves"]
    assert curve["q025"] == pytest.approx([1.0]) and curve["q975"] == pytest.approx([39.0])
    (tg,) = numbers["methods"]
    assert tg["branches"] == {"symmetry": 5, "low_gqs": 25, "high_gqs": 11 - 1}  # split 40 failed
    # 40 splits 0..39: 0.025 * 39 = 0.975 and 0.975 * 39 = 38.025
    assert tg["excess_risk"]["q025"] == pytest.approx(0.975) and tg["excess_risk"]["q975"] == pytest.approx(38.025)
    se_text = markdown_table(numbers)
    quantile_text = markdown_table({**numbers, "data": {"bands": "quantile"}})
    assert "| tg_vtss | G | 1.000 [1.000, 1.000] | 19.500 [0.975, 38.025] |" in quantile_text
    # losses 0..39: SD sqrt(40 * 41 / 12), half width 1.96 SD / sqrt(40) = 3.623
    assert "| tg_vtss | G | 1.000 ± 0.000 | 19.500 ± 3.623 |" in se_text
    assert "| G | tg_vtss | 5 | 25 | 10 | 1 |" in se_text
    assert "youden" in se_text and "excess_risk" in se_text


# ---------------------------------------------------------------------------------------------
# the authors' preset


def test_the_authors_preset_has_their_settings():
    run = validate(composed(["study=real_data_authors"]))
    assert run.model.ridge == 1.0 and run.model.family.startswith("logistic") and run.model.intercept
    assert run.selection.cv == ("repeated", 5, 5)
    assert run.design.reps == 100 and run.data.test_size == 0.2
    assert run.data.imputation == "mean" and run.data.bands == "quantile"
    assert run.data.generators == (
        {"name": "SMOTE", "k_neighbors": 10, "cap_neighbors": True},
        {"name": "BorderlineSMOTE", "k_neighbors": 10, "cap_neighbors": True},
        {"name": "ADASYN", "n_neighbors": 10, "cap_neighbors": True},
        {"name": "feature_jitter", "scale": 1.0},
    )


def test_the_defaults_keep_the_published_config_identity():
    run = validate(composed(["study=real_data"]))
    published = {"datasets", "generators", "test_size", "path", "target", "positive", "sha256"}
    assert set(run.identity()["data"]) == published
    authors = validate(composed(["study=real_data", "data.imputation=mean"]))
    assert authors.identity()["data"]["imputation"] == "mean" and config_hash(authors) != config_hash(run)


@pytest.mark.slow
def test_the_authors_preset_runs_on_a_users_table(table, tmp_path):
    cfg = composed(
        [
            "study=real_data_authors",
            "design.reps=2",
            "design.gammas=[0.0,1.0]",
            "selection.gammas=[0.0,1.0]",
            "selection.cv=[repeated,2,2]",
            "selection.n_boot=19",
            "data.datasets=null",
            f"data.path={table}",
            "data.targets=[label,event]",
            "data.drop=[id,ward]",
            "data.generators=[{name:SMOTE,k_neighbors:10,cap_neighbors:true}]",
            "figures_dir=null",
        ]
    )
    run = validate(OmegaConf.to_container(cfg, resolve=True))
    summary = run_job(run, tmp_path, OmegaConf.to_yaml(cfg))
    assert summary["status"] == "ok" and set(summary["datasets"]) == {"cohort:label", "cohort:event"}
    rows = pd.read_parquet(tmp_path / "replications.parquet")
    assert set(METRICS) <= set(rows.columns) and (rows["error"] == "").all()
    text = (tmp_path / "table.md").read_text()
    assert text.startswith("Mean [2.5%, 97.5% empirical quantiles]")
    assert "| SMOTE(cap_neighbors=True, k_neighbors=10) | tg_vtss_calibrated |" in text
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["data"]["bands"] == "quantile" and (tmp_path / "methods.png").is_file()


@pytest.mark.slow
def test_the_authors_preset_runs_from_one_command(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    args = ["study=real_data_authors", "design.reps=2", "data.datasets=[nwtco]", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "simstudy", *args, "figures_dir=null"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ok"
