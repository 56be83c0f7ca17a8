"""Run configuration: the validation of a composed config into a ``RunConfig``.

Hydra composes a DictConfig from conf/; ``validate`` turns it into a ``RunConfig`` of plain,
checked values before any work starts, raising ``ConfigError`` (one line: the key, the value,
what is allowed) for anything wrong. The rules (an integer, a number in a range, a grid, known
keys) and the dataclasses are ``simstudy.schema``'s; the sections only one kind of study reads
are checked by that study (``Study.validate``, simstudy.studies), loaded by ``study.kind``.
``simstudy.cell.BuiltCell`` then makes the process, model, generator, population and design of
THEORY.md section 6 from a curve study's config.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np

import simstudy  # noqa: F401
from simstudy.families import FAMILIES, get_family
from simstudy.generators import GENERATORS
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.plugins import TARGET, canonical
from simstudy.processes import PROCESSES
from simstudy.schema import (  # noqa: F401  (re-exported: the error and types of a validated config)
    MAX_SIZE,
    ConfigError,
    DesignConfig,
    ModelConfig,
    RunConfig,
    bad_value,
    grid,
    integer,
    number,
    plain,
)
from simstudy.studies import KINDS, Study, study_of

# the imbalanced-learn options that count neighbours among the minority rows (BorderlineSMOTE's
# m_neighbors counts among all rows)
NEIGHBOUR_OPTIONS = ("k_neighbors", "n_neighbors")
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RATE_RULES = ("constant", "inv_sqrt_log_n1")


SECTION_KEYS = {
    "design": {"n1", "kappa", "n0", "gammas", "reps", "chunk"},
    "model": {"family", "intercept", "ridge"},
    "study": {"name", "kind", "figure", "description", TARGET},
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
    n1 = integer(section.get("n1"), "design.n1", 2, MAX_SIZE)
    n0 = section.get("n0")
    if n0 is None:
        kappa = number(section.get("kappa"), "design.kappa", low=1.0, low_open=True)
        if not kappa * n1 <= MAX_SIZE:  # also catches kappa * n1 = inf
            raise ConfigError(
                "design.kappa",
                kappa,
                f"gives n0 = kappa * design.n1 = {kappa * n1:.3g} rows; must be at most {MAX_SIZE:.3g}",
            )
        n0 = int(round(kappa * n1))
    else:
        n0 = integer(n0, "design.n0", 1, MAX_SIZE)
    if n0 <= n1:
        raise ConfigError("design.n0", n0, f"must exceed design.n1={n1} (kappa = n0/n1 > 1)")
    gammas = grid(section.get("gammas"), "design.gammas")
    if not gammas[-1] * (n0 - n1) <= MAX_SIZE:
        raise ConfigError(
            "design.gammas",
            list(gammas),
            f"the largest gives gamma * (n0 - n1) = "
            f"{gammas[-1] * (n0 - n1):.3g} synthetic rows; must be at most {MAX_SIZE:.3g}",
        )
    reps = integer(section.get("reps"), "design.reps", 2, MAX_SIZE)
    chunk = integer(section.get("chunk"), "design.chunk", 1, MAX_SIZE)
    return DesignConfig(n1, n0, gammas, reps, chunk)


def validate_model(section: dict) -> ModelConfig:
    family = section.get("family")
    if not isinstance(family, str):
        raise ConfigError("model.family", family, f"must be one of {sorted(FAMILIES)} or a Family's dotted path")
    with bad_value("model.family", family):  # a built-in, or a user's Family by its dotted path
        get_family(family)
    intercept = section.get("intercept")
    if not isinstance(intercept, bool):
        raise ConfigError("model.intercept", intercept, "must be true or false")
    ridge = number(section.get("ridge"), "model.ridge", low=0.0)
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


SHIFTED_OPTIONS = ("shift", "rate")
"""The options of generator=shifted (the true minority law moved by ``shift``; ``rate`` says how
its accuracy follows the rows it is fitted on)."""


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
        if "population" in options:
            raise ConfigError(
                "generator.population", options["population"], "is the cell's own population, not an option"
            )
        number(options.get("magnitude"), "generator.magnitude", low=0.0)
        number(options.get("angle_deg"), "generator.angle_deg", low=0.0, high=180.0)
        if options.get("cov_scale", 1.0) is not None:
            number(options.get("cov_scale", 1.0), "generator.cov_scale", low=0.0, low_open=True)
    if name == "shifted":
        # simstudy builds this one itself (cell.BuiltCell), so no constructor checks its options
        extra = sorted(set(options) - set(SHIFTED_OPTIONS))
        if extra:
            raise ConfigError(
                f"generator.{extra[0]}", options[extra[0]], f"generator 'shifted' takes {list(SHIFTED_OPTIONS)}"
            )
        shift = options.get("shift")
        if not isinstance(shift, list) or not shift:
            raise ConfigError("generator.shift", shift, "must be a non-empty list of numbers")
        for s in shift:
            number(s, "generator.shift")
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


def _study_kind(study: dict) -> tuple[str, Study]:
    """(``study.kind``, its Study): a built-in kind, or a user's Study from ``study._target_``,
    whose dotted path then is the kind (``simstudy.studies.study_of``)."""
    target = study.get(TARGET)
    if target is None:
        kind = study.get("kind", "curve")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ConfigError("study.kind", kind, f"must be one of {list(KINDS)} (or give study.{TARGET})")
        return kind, study_of(kind)
    if not isinstance(target, str) or study.get("kind", target) != target:
        raise ConfigError(f"study.{TARGET}", target, "must be a dotted path, given without study.kind")
    with bad_value(f"study.{TARGET}", target):
        study = study_of(target)
    figures = getattr(study, "figures", None)
    if not isinstance(figures, (tuple, list)) or not figures or not all(isinstance(f, str) for f in figures):
        raise ConfigError(f"study.{TARGET}", target, f"its figures must be a non-empty tuple of names, got {figures!r}")
    return target, study


def validate(cfg) -> RunConfig:
    """Check a composed config (DictConfig or dict) and return its RunConfig."""
    cfg = plain(cfg)
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
    kind, study_kind = _study_kind(study)
    figure = study.get("figure", study_kind.figures[0])
    if figure not in study_kind.figures:
        raise ConfigError("study.figure", figure, f"must be one of {list(study_kind.figures)} for study.kind={kind}")
    seed = integer(cfg.get("seed"), "seed", 0)
    design = validate_design(_section(cfg, "design"))
    model = validate_model(_section(cfg, "model"))
    dgp_name, dgp_options = _options(_section(cfg, "dgp"), "dgp")
    if dgp_name not in PROCESSES and TARGET not in dgp_options:
        raise ConfigError("dgp.name", dgp_name, f"must be one of {sorted(PROCESSES)}")
    generator = validate_generator(_section(cfg, "generator"), design)
    theory = cfg.get("theory") or {}
    if not isinstance(theory, dict):
        raise ConfigError("theory", theory, "must be a mapping such as {refits: 200}")
    refits = integer(theory.get("refits", 200), "theory.refits", 2)
    alpha = number(theory.get("alpha", 0.05), "theory.alpha", low=0.0, high=0.5, low_open=True)
    figures_dir = validate_figures_dir(cfg.get("figures_dir"))
    workers = cfg.get("workers")
    if workers is not None:
        workers = integer(workers, "workers", 1)
    run = RunConfig(
        study=study["name"],
        kind=kind,
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
    sections = {k: cfg[k] for k in ("selection", "data") if cfg.get(k) is not None}
    with plugin_study(run):
        return study_kind.validate(run, sections)


@contextlib.contextmanager
def plugin_study(run: RunConfig):
    """Around a call into a user's Study (``study._target_``): what it raises, beyond a
    ConfigError, is one line naming ``study._target_`` (a built-in study's errors are bugs and
    keep their traceback)."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as err:
        if run.kind in KINDS:
            raise
        raise ConfigError(f"study.{TARGET}", run.kind, f"{type(err).__name__}: {err}") from None
