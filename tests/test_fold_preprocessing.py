"""Preprocessing refitted inside every fold (AUTHORS_DESIGNS.md F): the selectors' validation
splits, TG-VTSS's diagnostics and the reference GQS's folds never fit a transform on the rows
it is then applied to as held-out rows.

The sentinel: every row carries its own index in an extra column. A recording transformer logs,
for each transform call, the indices it was fitted on and the indices it maps, and drops the
column. A leak is a held-out set mapped by a fit that saw one of its rows; the tests also check
that every validation split's (and every GQS fold's) held-out rows were mapped by a fit on that
split's fitting rows alone. Independent reference for the imputation: scikit-learn's
SimpleImputer + StandardScaler.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import simstudy  # noqa: F401
from simstudy import selection
from simstudy.app import CONFIG_PATH
from simstudy.config import ConfigError, validate
from simstudy.diagnostics import _stratified_folds, diagnose
from simstudy.fitting import GLM
from simstudy.generators import Smote
from simstudy.preprocessing import TablePreprocessor, preprocess
from simstudy.selection import CostSensitiveClassifier, TGVTSSClassifier, VTSSClassifier
from simstudy.studies import real_data

LOG: list[tuple[frozenset, frozenset]] = []
"""(rows fitted on, rows mapped) of every transform call: clones share this module-level log."""


class Recorder(TransformerMixin, BaseEstimator):
    """Standardises the feature columns; the last column is the row's index (the sentinel)."""

    def fit(self, X, y=None):
        X = np.asarray(X)
        self.seen_ = frozenset(X[:, -1].astype(int).tolist())
        self.mean_, self.sd_ = X[:, :-1].mean(axis=0), X[:, :-1].std(axis=0)
        return self

    def transform(self, X):
        X = np.asarray(X)
        LOG.append((self.seen_, frozenset(X[:, -1].astype(int).tolist())))
        return (X[:, :-1] - self.mean_) / self.sd_


def _data(seed=0, n0=240, n1=30):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n0, 2)), rng.normal(size=(n1, 2)) + [1.5, 0.0]]) * 3 + 1
    y = np.r_[np.zeros(n0), np.ones(n1)].astype(np.int64)
    return np.column_stack([X, np.arange(n0 + n1)]), y


def _no_leak():
    """No transform maps a row it was not fitted on together with rows it was fitted on: a
    call maps either rows of its own fit (a fitting part) or only unseen rows (held out)."""
    for seen, mapped in LOG:
        assert mapped <= seen or not (mapped & seen), "a held-out row set was mapped by a fit that saw part of it"


def _held_out_by_its_own_fit(held: set, fitted_on: set) -> bool:
    return any(mapped == frozenset(held) and seen == frozenset(fitted_on) for seen, mapped in LOG)


@pytest.mark.parametrize("cls", [VTSSClassifier, TGVTSSClassifier, CostSensitiveClassifier])
def test_every_validation_split_is_preprocessed_on_its_fitting_rows(cls):
    X, y = _data()
    LOG.clear()
    options = {"gammas": [0.0, 1.0]} if cls is not CostSensitiveClassifier else {"weights": [1.0, 4.0]}
    est = cls(preprocessor=Recorder(), cv=3, random_state=3, **options).fit(X, y)
    _no_leak()
    for s in selection.stratified_splits(y, 3, 0.2, selection._root_seed(3)):
        assert _held_out_by_its_own_fit(set(s.validation), set(s.train))
    # the final fit (and prediction) use the transform fitted on all rows
    assert est.preprocessor_.seen_ == frozenset(range(len(y)))
    assert est.predict_proba(X).shape == (len(y), 2)


def test_reference_gqs_folds_are_preprocessed_on_their_training_rows():
    X, y = _data(1)
    X0, X1 = X[y == 0], X[y == 1]
    LOG.clear()
    rng = np.random.default_rng(4)
    diagnose(
        X0,
        X1,
        Smote(k=3),
        GLM("logistic", intercept=True),
        rng,
        n_folds=3,
        variant="reference",
        preprocessor=Recorder(),
    )
    _no_leak()
    # the folds diagnose draws: the same stream after the one all-rows fit (no draws)
    folds = _stratified_folds(len(X0), len(X1), 3, np.random.default_rng(4))
    ids0, ids1 = X0[:, -1].astype(int), X1[:, -1].astype(int)
    for out0, out1 in folds:
        train = set(np.r_[np.delete(ids0, out0), np.delete(ids1, out1)].tolist())
        assert _held_out_by_its_own_fit(set(ids0[out0].tolist()), train)
        assert _held_out_by_its_own_fit(set(ids1[out1].tolist()), train)


def test_tg_reference_variant_refits_inside_every_fold():
    X, y = _data(2)
    LOG.clear()
    est = TGVTSSClassifier(preprocessor=Recorder(), variant="reference", cv=2, gammas=[0.0, 1.0], alpha=1.0)
    est.fit(X, y)
    assert est.diagnostics_ is not None  # alpha = 1: the GQS always runs
    _no_leak()


def test_table_preprocessor_is_imputation_then_scaling():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3)) * [1, 5, 10]
    X[rng.random(X.shape) < 0.1] = np.nan
    for strategy in ("median", "mean"):
        ours = TablePreprocessor(strategy).fit(X[:60])
        ref = make_pipeline(SimpleImputer(strategy=strategy), StandardScaler()).fit(X[:60])
        np.testing.assert_allclose(ours.transform(X[60:]), ref.transform(X[60:]), rtol=1e-12, atol=1e-12)


def test_missing_values_reach_only_the_preprocessor():
    X, y = _data(6)
    X = X[:, :-1].copy()
    X[::17, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VTSSClassifier(cv=2, gammas=[0.0]).fit(X, y)
    est = VTSSClassifier(preprocessor=TablePreprocessor(), cv=2, gammas=[0.0, 1.0], random_state=0).fit(X, y)
    assert np.all(np.isfinite(est.predict_proba(X)))
    with pytest.raises(ValueError, match="preprocessor must be None or a transformer"):
        VTSSClassifier(preprocessor="scale", cv=2).fit(X, y)


def test_a_column_constant_in_one_split_is_a_clear_error():
    X, y = _data(7)
    X = X[:, :-1].copy()
    splits = selection.stratified_splits(y, 2, 0.2, selection._root_seed(0))
    X[:, 1] = 0.0
    X[splits[0].validation[::2], 1] = 1.0  # constant in split 0's fitting rows, not in split 1's
    with pytest.raises(ValueError, match="kept 2 columns in validation split 1"):
        VTSSClassifier(preprocessor=TablePreprocessor(), cv=2, gammas=[0.0], random_state=0).fit(X, y)


class Recording(TablePreprocessor):
    """TablePreprocessor that logs the rows (by their bytes) it was fitted on and maps."""

    def fit(self, X, y=None):
        self.seen_ = frozenset(row.tobytes() for row in np.ascontiguousarray(X, dtype=np.float64))
        return super().fit(X)

    def transform(self, X):
        LOG.append((self.seen_, frozenset(row.tobytes() for row in np.ascontiguousarray(X, dtype=np.float64))))
        return super().transform(X)


@pytest.mark.slow  # a whole split of every method: about 15 s alone, mostly compilation
def test_real_data_selectors_refit_the_preprocessing_in_their_folds(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    n = 150
    frame = pd.DataFrame(rng.standard_normal((n, 3)), columns=["a", "b", "c"])
    frame.loc[rng.random(n) < 0.15, "b"] = np.nan
    frame["label"] = np.where(np.argsort(np.argsort(-(frame["a"] + rng.standard_normal(n)))) < 30, "yes", "no")
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    overrides = [
        "study=real_data",
        "design.reps=2",
        "design.gammas=[0.0,1.0]",
        "selection.gammas=[0.0,1.0]",
        "selection.cv=2",
        "selection.n_boot=19",
        "selection.alpha=1.0",  # the GQS always runs
        "data.datasets=null",
        f"data.path={path}",
        "data.target=label",
        "data.generators=[SMOTE]",
        "data.preprocess_in_folds=true",
    ]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        run = validate(OmegaConf.to_container(compose("config", overrides=overrides), resolve=True))
    (ds,) = real_data.load_real_datasets(run.data)
    monkeypatch.setattr(real_data, "TablePreprocessor", Recording)
    LOG.clear()
    rows = real_data.real_data_split(ds, run, 0)
    assert rows["error"].eq("").all(), rows.loc[rows["error"] != "", "error"].tolist()
    assert LOG, "the selectors did not preprocess in their folds"
    _no_leak()
    # no transform the selectors fitted saw a row of the outer test part
    sd = real_data.outer_split(ds, run.seed, 0, run.data.test_size)
    test_rows = {row.tobytes() for row in np.ascontiguousarray(ds.X[sd.test_idx])}
    assert all(not (seen & test_rows) for seen, _ in LOG)


def test_preprocess_in_folds_must_be_a_boolean():
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            "config", overrides=["study=real_data", "data.datasets=[nwtco]", "data.preprocess_in_folds=maybe"]
        )
    with pytest.raises(ConfigError, match=r"data\.preprocess_in_folds"):
        validate(OmegaConf.to_container(cfg, resolve=True))


def test_preprocess_refuses_infinite_values():
    # inf is not a missing value: its column's SD is NaN, and the column used to be dropped as
    # if it were constant, without a word
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[4, 1] = -np.inf
    with pytest.raises(ValueError, match=r"infinite values in column\(s\) \[1\]"):
        preprocess(X)
    with pytest.raises(ValueError, match="infinite"):
        TablePreprocessor("mean").fit(X)
    X[4, 1] = np.nan  # a missing value is imputed, and the column kept
    assert preprocess(X).keep.tolist() == [0, 1, 2]
