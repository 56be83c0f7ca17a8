"""Plug-ins: a dgp or a generator built from ``_target_`` with ``hydra.utils.instantiate``.

A ``dgp`` or ``generator`` config option names either a catalog entry (``name: smote``, built
by ``simstudy.processes.make_process`` / ``simstudy.generators.make_generator``) or any
callable by its dotted path (``_target_: mypkg.generators.MyGenerator``), so that a user's own
package plugs in without touching simstudy (README, "Adding a process, a generator, a family or a kind of study"):

* a **process** target is called with the option's other keys and must return a
  ``simstudy.processes.Process``;
* a **generator** target is instantiated as a partial of the option's keys, which the cell
  completes with what the target's signature names among ``process`` (the cell's Process),
  ``population`` (its Population: theta*, g and the class laws), ``n0`` and ``n1``; it must
  return a ``simstudy.generators.base.Generator``.

``name`` is a label (in tables and progress lines), never passed to the target; without it the
label is the target's dotted path.

Identity (``canonical``): the random streams of a cell are keyed by its sections
(``simstudy.cell``), so a ``_target_`` that is a built-in the catalog also names (the process
constructor ``simstudy.processes.gaussian_classes``, the class ``simstudy.generators.Smote``)
is replaced by that ``name`` at validation: the section, its keys and its numbers are those of
the ``name:`` form. Any other target stays in the section, so a plug-in gets its own streams.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra._internal.utils import _locate
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from simstudy.generators.base import Generator
from simstudy.generators.classic import BootstrapJitter, FeatureJitter, GaussianFit, Oracle, SemiOracle, Smote
from simstudy.generators.imblearn_adapter import ImblearnGenerator
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.processes import PROCESSES, Process
from simstudy.schema import ConfigError, bad_value

TARGET = "_target_"
GENERATOR_CONTEXT = ("process", "population", "n0", "n1")
"""What the cell passes to a generator target that names it in its signature."""

BUILTINS: dict[str, dict[Any, str]] = {
    "dgp": {constructor: name for name, constructor in PROCESSES.items()},
    "generator": {
        Oracle: "oracle",
        SemiOracle: "semi_oracle",
        GaussianFit: "gaussian_fit",
        Smote: "smote",
        BootstrapJitter: "jitter",
        FeatureJitter: "feature_jitter",
        ImblearnGenerator: "imblearn",
        MismatchGenerator: "mismatch",
    },
}
"""The built-in targets of each group, with the catalog name that builds the same thing."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def locate(group: str, target) -> Any:
    """The object a ``_target_`` names; a ConfigError naming ``<group>._target_`` otherwise.

    Parameters
    ----------
    group : str
        The config group ("dgp" or "generator"), for the error's key.
    target : str
        A dotted path such as ``mypkg.module.MyClass``.

    Returns
    -------
    callable
        The imported object.

    Raises
    ------
    simstudy.schema.ConfigError
        If ``target`` is not a non-empty string, cannot be imported, or is not callable.
    """
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{group}.{TARGET}", target, "must be a dotted path such as mypkg.module.MyClass")
    try:  # hydra.utils.get_object would also log the error on lines of its own
        obj = _locate(target)
    except Exception as err:  # ImportError, AttributeError, Hydra's own: not importable
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = " ".join(lines[1:]) or (lines[0] if lines else type(err).__name__)
        raise ConfigError(f"{group}.{TARGET}", target, f"cannot be imported: {detail}") from None
    if not callable(obj):
        raise ConfigError(f"{group}.{TARGET}", target, f"must be callable, got a {type(obj).__name__}")
    return obj


def is_plugin(section: dict) -> bool:
    """Whether a (canonical) section is built from its ``_target_`` rather than by name.

    Parameters
    ----------
    section : dict
        A config section.

    Returns
    -------
    bool
        True when the section has a ``_target_`` key.
    """
    return TARGET in section


def canonical(section: dict, group: str) -> dict:
    """The section's identity (module docstring).

    A built-in target becomes its catalog name, a plug-in keeps its target and gets ``name``
    (its label) if it has none.

    Parameters
    ----------
    section : dict
        A ``dgp`` or ``generator`` section.
    group : {"dgp", "generator"}
        Its config group.

    Returns
    -------
    dict
        ``dict(section)`` when it has no ``_target_``; for a built-in target {"name": <catalog
        name>, **options}; for a plug-in {"name": <label>, "_target_": <target>, **options}.

    Raises
    ------
    simstudy.schema.ConfigError
        If the target cannot be located (``locate``), a built-in target's ``name`` differs from
        its catalog name, or a plug-in's ``name`` is not a string.
    """
    if TARGET not in section:
        return dict(section)
    target = section[TARGET]
    obj = locate(group, target)
    rest = {k: v for k, v in section.items() if k not in (TARGET, "name")}
    name = section.get("name")
    builtin = BUILTINS[group].get(obj)
    if builtin is not None:
        if name is not None and name != builtin:
            raise ConfigError(
                f"{group}.name",
                name,
                f"{TARGET} {target} is the built-in {builtin!r}; drop name or make it {builtin!r}",
            )
        return {"name": builtin, **rest}
    if name is None:
        name = target
    if not isinstance(name, str):
        raise ConfigError(f"{group}.name", name, "must be a string (a label)")
    return {"name": name, TARGET: target, **rest}


def _call(group: str, section: dict, context: dict, kind: type) -> Any:
    spec = {k: v for k, v in section.items() if k != "name"}
    target = spec[TARGET]
    func = locate(group, target)
    try:
        factory = instantiate(spec, _partial_=True, _convert_="all")
    except (InstantiationException, ImportError) as err:
        raise ConfigError(f"{group}.{TARGET}", target, _first_line(err)) from None
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # no signature (some builtins): pass no context, call as is
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    extra = {k: v for k, v in context.items() if k in parameters and k not in factory.keywords}
    if parameters:
        for key, value in factory.keywords.items():
            if key not in parameters and not takes_any:
                raise ConfigError(
                    f"{group}.{key}",
                    value,
                    f"not an option of {target}; it takes {[p for p in parameters if p not in context]}",
                )
        try:
            inspect.signature(func).bind(*factory.args, **factory.keywords, **extra)
        except TypeError as err:
            raise ConfigError(f"{group}.{TARGET}", target, f"cannot be called with the options given: {err}") from None
    with bad_value(group, section):
        obj = factory(**extra)
    if not isinstance(obj, kind):
        raise ConfigError(
            f"{group}.{TARGET}",
            target,
            f"must return a {kind.__module__}.{kind.__qualname__}, got a {type(obj).__name__}",
        )
    return obj


def build_process(section: dict) -> Process:
    """The process of a validated ``dgp`` section: its target called with its options.

    Parameters
    ----------
    section : dict
        A validated, canonical plug-in ``dgp`` section (with a ``_target_``).

    Returns
    -------
    simstudy.processes.Process
        What the target returned.

    Raises
    ------
    simstudy.schema.ConfigError
        If the target cannot be located or instantiated, an option is not in its signature, the
        call fails on a bad value, or it returns something other than a Process.
    """
    return _call("dgp", section, {}, Process)


def build_generator(section: dict, **context) -> Generator:
    """The generator of a validated ``generator`` section.

    Its target is made a partial of its options and completed with the ``context``
    (GENERATOR_CONTEXT) its signature names.

    Parameters
    ----------
    section : dict
        A validated, canonical plug-in ``generator`` section (with a ``_target_``).
    **context
        ``process``, ``population``, ``n0`` and ``n1``; each is passed only when the target's
        signature names it and the section does not set it.

    Returns
    -------
    simstudy.generators.base.Generator
        What the target returned.

    Raises
    ------
    simstudy.schema.ConfigError
        If the target cannot be located or instantiated, an option is not in its signature, the
        call fails on a bad value, or it returns something other than a Generator.
    """
    return _call("generator", section, context, Generator)


__all__ = ["BUILTINS", "GENERATOR_CONTEXT", "build_generator", "build_process", "canonical", "is_plugin", "locate"]
