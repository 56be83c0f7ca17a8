"""Run configuration: the typed schema of a job's config, its validation, and the cell it builds.

Hydra composes a DictConfig from conf/; ``validate`` turns it into a ``RunConfig`` of plain,
checked values before any work starts, raising ``ConfigError`` (one line: the key, the value,
what is allowed) for anything wrong. ``build_cell`` then makes the process, model, generator,
population and design of THEORY.md section 6 from it.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import simstudy  # noqa: F401
from simstudy.cell import BuiltCell  # noqa: F401  (re-exported: the cell a validated config builds)
from simstudy.generators import GENERATORS
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.plugins import TARGET, canonical
from simstudy.processes import PROCESSES
from simstudy.schema import ConfigError, DesignConfig, ModelConfig, RunConfig, bad_value  # noqa: F401

# the imbalanced-learn options that count neighbours among the minority rows (BorderlineSMOTE's
# m_neighbors counts among all rows)
NEIGHBOUR_OPTIONS = ("k_neighbors", "n_neighbors")
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
FIGURE_KINDS = ("curve", "rates", "alignment", "vtss", "real_data")
RATE_RULES = ("constant", "inv_sqrt_log_n1")
FAMILIES = ("squared", "logistic", "probit")


def _plain(node) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as err:  # e.g. an interpolation to a missing key
            key = getattr(err, "full_key", None) or "<config>"
            raise ConfigError(key, getattr(err, "value", None), str(err).splitlines()[0]) from None
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


MAX_SIZE = 2**62
"""Largest row or replication count: sizes and their sums stay numpy int64
(``engine.Design.n_tilde``), and the bound is exact in float64 (kappa * n1 is compared to it)."""


def _int(cfg: dict, key: str, prefix: str, minimum: int, maximum: int | None = None) -> int:
    value = cfg.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum:.3g}")
        raise ConfigError(f"{prefix}{key}", value, f"must be an integer {bounds}")
    return int(value)


def _number(value, key: str, *, low=-math.inf, high=math.inf, low_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(key, value, "must be a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float's range: as out of range as inf
        value = math.inf if value > 0 else -math.inf
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        bounds = []
        if math.isfinite(low):
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if math.isfinite(high):
            bounds.append(f"<= {high:g}")
        raise ConfigError(key, value, "must be a finite number" + (" " + " and ".join(bounds) if bounds else ""))
    return value


SECTION_KEYS = {
    "design": {"n1", "kappa", "n0", "gammas", "reps", "chunk"},
    "model": {"family", "intercept", "ridge"},
    "study": {"name", "figure", "description"},
    "theory": {"refits", "alpha"},
}
ROOT_KEYS = {
    "seed",
    "figures_dir",
    "workers",
    "theory",
    "study",
    "dgp",
    "generator",
    "model",
    "design",
    "selection",
    "data",
}
SELECTION_FIGURES = ("vtss", "real_data")
STUDY_MODULES = {"vtss": "simstudy.selection_study", "real_data": "simstudy.selection_study"}
"""The module that validates, builds and runs the study of each ``study.figure`` of
SELECTION_FIGURES (``validate_section``, ``run_selection_job``, ...), imported by name when a
config of that kind is validated: it needs scikit-learn and imbalanced-learn (about a second
to import), which the command line's start (``--help``, a bad design value) and the curve
studies do without. It is the one module simstudy loads on demand; tests/test_import_graph.py
counts these names as imports, so no cycle can hide behind them."""


def study_module(figure: str) -> ModuleType:
    """The module of STUDY_MODULES that runs a study of kind ``figure`` (imported on first use)."""
    return importlib.import_module(STUDY_MODULES[figure])


def _known_keys(cfg: dict) -> None:
    for key in cfg:
        if key not in ROOT_KEYS:
            raise ConfigError(key, cfg[key], f"unknown key; the config has {sorted(ROOT_KEYS)}")
    for section, allowed in SECTION_KEYS.items():
        if not isinstance(cfg.get(section) or {}, dict):
            raise ConfigError(section, cfg[section], f"must be a mapping with keys {sorted(allowed)}")
        for key, value in (cfg.get(section) or {}).items():
            if key not in allowed:
                raise ConfigError(f"{section}.{key}", value, f"unknown key; {section} has {sorted(allowed)}")


def _section(cfg: dict, key: str) -> dict:
    section = cfg.get(key)
    if not isinstance(section, dict):
        raise ConfigError(key, section, f"must be a config group (a mapping); pick one with {key}=<name>")
    return section


def validate_design(section: dict) -> DesignConfig:
    """The design's sizes, each a count of at most MAX_SIZE (whether they fit the machine is
    ``simstudy.resources.check_budget``'s question)."""
    n1 = _int(section, "n1", "design.", 2, MAX_SIZE)
    n0 = section.get("n0")
    if n0 is None:
        kappa = _number(section.get("kappa"), "design.kappa", low=1.0, low_open=True)
        if not kappa * n1 <= MAX_SIZE:  # also catches kappa * n1 = inf
            raise ConfigError(
                "design.kappa",
                kappa,
                f"gives n0 = kappa * design.n1 = {kappa * n1:.3g} rows; must be at most {MAX_SIZE:.3g}",
            )
        n0 = int(round(kappa * n1))
    else:
        n0 = _int(section, "n0", "design.", 1, MAX_SIZE)
    if n0 <= n1:
        raise ConfigError("design.n0", n0, f"must exceed design.n1={n1} (kappa = n0/n1 > 1)")
    gammas = section.get("gammas")
    if not isinstance(gammas, (list, tuple)) or not gammas:
        raise ConfigError("design.gammas", gammas, "must be a non-empty list of numbers >= 0")
    gammas = tuple(_number(g, "design.gammas", low=0.0) for g in gammas)
    if len(set(gammas)) != len(gammas) or list(gammas) != sorted(gammas):
        raise ConfigError("design.gammas", list(gammas), "must be increasing without repeats")
    if not gammas[-1] * (n0 - n1) <= MAX_SIZE:
        raise ConfigError(
            "design.gammas",
            list(gammas),
            f"the largest gives gamma * (n0 - n1) = "
            f"{gammas[-1] * (n0 - n1):.3g} synthetic rows; must be at most {MAX_SIZE:.3g}",
        )
    reps = _int(section, "reps", "design.", 2, MAX_SIZE)
    chunk = _int(section, "chunk", "design.", 1, MAX_SIZE)
    return DesignConfig(n1, n0, gammas, reps, chunk)


def validate_model(section: dict) -> ModelConfig:
    family = section.get("family")
    if family not in FAMILIES:
        raise ConfigError("model.family", family, f"must be one of {list(FAMILIES)}")
    intercept = section.get("intercept")
    if not isinstance(intercept, bool):
        raise ConfigError("model.intercept", intercept, "must be true or false")
    ridge = _number(section.get("ridge"), "model.ridge", low=0.0)
    return ModelConfig(family, intercept, ridge)


def _options(section: dict, group: str) -> tuple[str, dict]:
    """The section's name and options, in its canonical form (``simstudy.plugins.canonical``:
    a built-in ``_target_`` becomes its catalog name; a plug-in keeps its ``_target_``)."""
    section = canonical(section, group)
    name = section.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{group}.name", name, f"must be a catalog name (or give {group}.{TARGET})")
    options = {k: v for k, v in section.items() if k != "name"}
    for key, value in options.items():
        for leaf in np.ravel(np.asarray(value, dtype=object)):
            if isinstance(leaf, float) and not math.isfinite(leaf):
                raise ConfigError(f"{group}.{key}", value, "must be finite (no NaN or inf)")
    return name, options


def validate_generator(section: dict, design: DesignConfig) -> dict:
    name, options = _options(section, "generator")
    if TARGET in options:  # a plug-in checks its own options when the cell builds it
        return {"name": name, **options}
    known = sorted(set(GENERATORS) | {"shifted"})
    if name not in known:
        raise ConfigError("generator.name", name, f"must be one of {known}")
    neighbour_keys = ("k",) if name == "smote" else NEIGHBOUR_OPTIONS if name == "imblearn" else ()
    for key in neighbour_keys:
        if key not in options and key != "k":
            continue
        k = options.get(key, 5)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < design.n1:
            # a neighbour count is taken among the n1 minority rows, the point itself excluded
            raise ConfigError(f"generator.{key}", k, f"must be an integer in [1, design.n1={design.n1})")
    if name == "imblearn":
        sampler = options.get("sampler", "SMOTE")
        if not isinstance(sampler, str) or sampler not in available_samplers():
            raise ConfigError("generator.sampler", sampler, f"must be one of {sorted(available_samplers())}")
    if name == "mismatch":
        _number(options.get("magnitude"), "generator.magnitude", low=0.0)
        _number(options.get("angle_deg"), "generator.angle_deg", low=0.0, high=180.0)
        if options.get("cov_scale", 1.0) is not None:
            _number(options.get("cov_scale", 1.0), "generator.cov_scale", low=0.0, low_open=True)
    if name == "shifted":
        shift = options.get("shift")
        if not isinstance(shift, list) or not shift:
            raise ConfigError("generator.shift", shift, "must be a non-empty list of numbers")
        for s in shift:
            _number(s, "generator.shift")
        rate = options.get("rate", "constant")
        if rate not in RATE_RULES:
            raise ConfigError("generator.rate", rate, f"must be one of {list(RATE_RULES)}")
    return {"name": name, **options}


def validate_figures_dir(value) -> str | None:
    """null, or a folder path that is a folder or can be made one (checked before any work, so
    a finished job does not fail at its last step)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError("figures_dir", value, "must be a folder path or null")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError("figures_dir", value, "must be a folder, not a file")
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    try:  # a probe folder, removed at once: permission bits say nothing for root or /proc
        os.rmdir(tempfile.mkdtemp(prefix=".simstudy-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(
            "figures_dir", value, f"must be a folder this user can create or write ({existing}: {err.strerror})"
        ) from None
    return value


def validate(cfg) -> RunConfig:
    """Check a composed config (DictConfig or dict) and return its RunConfig."""
    cfg = _plain(cfg)
    if not isinstance(cfg, dict):
        raise ConfigError("<root>", cfg, "must be a mapping")
    _known_keys(cfg)
    study = _section(cfg, "study")
    name = study.get("name")
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        # it names output folders (outputs/<name>, multirun/<name>, figures/<name>.png)
        raise ConfigError(
            "study.name",
            name,
            "must be letters, digits, '_', '-' or '.', not starting with '.' (it names output folders)",
        )
    figure = study.get("figure", "curve")
    if figure not in FIGURE_KINDS:
        raise ConfigError("study.figure", figure, f"must be one of {list(FIGURE_KINDS)}")
    seed = _int(cfg, "seed", "", 0)
    design = validate_design(_section(cfg, "design"))
    model = validate_model(_section(cfg, "model"))
    dgp_name, dgp_options = _options(_section(cfg, "dgp"), "dgp")
    if dgp_name not in PROCESSES and TARGET not in dgp_options:
        raise ConfigError("dgp.name", dgp_name, f"must be one of {sorted(PROCESSES)}")
    generator = validate_generator(_section(cfg, "generator"), design)
    theory = cfg.get("theory") or {}
    if not isinstance(theory, dict):
        raise ConfigError("theory", theory, "must be a mapping such as {refits: 200}")
    refits = _int({"refits": theory.get("refits", 200)}, "refits", "theory.", 2)
    alpha = _number(theory.get("alpha", 0.05), "theory.alpha", low=0.0, high=0.5, low_open=True)
    figures_dir = validate_figures_dir(cfg.get("figures_dir"))
    workers = cfg.get("workers")
    if workers is not None:
        workers = _int({"workers": workers}, "workers", "", 1)
    run = RunConfig(
        study=study["name"],
        figure=figure,
        seed=seed,
        dgp={"name": dgp_name, **dgp_options},
        generator=generator,
        model=model,
        design=design,
        theory_refits=refits,
        verdict_alpha=alpha,
        figures_dir=figures_dir,
        workers=workers,
    )
    if figure in SELECTION_FIGURES:
        sections = {k: cfg[k] for k in ("selection", "data") if cfg.get(k) is not None}
        run = replace(run, extra=study_module(figure).validate_section(sections, run))
    return run
