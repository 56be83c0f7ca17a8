"""Tests of the synthetic-size selectors (simstudy.selection, THEORY.md sections 4-5).

References used here, independent of the code under test:

* validation losses and final fits are recomputed by scikit-learn's LogisticRegression
  (unpenalised Newton-Cholesky) on explicitly concatenated real rows and pool prefixes captured
  by a spy generator, scored with sklearn.metrics.log_loss;
* fold sizes and fold-rescaled candidate sizes are worked out by hand for a configuration with
  uneven folds (so the rounding rule matters);
* the aligned biased design (P0 = N(0, I), P1 = N(e1, I), synthetic law N(a e1, I) up to
  estimation) has, for least squares without intercept, the closed form of section 3:
  theta* = mu / 3, g = 2 mu / 3, psi = 2 mu (2/3 + a^2/3 - a), so c = 2 + a^2 - 3a and the bias
  cancels at gamma* = 1 / (1 - c); VTSS's mean choice over Monte Carlo replications is compared
  with it using the MCSE;
* a locally symmetric logistic design built here from the study-2 recipe (THEORY.md section
  6.2) for the TG-VTSS branch.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from scipy.special import expit
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import simstudy  # noqa: F401
import simstudy.selection as selection
from simstudy.diagnostics import wald_symmetry_test
from simstudy.fitting import GLM
from simstudy.generators import FittedGenerator, Generator, Smote
from simstudy.selection import (
    DEFAULT_GAMMAS,
    CostSensitiveClassifier,
    FixedSizeClassifier,
    ReweightedClassifier,
    TGVTSSClassifier,
    VTSSClassifier,
    balanced_loss,
    resolve_generator,
    stratified_splits,
)

Z = 4.0
N0, N1, D = 300, 40, 3
GAMMAS = [0.0, 0.25, 0.5, 1.0, 1.5]


def rng_from(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def two_gaussians(rng, n0=N0, n1=N1, mu1=(1.2, -0.6, 0.4)):
    mu1 = np.asarray(mu1, dtype=float)
    X = np.vstack([rng.standard_normal((n0, mu1.size)), rng.standard_normal((n1, mu1.size)) + mu1])
    return X, np.r_[np.zeros(n0, dtype=int), np.ones(n1, dtype=int)]


@pytest.fixture(scope="module")
def data():
    return two_gaussians(rng_from(2024))


class Spy(Generator):
    """Wraps a generator and records every fit's data and every pool it hands out."""

    name = "spy"
    data_dependent = True

    def __init__(self, inner: Generator):
        self.inner = inner
        self.fits: list[tuple[np.ndarray, np.ndarray]] = []
        self.pools: list[np.ndarray] = []

    def fit(self, X1, X0, rng):
        self.fits.append((np.array(X1), np.array(X0)))
        return _SpyFitted(self.inner.fit(X1, X0, rng), self)


class _SpyFitted(FittedGenerator):
    def __init__(self, inner: FittedGenerator, log: Spy):
        self.inner, self.log, self.dim = inner, log, inner.dim

    def _sample(self, m, rng):
        pool = self.inner.sample(m, rng)
        self.log.pools.append(pool.copy())
        return pool


class TowardMajority(Generator):
    """Synthetic law N(a x̄1 + (1 - a) x̄0, I): the minority mean pulled toward the majority
    (section 6 study 3 uses the fixed mean a mu1; here it is estimated)."""

    name = "toward_majority"
    data_dependent = True

    def __init__(self, a: float):
        self.a = a

    def fit(self, X1, X0, rng):
        return _ShiftedNormal(self.a * X1.mean(axis=0) + (1 - self.a) * X0.mean(axis=0))


class _ShiftedNormal(FittedGenerator):
    def __init__(self, mean):
        self.mean, self.dim = mean, mean.size

    def _sample(self, m, rng):
        return rng.standard_normal((m, self.dim)) + self.mean


def sklearn_logistic(X, y, sample_weight=None):
    ref = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=200)
    return ref.fit(X, y, sample_weight=sample_weight)


def sklearn_balanced_log_loss(ref, X, y):
    p = ref.predict_proba(X)
    return 0.5 * log_loss(y[y == 0], p[y == 0], labels=[0, 1]) + 0.5 * log_loss(y[y == 1], p[y == 1], labels=[0, 1])


# ---------------------------------------------------------------------------------------------
# splits and the balanced loss


@pytest.mark.parametrize("cv", ["holdout", 4, ("repeated", 3, 2)])
def test_splits_partition_and_stratify(data, cv):
    _, y = data
    splits = stratified_splits(y, cv=cv, test_size=0.2, random_state=3)
    for split in splits:
        assert np.intersect1d(split.train, split.validation).size == 0
        assert np.array_equal(np.union1d(split.train, split.validation), np.arange(y.size))
    if cv == "holdout":
        (split,) = splits
        assert np.bincount(y[split.validation]).tolist() == [60, 8]  # round(0.2 n_k)
        return
    K, repeats = (cv, 1) if isinstance(cv, int) else cv[1:]
    assert len(splits) == K * repeats
    for r in range(repeats):
        folds = [s for s in splits if s.repeat == r]
        held = np.concatenate([s.validation for s in folds])
        assert np.array_equal(np.sort(held), np.arange(y.size))  # each row held out once
        for k in (0, 1):
            counts = sorted(int(np.sum(y[s.validation] == k)) for s in folds)
            assert counts == sorted(len(c) for c in np.array_split(np.arange(np.sum(y == k)), K))
    if repeats > 1:
        assert not np.array_equal(splits[0].validation, splits[K].validation)
    again = stratified_splits(y, cv=cv, test_size=0.2, random_state=3)
    assert all(np.array_equal(a.validation, b.validation) for a, b in zip(splits, again))


def test_balanced_loss_matches_weighted_sklearn_log_loss():
    rng = rng_from(1)
    y = np.r_[np.zeros(70), np.ones(13)]
    eta = rng.normal(size=(y.size, 4))
    got = balanced_loss("logistic", eta, y)
    w = np.where(y == 1, 0.5 / 13, 0.5 / 70)
    want = [log_loss(y, expit(e), sample_weight=w) for e in eta.T]
    np.testing.assert_allclose(got, want, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# VTSS mechanics: one pool per split, prefixes, rescaling, the argmin, the refit


def test_validation_uses_prefixes_of_one_pool_per_split_and_matches_refits(data):
    X, y = data
    spy = Spy(Smote(k=5))
    est = VTSSClassifier(generator=spy, gammas=GAMMAS, cv=3, random_state=11).fit(X, y)
    res = est.cv_results_
    splits = stratified_splits(y, cv=3, random_state=11)
    # one fit and one draw per split (of the largest rescaled size), then the final pair
    assert len(spy.fits) == len(spy.pools) == len(splits) + 1
    assert [len(p) for p in spy.pools[:-1]] == res["split_n_tilde"].max(axis=1).tolist()
    for s, split in enumerate(splits):
        X1_fit, X0_fit = spy.fits[s]
        y_tr = y[split.train]
        # the generator saw the fitting part only, never a held-out row
        np.testing.assert_array_equal(X1_fit, X[split.train][y_tr == 1])
        np.testing.assert_array_equal(X0_fit, X[split.train][y_tr == 0])
        assert res["split_gap"][s] == np.sum(y_tr == 0) - np.sum(y_tr == 1)
        pool = spy.pools[s]
        for g, m in enumerate(res["split_n_tilde"][s]):
            Xg = np.vstack([X[split.train], pool[:m]])
            yg = np.r_[y_tr, np.ones(m, dtype=int)]
            ref = sklearn_logistic(Xg, yg)
            want = sklearn_balanced_log_loss(ref, X[split.validation], y[split.validation])
            assert res["split_validation_loss"][s, g] == pytest.approx(want, rel=1e-7)
    np.testing.assert_allclose(res["mean_validation_loss"], res["split_validation_loss"].mean(0))
    best = int(np.argmin(res["mean_validation_loss"]))
    assert est.gamma_ == GAMMAS[best]
    assert est.n_synthetic_ == round(GAMMAS[best] * (N0 - N1))
    # the final model: every real row plus n_synthetic_ fresh points from a generator fitted
    # on all real rows (not a fold pool's prefix)
    X1_fit, X0_fit = spy.fits[-1]
    assert (len(X1_fit), len(X0_fit)) == (N1, N0)
    final_pool = spy.pools[-1]
    assert len(final_pool) == est.n_synthetic_
    if est.n_synthetic_:
        assert not any(np.allclose(final_pool[0], p[0]) for p in spy.pools[:-1])
    ref = sklearn_logistic(np.vstack([X, final_pool]), np.r_[y, np.ones(len(final_pool))])
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-6, atol=1e-8)


def test_fold_rescaling_rule_on_uneven_folds():
    # n0 = 403, n1 = 41, K = 5: class 0 chunks 81, 81, 81, 80, 80 and class 1 chunks
    # 9, 8, 8, 8, 8, so the fitting parts have gaps 290, 289, 289, 290, 290; gap = 362 and the
    # candidates gamma = 0.05, 0.5, 1, 1.5 give n~ = 18, 181, 362, 543. Rescaled:
    # gap 290: 18*290/362 = 14.42 -> 14, 145, 290, 543*290/362 = 435;
    # gap 289: 14.37 -> 14, 144.5 -> 144 (half to even), 289, 433.5 -> 434.
    X, y = two_gaussians(rng_from(5), n0=403, n1=41)
    spy = Spy(Smote(k=5))
    est = VTSSClassifier(generator=spy, family="squared", gammas=[0.05, 0.5, 1.0, 1.5], cv=5, random_state=0).fit(X, y)
    res = est.cv_results_
    assert res["n_tilde"].tolist() == [18, 181, 362, 543]
    assert res["split_gap"].tolist() == [290, 289, 289, 290, 290]
    row290, row289 = [14, 145, 290, 435], [14, 144, 289, 434]
    assert res["split_n_tilde"].tolist() == [row290, row289, row289, row290, row290]
    assert [len(p) for p in spy.pools[:5]] == [435, 434, 434, 435, 435]


def test_one_batched_fit_for_all_candidates_and_splits(data, monkeypatch):
    X, y = data
    calls = []
    real = selection.fit_glm

    def counting(*args, **kwargs):
        calls.append(np.shape(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "fit_glm", counting)
    VTSSClassifier(gammas=GAMMAS, cv=("repeated", 3, 2), random_state=1).fit(X, y)
    assert len(calls) == 2  # the validation (all splits x candidates) and the final refit
    assert calls[0][:2] == (6, len(GAMMAS))


def test_ties_go_to_the_smallest_gamma(data):
    X, y = data
    # five candidates that round to n~ = 390 in the full data and to the same size in every
    # split, so their losses tie exactly; given unsorted, the smallest must win
    ties = [1.50004, 1.5, 1.50003, 1.50001, 1.50002]
    est = VTSSClassifier(gammas=ties, cv=3, random_state=2).fit(X, y)
    res = est.cv_results_
    assert res["gamma"].tolist() == sorted(ties)
    assert np.unique(res["n_tilde"]).tolist() == [390]
    assert np.unique(res["mean_validation_loss"]).size == 1
    assert est.gamma_ == 1.5


def test_split_streams_depend_only_on_seed_repeat_and_fold(data):
    X, y = data
    spies = [Spy(Smote(k=5)), Spy(Smote(k=5))]
    VTSSClassifier(generator=spies[0], gammas=GAMMAS, cv=3, random_state=9).fit(X, y)
    VTSSClassifier(generator=spies[1], gammas=GAMMAS, cv=("repeated", 3, 2), random_state=9).fit(X, y)
    for a, b in zip(spies[0].pools[:3], spies[1].pools[:3]):
        np.testing.assert_array_equal(a, b)
    # and the next repeat draws afresh
    assert not np.allclose(spies[1].pools[0][:5], spies[1].pools[3][:5])


def test_same_random_state_same_fit_and_other_seed_other_splits(data):
    X, y = data
    a = VTSSClassifier(gammas=GAMMAS, cv=3, random_state=4).fit(X, y)
    b = VTSSClassifier(gammas=GAMMAS, cv=3, random_state=4).fit(X, y)
    c = VTSSClassifier(gammas=GAMMAS, cv=3, random_state=5).fit(X, y)
    np.testing.assert_array_equal(a.theta_, b.theta_)
    np.testing.assert_array_equal(a.cv_results_["split_validation_loss"], b.cv_results_["split_validation_loss"])
    assert not np.array_equal(a.cv_results_["split_validation_loss"], c.cv_results_["split_validation_loss"])


# ---------------------------------------------------------------------------------------------
# behaviour the theory predicts


def aligned_data(r: int, n0=4000, n1=200):
    rng = rng_from(77, r)
    return two_gaussians(rng, n0, n1, mu1=(1.0, 0.0))


@pytest.mark.parametrize("family", ["squared", "logistic"])
def test_vtss_goes_above_full_balancing_for_an_aligned_biased_generator(family):
    # without intercept a mean pulled toward the majority is aligned with g (c > 0), so
    # section 3 asks for more than full balancing: gamma* = 1/(1 - c) ~ 1.64 (squared, a = 0.7)
    for r in range(3):
        X, y = aligned_data(r)
        est = VTSSClassifier(generator=TowardMajority(0.7), family=family, intercept=False, cv=5, random_state=r).fit(
            X, y
        )
        assert est.gamma_ > 1.0, (r, est.gamma_)


def test_vtss_mean_choice_matches_the_bias_cancelling_size():
    a = 0.7
    c = 2 + a**2 - 3 * a
    gamma_star = 1 / (1 - c)
    picks = np.array(
        [
            VTSSClassifier(generator=TowardMajority(a), family="squared", intercept=False, cv=5, random_state=r)
            .fit(*aligned_data(r))
            .gamma_
            for r in range(30)
        ]
    )
    mcse = picks.std(ddof=1) / np.sqrt(picks.size)
    assert abs(picks.mean() - gamma_star) / mcse < Z, (picks.mean(), mcse, gamma_star)


def test_with_an_intercept_the_same_generator_is_not_aligned():
    # with an intercept the shifted mean moves psi mostly along the intercept, at an obtuse angle
    # to g (population c < 0, bias-optimal gamma ~ 0.8, total-risk argmin 0.9): VTSS stays
    # below full balancing, as section 3's orthogonal / anti-aligned cases predict
    picks = [
        VTSSClassifier(generator=TowardMajority(0.7), family="logistic", intercept=True, cv=5, random_state=r)
        .fit(*aligned_data(r))
        .gamma_
        for r in range(2)
    ]
    assert max(picks) < 1.0, picks


def symmetric_logistic(rng, n0=2000, n1=300, a=3.0, b=1.0):
    """Study 2's recipe with d = 3: X = (T, W2, W3), T = -a w.p. alpha else b, P(Y=1|X) =
    sigmoid(T), W2 = N(0,1) + 2.5 s, W3 = N(0,1); alpha makes each class's mean score vanish at
    theta = e1 (no intercept), so g = 0. Each class is drawn from its own conditional law."""
    sa, sb = expit(-a), expit(b)
    alpha = b * sb * (1 - sb) / (a * sa * (1 - sa) + b * sb * (1 - sb))

    def draw(n, k):
        weight = np.array([alpha, 1 - alpha]) * (np.array([sa, sb]) if k else np.array([1 - sa, 1 - sb]))
        t = np.where(rng.random(n) < weight[0] / weight.sum(), -a, b)
        s = rng.choice([-1.0, 1.0], n)
        return np.column_stack([t, rng.standard_normal(n) + 2.5 * s, rng.standard_normal(n)])

    X = np.vstack([draw(n0, 0), draw(n1, 1)])
    return X, np.r_[np.zeros(n0, dtype=int), np.ones(n1, dtype=int)]


def test_tgvtss_restricts_to_small_gamma_under_symmetry():
    X, y = symmetric_logistic(rng_from(31))
    est = TGVTSSClassifier(generator="jitter", intercept=False, cv=5, random_state=0).fit(X, y)
    assert est.wald_.p_value >= 0.05
    assert est.branch_ == "symmetry"
    # the test ran with the estimator's own model (logistic, no intercept)
    want = wald_symmetry_test(X[y == 0], X[y == 1], GLM("logistic", intercept=False))
    assert est.wald_.statistic == pytest.approx(float(want.statistic), rel=1e-12)
    np.testing.assert_allclose(est.candidate_gammas_, [0, 0.05, 0.1, 0.15, 0.2])
    np.testing.assert_allclose(est.cv_results_["gamma"], est.candidate_gammas_)
    assert est.gamma_ <= 0.2
    assert est.diagnostics_ is None and est.gqs_ is None and est.gamma_tg_ is None


def test_tgvtss_branches_under_asymmetry():
    # the aligned design in the symmetric test's shape (n0 = 2000, n1 = 300, d = 3)
    X, y = two_gaussians(rng_from(78), 2000, 300, mu1=(1.0, 0.0, 0.0))
    common = dict(generator=TowardMajority(0.7), intercept=False, random_state=3)
    # a threshold no GQS reaches, and 0, which every GQS of a generator off P1 exceeds
    low = TGVTSSClassifier(gqs_threshold=1e300, **common).fit(X, y)
    assert low.wald_.p_value < 0.05
    assert low.branch_ == "low_gqs"
    assert low.gamma_tg_ == low.diagnostics_.target.gamma and low.gamma_tg_ > 1
    window = np.arange(-4, 5) * 0.05
    want = np.unique(np.round(np.r_[1 + window, low.gamma_tg_ + window], 10))
    np.testing.assert_allclose(low.candidate_gammas_, want)
    assert low.gamma_ in low.candidate_gammas_
    high = TGVTSSClassifier(gqs_threshold=0.0, **common).fit(X, y)
    assert high.branch_ == "high_gqs"
    np.testing.assert_allclose(high.candidate_gammas_, DEFAULT_GAMMAS)
    assert high.gqs_ == low.gqs_  # same diagnostics stream


# ---------------------------------------------------------------------------------------------
# baselines


def test_reweighted_matches_sklearn_balanced_class_weight(data):
    X, y = data
    est = ReweightedClassifier().fit(X, y)
    ref = sklearn_logistic(X, y, sample_weight=np.where(y == 1, (N0 + N1) / (2 * N1), (N0 + N1) / (2 * N0)))
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-6)
    np.testing.assert_allclose(est.class_weight_, [(N0 + N1) / (2 * N0), (N0 + N1) / (2 * N1)])


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_fixed_size(data, gamma):
    X, y = data
    spy = Spy(Smote(k=5))
    est = FixedSizeClassifier(gamma=gamma, generator=spy, random_state=0).fit(X, y)
    assert est.n_synthetic_ == round(gamma * (N0 - N1))
    synth = spy.pools[0] if spy.pools else np.empty((0, D))
    assert len(synth) == est.n_synthetic_
    assert (est.generator_ is None) == (gamma == 0)
    ref = sklearn_logistic(np.vstack([X, synth]), np.r_[y, np.ones(len(synth))])
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6)


def test_cost_sensitive_validates_weights_like_vtss(data):
    X, y = data
    weights = [1.0, 2.0, 4.0, 7.5]
    est = CostSensitiveClassifier(weights=weights, cv=3, random_state=6).fit(X, y)
    res = est.cv_results_
    for s, split in enumerate(stratified_splits(y, cv=3, random_state=6)):
        for g, w1 in enumerate(weights):
            ref = sklearn_logistic(X[split.train], y[split.train], sample_weight=np.where(y[split.train] == 1, w1, 1.0))
            want = sklearn_balanced_log_loss(ref, X[split.validation], y[split.validation])
            assert res["split_validation_loss"][s, g] == pytest.approx(want, rel=1e-7)
    assert est.weight_ == weights[int(np.argmin(res["mean_validation_loss"]))]
    ref = sklearn_logistic(X, y, sample_weight=np.where(y == 1, est.weight_, 1.0))
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6)


def test_cost_sensitive_default_grid_is_the_gamma_grid_in_weight_units(data):
    X, y = data
    est = CostSensitiveClassifier(cv=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.cv_results_["weight"], 1 + DEFAULT_GAMMAS * (N0 - N1) / N1)


# ---------------------------------------------------------------------------------------------
# predictions


@pytest.mark.parametrize("family", ["logistic", "probit", "squared"])
def test_predictions_follow_the_link(data, family):
    X, y = data
    est = ReweightedClassifier(family=family).fit(X, y)
    eta = X @ est.coef_[0] + est.intercept_[0]
    p1 = {"logistic": expit(eta), "probit": norm.cdf(eta), "squared": np.clip(eta, 0, 1)}[family]
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], p1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(X), (p1 > 0.5).astype(int))
    np.testing.assert_array_equal(est.decision_function(X) > 0, p1 > 0.5)
    assert est.score(X, y) == accuracy_score(y, p1 > 0.5)
    want = 0.5 * log_loss(y[y == 0], np.clip(p1[y == 0], 1e-15, 1 - 1e-15), labels=[0, 1]) + 0.5 * log_loss(
        y[y == 1], np.clip(p1[y == 1], 1e-15, 1 - 1e-15), labels=[0, 1]
    )
    assert est.balanced_log_loss(X, y) == pytest.approx(want, rel=1e-10)
    if family == "logistic":
        assert est.balanced_loss(X, y) == pytest.approx(want, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# scikit-learn API


ALL = [
    VTSSClassifier(gammas=GAMMAS, cv=3, random_state=0),
    TGVTSSClassifier(gammas=GAMMAS, cv=3, random_state=0),
    FixedSizeClassifier(random_state=0),
    ReweightedClassifier(),
    CostSensitiveClassifier(cv=3, random_state=0),
]

# the checks of sklearn's check_estimator that apply: the others feed balanced or multiclass
# data, which these estimators reject by contract (labels 0/1, class 1 the strict minority);
# their substance is covered by the tests of this module
SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_estimators_empty_data_messages",
    "check_fit1d",
    "check_requires_y_none",
    "check_supervised_y_no_nan",
    "check_complex_data",
]


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_checks(est, check):
    getattr(estimator_checks, check)(type(est).__name__, clone(est))


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
def test_sklearn_contract_on_imbalanced_data(data, est):
    X, y = data
    params = est.get_params()
    fresh = clone(est)
    assert fresh.get_params() == params or repr(fresh.get_params()) == repr(params)
    assert fresh.set_params(**params).get_params().keys() == params.keys()
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    assert fresh.fit(X, y) is fresh
    assert repr(fresh.get_params()) == repr(params)  # fit changes no parameter
    assert fresh.n_features_in_ == D and fresh.classes_.tolist() == [0, 1]
    proba = fresh.predict_proba(X)
    assert proba.shape == (len(y), 2) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    order = rng_from(8).permutation(len(y))
    np.testing.assert_array_equal(fresh.predict_proba(X[order]), proba[order])
    restored = pickle.loads(pickle.dumps(fresh))
    np.testing.assert_array_equal(restored.predict_proba(X), proba)
    with pytest.raises(ValueError, match="X has 2 features"):  # scikit-learn's wording
        fresh.predict(X[:, :2])


def test_in_pipelines_and_with_an_imblearn_sampler(data):
    X, y = data
    X = X * [100.0, 0.01, 1.0] + 5.0  # units a scaler should undo
    for make in (Pipeline, ImbPipeline):
        pipe = make(
            [
                ("scale", StandardScaler()),
                ("clf", VTSSClassifier(generator=SMOTE(k_neighbors=3), gammas=GAMMAS, cv=3, random_state=0)),
            ]
        )
        pipe.fit(X, y)
        np.testing.assert_allclose(pipe.predict_proba(X).sum(axis=1), 1.0)
        assert pipe.score(X, y) > 0.5
    params = pipe.get_params()
    assert params["clf__generator__k_neighbors"] == 3
    pipe.set_params(clf__generator__k_neighbors=4, clf__random_state=1)
    cloned = clone(pipe)
    assert cloned.get_params()["clf__generator__k_neighbors"] == 4
    cloned.fit(X, y)
    assert cloned.named_steps["clf"].generator_.sampler_kwargs["k_neighbors"] == 4


def test_resolve_generator():
    assert resolve_generator("smote", {"k": 3}) == Smote(k=3)
    inner = Smote(k=2)
    assert resolve_generator(inner) is inner
    wrapped = resolve_generator(SMOTE(k_neighbors=2, random_state=5))
    assert wrapped.sampler == "SMOTE" and wrapped.sampler_kwargs["k_neighbors"] == 2
    assert "random_state" not in wrapped.sampler_kwargs


BAD = [
    (VTSSClassifier(), "y_labels", "labels 0 and 1"),
    (VTSSClassifier(), "balanced", "minority"),
    (VTSSClassifier(gammas=[0.5, -1.0]), None, "gammas"),
    (VTSSClassifier(gammas=[]), None, "gammas"),
    (VTSSClassifier(cv="loo"), None, "cv"),
    (VTSSClassifier(cv=1), None, "cv"),
    (VTSSClassifier(cv=("repeated", 5)), None, "cv"),
    (VTSSClassifier(cv=100), None, "K = 100"),
    (VTSSClassifier(test_size=1.5), None, "test_size"),
    (VTSSClassifier(random_state=-1), None, "random_state"),
    (VTSSClassifier(generator=42), None, "generator"),
    (VTSSClassifier(generator=Smote(), generator_params={"k": 3}), None, "generator_params"),
    (VTSSClassifier(generator="nope"), None, "unknown generator"),
    (VTSSClassifier(family="nope"), None, "unknown family"),
    (VTSSClassifier(intercept="yes"), None, "intercept"),
    (VTSSClassifier(ridge=-1.0), None, "ridge"),
    (TGVTSSClassifier(alpha=2.0), None, "alpha"),
    # the command line's rule for selection.gqs_threshold: a finite number >= 0
    (TGVTSSClassifier(generator="smote", cv=3, gqs_threshold=-1), None, "gqs_threshold"),
    (TGVTSSClassifier(gqs_threshold=np.inf), None, "gqs_threshold"),
    (TGVTSSClassifier(gqs_threshold=-np.inf), None, "gqs_threshold"),
    (TGVTSSClassifier(gqs_threshold=True), None, "gqs_threshold"),
    (FixedSizeClassifier(gamma=-1.0), None, "gamma"),
    (CostSensitiveClassifier(weights=[0.0, 1.0]), None, "weights"),
]


@pytest.mark.parametrize("est, bad_data, message", BAD)
def test_bad_input_raises_value_error(data, est, bad_data, message):
    X, y = data
    if bad_data == "y_labels":
        y = np.where(y == 1, 2, 0)
    elif bad_data == "balanced":
        X, y = X[: 2 * N1 - 40], np.r_[np.zeros(N1 - 20, dtype=int), np.ones(N1 - 20, dtype=int)]
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)
