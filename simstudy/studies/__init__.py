"""Every kind of study simstudy runs, each an implementation of one protocol
(``simstudy.studies.protocol.Study``: validate, build, run, summarise, draw, replicate), and the
one job writer they share (``simstudy.studies.job``).

``study.kind`` in a config names the implementation:

* ``curve`` (``simstudy.studies.curve``): theory against simulation in one design cell
  (THEORY.md section 6, studies 1-5): exact risks over a grid of synthetic sizes, the
  theory's predicted curve and optimal size, and a calibrated verdict;
* ``vtss`` (``simstudy.studies.vtss``): study 6, VTSS end to end;
* ``real_data`` (``simstudy.studies.real_data``): study 7, the section 5 protocol on tables;
* ``diagnostics`` (``simstudy.studies.diagnostics``): the error rates of the symmetry test and
  the GQS (AUTHORS_DESIGNS.md section D), chi2 and threshold rules beside calibrated ones.

A new kind of study is a new module here with a ``STUDY`` object that implements the
protocol, and a line in ``KINDS``; or it lives in the user's own package: ``study._target_:
mypkg.MyStudy`` (a class or callable that returns a Study) runs it without touching simstudy
(README, "Kinds of study"), and ``study.kind`` then records that dotted path.

The modules are imported by name on first use (``study_of``): the selection studies need
scikit-learn and imbalanced-learn (about a second to import), which a curve study does
without. These are the only modules simstudy loads on demand; tests/test_import_graph.py counts
the names in ``KINDS`` as imports, so no cycle can hide behind them.
"""

from __future__ import annotations

import importlib

from hydra.utils import instantiate

from simstudy.studies.protocol import Study

KINDS = {
    "curve": "simstudy.studies.curve",
    "vtss": "simstudy.studies.vtss",
    "real_data": "simstudy.studies.real_data",
    "diagnostics": "simstudy.studies.diagnostics",
    "network": "simstudy.studies.network",
}


PROTOCOL = (
    "figures",
    "unit",
    "row_tables",
    "validate",
    "build",
    "label",
    "run",
    "summarise",
    "documents",
    "draw",
    "replicate",
)
"""What a Study has (``simstudy.studies.protocol.Study``), checked on a user's study."""


def study_of(kind: str) -> Study:
    """The implementation of ``study.kind`` = ``kind`` (its module imported on first use).

    Parameters
    ----------
    kind : str
        A key of ``KINDS``, or the dotted path of a user's Study class (``study._target_``).

    Returns
    -------
    Study
        The module's ``STUDY`` object, or the user's class instantiated without arguments.

    Raises
    ------
    TypeError
        When a user's target does not give an object with the protocol's attributes.
    """
    if kind in KINDS:
        return importlib.import_module(KINDS[kind]).STUDY
    study = instantiate({"_target_": kind})
    missing = [name for name in PROTOCOL if not hasattr(study, name)]
    if missing:
        raise TypeError(f"{kind} gives {type(study).__name__}, not a Study: it lacks {missing}")
    return study


__all__ = ["KINDS", "Study", "study_of"]
