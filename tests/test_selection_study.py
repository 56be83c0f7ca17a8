"""Tests of the selection studies (simstudy.studies.vtss and .real_data, THEORY.md section 6
studies 6-7) and
of the selectors' feature-map option (simstudy.selection).

Independent references used here:

* the curve's fit at gamma = 1 is refitted by scikit-learn's unpenalised LogisticRegression on
  the real rows plus the pool prefix, regenerated from the documented streams, and scored by
  ``Population.risk_bal`` (quadrature);
* the "exact" test loss of VTSS's model is checked against a Monte Carlo estimate of its balanced
  log-loss on fresh draws from the classes, within 4 Monte Carlo standard errors;
* random Fourier features are checked entrywise against the formula written out, and their
  kernel (E phi(x)'phi(x') = exp(-|x - x'|^2 / (2 ell^2))) by Monte Carlo over many features;
* the feature-map selectors are compared with scikit-learn fits on explicitly mapped rows;
* real-data preprocessing is compared with sklearn's SimpleImputer(median) + StandardScaler
  fitted on the training rows, and the metrics with sklearn.metrics on a scikit-learn refit
  (the excess risk's reference with a scikit-learn fit, C = 1e8, on the test rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.special import expit
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import simstudy  # noqa: F401
from simstudy.app import CONFIG_PATH
from simstudy.config import ConfigError, validate
from simstudy.engine import replication_streams
from simstudy.fourier import RandomFourierFeatures, median_lengthscale
from simstudy.generators import FittedGenerator, Generator, Smote
from simstudy.metrics import METRICS, classification_metrics
from simstudy.preprocessing import preprocess
from simstudy.selection import (
    FeatureGLM,
    FixedSizeClassifier,
    ReweightedClassifier,
    VTSSClassifier,
    stratified_splits,
)
from simstudy.studies.job import run_job
from simstudy.studies.real_data import RealDataset, load_real_datasets, outer_split, real_data_split
from simstudy.studies.selectors import selector_seed
from simstudy.studies.vtss import build_vtss_cell, vtss_replication

Z = 4.0
ROOT = Path(__file__).resolve().parent.parent


def compose_job(overrides):
    """(RunConfig, resolved yaml) of a preset, as the app validates it."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return validate(OmegaConf.to_container(cfg, resolve=True)), OmegaConf.to_yaml(cfg)


def sklearn_logistic(X, y, sample_weight=None):
    ref = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=200)
    return ref.fit(X, y, sample_weight=sample_weight)


# ---------------------------------------------------------------------------------------------
# study 6(a) end to end

TINY_LINEAR = [
    "study=vtss_linear",
    "design.n0=1200",
    "design.n1=80",
    "design.reps=3",
    "design.gammas=[0.0,0.5,1.0,1.5]",
    "selection.gammas=[0.0,0.5,1.0,1.5]",
]


@pytest.fixture(scope="module")
def linear_job(tmp_path_factory):
    run, yaml = compose_job(TINY_LINEAR)
    out = tmp_path_factory.mktemp("vtss_linear")
    summary = run_job(run, out, yaml)
    return run, out, summary


def test_vtss_job_writes_the_contract(linear_job):
    run, out, summary = linear_job
    for name in ("config.yaml", "replications.parquet", "summary.json", "figure.png", "figure.pdf"):
        assert (out / name).is_file(), name
    stored = json.loads((out / "summary.json").read_text())
    assert stored["status"] == "ok"
    for key in (
        "study",
        "dgp",
        "generator",
        "model",
        "n0",
        "n1",
        "reps",
        "seed",
        "gammas",
        "curve_mean",
        "curve_sd",
        "curve_mcse",
        "methods",
        "oracle_best_gamma",
        "oracle_best_gamma_ci",
        "versions",
        "seconds",
        "config_hash",
        "scoring",
    ):
        assert key in stored, key
    assert (stored["n0"], stored["n1"], stored["reps"], stored["scoring"]) == (1200, 80, 3, "exact")
    rows = pd.read_parquet(out / "replications.parquet")
    curve = rows[rows["method"] == "curve"]
    values = curve["test_loss"].to_numpy().reshape(3, 4)
    np.testing.assert_allclose(stored["curve_mean"], values.mean(0))
    np.testing.assert_allclose(stored["curve_mcse"], values.std(0, ddof=1) / np.sqrt(3))
    np.testing.assert_allclose(stored["curve_sd"], values.std(0, ddof=1))
    assert stored["oracle_best_gamma"] == [0.0, 0.5, 1.0, 1.5][int(np.argmin(values.mean(0)))]
    methods = stored["methods"]
    np.testing.assert_allclose(methods["full_balancing"]["test_loss"]["mean"], values[:, 2].mean())
    np.testing.assert_allclose(methods["no_augmentation"]["test_loss"]["mean"], values[:, 0].mean())
    for name in ("vtss", "tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated", "reweighting", "cost_sensitive"):
        sub = rows[rows["method"] == name].sort_values("replication")
        assert len(sub) == 3 and (sub["error"] == "").all()
        np.testing.assert_allclose(methods[name]["test_loss"]["mean"], sub["test_loss"].mean())
        np.testing.assert_allclose(methods[name]["test_loss"]["mcse"], sub["test_loss"].std(ddof=1) / np.sqrt(3))
    for name in ("vtss", "tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated"):
        sub = rows[rows["method"] == name]
        np.testing.assert_allclose(methods[name]["gamma"]["mean"], sub["gamma"].mean())
        np.testing.assert_allclose(methods[name]["gamma"]["sd"], sub["gamma"].std(ddof=1))
    # the two rule sets side by side (issue 17): branch counts and each branch's loss from the rows
    rule_sets = ("chi2/threshold", "chi2/threshold", "bootstrap/calibrated")
    for name, rules in zip(("tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated"), rule_sets):
        sub = rows[rows["method"] == name]
        assert methods[name]["rules"] == rules and set(sub["rules"]) == {rules}
        assert methods[name]["branches"] == sub["branch"].value_counts().to_dict()
        for branch, part in sub.groupby("branch"):
            np.testing.assert_allclose(methods[name]["branch_test_loss"][branch]["mean"], part["test_loss"].mean())


def test_curve_at_full_balancing_equals_an_independent_refit(linear_job):
    run, out, _ = linear_job
    rows = pd.read_parquet(out / "replications.parquet")
    vc = build_vtss_cell(run)
    cell = vc.cell
    n0, n1, gap = 1200, 80, 1120
    for r in (0, 2):
        streams = replication_streams(run.seed, cell.data_key, cell.generator_key, r)
        X0, X1 = cell.process.sample(n0, n1, streams.data)
        pool = Smote(k=5).fit(X1, X0, streams.fit).sample(round(1.5 * gap), streams.pool)
        X = np.vstack([X0, X1, pool[:gap]])
        y = np.r_[np.zeros(n0), np.ones(n1 + gap)]
        ref = sklearn_logistic(X, y)
        theta = np.r_[ref.intercept_, ref.coef_[0]]
        want = vc.population.risk_bal(theta)
        got = rows[(rows["replication"] == r) & (rows["method"] == "curve") & (rows["gamma"] == 1.0)]
        assert got["test_loss"].item() == pytest.approx(want, rel=1e-8)


def test_vtss_loss_is_its_models_balanced_log_loss(linear_job):
    run, out, _ = linear_job
    rows = pd.read_parquet(out / "replications.parquet")
    vc = build_vtss_cell(run)
    cell, r = vc.cell, 1
    streams = replication_streams(run.seed, cell.data_key, cell.generator_key, r)
    X0, X1 = cell.process.sample(1200, 80, streams.data)
    est = VTSSClassifier(
        generator=Smote(k=5),
        gammas=[0.0, 0.5, 1.0, 1.5],
        cv="holdout",
        random_state=selector_seed(run.seed, cell.data_key, r),
    )
    est.fit(np.vstack([X0, X1]), np.r_[np.zeros(1200, int), np.ones(80, int)])
    stored = rows[(rows["replication"] == r) & (rows["method"] == "vtss")]
    assert stored["gamma"].item() == est.gamma_
    # Monte Carlo estimate of the model's balanced log-loss on fresh class draws
    rng = np.random.default_rng(np.random.SeedSequence(77))
    m = 200_000
    T0, T1 = cell.process.sample(m, m, rng)
    p0, p1 = est.predict_proba(T0)[:, 1], est.predict_proba(T1)[:, 1]
    terms0, terms1 = -np.log1p(-p0), -np.log(p1)
    mc = 0.5 * terms0.mean() + 0.5 * terms1.mean()
    mcse = 0.5 * np.sqrt(terms0.var() / m + terms1.var() / m)
    assert abs(stored["test_loss"].item() - mc) / mcse < Z


def test_same_seed_same_numbers_and_one_replication_regenerates_alone(linear_job, tmp_path):
    run, out, _ = linear_job
    rows = pd.read_parquet(out / "replications.parquet")
    vc = build_vtss_cell(run)
    alone = vtss_replication(vc, 2)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), rows[rows["replication"] == 2].reset_index(drop=True))
    again = run_job(run, tmp_path, "x: 1\n")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "replications.parquet"), rows)
    first = json.loads((out / "summary.json").read_text())
    # the two runs wrote different config.yaml texts, so only the outputs' digests may differ
    assert {k: v for k, v in again.items() if k not in ("seconds", "outputs")} == {
        k: v for k, v in first.items() if k not in ("seconds", "outputs")
    }
    other, _ = compose_job(TINY_LINEAR + ["seed=1"])
    vc_other = build_vtss_cell(other)
    assert not np.allclose(vtss_replication(vc_other, 2)["test_loss"], alone["test_loss"])


# ---------------------------------------------------------------------------------------------
# random Fourier features and the selectors' feature_map option


def test_random_fourier_features_formula():
    rng = np.random.default_rng(np.random.SeedSequence(5))
    W, b = rng.standard_normal((7, 3)), rng.uniform(0, 2 * np.pi, 7)
    phi = RandomFourierFeatures(W, b)
    X = rng.standard_normal((4, 3))
    want = np.array(
        [[np.sqrt(2 / 7) * np.cos(sum(W[j, k] * x[k] for k in range(3)) + b[j]) for j in range(7)] for x in X]
    )
    np.testing.assert_allclose(phi(X), want, rtol=1e-13)
    # leading batch axes are mapped row by row
    np.testing.assert_allclose(phi(np.stack([X, 2 * X]))[1], phi(2 * X))
    assert (phi.n_features, phi.dim) == (7, 3)
    with pytest.raises(ValueError, match="3 columns"):
        phi(np.ones((2, 4)))
    with pytest.raises(ValueError, match="b must have shape"):
        RandomFourierFeatures(W, b[:3])


def test_random_fourier_kernel_is_gaussian():
    ell, D = 1.7, 40_000
    phi = RandomFourierFeatures.draw(2, D, ell, np.random.default_rng(np.random.SeedSequence(9)))
    x, xp = np.array([[0.3, -0.2]]), np.array([[1.1, 0.9]])
    terms = D * phi(x)[0] * phi(xp)[0]  # per-feature 2 cos(w'x + b) cos(w'x' + b)
    want = np.exp(-np.sum((x - xp) ** 2) / (2 * ell**2))
    assert abs(terms.mean() - want) / (terms.std() / np.sqrt(D)) < Z


def test_median_lengthscale_is_the_median_pairwise_distance():
    X = np.random.default_rng(np.random.SeedSequence(3)).standard_normal((9, 2))
    pairs = [np.hypot(*(X[i] - X[j])) for i in range(9) for j in range(i + 1, 9)]
    assert median_lengthscale(X) == pytest.approx(np.median(pairs), rel=1e-12)


class Spy(Generator):
    """Records the raw rows every fit sees and every pool it hands out."""

    name = "spy"
    data_dependent = True

    def __init__(self, inner: Generator):
        self.inner, self.fits, self.pools = inner, [], []

    def fit(self, X1, X0, rng):
        self.fits.append((np.array(X1), np.array(X0)))
        return _SpyFitted(self.inner.fit(X1, X0, rng), self)


class _SpyFitted(FittedGenerator):
    def __init__(self, inner, log):
        self.inner, self.log, self.dim = inner, log, inner.dim

    def _sample(self, m, rng):
        pool = self.inner.sample(m, rng)
        self.log.pools.append(pool.copy())
        return pool


@pytest.fixture(scope="module")
def ring_sample():
    rng = np.random.default_rng(np.random.SeedSequence(21))
    angle = rng.uniform(0, 2 * np.pi, 40)
    X1 = np.c_[3 + 2 * np.cos(angle), 2 * np.sin(angle)] + 0.8 * rng.standard_normal((40, 2))
    X0 = rng.standard_normal((300, 2)) * 1.5
    # a short lengthscale keeps the mapped design well conditioned (cond ~ 10)
    phi = RandomFourierFeatures.draw(2, 10, 0.7, rng)
    return np.vstack([X0, X1]), np.r_[np.zeros(300, int), np.ones(40, int)], phi


def test_selectors_with_a_feature_map_equal_a_manual_pipeline(ring_sample):
    X, y, phi = ring_sample
    est = ReweightedClassifier(feature_map=phi).fit(X, y)
    ref = sklearn_logistic(phi(X), y, sample_weight=np.where(y == 1, 340 / 80, 340 / 600))
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(phi(X)), rtol=1e-6, atol=1e-10)
    assert est.n_features_in_ == 2 and est.coef_.shape == (1, 10)
    # augmentation happens in the raw space, the map after it
    spy = Spy(Smote(k=5))
    fixed = FixedSizeClassifier(gamma=0.5, generator=spy, feature_map=phi, random_state=3).fit(X, y)
    assert spy.fits[0][0].shape == (40, 2) and spy.pools[0].shape == (130, 2)
    Xa = np.vstack([X, spy.pools[0]])
    ref = sklearn_logistic(phi(Xa), np.r_[y, np.ones(130)])
    np.testing.assert_allclose(fixed.decision_function(X), ref.decision_function(phi(X)), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(fixed.predict(X), ref.predict(phi(X)))


def test_vtss_with_a_feature_map_validates_on_mapped_rows(ring_sample):
    X, y, phi = ring_sample
    spy = Spy(Smote(k=5))
    gammas = [0.0, 0.5, 1.0]
    est = VTSSClassifier(generator=spy, gammas=gammas, cv=2, feature_map=phi, random_state=4).fit(X, y)
    splits = stratified_splits(y, cv=2, random_state=4)
    res = est.cv_results_
    for s, split in enumerate(splits):
        pool = spy.pools[s]
        assert pool.shape[1] == 2  # the generator never sees the mapped rows
        for g, m in enumerate(res["split_n_tilde"][s]):
            ref = sklearn_logistic(phi(np.vstack([X[split.train], pool[:m]])), np.r_[y[split.train], np.ones(m)])
            p = ref.predict_proba(phi(X[split.validation]))[:, 1]
            yv = y[split.validation]
            want = 0.5 * np.mean(-np.log1p(-p[yv == 0])) + 0.5 * np.mean(-np.log(p[yv == 1]))
            assert res["split_validation_loss"][s, g] == pytest.approx(want, rel=1e-6)
    final = spy.pools[-1] if est.n_synthetic_ else np.empty((0, 2))
    ref = sklearn_logistic(phi(np.vstack([X, final])), np.r_[y, np.ones(len(final))])
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(phi(X)), rtol=1e-6, atol=1e-10)
    # the sklearn API keeps the map: clone copies it and refits to the same model
    twin = clone(est)
    np.testing.assert_array_equal(twin.get_params()["feature_map"].W, phi.W)
    np.testing.assert_allclose(twin.fit(X, y).theta_, est.theta_)


def test_feature_glm_and_bad_feature_maps(ring_sample):
    X, y, phi = ring_sample
    model = FeatureGLM("logistic", intercept=True, feature_map=phi)
    assert model.n_params(2) == 11
    with pytest.raises(TypeError, match="feature_map"):  # required, keyword-only
        FeatureGLM("logistic", intercept=True)
    np.testing.assert_allclose(model.features(X)[:, 1:], phi(X))
    with pytest.raises(ValueError, match="feature_map must be None, a callable"):
        ReweightedClassifier(feature_map="rff").fit(X, y)
    with pytest.raises(ValueError, match="same leading shape"):
        ReweightedClassifier(feature_map=lambda A: A[:3]).fit(X, y)


# ---------------------------------------------------------------------------------------------
# study 7: real data


@pytest.fixture(scope="module")
def holey():
    """A small imbalanced table with missing values and a column constant in most rows."""
    rng = np.random.default_rng(np.random.SeedSequence(31))
    n0, n1 = 160, 40
    X = np.vstack([rng.standard_normal((n0, 4)), rng.standard_normal((n1, 4)) + [1.0, 0.5, 0.0, 0.0]])
    X[:, 2] = 3.0
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    return RealDataset("holey", X, y, (1, 2, 3, 4))


def test_outer_split_balances_the_test_set_and_preprocesses_on_training_rows(holey):
    sd = outer_split(holey, seed=0, s=1, test_size=0.2)
    assert sd.y_test.sum() * 2 == len(sd.y_test) == 16  # 8 minority test rows, 8 of 32 majority
    assert np.intersect1d(sd.train_idx, sd.test_idx).size == 0
    assert set(holey.y[sd.test_idx]) == {0, 1}
    train, test = holey.X[sd.train_idx], holey.X[sd.test_idx]
    keep = [0, 1, 3]  # column 2 is constant where observed: dropped
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()).fit(train[:, keep])
    np.testing.assert_allclose(sd.X_train, ref.transform(train[:, keep]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sd.X_test, ref.transform(test[:, keep]), rtol=1e-12, atol=1e-12)
    # the fitted preprocessing ignores the test rows entirely
    mangled = holey.X.copy()
    mangled[sd.test_idx] = 1e6
    again = outer_split(RealDataset("holey", mangled, holey.y, holey.key), seed=0, s=1, test_size=0.2)
    np.testing.assert_array_equal(again.X_train, sd.X_train)
    assert again.preprocessor.fill.tolist() == sd.preprocessor.fill.tolist()


def test_preprocess_rejects_an_empty_table():
    with pytest.raises(ValueError, match="no training column"):
        preprocess(np.full((5, 2), np.nan))


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(np.random.SeedSequence(8))
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    eta = rng.standard_normal(100) + y
    p = expit(eta)
    got = classification_metrics("logistic", eta, y, 0.25)
    pred = (p > 0.5).astype(int)
    assert got["balanced_log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-10)
    assert got["accuracy"] == skm.accuracy_score(y, pred)
    assert got["balanced_accuracy"] == skm.balanced_accuracy_score(y, pred)
    assert got["f1"] == skm.f1_score(y, pred)
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert got["auroc"] == skm.roc_auc_score(y, p)
    assert got["auprc"] == skm.average_precision_score(y, p)
    assert got["excess_risk"] == pytest.approx(skm.log_loss(y, p) - 0.25, rel=1e-10)
    assert classification_metrics("logistic", -np.ones(100), y, 0.25)["f1"] == 0.0


def test_real_data_split_rows_match_sklearn_refits(holey):
    run, _ = compose_job(
        ["study=real_data", "design.gammas=[0.0,1.0,2.0]", "selection.gammas=[0.0,1.0]", "data.generators=[SMOTE]"]
    )
    rows = real_data_split(holey, run, 0)
    sd = outer_split(holey, run.seed, 0, 0.2)
    methods = {"raw", "reweighting", "cost_sensitive", "curve", "balanced", "vtss"}
    methods |= {"tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated"}
    assert set(rows["method"]) == methods
    assert (rows["error"] == "").all()
    assert (rows["n_test_per_class"] == 8).all()
    for method, weight in (("raw", None), ("reweighting", np.where(sd.y_train == 1, 160 / 64, 160 / 256))):
        ref = sklearn_logistic(sd.X_train, sd.y_train, sample_weight=weight)
        p = ref.predict_proba(sd.X_test)[:, 1]
        pred = ref.predict(sd.X_test)
        row = rows[rows["method"] == method].iloc[0]
        assert row["balanced_log_loss"] == pytest.approx(skm.log_loss(sd.y_test, p), rel=1e-6)
        assert row["accuracy"] == skm.accuracy_score(sd.y_test, pred)
        assert row["balanced_accuracy"] == skm.balanced_accuracy_score(sd.y_test, pred)
        assert row["f1"] == skm.f1_score(sd.y_test, pred, zero_division=0.0)
        assert row["mcc"] == pytest.approx(skm.matthews_corrcoef(sd.y_test, pred))
        assert row["auroc"] == pytest.approx(skm.roc_auc_score(sd.y_test, p))
        assert row["auprc"] == pytest.approx(skm.average_precision_score(sd.y_test, p))
        assert row["precision"] == pytest.approx(skm.precision_score(sd.y_test, pred, zero_division=0.0))
        assert row["recall"] == pytest.approx(skm.recall_score(sd.y_test, pred))
        assert row["jaccard"] == pytest.approx(skm.jaccard_score(sd.y_test, pred))
        assert row["youden"] == pytest.approx(2 * skm.balanced_accuracy_score(sd.y_test, pred) - 1)
        # the reference: a nearly unpenalised fit (C = 1 / ridge = 1e8) on the balanced test rows
        best = LogisticRegression(C=1e8, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(sd.X_test, sd.y_test)
        best_loss = skm.log_loss(sd.y_test, best.predict_proba(sd.X_test)[:, 1])
        assert row["excess_risk"] == pytest.approx(skm.log_loss(sd.y_test, p) - best_loss, rel=1e-6, abs=1e-9)
    # every fit is linear in the test rows' features: none beats the reference on them
    assert (rows["excess_risk"] > -1e-9).all()
    curve = rows[rows["method"] == "curve"]
    balanced = rows[rows["method"] == "balanced"].iloc[0]
    assert curve["gamma"].tolist() == [0.0, 1.0, 2.0]
    at_one = curve[curve["gamma"] == 1.0].iloc[0]
    assert all(balanced[m] == at_one[m] for m in METRICS)
    # gamma = 0 of the curve is the raw fit (zero-weight pool rows change nothing)
    raw = rows[rows["method"] == "raw"].iloc[0]
    assert curve.iloc[0]["balanced_log_loss"] == pytest.approx(raw["balanced_log_loss"], rel=1e-8)


def test_real_data_job_on_a_bundled_dataset(tmp_path):
    run, yaml = compose_job(
        [
            "study=real_data",
            "design.reps=2",
            "design.gammas=[0.0,1.0]",
            "selection.gammas=[0.0,0.5,1.0]",
            "data.datasets=[breast_cancer]",
            "data.generators=[SMOTE]",
        ]
    )
    summary = run_job(run, tmp_path, yaml)
    for name in (
        "config.yaml",
        "replications.parquet",
        "replications.csv",
        "summary.json",
        "table.md",
        "figure.png",
        "methods.png",
    ):
        assert (tmp_path / name).is_file(), name
    rows = pd.read_parquet(tmp_path / "replications.parquet")
    assert sorted(rows["split"].unique()) == [0, 1]
    assert (rows["n_test_per_class"] == 7).all()  # 36 malignant: 7 held out per split
    assert summary["status"] == "ok" and summary["datasets"]["breast_cancer"]["n_train1"] == 29
    vtss = next(m for m in summary["methods"] if m["method"] == "vtss")
    sub = rows[rows["method"] == "vtss"]["balanced_log_loss"]
    assert vtss["balanced_log_loss"]["mean"] == pytest.approx(sub.mean())
    assert vtss["balanced_log_loss"]["half_width"] == pytest.approx(1.96 * sub.std(ddof=1) / np.sqrt(2))
    assert "| vtss | SMOTE |" in (tmp_path / "table.md").read_text()


def test_a_users_table_loads_through_load_table(tmp_path):
    frame = pd.DataFrame({"a": np.arange(30.0), "b": ["x", "y", "z"] * 10, "label": ["no"] * 24 + ["yes"] * 6})
    frame.to_csv(tmp_path / "mine.csv", index=False)
    # 6 minority rows leave too few for SMOTE's 5 neighbours in the selectors' splits
    run, _ = compose_job(
        [
            "study=real_data",
            "data.datasets=null",
            f"data.path={tmp_path / 'mine.csv'}",
            "data.target=label",
            "data.generators=[jitter]",
        ]
    )
    (ds,) = load_real_datasets(run.data)
    assert ds.name == "mine" and ds.y.sum() == 6 and ds.X.shape == (30, 3)


# ---------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize("study", ["vtss_linear", "vtss_ring", "real_data"])
def test_presets_compose_and_validate(study):
    run, _ = compose_job([f"study={study}"])
    assert run.kind == run.figure == ("real_data" if study == "real_data" else "vtss")
    assert 0.0 in run.design.gammas and 1.0 in run.design.gammas
    assert run.selection is not None
    assert (run.data is not None) == (study == "real_data")


@pytest.mark.parametrize(
    "study, override, key",
    [
        ("vtss_linear", "selection.cv=1", "selection.cv"),
        ("vtss_linear", "selection.cv=[repeated,5]", "selection.cv"),
        ("vtss_linear", "selection.gammas=[1.0,0.5]", "selection.gammas"),
        ("vtss_linear", "selection.test_size=1.0", "selection.test_size"),
        ("vtss_linear", "selection.scoring=perfect", "selection.scoring"),
        ("vtss_linear", "+selection.colour=red", "selection.colour"),
        ("vtss_linear", "design.gammas=[0.0,0.5,2.0]", "design.gammas"),
        ("vtss_ring", "selection.feature_map.n_features=0", "selection.feature_map.n_features"),
        ("vtss_ring", "selection.feature_map.lengthscale=-1.0", "selection.feature_map.lengthscale"),
        ("vtss_ring", "selection.scoring=exact", "selection.scoring"),
        ("real_data", "data.datasets=[iris]", "data.datasets"),
        ("real_data", "data.generators=[GAN]", "data.generators"),
        ("real_data", "data.path=/nonexistent.csv", "data.path"),
        ("real_data", "model=least_squares", "model.family"),
    ],
)
def test_bad_sections_name_the_key(study, override, key):
    # validate() checks a selection study's sections when the config is composed
    with pytest.raises(ConfigError) as info:
        compose_job([f"study={study}", override])
    assert info.value.key == key
