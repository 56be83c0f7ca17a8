"""The selection studies of THEORY.md section 6: study 6 (VTSS end to end) and study 7 (real data).

Both studies compare the ways section 5 offers to choose the synthetic size, on one loss: the
**balanced log-loss** (the family's loss, for the logistic family the log-loss)

    L_bal(theta) = (1/2) E_{P0} l(theta; X, 0) + (1/2) E_{P1} l(theta; X, 1)

(R_bal of section 1), estimated as exactly as the design allows.

Study 6 (``figure: vtss``), one simulated cell, R Monte Carlo replications. Replication r draws
the real data (n0 majority, n1 minority rows) from ``engine.replication_streams(seed, data_key,
generator_key, r)`` (keys from ``engine.stable_key`` of the cell's config, so every number
regenerates from config + r) and computes

* the **curve**: one generator fit and ONE pool of max n~ synthetic rows; the fit for each gamma
  of ``design.gammas`` uses real rows plus the first n~ = round(gamma (n0 - n1)) pool rows
  (``engine.prefix_weights``, one batched ``fit_glm`` call);
* **VTSS** and **TG-VTSS** (``simstudy.selection``) fitted on the replication's real rows, their
  gamma_hat and test loss;
* the baselines of section 5: no augmentation (gamma = 0) and full balancing (gamma = 1) read
  off the curve, inverse-frequency **reweighting**, **cost-sensitive** weights tuned on the same
  validation splits as VTSS, and, after all replications, the **oracle-best** size
  gamma_oracle = argmin_gamma of the mean curve (with a bootstrap CI over replications;
  its mean loss is optimistic, being chosen on the replications it is reported on).

Every selector of replication r gets the same ``random_state``, the SeedSequence with spawn key
(data_key, r, 2): they validate on the same splits (common random numbers), and the key does not
collide with the data stream (data_key, r) or the generator streams (data_key, r, generator_key,
0 or 1).

The test loss is **exact** where the design allows it (``scoring: exact``, the default for a
linear model on Gaussian-mixture classes): L_bal(theta) = ``Population.risk_bal(theta)`` by
quadrature. Otherwise (a feature map, or a class law known only through a sample, as the noisy
ring) it is the balanced loss on ONE fixed balanced test set of ``test_per_class`` rows per
class, drawn from the stream with spawn key stable_key({"test_set": dgp, "per_class": m}) and
shared by all replications, so differences between methods carry no test-set noise beyond that
common draw.

Study 6(b) fits logistic regression on D random Fourier features (``RandomFourierFeatures``)
while the generator works in the raw space (``selection.FeatureGLM``). The map is fixed for the
cell: its lengthscale ell is the median pairwise distance of a pilot sample of
``pilot_per_class`` rows per class (the median heuristic), unless a number is given; pilot,
W and b come from the stream keyed stable_key({"features": options, "dgp": dgp}).

Study 7 (``figure: real_data``), for each dataset and each generator, R = ``design.reps``
repeated stratified 80/20 splits; the test part is balanced by downsampling its majority to
its minority count; missing values are imputed by the training medians and
the columns standardised by the training means and SDs (``preprocess``; columns constant or
empty in the training part are dropped); logistic regression with intercept. Methods: raw
(gamma = 0), fully balanced (gamma = 1, off the curve), VTSS, TG-VTSS, reweighting and
cost-sensitive weights; metrics on the balanced test set: balanced log-loss, accuracy, balanced
accuracy, F1, MCC, AUROC and AUPRC (``classification_metrics``), summarised as mean +- 1.96 SE
over splits. The splits overlap, so that SE understates the variability of a new-sample
estimate (Nadeau and Bengio 2003); it measures only the Monte Carlo error over splits. A
method that raises on a split is recorded with its error and NaN metrics, never dropped
(section 7), and listed in summary.json's ``failures`` and in table.md; the other methods and
generators are kept. Streams of split s, with K = stable_key of the dataset's identity (a
bundled dataset: its name and ``data.test_size``; a user's file: the SHA-256 of its bytes,
``data.target``, ``data.positive`` and ``data.test_size``, so that the same file gives the
same draws wherever it lies and an edited file new ones): the two children of
SeedSequence(seed, spawn_key=(K, s)) draw the split and the test downsampling; generator G fits
and draws from ``replication_streams(seed, K, stable_key(G), s)``; the selectors share
SeedSequence(seed, spawn_key=(K, s, 2)) across generators (common random numbers). The curve's
grid is ``design.gammas``; ``design.n0`` / ``design.n1`` are unused.

Validation loads every table study 7 reads: a bad file, target or positive label, a class too
small for the splits, or a generator option that cannot work at the table's sizes is a
``ConfigError`` before any job starts. A user's file enters the job's identity through the
SHA-256 of its bytes (``data.sha256``, filled in by validation), so an edited file is a new job.

Entry points for the app: ``validate_section(section, run)`` and ``run_selection_job(run,
section, out_dir, resolved_yaml)``; ``section`` holds the top-level keys ``selection`` (both
studies) and ``data`` (study 7), defaults in ``SELECTION_DEFAULTS`` and ``DATA_DEFAULTS``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from scipy.spatial.distance import pdist
from scipy.special import expit, ndtr
from sklearn import metrics as skm

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import plotting
from simstudy.cell import BuiltCell
from simstudy.datasets import DATASETS, TableError, load_dataset, load_table
from simstudy.engine import (
    Cell,
    Design,
    auxiliary_seed,
    draw_replication,
    empirical_optimum,
    prefix_weights,
    progress_printer,
    replication_streams,
    stable_key,
    summarise_curve,
)
from simstudy.families import get_family
from simstudy.fitting import GLM, fit_glm
from simstudy.generators import ImblearnGenerator, make_generator
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.jobfiles import (
    atomic_write_text,
    copy_figures,
    file_digest,
    finish_job,
    json_number,
    json_numbers,
    versions,
    write_parquet,
    write_table,
)
from simstudy.laws import EmpiricalLaw
from simstudy.schema import ConfigError, RunConfig, config_hash
from simstudy.selection import (
    DEFAULT_GAMMAS,
    CostSensitiveClassifier,
    FeatureGLM,
    ReweightedClassifier,
    TGVTSSClassifier,
    VTSSClassifier,
    balanced_loss,
    stratified_splits,
)

SELECTION_DEFAULTS = {
    "gammas": None,  # VTSS / TG-VTSS candidates; None: 0, 0.05, ..., 2
    "cv": "holdout",  # "holdout", K, or ["repeated", K, n_repeats]
    "test_size": 0.2,  # the holdout's validation fraction
    "alpha": 0.05,  # TG-VTSS: level of the local-symmetry Wald test
    "gqs_threshold": 10.0,  # TG-VTSS: GQS above it means a biased generator
    "features": None,  # None or {"name": "rff", "n_features", "lengthscale", "pilot_per_class"}
    "scoring": "auto",  # "auto", "exact" or "test_set" (study 6)
    "test_per_class": 20000,  # rows per class of the fixed test set (study 6, test_set scoring)
}
FEATURE_DEFAULTS = {"name": "rff", "n_features": 100, "lengthscale": "median", "pilot_per_class": 1000}
DATA_DEFAULTS = {
    "datasets": None,  # None: every bundled dataset (simstudy.datasets.DATASETS)
    "generators": ["SMOTE", "BorderlineSMOTE", "ADASYN", "jitter"],
    "test_size": 0.2,  # the outer split's test fraction
    "path": None,  # a user's CSV/parquet file instead of the bundled datasets
    "target": None,  # its label column
    "positive": None,  # its minority label (None: the rarer value)
    "sha256": None,  # the SHA-256 of data.path's bytes: filled in; given, it pins the file
}
# simstudy catalog generators that need no process (study 7 has none)
DATA_CATALOG = ("smote", "jitter", "gaussian_fit", "feature_jitter")
METRICS = ("balanced_log_loss", "accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc")


# --------------------------------------------------------------------------------------------
# random Fourier features


class RandomFourierFeatures:
    """phi(x) = sqrt(2 / D) cos(W x + b), W (D, d), b (D,).

    With the rows of W drawn from N(0, I / ell^2) and b from Unif[0, 2 pi) (``draw``),
    E phi(x)' phi(x') = exp(-||x - x'||^2 / (2 ell^2)), the Gaussian kernel of lengthscale ell
    (Rahimi and Recht 2007): logistic regression on phi approximates a kernel logistic
    regression (THEORY.md section 6, study 6(b)). The parameters are fixed at construction.
    """

    def __init__(self, W, b):
        W = np.array(W, dtype=np.float64)
        b = np.array(b, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
            raise ValueError(f"W must be a non-empty 2-D array (D, d), got shape {W.shape}")
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape (D,) = ({W.shape[0]},) to match W, got {b.shape}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise ValueError("W and b must be finite")
        W.flags.writeable = False
        b.flags.writeable = False
        self.W, self.b = W, b

    @classmethod
    def draw(cls, d: int, n_features: int, lengthscale: float, rng: np.random.Generator):
        """W with i.i.d. N(0, 1 / lengthscale^2) entries and b ~ Unif[0, 2 pi), from rng."""
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be an integer >= 1, got {d!r}")
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
        if not (isinstance(lengthscale, (int, float)) and math.isfinite(lengthscale) and lengthscale > 0):
            raise ValueError(f"lengthscale must be a finite number > 0, got {lengthscale!r}")
        W = rng.standard_normal((int(n_features), int(d))) / lengthscale
        b = rng.uniform(0.0, 2.0 * math.pi, size=int(n_features))
        return cls(W, b)

    @property
    def n_features(self) -> int:
        return self.W.shape[0]

    @property
    def dim(self) -> int:
        return self.W.shape[1]

    def __call__(self, X) -> np.ndarray:
        """phi of rows X (..., n, d), shape (..., n, D)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim < 1 or X.shape[-1] != self.dim:
            raise ValueError(f"X must have {self.dim} columns (the map's input dimension), got shape {X.shape}")
        out = X @ self.W.T
        out += self.b
        np.cos(out, out=out)
        out *= math.sqrt(2.0 / self.n_features)
        return out

    def __repr__(self) -> str:
        return f"RandomFourierFeatures(D={self.n_features}, d={self.dim})"


def median_lengthscale(X) -> float:
    """The median heuristic: the median Euclidean distance over all pairs of rows of X."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be a 2-D array with at least 2 rows, got shape {X.shape}")
    ell = float(np.median(pdist(X)))
    if not ell > 0:
        raise ValueError("the rows of X coincide: the median pairwise distance is 0")
    return ell


# --------------------------------------------------------------------------------------------
# configuration


def _plain(node):
    """Hydra / OmegaConf containers as plain dicts and lists."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _number(value, key, low=-math.inf, high=math.inf, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ConfigError(key, value, "must be a finite number")
    bad = (value <= low if low_open else value < low) or (value >= high if high_open else value > high)
    if bad:
        lo = f"{'>' if low_open else '>='} {low:g}" if math.isfinite(low) else ""
        hi = f"{'<' if high_open else '<='} {high:g}" if math.isfinite(high) else ""
        raise ConfigError(key, value, "must be a number " + " and ".join(b for b in (lo, hi) if b))
    return float(value)


def _integer(value, key, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(key, value, f"must be an integer >= {low}")
    return int(value)


def _known(section: dict, defaults: dict, name: str) -> dict:
    if section is None:
        return dict(defaults)
    if not isinstance(section, dict):
        raise ConfigError(name, section, "must be a mapping")
    for key in section:
        if key not in defaults:
            raise ConfigError(f"{name}.{key}", section[key], f"unknown key; {name} has {sorted(defaults)}")
    return {**defaults, **section}


def _gamma_grid(value, key):
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(key, value, "must be a non-empty list of numbers >= 0 (or null for the default)")
    grid = [_number(g, key, low=0.0) for g in value]
    if grid != sorted(set(grid)):
        raise ConfigError(key, value, "must be increasing without repeats")
    return grid


def _cv(value):
    if value == "holdout":
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != 3 or value[0] != "repeated":
            raise ConfigError("selection.cv", value, "a list must be [repeated, K, n_repeats]")
        return ["repeated", _integer(value[1], "selection.cv", 2), _integer(value[2], "selection.cv", 1)]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ConfigError("selection.cv", value, "must be 'holdout', an integer K >= 2 or [repeated, K, n_repeats]")
    return int(value)


def _cv_arg(cv):
    """The selectors' form of a validated ``selection.cv``."""
    return tuple(cv) if isinstance(cv, list) else cv


def _folds(cv) -> int:
    return 1 if cv == "holdout" else (cv[1] if isinstance(cv, list) else cv)


def _features(value):
    if value is None:
        return None
    spec = _known(value, FEATURE_DEFAULTS, "selection.features")
    if spec["name"] != "rff":
        raise ConfigError("selection.features.name", spec["name"], "must be 'rff' (random Fourier features)")
    spec["n_features"] = _integer(spec["n_features"], "selection.features.n_features", 1)
    if spec["lengthscale"] != "median":
        spec["lengthscale"] = _number(spec["lengthscale"], "selection.features.lengthscale", low=0.0, low_open=True)
    spec["pilot_per_class"] = _integer(spec["pilot_per_class"], "selection.features.pilot_per_class", 2)
    return spec


def _generator_entry(entry) -> dict:
    spec = {"name": entry} if isinstance(entry, str) else _plain(entry)
    allowed = sorted(available_samplers()) + list(DATA_CATALOG)
    if not isinstance(spec, dict) or spec.get("name") not in allowed:
        raise ConfigError(
            "data.generators", entry, f"each entry must be a name (or {{name: ..., options}}) from {allowed}"
        )
    try:
        _data_generator(spec)
    except ValueError as err:
        raise ConfigError("data.generators", entry, str(err)) from None
    return spec


def validate_section(section: dict, run: RunConfig) -> dict:
    """Check the ``selection`` (and, for study 7, ``data``) settings against the run; return them
    with defaults filled in. Bad values raise ``ConfigError(key, value, allowed)``."""
    section = _plain(section) or {}
    if not isinstance(section, dict):
        raise ConfigError("selection", section, "must be a mapping")
    if run.figure not in ("vtss", "real_data"):
        raise ConfigError("study.figure", run.figure, "must be 'vtss' or 'real_data' for a selection study")
    if "data" in section and run.figure != "real_data":
        raise ConfigError("data", section["data"], "only the real_data study (study.figure=real_data) reads data")
    for key in section:
        if key not in ("selection", "data"):
            raise ConfigError(key, section[key], "unknown key; a selection study has 'selection' and 'data'")
    sel = _known(section.get("selection"), SELECTION_DEFAULTS, "selection")
    if sel["gammas"] is not None:
        sel["gammas"] = _gamma_grid(sel["gammas"], "selection.gammas")
    sel["cv"] = _cv(sel["cv"])
    sel["test_size"] = _number(sel["test_size"], "selection.test_size", 0.0, 1.0, low_open=True, high_open=True)
    sel["alpha"] = _number(sel["alpha"], "selection.alpha", 0.0, 1.0)
    sel["gqs_threshold"] = _number(sel["gqs_threshold"], "selection.gqs_threshold", low=0.0)
    sel["features"] = _features(sel["features"])
    if sel["scoring"] not in ("auto", "exact", "test_set"):
        raise ConfigError("selection.scoring", sel["scoring"], "must be 'auto', 'exact' or 'test_set'")
    sel["test_per_class"] = _integer(sel["test_per_class"], "selection.test_per_class", 2)
    gammas = run.design.gammas
    if 0.0 not in gammas or 1.0 not in gammas:
        raise ConfigError(
            "design.gammas",
            list(gammas),
            "must contain 0 and 1 (no augmentation and full balancing are read off the curve)",
        )
    out = {"selection": sel}
    if run.figure == "vtss":
        if sel["scoring"] == "exact" and sel["features"] is not None:
            raise ConfigError(
                "selection.scoring",
                "exact",
                "the exact risk needs the raw linear model; use test_set with selection.features",
            )
        if _folds(sel["cv"]) > run.design.n1:
            raise ConfigError("selection.cv", sel["cv"], f"needs K <= design.n1 = {run.design.n1}")
        return out
    if run.model.family not in ("logistic", "probit"):
        raise ConfigError("model.family", run.model.family, "real data needs a binary family: logistic or probit")
    if sel["features"] is not None:
        raise ConfigError("selection.features", sel["features"], "must be null for the real_data study")
    out["data"] = _validate_data(section.get("data"), sel)
    return out


def _validate_data(section, sel: dict) -> dict:
    """Study 7's ``data`` section with defaults filled in, checked down to the tables it names:
    each is loaded and checked against the splits and generators (``_check_table``)."""
    data = _known(section, DATA_DEFAULTS, "data")
    data["test_size"] = _number(data["test_size"], "data.test_size", 0.0, 1.0, low_open=True, high_open=True)
    generators = data["generators"]
    if not isinstance(generators, list) or not generators:
        raise ConfigError("data.generators", generators, "must be a non-empty list")
    data["generators"] = [_generator_entry(g) for g in generators]
    labels = [_generator_label(g) for g in data["generators"]]
    if len(set(labels)) != len(labels):
        raise ConfigError("data.generators", generators, "must not repeat a generator")
    if data["path"] is not None:
        data["sha256"], table = _user_table(data)
        if data["datasets"] is not None:
            raise ConfigError("data.datasets", data["datasets"], "must be null when data.path is given")
        _check_table(table, data["path"], "data.path", data, sel)
        return data
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
    return data


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


def _check_table(table, name: str, key: str, data: dict, sel: dict) -> None:
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
            _data_generator(spec).fit(X1, X0, rng)
        except ValueError as err:
            raise ConfigError(
                "data.generators",
                _generator_label(spec),
                f"{err} ({name}: a split fits generators on as few as {fewest} minority rows)",
            ) from None


def _fewest_fit_minority(n0: int, n1: int, name: str, key: str, data: dict, sel: dict) -> int:
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
        inner = stratified_splits(y_train, _cv_arg(sel["cv"]), sel["test_size"], 0)
    except ValueError as err:
        raise ConfigError("selection.cv", sel["cv"], f"{err} (the training part of {name})") from None
    gqs_fold = train1 - math.ceil(train1 / min(5, train1))
    return min([gqs_fold] + [int(y_train[split.train].sum()) for split in inner])


# --------------------------------------------------------------------------------------------
# summaries shared by both studies


def _mean_sd_mcse(values) -> dict:
    """Mean, SD and Monte Carlo SE (SD / sqrt(R)) of the finite values, and how many failed."""
    values = np.asarray(values, dtype=float)
    ok = values[np.isfinite(values)]
    R = ok.size
    sd = float(ok.std(ddof=1)) if R > 1 else math.nan
    return {
        "mean": json_number(ok.mean()) if R else None,
        "sd": json_number(sd),
        "mcse": json_number(sd / math.sqrt(R)) if R > 1 else None,
        "n": int(R),
        "n_failed": int(values.size - R),
    }


def _config_hash(run: RunConfig, section: dict) -> str:
    return config_hash(replace(run, extra={**run.extra, **section}))


def _model_label(run: RunConfig, features) -> str:
    base = f"{run.model.family}{' + intercept' if run.model.intercept else ''}"
    return base if features is None else f"{base} on {features['n_features']} random Fourier features"


# --------------------------------------------------------------------------------------------
# study 6: VTSS end to end


class VTSSCell(NamedTuple):
    """Everything study 6 needs for one cell (``build_vtss_cell``)."""

    run: RunConfig
    selection: dict
    cell: Cell  # engine cell: process, generator, model (GLM or FeatureGLM), design, keys
    population: object  # Population of the raw linear model when scoring is exact, else None
    features: RandomFourierFeatures | None
    lengthscale: float | None
    test: tuple | None  # (Z_test, y_test) of the fixed balanced test set, else None
    scoring: str  # "exact" or "test_set"


def _feature_map(run: RunConfig, process, spec: dict):
    """The cell's fixed random Fourier map and its lengthscale (module docstring)."""
    rng = np.random.default_rng(
        np.random.SeedSequence(run.seed, spawn_key=stable_key({"features": spec, "dgp": run.dgp}))
    )
    ell = spec["lengthscale"]
    if ell == "median":
        P0, P1 = process.sample(spec["pilot_per_class"], spec["pilot_per_class"], rng)
        ell = median_lengthscale(np.vstack([P0, P1]))
    return RandomFourierFeatures.draw(process.dim, spec["n_features"], ell, rng), float(ell)


def build_vtss_cell(run: RunConfig, section: dict) -> VTSSCell:
    """Process, generator, model, design, keys, feature map and scorer of a study-6 cell.

    The engine cell is ``config.BuiltCell``'s (same data and generator keys as every other
    study), with its model replaced by the ``FeatureGLM`` on the cell's map when there is one.
    """
    sel = section["selection"]
    built = BuiltCell(run)
    process = built.process
    features, ell = (None, None) if sel["features"] is None else _feature_map(run, process, sel["features"])
    exact_possible = features is None and not any(isinstance(law, EmpiricalLaw) for law in (process.law0, process.law1))
    scoring = sel["scoring"] if sel["scoring"] != "auto" else ("exact" if exact_possible else "test_set")
    if scoring == "exact" and not exact_possible:
        raise ConfigError(
            "selection.scoring",
            "exact",
            f"dgp {run.dgp['name']!r} has a class law known only through a sample; use test_set",
        )
    base = built.model
    model = base if features is None else FeatureGLM(base.family, base.intercept, base.ridge, feature_map=features)
    test = None
    if scoring == "test_set":
        m = sel["test_per_class"]
        rng = np.random.default_rng(
            np.random.SeedSequence(run.seed, spawn_key=stable_key({"test_set": run.dgp, "per_class": m}))
        )
        T0, T1 = process.sample(m, m, rng)
        y0, y1 = process.labels
        test = (np.asarray(model.features(np.vstack([T0, T1]))), np.r_[np.full(m, y0), np.full(m, y1)])
    population = built.population if scoring == "exact" else None
    return VTSSCell(run, sel, built.cell._replace(model=model), population, features, ell, test, scoring)


def _test_losses(vc: VTSSCell, thetas) -> np.ndarray:
    """L_bal at thetas (..., p): exact (population) or on the fixed test set."""
    thetas = np.asarray(thetas, dtype=np.float64)
    if vc.scoring == "exact":
        return np.asarray(vc.population.excess(thetas)) + vc.population.risk_star
    Z, y = vc.test
    flat = thetas.reshape(-1, thetas.shape[-1])
    return balanced_loss(vc.cell.model.family, Z @ flat.T, y).reshape(thetas.shape[:-1])


def selector_seed(seed: int, data_key, r: int) -> np.random.SeedSequence:
    """The ``random_state`` of every selector in replication r (module docstring)."""
    return auxiliary_seed(seed, (*data_key, r), "selectors")


def _size_selectors(generator, model_args: dict, sel: dict, root) -> dict:
    """VTSS and TG-VTSS of one replication / split, on the shared random_state."""
    common = dict(
        generator=generator,
        gammas=sel["gammas"],
        cv=_cv_arg(sel["cv"]),
        test_size=sel["test_size"],
        random_state=root,
        **model_args,
    )
    return {
        "vtss": VTSSClassifier(**common),
        "tg_vtss": TGVTSSClassifier(alpha=sel["alpha"], gqs_threshold=sel["gqs_threshold"], **common),
    }


def _weight_selectors(model_args: dict, sel: dict, root, cost_weights) -> dict:
    """The reweighting baselines of section 5; cost-sensitive validates on the same splits."""
    return {
        "reweighting": ReweightedClassifier(**model_args),
        "cost_sensitive": CostSensitiveClassifier(
            weights=cost_weights, cv=_cv_arg(sel["cv"]), test_size=sel["test_size"], random_state=root, **model_args
        ),
    }


def _cost_weights(sel: dict, n0: int, n1: int) -> np.ndarray:
    """Minority weights w1 = 1 + gamma (n0 - n1) / n1 over the selectors' gamma grid: candidate
    gamma gives the minority the total weight that gamma (n0 - n1) synthetic rows would add."""
    grid = DEFAULT_GAMMAS if sel["gammas"] is None else np.asarray(sel["gammas"])
    return 1.0 + grid * (n0 - n1) / n1


def _facts(method: str, **values) -> dict:
    """One method's facts in a tidy row; NaN / -1 / "" where they do not apply."""
    row = {
        "method": method,
        "gamma": math.nan,
        "n_tilde": -1,
        "weight": math.nan,
        "converged": False,
        "separated": False,
        "branch": "",
        "gqs": math.nan,
        "gamma_tg": math.nan,
        "wald_p_value": math.nan,
        "n_candidates": -1,
        "error": "",
    }
    row.update(values)
    return row


def _selector_facts(name: str, est) -> dict:
    """What a fitted estimator of ``simstudy.selection`` reports about its choice and fit."""
    row = _facts(
        name,
        gamma=getattr(est, "gamma_", math.nan),
        n_tilde=getattr(est, "n_synthetic_", -1),
        weight=getattr(est, "weight_", math.nan),
        converged=bool(est.fit_info_.converged),
        separated=bool(est.fit_info_.separated),
        branch=getattr(est, "branch_", ""),
    )
    if name == "tg_vtss":
        row.update(
            gqs=math.nan if est.gqs_ is None else est.gqs_,
            gamma_tg=math.nan if est.gamma_tg_ is None else est.gamma_tg_,
            wald_p_value=float(est.wald_.p_value),
            n_candidates=len(est.candidate_gammas_),
        )
    elif name == "vtss":
        row["n_candidates"] = len(est.cv_results_["gamma"])
    return row


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def vtss_replication(vc: VTSSCell, r: int) -> pd.DataFrame:
    """Replication r of study 6: the curve rows and one row per selector (module docstring)."""
    cell, design = vc.cell, vc.cell.design
    X, y = draw_replication(cell, r)
    fit = fit_glm(X, y, prefix_weights(design), model=cell.model)
    curve_loss = _test_losses(vc, fit.theta)
    rows = [
        {**_facts("curve", gamma=g, n_tilde=int(n), converged=bool(c), separated=bool(s)), "test_loss": float(v)}
        for g, n, v, c, s in zip(design.gammas, design.n_tilde, curve_loss, fit.info.converged, fit.info.separated)
    ]
    real = design.n0 + design.n1
    X, y = X[:real], (y[:real] == cell.process.labels[1]).astype(np.int64)
    model_args = dict(
        family=cell.model.family.name, intercept=cell.model.intercept, ridge=cell.model.ridge, features=vc.features
    )
    root = selector_seed(design.seed, cell.data_key, r)
    selectors = {
        **_size_selectors(cell.generator, model_args, vc.selection, root),
        **_weight_selectors(model_args, vc.selection, root, _cost_weights(vc.selection, design.n0, design.n1)),
    }
    for name, est in selectors.items():
        try:
            est.fit(X, y)
        except (ValueError, RuntimeError) as err:
            rows.append({**_facts(name, error=_error(err)), "test_loss": math.nan})
            continue
        rows.append({**_selector_facts(name, est), "test_loss": float(_test_losses(vc, est.theta_))})
    frame = pd.DataFrame(rows)
    frame.insert(0, "replication", r)
    return frame


def run_vtss_study(vc: VTSSCell, progress=None) -> pd.DataFrame:
    """All replications of a study-6 cell: the tidy table (one row per replication and method,
    the curve one row per gamma)."""
    start, reps = time.perf_counter(), vc.cell.design.reps
    frames = []
    for r in range(reps):
        frames.append(vtss_replication(vc, r))
        if progress is not None:
            progress(r + 1, reps, time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True)


def summarise_vtss(vc: VTSSCell, rows: pd.DataFrame) -> dict:
    """The numbers of study 6's summary.json (without run metadata)."""
    design = vc.cell.design
    gammas = np.asarray(design.gammas)
    curve = rows[rows["method"] == "curve"]
    values = curve["test_loss"].to_numpy().reshape(design.reps, len(gammas))
    summary = summarise_curve(values)
    sd = values.std(axis=0, ddof=1)
    boot_rng = np.random.default_rng(
        auxiliary_seed(design.seed, (*vc.cell.data_key, *vc.cell.generator_key), "bootstrap")
    )
    optimum = empirical_optimum(values, gammas, boot_rng)
    best = int(np.argmin(values.mean(axis=0)))
    zero, one = int(np.flatnonzero(gammas == 0.0)[0]), int(np.flatnonzero(gammas == 1.0)[0])
    full = values[:, one]
    methods = {
        "no_augmentation": {"gamma": 0.0, "test_loss": _mean_sd_mcse(values[:, zero])},
        "full_balancing": {"gamma": 1.0, "test_loss": _mean_sd_mcse(full)},
        "oracle_best": {
            "gamma": float(gammas[best]),
            "gamma_ci": list(optimum.ci),
            "test_loss": _mean_sd_mcse(values[:, best]),
        },
    }
    for name in ("vtss", "tg_vtss", "reweighting", "cost_sensitive"):
        sub = rows[rows["method"] == name].sort_values("replication")
        loss = sub["test_loss"].to_numpy()
        entry = {
            "test_loss": _mean_sd_mcse(loss),
            "minus_full_balancing": _mean_sd_mcse(loss - full),
            "minus_oracle_best": _mean_sd_mcse(loss - values[:, best]),
            "n_errors": int((sub["error"] != "").sum()),
            "n_separated": int(sub["separated"].sum()),
            "n_not_converged": int((~sub["converged"] & (sub["error"] == "")).sum()),
        }
        if name in ("vtss", "tg_vtss"):
            entry["gamma"] = _mean_sd_mcse(sub["gamma"])
            entry["n_tilde"] = _mean_sd_mcse(sub["n_tilde"].where(sub["n_tilde"] >= 0))
        if name == "tg_vtss":
            entry["branches"] = {str(k): int(v) for k, v in sub["branch"].value_counts().items() if k}
        if name == "cost_sensitive":
            entry["weight"] = _mean_sd_mcse(sub["weight"])
        methods[name] = entry
    for name in ("no_augmentation", "oracle_best"):
        column = values[:, zero if name == "no_augmentation" else best]
        methods[name]["minus_full_balancing"] = _mean_sd_mcse(column - full)
    return {
        "gammas": [float(g) for g in gammas],
        "n_tilde": [int(n) for n in design.n_tilde],
        "scoring": vc.scoring,
        "test_per_class": vc.selection["test_per_class"] if vc.scoring == "test_set" else None,
        "risk_star": None if vc.population is None else float(vc.population.risk_star),
        "curve_mean": json_numbers(summary.mean),
        "curve_sd": json_numbers(sd),
        "curve_mcse": json_numbers(summary.mcse),
        "curve_quantiles": {str(q): json_numbers(v) for q, v in zip((0.1, 0.5, 0.9), summary.quantiles)},
        "oracle_best_gamma": float(gammas[best]),
        "oracle_best_gamma_ci": list(optimum.ci),
        "methods": methods,
        "n_curve_separated": int(curve["separated"].sum()),
        "n_curve_not_converged": int((~curve["converged"]).sum()),
    }


def _job_summary(run: RunConfig, section: dict, numbers: dict, start: float, **extra) -> dict:
    return {
        "status": "ok",
        "study": run.study,
        "figure": run.figure,
        "seed": run.seed,
        "config_hash": _config_hash(run, section),
        "selection": section["selection"],
        **extra,
        **numbers,
        "versions": versions(),
        "seconds": time.perf_counter() - start,
    }


def _vtss_job(run: RunConfig, section: dict, out_dir: Path, resolved_yaml: str) -> dict:
    start = time.perf_counter()
    vc = build_vtss_cell(run, section)
    d = run.design
    label = f"{run.study} {run.dgp['name']} / {run.generator['name']}"
    rows = run_vtss_study(vc, progress_printer(label))
    summary = _job_summary(
        run,
        section,
        summarise_vtss(vc, rows),
        start,
        dgp=run.dgp["name"],
        generator=run.generator["name"],
        model=_model_label(run, vc.selection["features"]),
        n0=d.n0,
        n1=d.n1,
        reps=d.reps,
        data_key=list(vc.cell.data_key),
        generator_key=list(vc.cell.generator_key),
        lengthscale=vc.lengthscale,
        features=vc.selection["features"],
    )
    atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    write_parquet(rows, out_dir / "replications.parquet")
    paths = plotting.save(plotting.vtss_figure(summary), out_dir / "figure")
    if run.figures_dir:
        copy_figures(paths, run.figures_dir, run.study)
    summary["seconds"] = time.perf_counter() - start
    return finish_job(out_dir, summary, ["config.yaml", "replications.parquet", *(p.name for p in paths)])


# --------------------------------------------------------------------------------------------
# study 7: real data


class Preprocessor(NamedTuple):
    """Median imputation and standardisation fitted on training rows (``preprocess``)."""

    keep: np.ndarray  # indices of the columns kept
    median: np.ndarray  # training medians of the kept columns
    mean: np.ndarray  # training means after imputation
    scale: np.ndarray  # training SDs after imputation (ddof = 0, as StandardScaler)

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)[:, self.keep]
        X = np.where(np.isnan(X), self.median, X)
        return (X - self.mean) / self.scale


def preprocess(X_train) -> Preprocessor:
    """Fit imputation and scaling on the training rows only.

    Column j is kept when it has an observed training value and a positive training SD after
    imputation (a constant column is collinear with the intercept and carries nothing); its
    missing entries become the training median m_j and x -> (x - mean_j) / sd_j, with mean_j
    and sd_j (divisor n) of the imputed training column.
    """
    X = np.asarray(X_train, dtype=np.float64)
    observed = ~np.all(np.isnan(X), axis=0)
    median = np.full(X.shape[1], np.nan)
    median[observed] = np.nanmedian(X[:, observed], axis=0)
    filled = np.where(np.isnan(X), median, X)
    sd = filled.std(axis=0)
    keep = np.flatnonzero(observed & (sd > 0))
    if keep.size == 0:
        raise ValueError("no training column has an observed, non-constant value")
    return Preprocessor(keep, median[keep], filled[:, keep].mean(axis=0), sd[keep])


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


def classification_metrics(family, eta, y) -> dict:
    """The metrics of study 7 from the linear predictors eta of test rows with labels y.

    p = P(y = 1 | x) from the link (sigmoid or Phi), prediction 1 where p > 1/2 (eta > 0);
    balanced_log_loss is L_bal with the family's exact loss (no clipping); the others are
    sklearn.metrics: accuracy, balanced accuracy, F1 (0 when nothing is predicted positive),
    MCC, AUROC (roc_auc_score) and AUPRC (average_precision_score).
    """
    family = get_family(family)
    eta = np.asarray(eta, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    p = expit(eta) if family.name == "logistic" else ndtr(eta)
    pred = (eta > 0).astype(np.int64)
    return {
        "balanced_log_loss": float(balanced_loss(family, eta, y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0.0)),
        "mcc": float(skm.matthews_corrcoef(y, pred)),
        "auroc": float(skm.roc_auc_score(y, p)),
        "auprc": float(skm.average_precision_score(y, p)),
    }


def _data_generator(spec: dict):
    """The simstudy Generator of a ``data.generators`` entry (imblearn name or catalog name)."""
    options = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] in DATA_CATALOG:
        return make_generator(spec["name"], **options)
    return ImblearnGenerator(spec["name"], **options)


def _generator_label(spec: dict) -> str:
    options = {k: v for k, v in spec.items() if k != "name"}
    if not options:
        return spec["name"]
    return spec["name"] + "(" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"


class RealDataset(NamedTuple):
    name: str
    X: np.ndarray
    y: np.ndarray
    key: tuple[int, ...]


def load_real_datasets(data: dict) -> list[RealDataset]:
    """The datasets of a validated ``data`` section, each with its stream key (module
    docstring). A user's file must still have the bytes validation hashed into the job's
    identity; each of its columns that looks like a row identifier gets a warning line on
    stderr (it is a feature all the same)."""
    if data["path"] is not None:
        if file_digest(data["path"]) != data["sha256"]:
            raise ValueError(
                f"data.path {data['path']!r} changed after the job's config was validated; run the job again"
            )
        ds = load_table(data["path"], data["target"], data["positive"])
        for column in ds.identifiers:
            print(
                f"simstudy: warning: column {column!r} of {data['path']} has a distinct value in every "
                "row (an identifier?) and is used as a feature; drop it from the file if it names rows",
                file=sys.stderr,
            )
        identity = {
            "sha256": data["sha256"],
            "target": data["target"],
            "positive": data["positive"],
            "test_size": data["test_size"],
        }
        return [RealDataset(ds.name, ds.X, ds.y, stable_key(identity))]
    out = []
    for name in data["datasets"]:
        ds = load_dataset(name)
        out.append(RealDataset(name, ds.X, ds.y, stable_key({"dataset": name, "test_size": data["test_size"]})))
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


def real_data_split(ds: RealDataset, data: dict, sel: dict, run: RunConfig, s: int) -> pd.DataFrame:
    """Every method and generator on split s of one dataset: the tidy rows."""
    sd = outer_split(ds, run.seed, s, data["test_size"])
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
            {**base, "generator": generator, **_facts(method, error=_error(err)), **{m: math.nan for m in METRICS}}
        )

    try:
        fit = fit_glm(sd.X_train, sd.y_train.astype(np.float64), model=model)
        scored(
            "none",
            _facts("raw", gamma=0.0, n_tilde=0, converged=bool(fit.info.converged), separated=bool(fit.info.separated)),
            Z_test @ fit.theta,
        )
    except ValueError as err:
        failed("none", "raw", err)
    weighted = _weight_selectors(model_args, sel, root, _cost_weights(sel, design.n0, design.n1))
    for method, est in weighted.items():
        try:
            est.fit(sd.X_train, sd.y_train)
            scored("none", _selector_facts(method, est), _eta(est, sd.X_test))
        except ValueError as err:
            failed("none", method, err)

    one = run.design.gammas.index(1.0)
    for spec in data["generators"]:
        label, generator = _generator_label(spec), _data_generator(spec)
        streams = replication_streams(run.seed, ds.key, stable_key(spec), s)
        try:
            pool = generator.fit(X1, X0, streams.fit).sample(int(design.n_tilde.max()), streams.pool)
            X = np.vstack([X0, X1, pool])
            y = np.r_[np.zeros(design.n0), np.ones(design.n1 + pool.shape[0])]
            fit = fit_glm(X, y, prefix_weights(design), model=model)
            for g, (gamma, n) in enumerate(zip(design.gammas, design.n_tilde)):
                facts = _facts(
                    "curve",
                    gamma=gamma,
                    n_tilde=int(n),
                    converged=bool(fit.info.converged[g]),
                    separated=bool(fit.info.separated[g]),
                )
                scored(label, facts, Z_test @ fit.theta[g])
                if g == one:
                    scored(label, {**facts, "method": "balanced"}, Z_test @ fit.theta[g])
        # an imbalanced-learn sampler may raise any exception on a table it cannot work with;
        # that fails this generator on this split, not the job
        except Exception as err:
            for method in ("curve", "balanced"):
                failed(label, method, err)
        for method, est in _size_selectors(generator, model_args, sel, root).items():
            try:
                est.fit(sd.X_train, sd.y_train)
                scored(label, _selector_facts(method, est), _eta(est, sd.X_test))
            except Exception as err:  # as above
                failed(label, method, err)
    return pd.DataFrame(rows)


def run_real_data(data: dict, sel: dict, run: RunConfig, progress=None) -> pd.DataFrame:
    """Every dataset, split, generator and method of study 7: the tidy table."""
    datasets = load_real_datasets(data)
    total, done, start = len(datasets) * run.design.reps, 0, time.perf_counter()
    frames = []
    for ds in datasets:
        for s in range(run.design.reps):
            frames.append(real_data_split(ds, data, sel, run, s))
            done += 1
            if progress is not None:
                progress(done, total, time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True)


METHOD_ORDER = ("raw", "balanced", "vtss", "tg_vtss", "reweighting", "cost_sensitive")


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
            stats = _mean_sd_mcse(sub[metric])
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
        stats = [_mean_sd_mcse(table[g]) for g in gammas]
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
    for dataset, facts in numbers["datasets"].items():
        lines += [
            f"### {dataset}",
            "",
            f"train n0 = {facts['n_train0']}, n1 = {facts['n_train1']}; balanced test set "
            f"{facts['n_test_per_class']} per class; {facts['n_features']} features after preprocessing",
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
            lines += _failure_lines(failures, facts["n_splits"])
    return "\n".join(lines)


def _real_data_job(run: RunConfig, section: dict, out_dir: Path, resolved_yaml: str) -> dict:
    start = time.perf_counter()
    data, sel = section["data"], section["selection"]
    rows = run_real_data(data, sel, run, progress_printer(run.study, unit="splits"))
    numbers = summarise_real_data(rows, run.design.gammas)
    if numbers["failures"]:
        print(
            f"simstudy: {len(numbers['failures'])} method fits failed and were recorded with their errors "
            f"(the rest is kept): see 'failures' in {out_dir / 'summary.json'} and table.md",
            file=sys.stderr,
        )
    summary = _job_summary(
        run,
        section,
        numbers,
        start,
        data=data,
        model=_model_label(run, None),
        splits=run.design.reps,
        gammas=list(run.design.gammas),
    )
    atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    write_table(rows, out_dir / "replications")
    atomic_write_text(out_dir / "table.md", markdown_table(numbers))
    paths = plotting.save(plotting.real_data_curves_figure(summary), out_dir / "figure")
    paths += plotting.save(plotting.real_data_methods_figure(summary), out_dir / "methods")
    if run.figures_dir:
        copy_figures(paths[:2], run.figures_dir, run.study)
        copy_figures(paths[2:], run.figures_dir, f"{run.study}_methods")
    summary["seconds"] = time.perf_counter() - start
    outputs = ["config.yaml", "replications.parquet", "replications.csv", "table.md", *(p.name for p in paths)]
    return finish_job(out_dir, summary, outputs)


# --------------------------------------------------------------------------------------------
# entry point


def run_selection_job(run: RunConfig, section: dict, out_dir: Path, resolved_yaml: str) -> dict:
    """Run study 6 (``run.figure == "vtss"``) or study 7 (``"real_data"``) and write, atomically,
    config.yaml, the replications table, (study 7: table.md), the figures and summary.json
    (last, so its presence means the job is complete). Returns the summary."""
    section = validate_section(section, run)
    out_dir = Path(out_dir)
    if run.figure == "vtss":
        return _vtss_job(run, section, out_dir, resolved_yaml)
    return _real_data_job(run, section, out_dir, resolved_yaml)


__all__ = [
    "DATA_DEFAULTS",
    "FEATURE_DEFAULTS",
    "METRICS",
    "SELECTION_DEFAULTS",
    "Preprocessor",
    "RandomFourierFeatures",
    "RealDataset",
    "SplitData",
    "VTSSCell",
    "balanced_test_indices",
    "build_vtss_cell",
    "classification_metrics",
    "load_real_datasets",
    "markdown_table",
    "median_lengthscale",
    "outer_split",
    "preprocess",
    "real_data_split",
    "run_real_data",
    "run_selection_job",
    "run_vtss_study",
    "selector_seed",
    "summarise_real_data",
    "summarise_vtss",
    "validate_section",
    "vtss_replication",
]
