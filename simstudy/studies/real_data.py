"""``study.kind: real_data``: study 7 of THEORY.md section 6, the section 5 protocol on tables.

For each dataset and each generator, R = ``design.reps`` repeated stratified 80/20 splits; the
test part is balanced by downsampling its majority to its minority count; missing values are
imputed by the training medians (``data.imputation: mean``: means) and the columns standardised
by the training means and SDs (``simstudy.preprocessing``; columns constant or empty in the
training part are dropped); logistic regression with intercept. By default the transform is
fitted once per outer split, so the selectors' CV and GQS folds see the outer training part's
transform; with ``data.preprocess_in_folds: true`` VTSS, TG-VTSS and cost-sensitive weights get
the raw training rows and a ``preprocessing.TablePreprocessor`` they refit inside every
validation split and reference-GQS fold (``selection``'s ``preprocessor``). Methods: raw (gamma
= 0), fully balanced (gamma = 1, off the curve), VTSS, TG-VTSS (three variants), reweighting and
cost-sensitive weights; metrics on the balanced test set (``simstudy.metrics``): balanced
log-loss, accuracy, balanced accuracy, F1, MCC, AUROC, AUPRC, precision, recall, Jaccard index,
Youden's index and the empirical balanced excess risk (the balanced log-loss minus that of a
nearly unpenalised fit of the same model class on the balanced test set itself,
``reference_loss``), summarised per method as mean, SD, 1.96 SE and the empirical 2.5% / 97.5%
quantiles over splits; table.md and the figures show mean +- 1.96 SE (``data.bands: se``) or the
quantiles (``data.bands: quantile``), and table.md counts the branches each TG-VTSS took. The
splits overlap, so the SE understates the variability of a new-sample estimate (Nadeau and
Bengio 2003); it measures only the Monte Carlo error over splits. A method that raises on a
split is recorded with its error and NaN metrics, never dropped (section 7), and listed in
summary.json's ``failures`` and in table.md; the other methods and generators are kept.

A user's table (``data.path``) has one label column (``data.target``: the dataset is named after
the file) or several (``data.targets``: one dataset ``<file stem>:<target>`` each, the other
targets never features); ``data.drop`` lists columns that are not features (identifiers, other
outcomes) and ``data.features``, instead, the columns that are.

Streams of split s, with K = stable_key of the dataset's identity (a bundled dataset: its name
and ``data.test_size``; a user's file: the SHA-256 of its bytes, the target, ``data.positive``
and ``data.test_size``, so that the same file gives the same draws wherever it lies and an
edited file new ones; which columns are features and the imputation do not enter, so a job
that drops a column sees the same splits): the two children of SeedSequence(seed,
spawn_key=(K, s)) draw the split and the test downsampling; generator G fits and draws from
``replication_streams(seed, K, stable_key(G), s)``; the selectors share SeedSequence(seed,
spawn_key=(K, s, 2)) across generators (common random numbers), and a TG-VTSS that reaches
VTSS's grid reads VTSS's validation (``selection.SharedValidations``). The curve's grid is
``design.gammas``; ``design.n0`` / ``design.n1`` are unused.

Validation loads every table the study reads: a bad file, target, positive label or column
name, a class too small for the splits, or a generator option that cannot work at the table's
sizes is a ``ConfigError`` before any job starts. A user's file enters the job's identity
through the SHA-256 of its bytes (``data.sha256``, filled in by validation), so an edited file
is a new job.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import plotting
from simstudy.datasets import DATASETS, TableError, load_dataset, load_table
from simstudy.engine import Design, prefix_weights, replication_streams, stable_key
from simstudy.families import get_family
from simstudy.fitting import GLM, fit_glm
from simstudy.generators import GENERATORS, ImblearnGenerator, make_generator
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.jobfiles import file_digest
from simstudy.metrics import METRICS, classification_metrics, reference_loss
from simstudy.preprocessing import IMPUTATIONS, Preprocessor, TablePreprocessor, preprocess
from simstudy.processes import PROCESSES, process_constructor
from simstudy.schema import (
    ConfigError,
    DataConfig,
    RunConfig,
    as_plain,
    bad_value,
    known_keys,
    number,
    selection_config,
)
from simstudy.selection import SharedValidations, stratified_splits
from simstudy.studies.selectors import (
    TG_METHODS,
    error_text,
    facts,
    generator_label,
    mean_sd_mcse,
    model_label,
    selector_facts,
    selector_seed,
    size_selectors,
    weight_selectors,
)
from simstudy.studies.vtss import check_grid_ends

DATA_DEFAULTS = {
    "datasets": None,  # None: every bundled dataset (simstudy.datasets.DATASETS)
    "generators": ["SMOTE", "BorderlineSMOTE", "ADASYN", "jitter"],
    "test_size": 0.2,  # the outer split's test fraction
    "path": None,  # a user's CSV/parquet file instead of the bundled datasets
    "target": None,  # its label column
    "targets": None,  # or several label columns, each a dataset of the study (not with target)
    "positive": None,  # its minority label (None: the rarer value)
    "drop": (),  # columns of data.path that are not features (identifiers, other outcomes)
    "features": None,  # or the columns that are (None: all but the targets and drop)
    "sha256": None,  # the SHA-256 of data.path's bytes: filled in; given, it pins the file
    "imputation": "median",  # what a missing feature value becomes (simstudy.preprocessing)
    "bands": "se",  # table.md's and the figures' bands: mean +- 1.96 SE, or 2.5% / 97.5% quantiles
    # refit imputation and scaling inside every validation and GQS fold of the selectors (the
    # authors' protocol), not once on the outer training part, whose held-out fold rows then
    # inform the transform the selectors validate with
    "preprocess_in_folds": False,
}
DATA_CATALOG = ("smote", "jitter", "gaussian_fit", "feature_jitter")
"""simstudy catalog generators that need no process (study 7 has none)."""
METHOD_ORDER = ("raw", "balanced", "vtss", *TG_METHODS, "reweighting", "cost_sensitive")
BANDS = ("se", "quantile")
"""``data.bands``: mean +- 1.96 SE over splits, or the splits' empirical 2.5% / 97.5% quantiles."""
QUANTILES = (0.025, 0.975)
BRANCHES = ("symmetry", "low_gqs", "high_gqs")
"""TG-VTSS's branches (``simstudy.selection.theory_guided_grid``), in table.md's order."""
TABLE_COLUMNS = ("balanced_log_loss", "accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc")
"""The metrics of table.md's first table per dataset; the others of ``METRICS`` are in its second."""


def _generator_entry(entry) -> dict:
    spec = {"name": entry} if isinstance(entry, str) else entry
    allowed = sorted(available_samplers()) + list(DATA_CATALOG)
    if not isinstance(spec, dict) or spec.get("name") not in allowed:
        raise ConfigError(
            "data.generators", entry, f"each entry must be a name (or {{name: ..., options}}) from {allowed}"
        )
    try:
        data_generator(spec)
    except ValueError as err:
        raise ConfigError("data.generators", entry, str(err)) from None
    return spec


def data_config(section, sel) -> DataConfig:
    """Study 7's ``data`` section with defaults filled in (``DATA_DEFAULTS``), checked down to
    the tables it names: each is loaded and checked against the splits of ``sel`` (the
    SelectionConfig) and the generators (``_check_table``)."""
    data = known_keys(section, DATA_DEFAULTS, "data")
    data["test_size"] = number(data["test_size"], "data.test_size", low=0.0, high=1.0, low_open=True, high_open=True)
    for key, allowed in (("imputation", IMPUTATIONS), ("bands", BANDS)):
        if data[key] not in allowed:
            raise ConfigError(f"data.{key}", data[key], f"must be one of {list(allowed)}")
    if not isinstance(data["preprocess_in_folds"], bool):
        raise ConfigError("data.preprocess_in_folds", data["preprocess_in_folds"], "must be true or false")
    generators = data["generators"]
    if not isinstance(generators, list) or not generators:
        raise ConfigError("data.generators", generators, "must be a non-empty list")
    data["generators"] = [_generator_entry(g) for g in generators]
    labels = [generator_label(g) for g in data["generators"]]
    if len(set(labels)) != len(labels):
        raise ConfigError("data.generators", generators, "must not repeat a generator")
    if data["path"] is not None:
        data["sha256"], tables = _user_tables(data)
        if data["datasets"] is not None:
            raise ConfigError("data.datasets", data["datasets"], "must be null when data.path is given")
        for target, table in tables.items():
            name = data["path"] if data["targets"] is None else f"{data['path']} (target {target})"
            class_key = ("data.path", data["path"]) if data["targets"] is None else ("data.targets", target)
            _check_table(table, name, "data.path", data, sel, class_key)
        return _typed(data)
    for key in ("target", "targets", "positive"):
        if data[key] is not None:
            raise ConfigError(f"data.{key}", data[key], "data.target(s) and data.positive need data.path")
    fixed = "needs data.path (the bundled datasets' features are fixed)"
    if not isinstance(data["drop"], (list, tuple)) or data["drop"]:
        raise ConfigError("data.drop", data["drop"], fixed)
    if data["features"] is not None:
        raise ConfigError("data.features", data["features"], fixed)
    if data["sha256"] is not None:
        raise ConfigError("data.sha256", data["sha256"], "needs data.path (it pins a user's file)")
    names = list(DATASETS) if data["datasets"] is None else data["datasets"]
    if (
        not isinstance(names, list)
        or not names
        or any(n not in DATASETS for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(
            "data.datasets", data["datasets"], f"must be null or a list of distinct names from {sorted(DATASETS)}"
        )
    data["datasets"] = names
    for name in names:
        _check_table(load_dataset(name), name, "data.datasets", data, sel)
    return _typed(data)


def _typed(data: dict) -> DataConfig:
    def optional(value):
        return None if value is None else tuple(value)

    return DataConfig(
        **{
            **data,
            "datasets": optional(data["datasets"]),
            "generators": tuple(data["generators"]),
            "targets": optional(data["targets"]),
            "drop": tuple(data["drop"]),
            "features": optional(data["features"]),
        }
    )


def _names(value, key: str, what: str, allow_empty: bool) -> list[str]:
    """A list of distinct strings from a config value, else a ConfigError naming ``key``."""
    if (
        not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) for v in value)
        or len(set(value)) != len(value)
        or not (value or allow_empty)
    ):
        raise ConfigError(key, value, f"must be a list of distinct {what} (strings)")
    return list(value)


def _table_targets(data: dict) -> list[str]:
    """The label columns of a user's table: ``data.targets``, else ``[data.target]``."""
    return [data["target"]] if data["targets"] is None else list(data["targets"])


def _load_user_table(data: dict, target: str):
    """One target's Dataset of a user's table (``data`` as a plain dict): named after the file,
    or ``<file stem>:<target>`` under ``data.targets``; the other targets are not features."""
    return load_table(
        data["path"],
        target,
        data["positive"],
        drop=list(data["drop"]),
        features=None if data["features"] is None else list(data["features"]),
        other_targets=[t for t in _table_targets(data) if t != target],
        name=None if data["targets"] is None else f"{Path(data['path']).name.split('.')[0]}:{target}",
    )


def _user_tables(data: dict):
    """(SHA-256 of the file's bytes, {target: Dataset}) for ``data.path``, ``data.target`` or
    ``data.targets``, ``data.positive``, ``data.drop`` and ``data.features``; an unusable file,
    label or column names its key."""
    path, positive = data["path"], data["positive"]
    if not isinstance(path, str) or not Path(path).is_file():
        raise ConfigError("data.path", path, "must be an existing CSV or parquet file")
    if data["targets"] is not None:
        if data["target"] is not None:
            raise ConfigError("data.targets", data["targets"], "give data.target (one) or data.targets, not both")
        data["targets"] = _names(data["targets"], "data.targets", "label columns of data.path", allow_empty=False)
    elif not isinstance(data["target"], str):
        raise ConfigError("data.target", data["target"], "must name the label column of data.path")
    data["drop"] = _names(data["drop"], "data.drop", "column names", allow_empty=True)
    if data["features"] is not None:
        data["features"] = _names(data["features"], "data.features", "column names", allow_empty=False)
    if positive is not None and not isinstance(positive, (str, int, float)):
        raise ConfigError("data.positive", positive, "must be one value of the target column (null: the rarer one)")
    try:
        digest = file_digest(path)
    except OSError as err:
        raise ConfigError("data.path", path, f"cannot be read: {err}") from None
    if data["sha256"] not in (None, digest):
        raise ConfigError(
            "data.sha256", data["sha256"], f"must be null or the SHA-256 of data.path's bytes, which is now {digest}"
        )
    tables = {}
    for target in _table_targets(data):
        try:
            tables[target] = _load_user_table(data, target)
        except TableError as err:
            if err.argument == "target" and data["targets"] is not None:
                raise ConfigError("data.targets", target, str(err)) from None
            raise ConfigError(f"data.{err.argument}", data[err.argument], str(err)) from None
    return digest, tables


def _check_table(table, name: str, key: str, data: dict, sel, class_key: tuple | None = None) -> None:
    """Refuse a table study 7 cannot run on: no usable feature column (naming ``key``), classes
    too small for the splits (``_fewest_fit_minority``; a table too small names ``class_key``,
    a (key, value) pair, by default (key, name)), or a generator that cannot be fitted at its
    sizes.

    Each generator is fitted once on placeholder rows with the fewest minority rows any of its
    fits will see, so that the generator's own size rule (e.g. k_neighbors < minority rows)
    decides."""
    try:
        preprocess(table.X, data["imputation"])
    except ValueError as err:
        raise ConfigError(key, name, f"{err}: nothing to fit on") from None
    fewest = _fewest_fit_minority(table.n0, table.n1, name, class_key or (key, name), data, sel)
    rng = np.random.default_rng(0)
    X1, X0 = rng.standard_normal((fewest, 2)), rng.standard_normal((fewest + 1, 2))
    for spec in data["generators"]:
        try:
            data_generator(spec).fit(X1, X0, rng)
        except ValueError as err:
            raise ConfigError(
                "data.generators",
                generator_label(spec),
                f"{err} ({name}: a split fits generators on as few as {fewest} minority rows)",
            ) from None


def _fewest_fit_minority(n0: int, n1: int, name: str, class_key: tuple, data: dict, sel) -> int:
    """The fewest minority rows a generator is fitted on in one split of a table with n0 / n1
    rows; refuses sizes the outer split (``data.test_size``) or the selectors' ``selection.cv``
    cannot cut.

    The outer split needs a minority test row, as many majority test rows, and two minority
    training rows (the selectors split them again). Generators are fitted on the training part,
    on the training part of each selector's validation split, and (TG-VTSS) on each fold of the
    cross-fitted GQS, min(5, n1) folds of the training minority (``TGVTSSClassifier``). The
    sizes of stratified splits depend only on the class counts, so label vectors of those
    counts stand in for the data."""
    y = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    outer = stratified_splits(y, "holdout", data["test_size"], 0)[0]
    test1 = int(y[outer.validation].sum())
    test0, train1 = outer.validation.size - test1, n1 - test1
    if test1 < 1 or test0 < test1 or train1 < 2:
        # from 3 minority rows up some test size leaves 1 test and 2 training rows: the test
        # size is at fault; below, the table
        culprit, value = class_key if n1 < 3 else ("data.test_size", data["test_size"])
        raise ConfigError(
            culprit,
            value,
            f"{name} (n0 = {n0}, n1 = {n1}) split with data.test_size = "
            f"{data['test_size']:g} has {train1} training and {test1} test minority rows and {test0} "
            "test majority rows; needed are 2 or more training and 1 or more test minority rows, "
            "and as many test majority rows",
        )
    y_train = y[outer.train]
    try:
        inner = stratified_splits(y_train, sel.cv, sel.test_size, 0)
    except ValueError as err:
        raise ConfigError("selection.cv", sel.cv, f"{err} (the training part of {name})") from None
    gqs_fold = train1 - math.ceil(train1 / min(5, train1))
    return min([gqs_fold] + [int(y_train[split.train].sum()) for split in inner])


# --------------------------------------------------------------------------------------------
# summaries shared by both studies


def balanced_test_indices(test_idx, y, rng: np.random.Generator) -> np.ndarray:
    """All minority test rows and as many majority test rows drawn without replacement (sorted)."""
    test_idx = np.asarray(test_idx)
    minority, majority = test_idx[y[test_idx] == 1], test_idx[y[test_idx] == 0]
    if minority.size == 0 or majority.size < minority.size:
        raise ValueError(
            f"the test part needs minority rows and at least as many majority rows, got "
            f"{minority.size} minority and {majority.size} majority"
        )
    return np.sort(np.concatenate([minority, rng.choice(majority, size=minority.size, replace=False)]))


def data_generator(spec: dict):
    """The simstudy Generator of a ``data.generators`` entry (imblearn name or catalog name)."""
    options = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] in DATA_CATALOG:
        return make_generator(spec["name"], **options)
    return ImblearnGenerator(spec["name"], **options)


_WARNED_IDENTIFIERS: set[tuple[str, str, str]] = set()
"""(file, SHA-256, column) of every identifier warning printed by this process: the app builds
a job once to check it before anything runs and again to run it, and ``replicate`` loads the
data once per replication, so the same file would be warned about several times."""


class RealDataset(NamedTuple):
    name: str
    X: np.ndarray
    y: np.ndarray
    key: tuple[int, ...]


def load_real_datasets(data: DataConfig) -> list[RealDataset]:
    """The datasets of a validated ``data`` section, each with its stream key (module
    docstring): a bundled dataset each, a user's file one per target. The file must still have
    the bytes validation hashed into the job's identity; each of its feature columns that looks
    like a row identifier gets a warning line on stderr (it is a feature all the same), once
    per process for a given file and column."""
    if data.path is not None:
        if file_digest(data.path) != data.sha256:
            raise ValueError(f"data.path {data.path!r} changed after the job's config was validated; run the job again")
        plain = asdict(data)
        out = []
        for target in _table_targets(plain):
            ds = _load_user_table(plain, target)
            # every target has the same features (all targets are excluded from each): one warning
            for column in ds.identifiers if not out else ():
                warned = (str(Path(data.path).resolve()), data.sha256, column)
                if warned in _WARNED_IDENTIFIERS:
                    continue
                _WARNED_IDENTIFIERS.add(warned)
                print(
                    f"simstudy: warning: column {column!r} of {data.path} has a distinct value in every "
                    "row (an identifier?) and is used as a feature; list it in data.drop if it names rows",
                    file=sys.stderr,
                )
            # the draws depend on the file, the label and the split, not on which columns are
            # features, so a job that drops columns or changes the imputation sees the same
            # splits (common random numbers), and data.targets=[a, b] the splits of
            # data.target=a and of data.target=b
            identity = {"sha256": data.sha256, "target": target, "positive": data.positive, "test_size": data.test_size}
            out.append(RealDataset(ds.name, ds.X, ds.y, stable_key(identity)))
        return out
    out = []
    for name in data.datasets:
        ds = load_dataset(name)
        out.append(RealDataset(name, ds.X, ds.y, stable_key({"dataset": name, "test_size": data.test_size})))
    return out


class SplitData(NamedTuple):
    """One outer split, preprocessed: training rows and the balanced test rows."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray  # the balanced test rows (indices into the dataset)
    preprocessor: Preprocessor


def outer_split(ds: RealDataset, seed: int, s: int, test_size: float, imputation: str = "median") -> SplitData:
    """Split s of a dataset: stratified 80/20, balanced test part, preprocessing (``imputation``:
    median or mean) fitted on the training rows (module docstring)."""
    split_ss, test_ss = np.random.SeedSequence(seed, spawn_key=(*ds.key, s)).spawn(2)
    split = stratified_splits(ds.y, "holdout", test_size, split_ss)[0]
    test = balanced_test_indices(split.validation, ds.y, np.random.default_rng(test_ss))
    prep = preprocess(ds.X[split.train], imputation)
    return SplitData(
        prep.transform(ds.X[split.train]),
        ds.y[split.train],
        prep.transform(ds.X[test]),
        ds.y[test],
        split.train,
        test,
        prep,
    )


def real_data_split(ds: RealDataset, run: RunConfig, s: int) -> pd.DataFrame:
    """Every method and generator on split s of one dataset: the tidy rows."""
    data, sel = run.data, run.selection
    sd = outer_split(ds, run.seed, s, data.test_size, data.imputation)
    design = Design(int((sd.y_train == 0).sum()), int(sd.y_train.sum()), run.design.gammas, run.design.reps, run.seed)
    model = GLM(run.model.family, run.model.intercept, run.model.ridge)
    model_args = dict(family=run.model.family, intercept=run.model.intercept, ridge=run.model.ridge)
    root = selector_seed(run.seed, ds.key, s)
    X0, X1 = sd.X_train[sd.y_train == 0], sd.X_train[sd.y_train == 1]
    Z_test = model.features(sd.X_test)
    reference = reference_loss(model.family, sd.X_test, sd.y_test, model.intercept)
    base = {
        "dataset": ds.name,
        "split": s,
        "n_train0": design.n0,
        "n_train1": design.n1,
        "n_test_per_class": int(sd.y_test.sum()),
        "n_features": sd.X_train.shape[1],
    }
    rows = []

    def scored(generator: str, facts: dict, eta) -> None:
        metrics = classification_metrics(model.family, eta, sd.y_test, reference)
        rows.append({**base, "generator": generator, **facts, **metrics})

    def failed(generator: str, method: str, err: Exception) -> None:
        rows.append(
            {**base, "generator": generator, **facts(method, error=error_text(err)), **{m: math.nan for m in METRICS}}
        )

    try:
        fit = fit_glm(sd.X_train, sd.y_train.astype(np.float64), model=model)
        scored(
            "none",
            facts("raw", gamma=0.0, n_tilde=0, converged=bool(fit.info.converged), separated=bool(fit.info.separated)),
            Z_test @ fit.theta,
        )
    except ValueError as err:
        failed("none", "raw", err)
    # the selectors that validate on inner folds refit the preprocessing inside each of them:
    # they take the raw rows of the outer split and a preprocessor
    folds = TablePreprocessor(data.imputation) if data.preprocess_in_folds else None
    raw = (ds.X[sd.train_idx], ds.X[sd.test_idx])

    def rows_for(est):
        return raw if getattr(est, "preprocessor", None) is not None else (sd.X_train, sd.X_test)

    weighted = weight_selectors(model_args, sel, root, design.n0, design.n1, preprocessor=folds)
    for method, est in weighted.items():
        try:
            X_fit, X_test = rows_for(est)
            est.fit(X_fit, sd.y_train)
            scored("none", selector_facts(method, est), est.linear_predictor(X_test))
        except ValueError as err:
            failed("none", method, err)

    one = run.design.gammas.index(1.0)
    for spec in data.generators:
        label, generator = generator_label(spec), data_generator(spec)
        streams = replication_streams(run.seed, ds.key, stable_key(spec), s)
        try:
            pool = generator.fit(X1, X0, streams.fit).sample(int(design.n_tilde.max()), streams.pool)
            X = np.vstack([X0, X1, pool])
            y = np.r_[np.zeros(design.n0), np.ones(design.n1 + pool.shape[0])]
            fit = fit_glm(X, y, prefix_weights(design), model=model)
            for g, (gamma, n) in enumerate(zip(design.gammas, design.n_tilde)):
                fit_facts = facts(
                    "curve",
                    gamma=gamma,
                    n_tilde=int(n),
                    converged=bool(fit.info.converged[g]),
                    separated=bool(fit.info.separated[g]),
                )
                scored(label, fit_facts, Z_test @ fit.theta[g])
                if g == one:
                    scored(label, {**fit_facts, "method": "balanced"}, Z_test @ fit.theta[g])
        # an imbalanced-learn sampler may raise any exception on a table it cannot work with;
        # that fails this generator on this split, not the job
        except Exception as err:
            for method in ("curve", "balanced"):
                failed(label, method, err)
        shared = SharedValidations()
        for method, est in size_selectors(generator, {**model_args, "preprocessor": folds}, sel, root).items():
            try:
                X_fit, X_test = rows_for(est)
                est.fit(X_fit, sd.y_train, shared=shared)
                scored(label, selector_facts(method, est), est.linear_predictor(X_test))
            except Exception as err:  # as above
                failed(label, method, err)
    return pd.DataFrame(rows)


def _quantiles(values) -> list:
    """The empirical 2.5% and 97.5% quantiles (numpy's linear rule) of the finite values; None
    for each when there is none."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return [float(q) for q in np.quantile(finite, QUANTILES)] if finite.size else [None, None]


def summarise_real_data(rows: pd.DataFrame, gammas) -> dict:
    """Study 7's numbers from its tidy rows.

    * ``methods``: per (dataset, generator, method) mean, SD, 1.96 SE (``half_width``) and the
      empirical 2.5% / 97.5% quantiles (``q025``, ``q975``) of every metric and of the chosen
      gamma, over the splits where the method worked, its number of errors and, for each
      TG-VTSS, how many splits took each branch (``branches``); ordered by dataset, then
      ``METHOD_ORDER``, then generator;
    * ``curves``: per (dataset, generator) the balanced log-loss against gamma (mean,
      ``half_width``, ``q025``, ``q975``); a split where the generator failed counts as failed
      at every gamma, so a generator that failed on every split has a curve of nulls;
    * ``failures``: every failed (dataset, generator, method, split) with its error;
    * ``datasets``: per dataset the training and test sizes and the number of splits.
    """
    methods = []
    for (dataset, generator, method), sub in rows[rows["method"] != "curve"].groupby(
        ["dataset", "generator", "method"], sort=False
    ):
        entry = {
            "dataset": dataset,
            "generator": generator,
            "method": method,
            "n_errors": int((sub["error"] != "").sum()),
            "n_separated": int(sub["separated"].sum()),
        }
        for metric in METRICS + ("gamma", "weight"):
            stats = mean_sd_mcse(sub[metric])
            low, high = _quantiles(sub[metric])
            entry[metric] = {
                "mean": stats["mean"],
                "sd": stats["sd"],
                "half_width": None if stats["mcse"] is None else 1.96 * stats["mcse"],
                "q025": low,
                "q975": high,
            }
        if method in TG_METHODS:
            taken = sub.loc[sub["error"] == "", "branch"].value_counts()
            names = (*BRANCHES, *sorted(set(taken.index) - set(BRANCHES)))
            entry["branches"] = {b: int(taken.get(b, 0)) for b in names}
        methods.append(entry)
    datasets = list(dict.fromkeys(rows["dataset"]))
    methods.sort(key=lambda m: (datasets.index(m["dataset"]), METHOD_ORDER.index(m["method"]), m["generator"]))
    splits = rows.groupby("dataset", sort=False)["split"].unique()
    curves = []
    for (dataset, generator), sub in rows[rows["generator"] != "none"].groupby(["dataset", "generator"], sort=False):
        worked = sub[(sub["method"] == "curve") & (sub["error"] == "")]
        table = worked.pivot(index="split", columns="gamma", values="balanced_log_loss").reindex(
            index=splits[dataset], columns=list(gammas)
        )
        stats = [mean_sd_mcse(table[g]) for g in gammas]
        bands = [_quantiles(table[g]) for g in gammas]
        curves.append(
            {
                "dataset": dataset,
                "generator": generator,
                "gammas": [float(g) for g in gammas],
                "mean": [st["mean"] for st in stats],
                "half_width": [None if st["mcse"] is None else 1.96 * st["mcse"] for st in stats],
                "q025": [b[0] for b in bands],
                "q975": [b[1] for b in bands],
            }
        )
    failures = [
        {"dataset": r.dataset, "generator": r.generator, "method": r.method, "split": int(r.split), "error": r.error}
        for r in rows[rows["error"] != ""].itertuples()
    ]
    info = rows.groupby("dataset", sort=False).agg(
        n_train0=("n_train0", "first"),
        n_train1=("n_train1", "first"),
        n_test_per_class=("n_test_per_class", "first"),
        n_features=("n_features", "first"),
        n_splits=("split", "nunique"),
    )
    return {
        "methods": methods,
        "curves": curves,
        "failures": failures,
        "datasets": {k: {c: int(v) for c, v in row.items()} for k, row in info.iterrows()},
    }


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (one line, no column bar)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _failure_lines(failures: list[dict], n_splits: int) -> list[str]:
    """One table row per (generator, method, error) of one dataset's failures, with how many
    splits it failed on."""
    grouped: dict[tuple, int] = {}
    for f in failures:
        key = (f["generator"], f["method"], f["error"])
        grouped[key] = grouped.get(key, 0) + 1
    lines = [
        "Failed fits (each split is listed in summary.json's failures):",
        "",
        "| generator | method | failed splits | error |",
        "|---|---|---|---|",
    ]
    for (generator, method, error), count in grouped.items():
        lines.append(f"| {generator} | {method} | {count} of {n_splits} | {_cell(error)} |")
    return lines + [""]


def _stat(entry: dict, bands: str) -> str:
    """One metric's cell: mean +- 1.96 SE, or mean [2.5%, 97.5% quantile]."""
    mean = entry["mean"]
    if mean is None:
        return ""
    if bands == "quantile":
        low, high = entry.get("q025"), entry.get("q975")
        return f"{mean:.3f}" + ("" if low is None else f" [{low:.3f}, {high:.3f}]")
    hw = entry["half_width"]
    return f"{mean:.3f}" + ("" if hw is None else f" ± {hw:.3f}")


def _metric_table(entries: list[dict], columns, bands: str, counts: bool) -> list[str]:
    """A table of one dataset's methods: gamma and ``columns``, with the errors and separated
    fits when ``counts``."""
    extra = ["errors", "separated"] if counts else []
    lines = [
        "| method | generator | gamma | " + " | ".join([*columns, *extra]) + " |",
        "|---|---|---|" + "---|" * (len(columns) + len(extra)),
    ]
    for m in entries:
        cells = [_stat(m[c], bands) for c in ("gamma", *columns)]
        if counts:
            cells += [str(m["n_errors"]), str(m["n_separated"])]
        lines.append(f"| {m['method']} | {m['generator']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _branch_lines(entries: list[dict]) -> list[str]:
    """TG-VTSS's branches over the splits, per generator and variant."""
    tg = [m for m in entries if "branches" in m]
    if not tg:
        return []
    names = list(dict.fromkeys(b for m in tg for b in m["branches"]))
    lines = [
        "TG-VTSS's branch over the splits (splits that took it; failed fits in the last column):",
        "",
        "| generator | method | " + " | ".join(names) + " | failed |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for m in sorted(tg, key=lambda m: (m["generator"], METHOD_ORDER.index(m["method"]))):
        counts = [str(m["branches"].get(b, 0)) for b in names]
        lines.append(f"| {m['generator']} | {m['method']} | " + " | ".join(counts) + f" | {m['n_errors']} |")
    return lines + [""]


def markdown_table(numbers: dict) -> str:
    """Study 7's results as markdown, per dataset: the metrics of ``TABLE_COLUMNS`` with the
    number of failed method fits (errors) and of separated final fits, the other metrics of
    ``METRICS``, TG-VTSS's branches, then the failed fits and their errors. Each number is the
    mean over splits with its band (``data.bands``: +- 1.96 SE, or the 2.5% / 97.5% quantiles)."""
    bands = (numbers.get("data") or {}).get("bands", "se")
    if bands == "quantile":
        head = "Mean [2.5%, 97.5% empirical quantiles] over the repeated splits."
    else:
        head = "Mean ± 1.96 SE over the repeated splits (the SE ignores the splits' overlap)."
    lines = [head, ""]
    for dataset, info in numbers["datasets"].items():
        entries = [m for m in numbers["methods"] if m["dataset"] == dataset]
        lines += [
            f"### {dataset}",
            "",
            f"train n0 = {info['n_train0']}, n1 = {info['n_train1']}; balanced test set "
            f"{info['n_test_per_class']} per class; {info['n_features']} features after preprocessing",
            "",
            *_metric_table(entries, TABLE_COLUMNS, bands, counts=True),
        ]
        more = [c for c in METRICS if c not in TABLE_COLUMNS and all(c in m for m in entries)]
        if more:
            lines += [
                "Precision, recall and Jaccard index of the positive class, Youden's index and the "
                "balanced excess risk over a nearly unpenalised fit on the test set itself:",
                "",
                *_metric_table(entries, more, bands, counts=False),
            ]
        lines += _branch_lines(entries)
        failures = [f for f in numbers["failures"] if f["dataset"] == dataset]
        if failures:
            lines += _failure_lines(failures, info["n_splits"])
    return "\n".join(lines)


class RealDataCell(NamedTuple):
    """A study-7 job's run and its loaded datasets (``RealDataStudy.build``)."""

    run: RunConfig
    datasets: list[RealDataset]


UNBUILT_GENERATORS = ("oracle", "semi_oracle", "mismatch", "shifted")
"""Generators that need a process or a population to be built: the unused ``generator``
section of a real-data job is not checked for these."""


def _check_unused_sections(run: RunConfig) -> None:
    """Real data come from ``data`` and their generators from ``data.generators``; the ``dgp``
    and ``generator`` sections are never built, so an option they do not take (``+dgp.bogus=1``,
    a typo) would otherwise pass without a word. Checked here by name, by building nothing but
    a generator that needs no process."""
    name = run.dgp.get("name")
    if name in PROCESSES:
        with bad_value("dgp", run.dgp):
            process_constructor(name, **{k: v for k, v in run.dgp.items() if k != "name"})
    name = run.generator.get("name")
    if name in GENERATORS and name not in UNBUILT_GENERATORS:
        with bad_value("generator", run.generator):
            make_generator(name, None, **{k: v for k, v in run.generator.items() if k != "name"})


class RealDataStudy:
    """Study 7 (module docstring); implements ``Study``."""

    kind = "real_data"
    figures = ("real_data",)
    unit = "split"
    row_tables = ("parquet", "csv")

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        sel = selection_config(sections.get("selection"))
        check_grid_ends(run)
        if not get_family(run.model.family).binary:
            raise ConfigError("model.family", run.model.family, "real data needs a binary family (0/1 labels)")
        if sel.feature_map is not None:
            raise ConfigError("selection.feature_map", asdict(sel.feature_map), "must be null for the real_data study")
        _check_unused_sections(run)
        return replace(run, selection=sel, data=data_config(sections.get("data"), sel))

    def build(self, run: RunConfig) -> RealDataCell:
        return RealDataCell(run, load_real_datasets(run.data))

    def label(self, built: RealDataCell) -> tuple[str, str]:
        return built.run.study, "splits"

    def run(self, built: RealDataCell, progress) -> pd.DataFrame:
        run = built.run
        total, done, start = len(built.datasets) * run.design.reps, 0, time.perf_counter()
        frames = []
        for ds in built.datasets:
            for s in range(run.design.reps):
                frames.append(real_data_split(ds, run, s))
                done += 1
                progress(done, total, time.perf_counter() - start)
        return pd.concat(frames, ignore_index=True)

    def summarise(self, built: RealDataCell, rows: pd.DataFrame) -> dict:
        run = built.run
        numbers = summarise_real_data(rows, run.design.gammas)
        if numbers["failures"]:
            print(
                f"simstudy: {len(numbers['failures'])} method fits failed and were recorded with their errors "
                "(the rest is kept): see 'failures' in the job's summary.json and table.md",
                file=sys.stderr,
            )
        return {
            "selection": as_plain(run.selection),
            "data": as_plain(run.data),
            "model": model_label(run),
            "splits": run.design.reps,
            "gammas": list(run.design.gammas),
            **numbers,
        }

    def documents(self, summary: dict) -> dict[str, str]:
        return {"table.md": markdown_table(summary)}

    def draw(self, summary: dict) -> dict:
        return {
            "figure": plotting.real_data_curves_figure(summary),
            "methods": plotting.real_data_methods_figure(summary),
        }

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        return pd.concat([real_data_split(ds, run, r) for ds in load_real_datasets(run.data)], ignore_index=True)


STUDY = RealDataStudy()
