"""Tests of the network study's pieces: the bent heavy-tailed process, the neighbourhood jitter,
ADASYN's exact count, and the MLP trainer (simstudy.network).

Independent references used here:

* the process's minority rows are recomputed from the same rng draws with the design's formulas
  written out again (AUTHORS_DESIGNS.md E), and the majority's marginals are tested against
  scipy's t(2.2), the Gaussian-with-outliers mixture and the log-normal (Kolmogorov-Smirnov);
* the jitter's scales against scikit-learn's NearestNeighbors;
* the vmapped trainer against the same training run alone and against a plain optax loop
  (one Python iteration per epoch, nothing jitted or vmapped).
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats
from scipy.special import expit
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors

import simstudy  # noqa: F401
from simstudy import network as nw
from simstudy.diagnostics import wald_symmetry_test
from simstudy.generators import ImblearnGenerator, LocalJitter, make_generator
from simstudy.processes import make_process
from simstudy.selection import FeatureGLM

# ---------------------------------------------------------------------------------------------
# the process


def test_minority_rows_follow_the_design_formulas():
    process = make_process("bent_heavy_tailed", mc_size=100)
    n = 500
    got = process.law1.sample(n, np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the same draws, in the documented order
    t = rng.standard_t(2.2, size=(n, 3)) + 0.12
    g = rng.standard_normal((n, 3))
    g = g * np.where(rng.random((n, 3)) < 0.10, 6.0, 1.0) + 0.16
    lat = 0.10 + 1.10 * rng.standard_normal((n, 4))
    t1 = t[:, 0]
    gate = 1 / (1 + np.exp(-2.2 * (np.abs(t1) - 0.65)))
    s = 0.70 + 0.30 / (1 + np.exp(-g[:, 2]))
    tail = np.tanh(0.9 * t1) * gate * s
    t[:, 1] = t[:, 1] + 1.35 * np.tanh(0.8 * t1) * s
    t[:, 2] = t[:, 2] + 0.75 * np.tanh(t[:, 1] - 0.45 * t1)
    g[:, 0] = g[:, 0] + 1.45 * tail
    g[:, 1] = g[:, 1] + 0.80 * np.tanh(t[:, 1])
    lat[:, 0] = lat[:, 0] + 0.75 * tail
    lat[:, 1] = lat[:, 1] + 0.55 * np.tanh(g[:, 0])
    np.testing.assert_allclose(got, np.hstack([t, g, np.exp(lat)]), rtol=1e-12, atol=1e-12)


def test_unbent_minority_is_the_shifted_majority():
    process = make_process("bent_heavy_tailed", bent=False, mc_size=100)
    X0 = process.law0.sample(300, np.random.default_rng(5))
    X1 = process.law1.sample(300, np.random.default_rng(5))
    shift = np.r_[np.full(3, 0.12), np.full(3, 0.16)]
    np.testing.assert_allclose(X1[:, :6] - X0[:, :6], np.broadcast_to(shift, (300, 6)), atol=1e-12)
    # latent N(0.1, 1.1^2) against N(0, 1.1^2) from the same normal draws: a factor e^0.1
    np.testing.assert_allclose(X1[:, 6:] / X0[:, 6:], np.exp(0.10), rtol=1e-12)


def test_majority_marginals():
    X = make_process("bent_heavy_tailed", mc_size=100).law0.sample(20000, np.random.default_rng(11))
    for j in range(3):
        assert stats.kstest(X[:, j], stats.t(2.2).cdf).pvalue > 1e-3

    def outliers(x):
        return 0.9 * stats.norm.cdf(x) + 0.1 * stats.norm.cdf(x / 6.0)

    for j in range(3, 6):
        assert stats.kstest(X[:, j], outliers).pvalue > 1e-3
    for j in range(6, 10):
        assert stats.kstest(np.log(X[:, j]), stats.norm(0.0, 1.10).cdf).pvalue > 1e-3
    # the test can fail: the t coordinates are not Gaussian
    assert stats.kstest(X[:, 0], stats.norm.cdf).pvalue < 1e-6


def test_process_refuses_bad_options():
    with pytest.raises(ValueError, match="outlier_probability"):
        make_process("bent_heavy_tailed", outlier_probability=1.5)
    with pytest.raises(ValueError, match="df"):
        make_process("bent_heavy_tailed", df=0.0)


# ---------------------------------------------------------------------------------------------
# generators


def test_local_jitter_scales_match_sklearn_neighbours():
    X1 = np.random.default_rng(0).normal(size=(60, 4)) * np.r_[1.0, 2.0, 0.5, 1.0]
    fitted = LocalJitter(scale=0.08, k=3).fit(X1, None, None)
    dist, _ = NearestNeighbors(n_neighbors=4).fit(X1).kneighbors(X1)
    np.testing.assert_allclose(fitted.sd, 0.08 * np.median(dist[:, 1:], axis=1) / 2.0, rtol=1e-12)


def test_local_jitter_noise_is_gaussian_with_the_point_scale():
    # far-apart points: each synthetic point's nearest real point is its source
    X1 = np.arange(8)[:, None] * np.array([[100.0, 0.0, 0.0]])
    fitted = make_generator("local_jitter", scale=0.05, k=2).fit(X1, None, None)
    rng = np.random.default_rng(1)
    S = fitted.sample(20000, rng)
    src = np.rint(S[:, 0] / 100).astype(int)
    z = (S - X1[src]) / fitted.sd[src, None]
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1.0) < 0.03
    assert stats.kstest(z.ravel(), stats.norm.cdf).pvalue > 1e-3
    # the pool contract: a prefix is the smaller draw
    np.testing.assert_array_equal(
        fitted.sample(50, np.random.default_rng(4)), fitted.sample(200, np.random.default_rng(4))[:50]
    )


def test_adasyn_k3_returns_the_exact_count():
    rng = np.random.default_rng(2)
    X0, X1 = rng.normal(size=(200, 3)), rng.normal(0.7, 1.0, size=(25, 3))
    fitted = ImblearnGenerator("ADASYN", n_neighbors=3).fit(X1, X0, rng)
    for m in (1, 7, 175, 400):
        assert fitted.sample(m, np.random.default_rng(m)).shape == (m, 3)


# ---------------------------------------------------------------------------------------------
# the trainer


def problem(seed=0, n=120, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * np.sin(3 * X[:, 1]) + 0.3 * rng.normal(size=n) > 0.3).astype(float)
    return X, y


SPEC = nw.MLPSpec(hidden=(16, 8), epochs=40, learning_rate=1e-2, weight_decay=1e-3)


def plain_optax(spec, params0, X, y, w):
    """One training, one Python step per epoch with optax.adamw (the independent reference)."""
    opt = optax.adamw(spec.learning_rate, weight_decay=spec.weight_decay)
    params = [(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)) for W, b in params0]
    state = opt.init(params)
    Xj, yj, wj = (jnp.asarray(a, jnp.float32) for a in (X, y, w))

    def loss(p):
        a = Xj
        for W, b in p[:-1]:
            a = jax.nn.relu(a @ W + b)
        eta = (a @ p[-1][0] + p[-1][1])[:, 0]
        return jnp.sum(wj * (jax.nn.softplus(eta) - yj * eta)) / jnp.sum(wj)

    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        for _ in range(spec.epochs):
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
    return [(np.asarray(W), np.asarray(b)) for W, b in params]


def batch(B=6, seed=0):
    X, y = problem(seed)
    rng = np.random.default_rng(seed + 1)
    w = rng.uniform(0.2, 2.0, size=(B, len(y)))
    return np.broadcast_to(X, (B, *X.shape)), np.broadcast_to(y, (B, len(y))), w


def test_batched_training_equals_one_at_a_time_and_plain_optax():
    X, y, w = batch()
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(9))
    trained, losses = nw.train(SPEC, params0, X, y, w, chunk=4)  # two chunks, the last padded
    single = nw.single_trainer(SPEC)
    for b in range(len(w)):
        alone, alone_loss = single(nw.as_device(params0), *(np.asarray(a[b], np.float32) for a in (X, y, w)))
        for (W, c), (Wa, ca) in zip(nw.take(trained, b), alone):
            np.testing.assert_allclose(W, np.asarray(Wa), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(c, np.asarray(ca), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses[b], np.asarray(alone_loss), rtol=1e-5)
    reference = plain_optax(SPEC, params0, X[0], y[0], w[0])
    for (W, c), (Wr, cr) in zip(nw.take(trained, 0), reference):
        np.testing.assert_allclose(W, Wr, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(c, cr, rtol=1e-4, atol=1e-5)


def test_trainer_traces_once_per_shape_and_is_bit_reproducible():
    X, y, w = batch(B=4, seed=2)
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(1))
    nw.train(SPEC, params0, X, y, w, chunk=4)
    before = nw.TRACES["train"]
    first, _ = nw.train(SPEC, params0, X, y, w * 1.5, chunk=4)
    second, _ = nw.train(SPEC, params0, X, y, w * 1.5, chunk=4)
    assert nw.TRACES["train"] == before  # same shapes: no new trace
    for (W1, b1), (W2, b2) in zip(first, second):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()


def test_loss_decreases_and_weights_scale_out():
    X, y, w = batch(B=2, seed=3)
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(2))
    trained, losses = nw.train(SPEC, params0, X, y, w)
    assert losses[0, -1] < 0.8 * losses[0, 0]
    assert trained[0][0].dtype == np.float32 and losses.dtype == np.float32  # the stated precision
    # the loss is normalised by the sum of weights: a constant factor changes (almost) nothing
    scaled, _ = nw.train(SPEC, params0, X, y, 7.0 * w)
    np.testing.assert_allclose(scaled[0][0], trained[0][0], rtol=1e-4, atol=1e-5)


def test_zero_weight_rows_have_no_effect():
    X, y, w = batch(B=2, seed=4)
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(3))
    trained, _ = nw.train(SPEC, params0, X, y, w)
    rng = np.random.default_rng(5)
    junk = 50.0 * rng.normal(size=(2, 40, X.shape[-1]))
    Xp = np.concatenate([X, junk], axis=1)
    yp = np.concatenate([y, np.ones((2, 40))], axis=1)
    wp = np.concatenate([w, np.zeros((2, 40))], axis=1)
    padded, _ = nw.train(SPEC, params0, Xp, yp, wp)
    for (W, b), (Wp, bp) in zip(trained, padded):
        np.testing.assert_allclose(W, Wp, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, bp, rtol=1e-5, atol=1e-6)
    # and the test can fail: weight the junk rows a little and the fit moves
    wp[:, -40:] = 0.05
    moved, _ = nw.train(SPEC, params0, Xp, yp, wp)
    assert np.abs(moved[0][0] - trained[0][0]).max() > 1e-3


def test_trainer_refuses_bad_batches():
    X, y, w = batch(B=2)
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive sum"):
        nw.train(SPEC, params0, X, y, np.zeros_like(w))
    with pytest.raises(ValueError, match="labels"):
        nw.train(SPEC, params0, X, 2 * y, w)
    with pytest.raises(ValueError, match="epochs"):
        nw.MLPSpec(epochs=0)


def test_estimator_refuses_a_misshapen_init_or_input():
    X, y = problem(7)
    est = nw.MLPClassifier(hidden=(8,), epochs=5, random_state=0).fit(X, y)
    # the same weights restart a fit of the same width; one column fewer is refused by name
    nw.MLPClassifier(hidden=(8,), epochs=5, init=est.params_).fit(X, y)
    with pytest.raises(ValueError, match=r"init must be .* for 1 input columns"):
        nw.MLPClassifier(hidden=(8,), epochs=5, init=est.params_).fit(X[:, :1], y)
    with pytest.raises(ValueError, match="init must be"):
        nw.MLPClassifier(hidden=(8,), epochs=5, init=5).fit(X, y)
    for bad in (np.ones((4, X.shape[1] + 1)), np.ones(X.shape[1]), np.ones((4, X.shape[1], 1))):
        with pytest.raises(ValueError, match=rf"X must be \(n, {X.shape[1]}\) as in fit"):
            est.predict(bad)


# ---------------------------------------------------------------------------------------------
# the estimator and the feature map


def test_estimator_follows_sklearn_conventions():
    X, y = problem(7)
    est = nw.MLPClassifier(hidden=(16, 8), epochs=40, learning_rate=1e-2, random_state=0)
    assert est.fit(X, y) is est
    assert clone(est).get_params() == est.get_params()
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], expit(est.decision_function(X)))
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert (est.predict(X) == y).mean() > 0.75
    # the trainer's own weights: the estimator's logits equal the batch program's
    Z = (X - est.mean_) / est.scale_
    np.testing.assert_allclose(
        est.decision_function(X),
        nw.batch_logits([(W[None], b[None]) for W, b in est.params_], Z[None])[0],
        rtol=1e-4,
        atol=1e-4,
    )
    # the same random_state gives the same network, bit for bit
    again = copy.deepcopy(est).fit(X, y)
    assert all(a[0].tobytes() == b[0].tobytes() for a, b in zip(est.params_, again.params_))


def test_hidden_layer_is_a_feature_map_for_the_diagnostics():
    X, y = problem(8, n=300)
    est = nw.MLPClassifier(hidden=(16, 8), epochs=60, learning_rate=1e-2, random_state=1).fit(X, y)
    phi = nw.HiddenLayer.of(est.params_, (X - est.mean_) / est.scale_, est.mean_, est.scale_)
    H = phi(X)
    params64 = [(np.asarray(W, float), np.asarray(b, float)) for W, b in est.params_]
    manual = np.maximum(
        np.maximum(((X - est.mean_) / est.scale_) @ params64[0][0] + params64[0][1], 0) @ params64[1][0]
        + params64[1][1],
        0,
    )
    np.testing.assert_allclose(H, manual[:, list(phi.units)], rtol=1e-12)
    assert np.all(H.std(axis=0) > 0)  # dead units dropped
    model = FeatureGLM("logistic", True, 1e-3, feature_map=phi)
    wald = wald_symmetry_test(X[y == 0], X[y == 1], model)
    assert wald.df == len(phi.units) + 1 and np.isfinite(wald.statistic)


def test_train_grid_is_train_on_the_flattened_grid():
    X, y, w = batch(B=3, seed=6)
    W = np.stack([w, 0.5 * w[::-1]], axis=1)  # (S = 3, G = 2, N)
    params0 = nw.init_params(SPEC, X.shape[-1], np.random.default_rng(4))
    grid, losses = nw.train_grid(SPEC, params0, X, y, W, chunk=4)
    flat, flat_losses = nw.train(
        SPEC, params0, np.repeat(X, 2, axis=0), np.repeat(y, 2, axis=0), W.reshape(6, -1), chunk=4
    )
    assert losses.shape == (3, 2, SPEC.epochs)
    np.testing.assert_array_equal(losses.reshape(6, -1), flat_losses)
    for (Wg, _), (Wf, _) in zip(grid, flat):
        np.testing.assert_array_equal(Wg, Wf)
    # training s G + g is data set s with weights g: against a training of that one alone
    alone, _ = nw.train(SPEC, params0, X[2:3], y[2:3], W[2, 1][None], chunk=1)
    np.testing.assert_allclose(nw.take(grid, 5)[0][0], alone[0][0][0], rtol=1e-5, atol=1e-6)
