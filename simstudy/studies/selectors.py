"""What the two selection studies share: the selectors of THEORY.md section 5 as a replication
(or split) runs them, on one shared ``random_state`` (common random numbers), the facts each
reports in a tidy row, and the summary of a column over replications."""

from __future__ import annotations

import math

import numpy as np

from simstudy.engine import auxiliary_seed
from simstudy.jobfiles import json_number
from simstudy.schema import RunConfig, SelectionConfig
from simstudy.selection import (
    DEFAULT_GAMMAS,
    CostSensitiveClassifier,
    ReweightedClassifier,
    TGVTSSClassifier,
    VTSSClassifier,
)


def selector_seed(seed: int, data_key, r: int) -> np.random.SeedSequence:
    """The ``random_state`` of every selector in replication (or split) r.

    Parameters
    ----------
    seed : int
        The job's seed.
    data_key : tuple of int
        The cell's (or dataset's) stream key.
    r : int
        The replication or split.

    Returns
    -------
    numpy.random.SeedSequence
        SeedSequence(seed, spawn_key=(*data_key, r, 2)) (``engine.STREAM_TAGS["selectors"]``):
        every selector validates on the same splits, and the key collides neither with the data
        stream (data_key, r) nor with the generator streams (data_key, r, generator_key, ...).
    """
    return auxiliary_seed(seed, (*data_key, r), "selectors")


TG_METHODS = ("tg_vtss", "tg_vtss_reference", "tg_vtss_calibrated")
"""The TG-VTSS variants every selection study runs side by side (``size_selectors``)."""


def size_selectors(generator, model_args: dict, sel: SelectionConfig, root) -> dict:
    """VTSS, TG-VTSS with the selection section's rules, TG-VTSS with the calibrated rules
    (bootstrap symmetry test, calibrated GQS) and TG-VTSS as the authors' reference
    implementation runs it (AUTHORS_DESIGNS.md section C, with the section's rules) of one
    replication or split, side by side on the shared ``random_state`` ``root``."""
    common = dict(
        generator=generator,
        gammas=None if sel.gammas is None else list(sel.gammas),
        cv=sel.cv,
        test_size=sel.test_size,
        random_state=root,
        **model_args,
    )
    rules = dict(
        gqs_folds=sel.gqs_folds,
        alpha=sel.alpha,
        gqs_threshold=sel.gqs_threshold,
        symmetry_test=sel.symmetry_test,
        n_boot=sel.n_boot,
        gqs_rule=sel.gqs_rule,
        gqs_level=sel.gqs_level,
    )
    return {
        "vtss": VTSSClassifier(**common),
        "tg_vtss": TGVTSSClassifier(**rules, **common),
        "tg_vtss_reference": TGVTSSClassifier(**rules, variant="reference", **common),
        "tg_vtss_calibrated": TGVTSSClassifier(
            alpha=sel.alpha,
            symmetry_test="bootstrap",
            n_boot=sel.n_boot or 199,
            gqs_rule="calibrated",
            gqs_level=sel.gqs_level,
            gqs_folds=sel.gqs_folds,
            **common,
        ),
    }


def cost_weights(sel: SelectionConfig, n0: int, n1: int) -> np.ndarray:
    """Minority weights w1 = 1 + gamma (n0 - n1) / n1 over the selectors' gamma grid: candidate
    gamma gives the minority the total weight that gamma (n0 - n1) synthetic rows would add."""
    grid = DEFAULT_GAMMAS if sel.gammas is None else np.asarray(sel.gammas)
    return 1.0 + grid * (n0 - n1) / n1


def weight_selectors(model_args: dict, sel: SelectionConfig, root, n0: int, n1: int, preprocessor=None) -> dict:
    """The reweighting baselines of section 5; cost-sensitive validates on the same splits as
    the size selectors, refitting ``preprocessor`` inside each when given."""
    return {
        "reweighting": ReweightedClassifier(random_state=root, **model_args),
        "cost_sensitive": CostSensitiveClassifier(
            weights=cost_weights(sel, n0, n1),
            cv=sel.cv,
            test_size=sel.test_size,
            random_state=root,
            preprocessor=preprocessor,
            **model_args,
        ),
    }


def facts(method: str, **values) -> dict:
    """One method's facts in a tidy row; NaN / -1 / "" where they do not apply."""
    row = {
        "method": method,
        "gamma": math.nan,
        "n_tilde": -1,
        "weight": math.nan,
        "converged": False,
        "separated": False,
        "branch": "",
        "rules": "",
        "gqs": math.nan,
        "gamma_tg": math.nan,
        "wald_p_value": math.nan,
        "n_candidates": -1,
        "candidate_max": math.nan,
        "error": "",
    }
    row.update(values)
    return row


def selector_facts(name: str, est) -> dict:
    """What a fitted estimator of ``simstudy.selection`` reports about its choice and fit."""
    row = facts(
        name,
        gamma=getattr(est, "gamma_", math.nan),
        n_tilde=getattr(est, "n_synthetic_", -1),
        weight=getattr(est, "weight_", math.nan),
        converged=bool(est.fit_info_.converged),
        separated=bool(est.fit_info_.separated),
        branch=getattr(est, "branch_", ""),
        rules=getattr(est, "rules_", ""),
    )
    if name in TG_METHODS:
        row.update(
            gqs=math.nan if est.gqs_ is None else est.gqs_,
            gamma_tg=math.nan if est.gamma_tg_ is None else est.gamma_tg_,
            wald_p_value=float(est.wald_.p_value),
            n_candidates=len(est.candidate_gammas_),
            candidate_max=float(np.max(est.candidate_gammas_)),
        )
    elif name == "vtss":
        row["n_candidates"] = len(est.cv_results_["gamma"])
    return row


def error_text(err: Exception) -> str:
    """An exception as one line: its type and message."""
    return f"{type(err).__name__}: {err}"


def mean_sd_mcse(values) -> dict:
    """Mean, SD and Monte Carlo SE (SD / sqrt(R)) of the finite values, and how many failed.

    Parameters
    ----------
    values : array_like of shape (R,)
        One number per replication (NaN where the replication failed).

    Returns
    -------
    dict
        ``mean``, ``sd`` (ddof = 1), ``mcse`` (None below two finite values), ``n`` finite
        values and ``n_failed``.
    """
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


def generator_label(spec: dict) -> str:
    """A generator section as a label: its name, with its options in brackets."""
    options = {k: v for k, v in spec.items() if k != "name"}
    if not options:
        return spec["name"]
    return spec["name"] + "(" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"


def model_label(run: RunConfig) -> str:
    """The model in words, e.g. "logistic + intercept on 100 random Fourier features"."""
    base = f"{run.model.family}{' + intercept' if run.model.intercept else ''}"
    phi = run.selection.feature_map if run.selection is not None else None
    return base if phi is None else f"{base} on {phi.n_features} random Fourier features"
