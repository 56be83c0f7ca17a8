"""The selectors with a network model: ``VTSSClassifier(model=MLPClassifier(...))`` and
``TGVTSSClassifier(model=...)``.

Independent references used here:

* every batched candidate network against ``clone(model).fit`` run alone on that candidate's
  rows (the documented contract of ``MLPClassifier.candidate_logits``);
* the selector's validation curve against the held-out balanced log-loss of such lone fits on
  the selector's own splits and pools;
* the TG diagnostics against ``wald_symmetry_test`` on a ``FeatureGLM`` built by hand from a
  lone balanced pilot's hidden layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import simstudy  # noqa: F401
from simstudy import selection
from simstudy.diagnostics import wald_symmetry_test
from simstudy.families import get_family
from simstudy.network import HiddenLayer, MLPClassifier
from simstudy.selection import FeatureGLM, TGVTSSClassifier, VTSSClassifier

NET = MLPClassifier(hidden=(6,), epochs=25, learning_rate=1e-2, random_state=0)
# batched and lone float32 trainings may round differently (simstudy.network's docstring)
TOL = 2e-4


def _data(seed: int = 0, n0: int = 160, n1: int = 24):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n0, 3)), rng.normal(size=(n1, 3)) + [1.2, 0.0, 0.0]])
    return X, np.r_[np.zeros(n0), np.ones(n1)].astype(np.int64)


def _lone_logits(X, y, w, rows):
    on = w > 0
    return clone(NET).fit(X[on], y[on], sample_weight=w[on]).decision_function(rows)


def test_candidate_logits_are_lone_fits():
    X, y = _data()
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(30, 3)) + 1.0
    Xb, yb = np.vstack([X, pool]), np.r_[y, np.ones(30)]
    W = np.zeros((3, len(yb)))
    W[:, : len(y)] = 1.0
    W[1, len(y) : len(y) + 10] = 1.0
    W[2, len(y) :] = 2.0  # weights other than 0/1 reach the training
    held = [rng.normal(size=(7, 3)), rng.normal(size=(5, 3))]
    blocks = [(Xb, yb, W), (X[:100], y[:100] * 0 + (np.arange(100) < 20), np.ones((1, 100)))]
    got = NET.candidate_logits(blocks, held)
    assert [g.shape for g in got] == [(3, 7), (1, 5)]
    for (Xs, ys, Ws), rows, logits in zip(blocks, held, got, strict=True):
        for g, w in enumerate(Ws):
            np.testing.assert_allclose(logits[g], _lone_logits(Xs, ys, w, rows), rtol=TOL, atol=TOL)


def test_vtss_validation_curve_and_final_fit_are_lone_fits():
    X, y = _data()
    est = VTSSClassifier(model=NET, gammas=[0.0, 0.5, 1.0], cv=3, random_state=4).fit(X, y)
    root = selection._root_seed(4)
    splits = selection.stratified_splits(y, 3, 0.2, root)
    n_tilde = est.cv_results_["n_tilde"]
    views = selection._split_views(X, splits)
    blocks, _, _ = selection._synthetic_blocks(views, y, selection.resolve_generator("smote"), n_tilde, splits, root)
    want = np.array(
        [
            [selection.balanced_loss("logistic", _lone_logits(Xs, ys, w, X[s.validation]), y[s.validation]) for w in Ws]
            for (Xs, ys, Ws), s in zip(blocks, splits, strict=True)
        ]
    )
    np.testing.assert_allclose(est.cv_results_["split_validation_loss"], want, rtol=TOL, atol=TOL)
    assert "n_separated" not in est.cv_results_
    assert est.gamma_ == [0.0, 0.5, 1.0][int(np.argmin(want.mean(axis=0)))]
    # the final model is clone(model) fitted on the real rows plus the final synthetic rows
    assert isinstance(est.model_, MLPClassifier) and est.model_ is not NET
    assert est.model_.n_features_in_ == 3 and not hasattr(est, "theta_")
    p = est.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-est.model_.decision_function(X))))
    assert np.isfinite(est.balanced_log_loss(X, y))


def test_gamma_zero_final_model_is_the_plain_network():
    X, y = _data(2)
    est = VTSSClassifier(model=NET, gammas=[0.0], cv=2, random_state=0).fit(X, y)
    assert est.n_synthetic_ == 0 and est.generator_ is None
    np.testing.assert_array_equal(est.decision_function(X), clone(NET).fit(X, y).decision_function(X))


def test_tg_diagnostics_run_on_the_pilots_hidden_layer():
    X, y = _data(3, n0=200, n1=40)
    est = TGVTSSClassifier(model=NET, gammas=[0.0, 1.0], cv=2, random_state=5).fit(X, y)
    n, n1 = len(y), int(y.sum())
    pilot = clone(NET).fit(X, y, sample_weight=np.where(y == 1, n / (2 * n1), n / (2 * (n - n1))))
    np.testing.assert_array_equal(est.pilot_.params_[0][0], pilot.params_[0][0])
    glm = FeatureGLM(
        get_family("logistic"),
        intercept=True,
        ridge=1e-8,
        feature_map=HiddenLayer.of(pilot.params_, X, pilot.mean_, pilot.scale_),
    )
    want = wald_symmetry_test(X[y == 0], X[y == 1], glm)
    np.testing.assert_allclose(est.wald_.statistic, want.statistic, rtol=1e-10)
    assert est.branch_ in ("symmetry", "low_gqs", "high_gqs")
    assert est.gamma_ in est.candidate_gammas_


def test_refit_between_glm_and_network_leaves_nothing_stale():
    X, y = _data(4)
    est = TGVTSSClassifier(model=NET, gammas=[0.0, 1.0], cv=2, random_state=0).fit(X, y)
    assert hasattr(est, "pilot_") and not hasattr(est, "theta_")
    est.set_params(model=None).fit(X, y)
    assert hasattr(est, "theta_") and not hasattr(est, "pilot_")
    est.set_params(model=NET).fit(X, y)
    assert not hasattr(est, "theta_") and not hasattr(est, "fit_info_")
    assert clone(est).get_params()["model"] is not NET  # sklearn clones the nested estimator


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "mlp"}, "model must be None"),
        ({"model": NET, "family": "probit"}, "family='logistic'"),
        ({"model": NET, "feature_map": np.tanh}, "feature_map=None"),
        ({"model": NET, "intercept": 1}, "intercept must be True or False"),
    ],
)
def test_bad_network_settings_are_refused(params, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        VTSSClassifier(gammas=[0.0], cv=2, **params).fit(X, y)
