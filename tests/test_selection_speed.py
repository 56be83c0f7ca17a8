"""The selectors of one data set share their validations exactly (``selection.SharedValidations``).

A TG-VTSS whose diagnostics choose the wide grid validates the same (split, candidate) fits as
VTSS on the same rows and ``random_state``: read from the store, its curve and every number
that follows must be those of its own validation, bit for bit, and anything that differs in
its inputs must be validated afresh.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import simstudy  # noqa: F401
import simstudy.selection as selection
from simstudy.app import CONFIG_PATH
from simstudy.config import validate
from simstudy.selection import SharedValidations, TGVTSSClassifier, VTSSClassifier
from simstudy.studies.vtss import build_vtss_cell, vtss_replication

GAMMAS = [0.0, 0.5, 1.0, 1.5]


def _data():
    rng = np.random.default_rng(np.random.SeedSequence([19, 6]))
    X0 = rng.normal(size=(160, 2))
    X1 = rng.normal(size=(30, 2)) + [1.5, 0.5]
    return np.vstack([X0, X1]), np.r_[np.zeros(160), np.ones(30)].astype(int)


def _selectors(root, **tg):
    common = dict(generator="jitter", gammas=GAMMAS, cv=3, random_state=root)
    return VTSSClassifier(**common), TGVTSSClassifier(**tg, **common)


def _same_fit(a, b):
    assert a.cv_results_.keys() == b.cv_results_.keys()
    for key, value in a.cv_results_.items():
        assert np.array_equal(value, b.cv_results_[key]), key
    assert a.gamma_ == b.gamma_ and a.n_synthetic_ == b.n_synthetic_
    assert np.array_equal(a.theta_, b.theta_)


@pytest.fixture
def counted(monkeypatch):
    """The number of batched validation fits made."""
    calls = []
    original = selection._validation_losses

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(selection, "_validation_losses", spy)
    return calls


def test_the_wide_branch_reads_vtss_validation_bit_for_bit(counted):
    X, y = _data()
    root = np.random.SeedSequence(7)
    # alpha = 1 rejects symmetry and any GQS of a generator off P1 exceeds 0: the "high_gqs"
    # branch, VTSS's grid
    wide = dict(alpha=1.0, gqs_threshold=0.0)
    lone = _selectors(root, **wide)[1].fit(X, y)
    assert lone.branch_ == "high_gqs" and len(counted) == 1
    shared = SharedValidations()
    vtss, tg = _selectors(root, **wide)
    vtss.fit(X, y, shared=shared)
    tg.fit(X, y, shared=shared)
    assert len(counted) == 2 and len(shared) == 1
    _same_fit(tg, lone)
    # a copy: changing one selector's curve leaves the other's alone
    tg.cv_results_["mean_validation_loss"][0] = np.nan
    assert np.isfinite(vtss.cv_results_["mean_validation_loss"][0])


def test_other_inputs_are_validated_afresh(counted):
    X, y = _data()
    shared = SharedValidations()
    vtss, tg = _selectors(np.random.SeedSequence(7), alpha=0.0)  # symmetry kept: a narrow grid
    vtss.fit(X, y, shared=shared)
    tg.fit(X, y, shared=shared)
    assert tg.branch_ == "symmetry" and len(shared) == 2
    other_seed, _ = _selectors(np.random.SeedSequence(8))
    other_seed.fit(X, y, shared=shared)
    other_rows, _ = _selectors(np.random.SeedSequence(7))
    other_rows.fit(X[::-1], y[::-1], shared=shared)
    assert len(shared) == 4 and len(counted) == 4
    _same_fit(tg, _selectors(np.random.SeedSequence(7), alpha=0.0)[1].fit(X, y))


def test_an_input_changed_in_place_or_an_unseeded_selector_is_validated_afresh(counted):
    X, y = _data()
    wide = dict(alpha=1.0, gqs_threshold=0.0)
    params = {"sd": 0.5}
    shared = SharedValidations()

    def pair(root):
        common = dict(generator="jitter", generator_params=params, gammas=GAMMAS, cv=3, random_state=root)
        return VTSSClassifier(**common), TGVTSSClassifier(**wide, **common)

    root = np.random.SeedSequence(7)
    vtss, tg = pair(root)
    vtss.fit(X, y, shared=shared)
    params["sd"] = 2.0  # the same dict, another generator: not VTSS's validation any more
    tg.fit(X, y, shared=shared)
    assert len(shared) == 2
    _same_fit(tg, pair(root)[1].fit(X, y))

    rows, shared = X.copy(), SharedValidations()
    vtss, tg = pair(root)
    vtss.fit(rows, y, shared=shared)
    rows[:5] += 1.0  # the same array, other rows
    tg.fit(rows, y, shared=shared)
    assert len(shared) == 2
    _same_fit(tg, pair(root)[1].fit(rows, y))

    before, shared = len(counted), SharedValidations()
    vtss, tg = pair(None)  # unseeded: each fit draws its own splits and pool
    vtss.fit(X, y, shared=shared)
    tg.fit(X, y, shared=shared)
    assert len(shared) == 0 and len(counted) == before + 2


def test_a_replication_with_shared_validations_is_bit_identical(monkeypatch, counted):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "study=asym_consistent_vtss",
                "design.n1=30",
                "design.kappa=5",
                "design.reps=2",
                "design.gammas=[0.0,1.0,2.0,3.0]",
                "selection.gammas=[0.0,1.0,2.0]",
                "selection.cv=2",
                "selection.n_boot=19",
                # symmetry rejected and the generator called biased: TG-VTSS takes VTSS's grid
                "selection.alpha=1.0",
                "selection.gqs_threshold=0.0",
            ],
        )
    vc = build_vtss_cell(validate(OmegaConf.to_container(cfg, resolve=True)))
    shared = vtss_replication(vc, 0)
    assert "high_gqs" in set(shared.loc[shared["method"].str.startswith("tg_vtss"), "branch"])
    with_sharing = len(counted)
    monkeypatch.setattr(SharedValidations, "curve", lambda self, est, X, y, gammas, validate: validate())
    alone = vtss_replication(vc, 0)
    # the study's selectors are seeded and picklable: some of their validations were read
    assert with_sharing < len(counted) - with_sharing
    assert shared.equals(alone)
    pd.testing.assert_frame_equal(shared, alone, check_exact=True)
