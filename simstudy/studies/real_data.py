"""``study.kind: real_data``: study 7 of THEORY.md section 6, the section 5 protocol on tables.

For each dataset and each generator, R = ``design.reps`` repeated stratified 80/20 splits; the
test part is balanced by downsampling its majority to its minority count; missing values are
imputed by the training medians and the columns standardised by the training means and SDs
(``simstudy.preprocessing``; columns constant or empty in the training part are dropped);
logistic regression with intercept. Methods: raw (gamma = 0), fully balanced (gamma = 1, off
the curve), VTSS, TG-VTSS, reweighting and cost-sensitive weights; metrics on the balanced test
set: balanced log-loss, accuracy, balanced accuracy, F1, MCC, AUROC and AUPRC
(``simstudy.metrics``), summarised as mean +- 1.96 SE over splits. The splits overlap, so that
SE understates the variability of a new-sample estimate (Nadeau and Bengio 2003); it measures
only the Monte Carlo error over splits. A method that raises on a split is recorded with its
error and NaN metrics, never dropped (section 7), and listed in summary.json's ``failures`` and
in table.md; the other methods and generators are kept.

Streams of split s, with K = stable_key of the dataset's identity (a bundled dataset: its name
and ``data.test_size``; a user's file: the SHA-256 of its bytes, ``data.target``,
``data.positive`` and ``data.test_size``, so that the same file gives the same draws wherever
it lies and an edited file new ones): the two children of SeedSequence(seed, spawn_key=(K, s))
draw the split and the test downsampling; generator G fits and draws from
``replication_streams(seed, K, stable_key(G), s)``; the selectors share SeedSequence(seed,
spawn_key=(K, s, 2)) across generators (common random numbers). The curve's grid is
``design.gammas``; ``design.n0`` / ``design.n1`` are unused.

Validation loads every table the study reads: a bad file, target or positive label, a class
too small for the splits, or a generator option that cannot work at the table's sizes is a
``ConfigError`` before any job starts. A user's file enters the job's identity through the
SHA-256 of its bytes (``data.sha256``, filled in by validation), so an edited file is a new job.
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
from simstudy.generators import ImblearnGenerator, make_generator
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.jobfiles import file_digest
from simstudy.metrics import METRICS, classification_metrics
from simstudy.preprocessing import Preprocessor, preprocess
from simstudy.schema import ConfigError, DataConfig, RunConfig, as_plain, known_keys, number, selection_config
from simstudy.selection import stratified_splits
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
    "positive": None,  # its minority label (None: the rarer value)
    "sha256": None,  # the SHA-256 of data.path's bytes: filled in; given, it pins the file
}
DATA_CATALOG = ("smote", "jitter", "gaussian_fit", "feature_jitter")
"""simstudy catalog generators that need no process (study 7 has none)."""
METHOD_ORDER = ("raw", "balanced", "vtss", *TG_METHODS, "reweighting", "cost_sensitive")


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
    generators = data["generators"]
    if not isinstance(generators, list) or not generators:
        raise ConfigError("data.generators", generators, "must be a non-empty list")
    data["generators"] = [_generator_entry(g) for g in generators]
    labels = [generator_label(g) for g in data["generators"]]
    if len(set(labels)) != len(labels):
        raise ConfigError("data.generators", generators, "must not repeat a generator")
    if data["path"] is not None:
        data["sha256"], table = _user_table(data)
        if data["datasets"] is not None:
            raise ConfigError("data.datasets", data["datasets"], "must be null when data.path is given")
        _check_table(table, data["path"], "data.path", data, sel)
        return _typed(data)
    for key in ("target", "positive"):
        if data[key] is not None:
            raise ConfigError(f"data.{key}", data[key], "data.target and data.positive need data.path")
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
    datasets = data["datasets"]
    return DataConfig(
        **{**data, "datasets": None if datasets is None else tuple(datasets), "generators": tuple(data["generators"])}
    )


def _user_table(data: dict):
    """(SHA-256 of the file's bytes, its Dataset) for ``data.path``, ``data.target`` and
    ``data.positive``; an unusable file or label names its key."""
    path, positive = data["path"], data["positive"]
    if not isinstance(path, str) or not Path(path).is_file():
        raise ConfigError("data.path", path, "must be an existing CSV or parquet file")
    if not isinstance(data["target"], str):
        raise ConfigError("data.target", data["target"], "must name the label column of data.path")
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
    try:
        return digest, load_table(path, data["target"], positive)
    except TableError as err:
        raise ConfigError(f"data.{err.argument}", data[err.argument], str(err)) from None


def _check_table(table, name: str, key: str, data: dict, sel) -> None:
    """Refuse a table study 7 cannot run on: no usable feature column, classes too small for
    the splits (``_fewest_fit_minority``), or a generator that cannot be fitted at its sizes.

    Each generator is fitted once on placeholder rows with the fewest minority rows any of its
    fits will see, so that the generator's own size rule (e.g. k_neighbors < minority rows)
    decides."""
    try:
        preprocess(table.X)
    except ValueError as err:
        raise ConfigError(key, name, f"{err}: nothing to fit on") from None
    fewest = _fewest_fit_minority(table.n0, table.n1, name, key, data, sel)
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


def _fewest_fit_minority(n0: int, n1: int, name: str, key: str, data: dict, sel) -> int:
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
        culprit, value = (key, name) if n1 < 3 else ("data.test_size", data["test_size"])
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


class RealDataset(NamedTuple):
    name: str
    X: np.ndarray
    y: np.ndarray
    key: tuple[int, ...]


def load_real_datasets(data: DataConfig) -> list[RealDataset]:
    """The datasets of a validated ``data`` section, each with its stream key (module
    docstring). A user's file must still have the bytes validation hashed into the job's
    identity; each of its columns that looks like a row identifier gets a warning line on
    stderr (it is a feature all the same)."""
    if data.path is not None:
        if file_digest(data.path) != data.sha256:
            raise ValueError(f"data.path {data.path!r} changed after the job's config was validated; run the job again")
        ds = load_table(data.path, data.target, data.positive)
        for column in ds.identifiers:
            print(
                f"simstudy: warning: column {column!r} of {data.path} has a distinct value in every "
                "row (an identifier?) and is used as a feature; drop it from the file if it names rows",
                file=sys.stderr,
            )
        identity = {
            "sha256": data.sha256,
            "target": data.target,
            "positive": data.positive,
            "test_size": data.test_size,
        }
        return [RealDataset(ds.name, ds.X, ds.y, stable_key(identity))]
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


def outer_split(ds: RealDataset, seed: int, s: int, test_size: float) -> SplitData:
    """Split s of a dataset: stratified 80/20, balanced test part, preprocessing fitted on the
    training rows (module docstring)."""
    split_ss, test_ss = np.random.SeedSequence(seed, spawn_key=(*ds.key, s)).spawn(2)
    split = stratified_splits(ds.y, "holdout", test_size, split_ss)[0]
    test = balanced_test_indices(split.validation, ds.y, np.random.default_rng(test_ss))
    prep = preprocess(ds.X[split.train])
    return SplitData(
        prep.transform(ds.X[split.train]),
        ds.y[split.train],
        prep.transform(ds.X[test]),
        ds.y[test],
        split.train,
        test,
        prep,
    )


def _eta(est, X) -> np.ndarray:
    return est.model_.features(X) @ est.theta_


def real_data_split(ds: RealDataset, run: RunConfig, s: int) -> pd.DataFrame:
    """Every method and generator on split s of one dataset: the tidy rows."""
    data, sel = run.data, run.selection
    sd = outer_split(ds, run.seed, s, data.test_size)
    design = Design(int((sd.y_train == 0).sum()), int(sd.y_train.sum()), run.design.gammas, run.design.reps, run.seed)
    model = GLM(run.model.family, run.model.intercept, run.model.ridge)
    model_args = dict(family=run.model.family, intercept=run.model.intercept, ridge=run.model.ridge)
    root = selector_seed(run.seed, ds.key, s)
    X0, X1 = sd.X_train[sd.y_train == 0], sd.X_train[sd.y_train == 1]
    Z_test = model.features(sd.X_test)
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
        rows.append({**base, "generator": generator, **facts, **classification_metrics(model.family, eta, sd.y_test)})

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
    weighted = weight_selectors(model_args, sel, root, design.n0, design.n1)
    for method, est in weighted.items():
        try:
            est.fit(sd.X_train, sd.y_train)
            scored("none", selector_facts(method, est), _eta(est, sd.X_test))
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
        for method, est in size_selectors(generator, model_args, sel, root).items():
            try:
                est.fit(sd.X_train, sd.y_train)
                scored(label, selector_facts(method, est), _eta(est, sd.X_test))
            except Exception as err:  # as above
                failed(label, method, err)
    return pd.DataFrame(rows)


def summarise_real_data(rows: pd.DataFrame, gammas) -> dict:
    """Study 7's numbers from its tidy rows.

    * ``methods``: per (dataset, generator, method) mean and 1.96 SE of every metric and of the
      chosen gamma, over the splits where the method worked, and its number of errors (ordered
      by dataset, then ``METHOD_ORDER``, then generator);
    * ``curves``: per (dataset, generator) the balanced log-loss against gamma; a split where the
      generator failed counts as failed at every gamma, so a generator that failed on every
      split has a curve of nulls;
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
            entry[metric] = {
                "mean": stats["mean"],
                "sd": stats["sd"],
                "half_width": None if stats["mcse"] is None else 1.96 * stats["mcse"],
            }
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
        curves.append(
            {
                "dataset": dataset,
                "generator": generator,
                "gammas": [float(g) for g in gammas],
                "mean": [st["mean"] for st in stats],
                "half_width": [None if st["mcse"] is None else 1.96 * st["mcse"] for st in stats],
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


def markdown_table(numbers: dict) -> str:
    """Study 7's results as markdown: one table per dataset, mean +- 1.96 SE over splits, with
    the number of failed method fits (errors) and of separated final fits, then the failed fits
    and their errors."""
    lines = ["Mean ± 1.96 SE over the repeated splits (the SE ignores the splits' overlap).", ""]
    columns = ("balanced_log_loss", "accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc")
    for dataset, info in numbers["datasets"].items():
        lines += [
            f"### {dataset}",
            "",
            f"train n0 = {info['n_train0']}, n1 = {info['n_train1']}; balanced test set "
            f"{info['n_test_per_class']} per class; {info['n_features']} features after preprocessing",
            "",
            "| method | generator | gamma | " + " | ".join(columns) + " | errors | separated |",
            "|---|---|---|" + "---|" * len(columns) + "---|---|",
        ]
        entries = [m for m in numbers["methods"] if m["dataset"] == dataset]
        for m in entries:
            cells = []
            for c in ("gamma",) + columns:
                mean, hw = m[c]["mean"], m[c]["half_width"]
                cells.append("" if mean is None else f"{mean:.3f}" + ("" if hw is None else f" ± {hw:.3f}"))
            lines.append(
                f"| {m['method']} | {m['generator']} | "
                + " | ".join(cells)
                + f" | {m['n_errors']} | {m['n_separated']} |"
            )
        lines.append("")
        failures = [f for f in numbers["failures"] if f["dataset"] == dataset]
        if failures:
            lines += _failure_lines(failures, info["n_splits"])
    return "\n".join(lines)


class RealDataCell(NamedTuple):
    """A study-7 job's run and its loaded datasets (``RealDataStudy.build``)."""

    run: RunConfig
    datasets: list[RealDataset]


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
