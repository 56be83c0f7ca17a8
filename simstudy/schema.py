"""The typed schema of a job's config: the error a bad value raises, the one rule per notion
that every section's validation uses (an integer, a number in a range, an increasing grid, a
mapping of known keys), the validated config's dataclasses, and its hash.

The lowest layer of simstudy's config: ``simstudy.config`` validates a composed config into a
``RunConfig`` (re-exporting these names, so ``simstudy.config.ConfigError`` is this class), and
the studies (``simstudy.studies``) check their own sections with the same rules, importing them
from here, below the validator that loads the studies by kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import warnings
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from simstudy.fourier import LENGTHSCALE_RULES
from simstudy.options import UnknownOption


class ConfigError(ValueError):
    """A bad config value: ``key``, ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


# --------------------------------------------------------------------------------------------
# the rules


MAX_SIZE = 2**62
"""Largest row or replication count: sizes and their sums stay numpy int64
(``engine.Design.n_tilde``), and the bound is exact in float64 (kappa * n1 is compared to it)."""


def plain(node) -> Any:
    """Hydra / OmegaConf containers (resolved) as plain dicts and lists; an interpolation that
    cannot resolve is a ConfigError naming its key."""
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "<config>"
            raise ConfigError(key, getattr(err, "value", None), str(err).splitlines()[0]) from None
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def integer(value, key: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (booleans refused), else a ConfigError naming ``key``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum:.3g}")
        raise ConfigError(key, value, f"must be an integer {bounds}")
    return int(value)


def number(value, key: str, *, low=-math.inf, high=math.inf, low_open=False, high_open=False) -> float:
    """``value`` as a finite float in the range from ``low`` to ``high`` (each end closed unless
    said open), else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(key, value, "must be a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float's range: as out of range as inf
        value = math.inf if value > 0 else -math.inf
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        bounds = []
        if math.isfinite(low):
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if math.isfinite(high):
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        raise ConfigError(key, value, "must be a finite number" + (" " + " and ".join(bounds) if bounds else ""))
    return value


def grid(value, key: str) -> tuple[float, ...]:
    """A grid of synthetic sizes gamma: a non-empty list of numbers >= 0, increasing without
    repeats (the one rule for ``design.gammas`` and ``selection.gammas``)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(key, value, "must be a non-empty list of numbers >= 0")
    gammas = tuple(number(g, key, low=0.0) for g in value)
    if len(set(gammas)) != len(gammas) or list(gammas) != sorted(gammas):
        raise ConfigError(key, list(gammas), "must be increasing without repeats")
    return gammas


def known_keys(section, defaults: dict, name: str) -> dict:
    """``section`` (a mapping, or None for all defaults) over ``defaults``; a key that
    ``defaults`` lacks is a ConfigError naming it."""
    if section is None:
        return dict(defaults)
    if not isinstance(section, dict):
        raise ConfigError(name, section, f"must be a mapping with keys {sorted(defaults)}")
    for key in section:
        if key not in defaults:
            raise ConfigError(f"{name}.{key}", section[key], f"unknown key; {name} has {sorted(defaults)}")
    return {**defaults, **section}


# --------------------------------------------------------------------------------------------
# the validated config


@dataclass(frozen=True)
class DesignConfig:
    """``design``: the class sizes, the grid of synthetic sizes, replications and chunk."""

    n1: int
    n0: int
    gammas: tuple[float, ...]
    reps: int
    chunk: int


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the GLM family, whether it has an intercept, and its ridge penalty."""

    family: str
    intercept: bool
    ridge: float


@dataclass(frozen=True)
class FeatureMapConfig:
    """``selection.feature_map``: random Fourier features (``simstudy.fourier``) of the
    ``n_features`` given, lengthscale a number, ``"median"`` (the median heuristic) or
    ``"variance"`` (the authors' bandwidth 1 / (d Var X)). ``refit`` "cell": one map for the
    cell, its lengthscale from a pilot of ``pilot_per_class`` rows per class; "fold": a map
    drawn afresh on each replication's training rows and on each validation fold's fitting
    rows, its lengthscale from those rows (AUTHORS_DESIGNS.md B)."""

    name: str
    n_features: int
    lengthscale: float | str
    pilot_per_class: int
    refit: str = "cell"


@dataclass(frozen=True)
class SelectionConfig:
    """``selection``: how the selection studies choose the synthetic size (THEORY.md section 5).

    ``gammas`` are the selectors' candidates (None: 0, 0.05, ..., 2); ``cv`` is ``"holdout"``,
    K, or ``("repeated", K, n_repeats)``; ``test_size`` the holdout's validation fraction;
    ``alpha`` and ``gqs_threshold`` TG-VTSS's Wald level and GQS threshold, ``symmetry_test``
    ("chi2", "bootstrap", "tilted" or "tilted_double", with ``n_boot`` resamples; 0 turns the
    diagnostics study's bootstraps off) and ``gqs_rule`` ("threshold", "calibrated" or
    "calibrated_pool", at false-alarm rate ``gqs_level``) its decision rules
    (``simstudy.selection.theory_guided_grid``; a diagnostics study reports every reference and
    rule, and takes neither key), ``gqs_folds`` the GQS's
    cross-fitting folds (None: 5 for simstudy's TG-VTSS, 3 for the reference variant); ``feature_map``
    a feature map or None; ``scoring`` ``"auto"``, ``"exact"`` or ``"test_set"`` and
    ``test_per_class`` the test set's rows per class (study 6)."""

    gammas: tuple[float, ...] | None
    cv: str | int | tuple
    test_size: float
    alpha: float
    gqs_threshold: float
    feature_map: FeatureMapConfig | None
    scoring: str
    test_per_class: int
    symmetry_test: str = "chi2"
    n_boot: int = 199
    gqs_rule: str = "threshold"
    gqs_level: float = 0.05
    gqs_folds: int | None = None

    def identity(self) -> dict:
        """The fields as a dict, less ``gqs_folds`` and ``feature_map.refit`` while they keep
        their defaults (None, "cell"): added after the first published runs, which keep their
        config hashes."""
        out = asdict(self)
        if self.gqs_folds is None:
            del out["gqs_folds"]
        if self.feature_map is not None and self.feature_map.refit == "cell":
            del out["feature_map"]["refit"]
        return out

    @property
    def folds(self) -> int:
        """Validation splits per selection: 1 for the holdout, else K."""
        return 1 if self.cv == "holdout" else (self.cv[1] if isinstance(self.cv, tuple) else self.cv)


SELECTION_DEFAULTS = {
    "gammas": None,
    "cv": "holdout",
    "test_size": 0.2,
    "alpha": 0.05,
    "gqs_threshold": 10.0,
    "feature_map": None,
    "scoring": "auto",
    "test_per_class": 20000,
    "symmetry_test": "chi2",
    "n_boot": 199,
    "gqs_rule": "threshold",
    "gqs_level": 0.05,
    "gqs_folds": None,
}
SYMMETRY_TESTS = ("chi2", "bootstrap", "tilted", "tilted_double")
GQS_RULES = ("threshold", "calibrated", "calibrated_pool")
FEATURE_MAP_DEFAULTS = {
    "name": "rff",
    "n_features": 100,
    "lengthscale": "median",
    "pilot_per_class": 1000,
    "refit": "cell",
}
MAP_REFITS = ("cell", "fold")
SCORINGS = ("auto", "exact", "test_set")


def _cv(value):
    if value == "holdout":
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != 3 or value[0] != "repeated":
            raise ConfigError("selection.cv", value, "a list must be [repeated, K, n_repeats]")
        return ("repeated", integer(value[1], "selection.cv", 2), integer(value[2], "selection.cv", 1))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ConfigError("selection.cv", value, "must be 'holdout', an integer K >= 2 or [repeated, K, n_repeats]")
    return int(value)


def _feature_map(value) -> FeatureMapConfig | None:
    if value is None:
        return None
    if isinstance(value, dict) and "name" not in value:
        # one option set alone (e.g. +selection.feature_map.refit=fold) must not switch on a
        # 100-feature map the user never asked for
        raise ConfigError(
            "selection.feature_map.name",
            None,
            f"a feature map is switched on by its name (name: rff); only {sorted(value)} given",
        )
    spec = known_keys(value, FEATURE_MAP_DEFAULTS, "selection.feature_map")
    if spec["name"] != "rff":
        raise ConfigError("selection.feature_map.name", spec["name"], "must be 'rff' (random Fourier features)")
    ell = spec["lengthscale"]
    if ell not in LENGTHSCALE_RULES:
        ell = number(ell, "selection.feature_map.lengthscale", low=0.0, low_open=True)
    if spec["refit"] not in MAP_REFITS:
        raise ConfigError("selection.feature_map.refit", spec["refit"], f"must be one of {list(MAP_REFITS)}")
    return FeatureMapConfig(
        "rff",
        integer(spec["n_features"], "selection.feature_map.n_features", 1),
        ell,
        integer(spec["pilot_per_class"], "selection.feature_map.pilot_per_class", 2),
        spec["refit"],
    )


def selection_config(section) -> SelectionConfig:
    """The ``selection`` section with defaults filled in (``SELECTION_DEFAULTS``), each key
    checked on its own; the studies check it against the rest of the run."""
    sel = known_keys(section, SELECTION_DEFAULTS, "selection")
    if sel["scoring"] not in SCORINGS:
        raise ConfigError("selection.scoring", sel["scoring"], f"must be one of {list(SCORINGS)}")
    for key, allowed in (("symmetry_test", SYMMETRY_TESTS), ("gqs_rule", GQS_RULES)):
        if sel[key] not in allowed:
            raise ConfigError(f"selection.{key}", sel[key], f"must be one of {list(allowed)}")
    n_boot = integer(sel["n_boot"], "selection.n_boot", 0)
    if 0 < n_boot < 19 or (n_boot == 0 and sel["symmetry_test"] != "chi2"):
        needs = "" if sel["symmetry_test"] == "chi2" else f" (>= 19 for symmetry_test={sel['symmetry_test']})"
        raise ConfigError("selection.n_boot", n_boot, f"must be 0 (no bootstrap) or >= 19{needs}")
    return SelectionConfig(
        gammas=None if sel["gammas"] is None else grid(sel["gammas"], "selection.gammas"),
        cv=_cv(sel["cv"]),
        test_size=number(sel["test_size"], "selection.test_size", low=0.0, high=1.0, low_open=True, high_open=True),
        alpha=number(sel["alpha"], "selection.alpha", low=0.0, high=1.0),
        gqs_threshold=number(sel["gqs_threshold"], "selection.gqs_threshold", low=0.0),
        feature_map=_feature_map(sel["feature_map"]),
        scoring=sel["scoring"],
        test_per_class=integer(sel["test_per_class"], "selection.test_per_class", 2),
        symmetry_test=sel["symmetry_test"],
        n_boot=n_boot,
        gqs_rule=sel["gqs_rule"],
        gqs_level=number(sel["gqs_level"], "selection.gqs_level", low=0.0, high=1.0, low_open=True, high_open=True),
        gqs_folds=None if sel["gqs_folds"] is None else integer(sel["gqs_folds"], "selection.gqs_folds", 2),
    )


@dataclass(frozen=True)
class DataConfig:
    """``data`` (study 7): the bundled ``datasets`` or a user's table (``path``, its label
    column ``target`` or several ``targets``, ``positive``, the columns that are not features
    ``drop`` or those that are ``features``, with ``sha256`` of its bytes filled in by
    validation), the ``generators`` (each a dict: ``name`` and options), the outer split's
    ``test_size``, the ``imputation`` rule, whether the selectors refit it in their folds
    (``preprocess_in_folds``) and the summaries' ``bands``."""

    datasets: tuple[str, ...] | None
    generators: tuple[dict, ...]
    test_size: float
    path: str | None
    target: str | None
    positive: Any
    sha256: str | None
    targets: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    imputation: str = "median"
    bands: str = "se"
    preprocess_in_folds: bool = False

    def identity(self) -> dict:
        """The fields as a dict, less those added after the first published runs while they
        keep their defaults, so that those runs keep their config hashes."""
        out = asdict(self)
        for f in fields(self):
            if f.default is not MISSING and out[f.name] == f.default:
                del out[f.name]
        return out


OUTPUT_VERSIONS = {"diagnostics": 2}
"""The version of what a kind's jobs write, for kinds whose outputs grew after runs of them
were kept: the version is part of a job's identity (its config hash), so a job finished by
older code is not complete for the current one, and a rerun or a resumed sweep redoes it
instead of keeping a summary without the new columns. Version 1 adds nothing, so those jobs
keep their hashes. diagnostics 2: the double tilted bootstrap's ``p_tilted_double``,
``boot_scale``, ``reject_tilted_double`` and ``boot_scale_median``, and the pool-calibrated
GQS's ``p_gqs_pool``, ``threshold_pool``, ``pool_null_mean`` and ``biased_pool`` and their
summaries. ``scripts/replicate.py`` still replicates such a job (the columns it has), and
``simstudy-status`` and the sweep's aggregate name it as finished by older code."""


@dataclass(frozen=True)
class RunConfig:
    """A validated job config. ``dgp`` and ``generator`` keep their options as plain dicts;
    ``selection`` and ``data`` are set for the studies that read them."""

    study: str
    kind: str
    figure: str
    seed: int
    dgp: dict
    generator: dict
    model: ModelConfig
    design: DesignConfig
    theory_refits: int
    verdict_alpha: float = 0.05
    """Family-wise error rate of the verdict (``simstudy.engine.verdict``)."""
    figures_dir: str | None = None
    workers: int | None = None
    """Replications fitted at once (threads); None: ``simstudy.engine.default_workers()``."""
    selection: SelectionConfig | None = None
    data: DataConfig | None = None

    def identity(self, version: int | None = None) -> dict:
        """Everything that determines the job's outputs (not where they go, nor how many threads
        compute them): the fields, and the outputs version of the job's kind from 2 on
        (``OUTPUT_VERSIONS``; ``version`` another one, to recognise a job of older code)."""
        out = asdict(self)
        out.pop("figures_dir")
        out.pop("workers")
        version = OUTPUT_VERSIONS.get(self.kind, 1) if version is None else version
        if version > 1:
            out["outputs_version"] = version
        if self.selection is not None:
            out["selection"] = self.selection.identity()
        if self.data is not None:
            out["data"] = self.data.identity()
        return out


CONFIG_KEYS = {
    "study": "study.name",
    "kind": "study.kind",
    "figure": "study.figure",
    "theory_refits": "theory.refits",
    "verdict_alpha": "theory.alpha",
}
"""The config keys of the RunConfig fields not named after them (the others are: ``seed``,
``design.reps``, ``selection.cv``, ...)."""


def as_plain(section) -> Any:
    """A typed section (a dataclass, or None) as the plain mapping a config gives: dataclasses
    as dicts, tuples as lists, as summary.json stores it."""

    def lists(value):
        if isinstance(value, dict):
            return {k: lists(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [lists(v) for v in value]
        return value

    return None if section is None else lists(asdict(section))


def _one_line(err: Exception) -> str:
    """Hydra's instantiation error on one line, with the cause it chains (the user's own
    exception, or why the target cannot be imported) instead of a hint to set HYDRA_FULL_ERROR."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    text = text.split(", set env var HYDRA_FULL_ERROR")[0]
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {' '.join(str(cause).split())})"
    return text


def config_hash(run: RunConfig, version: int | None = None) -> str:
    """SHA-256 of everything that determines a job's outputs (``RunConfig.identity``), at its
    kind's current outputs version or at ``version``."""
    return hashlib.sha256(json.dumps(run.identity(version), sort_keys=True, default=str).encode()).hexdigest()


def older_config_hashes(run: RunConfig) -> dict[str, int]:
    """{config hash: outputs version} of the same config at its kind's earlier outputs versions
    (``OUTPUT_VERSIONS``): the hashes a job of this config finished by older code carries."""
    return {config_hash(run, v): v for v in range(1, OUTPUT_VERSIONS.get(run.kind, 1))}


@contextlib.contextmanager
def bad_value(key: str, value):
    """Turn what building from a validated config raises for a bad value (ValueError,
    TypeError, overflow, a numerical RuntimeWarning, a size that exhausts memory, a plug-in
    target that cannot be imported or instantiated) into a ConfigError naming ``key``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # an overflow is a bad value, not a warning
            yield
    except ConfigError:
        raise
    except UnknownOption as err:
        raise ConfigError(f"{key}.{err.option}", err.value, str(err)) from None
    except (ValueError, TypeError, ArithmeticError, MemoryError, RuntimeWarning) as err:
        raise ConfigError(key, value, str(err) or type(err).__name__) from None
    except (ImportError, InstantiationException) as err:  # a plug-in's _target_ (simstudy.plugins)
        raise ConfigError(key, value, _one_line(err)) from None
