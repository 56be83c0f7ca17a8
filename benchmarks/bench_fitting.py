"""Fitting throughput: the batched JAX engine against per-fit scikit-learn and statsmodels loops.

Run: ``.venv/bin/python benchmarks/bench_fitting.py`` (``--quick`` for small shapes).

Per shape (B problems of n rows and d features, logistic, with intercept) it prints fits per
second for each engine at matched accuracy (the max coefficient gap to the JAX answer is
printed beside each loop), and the bytes of X the JAX engine reads per second against this
machine's single-core streaming read bandwidth measured in the same run. The JAX engine is timed
with its default method ("auto") and with Newton at every step. The loops are timed on a subset
of the batch and reported per fit, which is what a loop costs.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import simstudy  # noqa: F401
from simstudy.fitting import GLM, choose_method, fit_glm

# reads of X per step: the gradient Z's and the step Z delta; a Newton step also reads it for
# its Hessian Z'WZ (the quasi-Newton start reads a row sketch of it once)
PASSES_PER_STEP = {"newton": 3, "quasi_newton": 2}


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Streaming read bandwidth in bytes/s: best of a few full sums over a large array."""
    a = np.ones(int(gib * 2**30) // 8)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    return a.nbytes / best


def make_batch(B, n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n, d))
    beta = rng.normal(scale=0.5, size=(B, d))
    y = (rng.random((B, n)) < 1 / (1 + np.exp(-(np.einsum("bnd,bd->bn", X, beta) - 1.0)))).astype(float)
    return X, y


def time_jax(X, y, model, method="auto", repeats=5):
    fit_glm(X, y, model=model, method=method)  # compile
    best, fit = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        fit = fit_glm(X, y, model=model, method=method)
        best = min(best, time.perf_counter() - t)
    return best, fit


def time_sklearn(X, y, k, reference):
    from sklearn.linear_model import LogisticRegression

    t = time.perf_counter()
    coefs = []
    for b in range(k):
        clf = LogisticRegression(C=np.inf, tol=1e-8, max_iter=1000).fit(X[b], y[b])
        coefs.append(np.concatenate([clf.intercept_, clf.coef_[0]]))
    elapsed = time.perf_counter() - t
    return elapsed / k, np.max(np.abs(np.array(coefs) - reference[:k]))


def time_statsmodels(X, y, k, reference):
    import statsmodels.api as sm

    t = time.perf_counter()
    coefs = []
    for b in range(k):
        Z = sm.add_constant(X[b], has_constant="add")
        coefs.append(sm.GLM(y[b], Z, family=sm.families.Binomial()).fit(tol=1e-10).params)
    elapsed = time.perf_counter() - t
    return elapsed / k, np.max(np.abs(np.array(coefs) - reference[:k]))


def run(shapes, loop_fits):
    bandwidth = read_bandwidth()
    print(f"streaming read bandwidth (one core): {bandwidth / 1e9:.2f} GB/s")
    model = GLM("logistic", intercept=True)
    for B, n, d in shapes:
        X, y = make_batch(B, n, d)
        seconds, fit = time_jax(X, y, model)
        newton, newton_fit = time_jax(X, y, model, method="newton")
        method = choose_method("auto", B, n, model.n_params(d))
        steps = int(fit.info.iterations.max())
        k = min(B, loop_fits)
        # each loop gets the better of default BLAS threading and one BLAS thread
        sk_per_fit, sk_gap = min(time_sklearn(X, y, k, fit.theta) for _ in blas_settings())
        sm_per_fit, sm_gap = min(time_statsmodels(X, y, k, fit.theta) for _ in blas_settings())
        jax_rate = B / seconds
        streamed = PASSES_PER_STEP[method] * steps * X.nbytes / seconds
        print(
            f"B x n x d = {B} x {n} x {d}: jax {jax_rate:,.0f} fits/s ({method}, {steps} steps, "
            f"all converged: {bool(fit.info.converged.all())}), {B / newton:,.0f} fits/s with Newton "
            f"({newton_fit.info.iterations.max()} steps, "
            f"max |coef gap| {np.max(np.abs(newton_fit.theta - fit.theta)):.1e}); "
            f"sklearn lbfgs {1 / sk_per_fit:,.0f} fits/s (gap {sk_gap:.1e}); "
            f"statsmodels IRLS {1 / sm_per_fit:,.0f} fits/s (gap {sm_gap:.1e}); "
            f"ratio jax/sklearn {jax_rate * sk_per_fit:.2f}x, jax/statsmodels {jax_rate * sm_per_fit:.2f}x; "
            f"X read at {streamed / 1e9:.1f} GB/s = {streamed / bandwidth:.0%} of one core's read bandwidth"
        )


def blas_settings():
    """Run the loop body once with the default BLAS threads and once with one BLAS thread."""
    from simstudy.engine import one_blas_thread

    yield "default"
    with one_blas_thread():
        yield "one thread"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a smoke run")
    parser.add_argument("--loop-fits", type=int, default=100, help="fits timed per loop engine")
    args = parser.parse_args()
    shapes = [(100, 500, 5)] if args.quick else [(1000, 2000, 10), (200, 10000, 20)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(shapes, 20 if args.quick else args.loop_fits)


if __name__ == "__main__":
    main()
