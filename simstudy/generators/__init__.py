"""The generator catalog: build any generator of THEORY.md sections 1 and 6 by name.

``make_generator(name, process=None, **options)`` returns an unfitted ``Generator``:

=================  ==========================================  ===============================
name               generator                                    options
=================  ==========================================  ===============================
"oracle"           ``Oracle(process.law1)``                     (needs the process)
"semi_oracle"      ``SemiOracle(process.law1)``                 (needs the process)
"gaussian_fit"     ``GaussianFit``                              shrinkage=0.1
"smote"            ``Smote`` (native numpy)                     k=5
"jitter"           ``BootstrapJitter``                          sd=1.0
"feature_jitter"   ``FeatureJitter``                            scale=0.1
"local_jitter"     ``LocalJitter``                              scale=0.08, k=3
"imblearn"         ``ImblearnGenerator``                        sampler="SMOTE", its kwargs
"mismatch"         ``mismatch.MismatchGenerator``               population, magnitude,
                                                                angle_deg, ... (passed through)
=================  ==========================================  ===============================
"""

from __future__ import annotations

from collections.abc import Callable

from simstudy.generators.base import FittedGenerator, Generator
from simstudy.generators.classic import (
    BootstrapJitter,
    ConsistentShift,
    FeatureJitter,
    GaussianFit,
    LocalJitter,
    Oracle,
    SemiOracle,
    Smote,
)
from simstudy.generators.imblearn_adapter import ImblearnGenerator
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.options import check_options


def _build(name: str, cls, *args, internal=(), **options) -> Generator:
    """cls(*args, **options), with options it does not take reported as a ValueError."""
    check_options(f"generator {name!r}", cls, *args, internal=internal, **options)
    return cls(*args, **options)


def _minority_law(name: str, process):
    if process is None:
        raise ValueError(
            f"generator {name!r} draws from the true minority law: pass process=<a Process with "
            f".law1>, got process=None"
        )
    if not hasattr(process, "law1"):
        raise ValueError(f"process for {name!r} must have a .law1 attribute, got {process!r}")
    return process.law1


def _oracle(process, **options):
    return _build("oracle", Oracle, _minority_law("oracle", process), **options)


def _semi_oracle(process, **options):
    return _build("semi_oracle", SemiOracle, _minority_law("semi_oracle", process), **options)


def _mismatch(process, **options):
    if "population" not in options:
        raise ValueError(
            "generator 'mismatch' needs population=<a Population> (theta*, g and the class laws) among its options"
        )
    return _build("mismatch", MismatchGenerator, internal=("population",), **options)


def _plain(name: str, cls) -> Callable[..., Generator]:
    def factory(process, **options):
        return _build(name, cls, **options)

    return factory


GENERATORS: dict[str, Callable[..., Generator]] = {
    "oracle": _oracle,
    "semi_oracle": _semi_oracle,
    "gaussian_fit": _plain("gaussian_fit", GaussianFit),
    "smote": _plain("smote", Smote),
    "jitter": _plain("jitter", BootstrapJitter),
    "feature_jitter": _plain("feature_jitter", FeatureJitter),
    "local_jitter": _plain("local_jitter", LocalJitter),
    "imblearn": _plain("imblearn", ImblearnGenerator),
    "mismatch": _mismatch,
}
"""Factories ``(process, **options) -> Generator`` by catalog name."""


def make_generator(name: str, process=None, **options) -> Generator:
    """Build the generator ``name`` with its options (see the table in the module docstring).

    Parameters
    ----------
    name : str
        A key of ``GENERATORS``.
    process : simstudy.processes.Process, optional
        The process; "oracle" and "semi_oracle" draw from its minority law ``process.law1``,
        the other generators ignore it.
    **options
        Keyword arguments of the generator's class ("mismatch" needs ``population``).

    Returns
    -------
    Generator
        The unfitted generator.

    Raises
    ------
    ValueError
        If the name is unknown, the options do not fit the generator's signature, an oracle
        has no process with a ``law1``, "mismatch" has no ``population``, or the generator
        refuses the option values.
    """
    try:
        factory = GENERATORS[name]
    except KeyError:
        known = sorted(GENERATORS)
        raise ValueError(f"unknown generator {name!r}; choose one of {known}") from None
    return factory(process, **options)


__all__ = [
    "GENERATORS",
    "BootstrapJitter",
    "ConsistentShift",
    "FeatureJitter",
    "FittedGenerator",
    "GaussianFit",
    "Generator",
    "ImblearnGenerator",
    "LocalJitter",
    "Oracle",
    "SemiOracle",
    "Smote",
    "make_generator",
]
