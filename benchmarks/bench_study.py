"""Study 2 end to end (logistic, local symmetry, R = 100, 21 gammas; oracle, Gaussian fit and
SMOTE) with simstudy's engine, against the same study written as a research notebook would:
a per-fit scikit-learn loop.

Run: ``.venv/bin/python benchmarks/bench_study.py`` (``--reps`` to change R, ``--loop-reps`` for
how many replications of the loop are timed; its per-replication cost is extrapolated to R).
Both sides draw the same data (same SeedSequence streams), fit to matched accuracy and score
with the same exact population risk, so the printed max |excess gap| checks they computed
the same study.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import numpy as np
from bench_fitting import blas_settings  # this directory is on sys.path when run as a script

import simstudy  # noqa: F401
from simstudy.cell import BuiltCell
from simstudy.config import validate
from simstudy.engine import draw_replication, run_cell
from simstudy.theory import Theory, synthetic_moments

GENERATORS = ("oracle", "gaussian_fit", "smote")


def study_config(generator: str, reps: int, *overrides: str):
    """Study 2's validated config for ``generator`` at R = ``reps``, with further overrides."""
    from hydra import compose, initialize_config_dir

    from simstudy.app import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            "config", overrides=["study=logit_symmetric", f"generator={generator}", f"design.reps={reps}", *overrides]
        )
    return validate(cfg)


def engine_seconds(built: BuiltCell, theta0) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    rows = run_cell(built.cell, built.population, theta0=theta0)
    return time.perf_counter() - start, rows["excess"].to_numpy()


def theory_seconds(built: BuiltCell, refits: int):
    """The job's theory step: psi moments, the predicted curve (whose population limit is the
    engine's warm start) and the optimal sizes."""
    start = time.perf_counter()
    d = built.design
    synthetic = synthetic_moments(
        built.population, built.generator, d.n1, np.random.default_rng(0), refits=refits, n0=d.n0
    )
    theory = Theory(built.population, synthetic, d.n0, d.n1)
    prediction = theory.predict(d.gammas)
    theory.optimal_sizes(gamma_max=3.0)
    return time.perf_counter() - start, prediction.theta_bar


def notebook_seconds(built: BuiltCell, reps: int) -> tuple[float, np.ndarray]:
    """The notebook version: for each replication, for each gamma, one sklearn fit."""
    from sklearn.linear_model import LogisticRegression

    design, cell = built.design, built.cell
    n_real = design.n0 + design.n1
    start = time.perf_counter()
    excess = []
    for r in range(reps):
        X, y = draw_replication(cell, r)
        for n_tilde in design.n_tilde:
            rows = slice(0, n_real + int(n_tilde))
            clf = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-8, max_iter=10_000)
            clf.fit(X[rows], y[rows])
            excess.append(float(built.population.excess(clf.coef_[0])))
    return time.perf_counter() - start, np.array(excess)


def typical_notebook_seconds(built: BuiltCell, reps: int, generator: str) -> float:
    """The loop as notebooks usually write it: fresh synthetic points per gamma (imbalanced-learn's
    SMOTE with a sampling_strategy, or the generator's own draw), scikit-learn's default
    tolerance. Same real data and the same exact risk, so only the fitting path differs."""
    from imblearn.over_sampling import SMOTE
    from sklearn.linear_model import LogisticRegression

    design, cell = built.design, built.cell
    start = time.perf_counter()
    for r in range(reps):
        X, y = draw_replication(cell, r)
        X_real, y_real = X[: design.n0 + design.n1], y[: design.n0 + design.n1]
        fitted = built.generator.fit(X_real[design.n0 :], X_real[: design.n0], np.random.default_rng(r))
        for n_tilde in design.n_tilde:
            if generator == "smote" and n_tilde > 0:
                sampler = SMOTE(k_neighbors=5, sampling_strategy={1: design.n1 + int(n_tilde)}, random_state=r)
                X_fit, y_fit = sampler.fit_resample(X_real, y_real)
            else:
                synthetic = fitted.sample(int(n_tilde), np.random.default_rng(r))
                X_fit = np.vstack([X_real, synthetic])
                y_fit = np.concatenate([y_real, np.ones(len(synthetic))])
            clf = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=1000).fit(X_fit, y_fit)
            built.population.excess(clf.coef_[0])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--loop-reps", type=int, default=3)
    parser.add_argument("--refits", type=int, default=200, help="theory.refits of the job")
    args = parser.parse_args()
    total_engine = total_theory = total_loop = total_typical = 0.0
    for name in GENERATORS:
        built = BuiltCell(study_config(name, args.reps))
        theory, theta0 = theory_seconds(built, args.refits)
        # compile once outside the timing, as a long study amortises it
        run_cell(built.cell._replace(design=dataclasses.replace(built.design, reps=2)), built.population, theta0=theta0)
        seconds, excess = engine_seconds(built, theta0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the loops get the better of default BLAS threading and one BLAS thread (the
            # engine runs with one)
            loop, loop_excess = min(
                (notebook_seconds(built, args.loop_reps) for _ in blas_settings()), key=lambda result: result[0]
            )
            typical = (
                min(typical_notebook_seconds(built, args.loop_reps, name) for _ in blas_settings()) / args.loop_reps
            )
        G = len(built.design.gammas)
        gap = np.max(np.abs(loop_excess - excess[: args.loop_reps * G]))
        per_rep_loop = loop / args.loop_reps
        total_engine += seconds
        total_theory += theory
        total_typical += typical * args.reps
        total_loop += per_rep_loop * args.reps
        print(
            f"{name}: engine {seconds:.1f} s for R = {args.reps} x {G} gammas "
            f"({args.reps * G / seconds:.0f} fits/s); sklearn loop {per_rep_loop:.2f} s per "
            f"replication -> {per_rep_loop * args.reps:.0f} s for R = {args.reps}; "
            f"ratio {per_rep_loop * args.reps / seconds:.1f}x; max |excess gap| {gap:.1e}; "
            f"theory step {theory:.1f} s; typical notebook {typical:.2f} s per replication "
            f"(ratio {typical * args.reps / seconds:.1f}x)"
        )
    print(
        f"study 2 end to end: engine fits {total_engine:.1f} s (+ theory {total_theory:.1f} s), "
        f"notebook loop {total_loop:.0f} s (extrapolated); ratio {total_loop / total_engine:.1f}x "
        f"on the fits, {total_loop / (total_engine + total_theory):.1f}x with the theory step; "
        f"typical notebook (default tolerance, imbalanced-learn SMOTE per gamma) {total_typical:.0f} s, "
        f"ratio {total_typical / total_engine:.1f}x on the fits"
    )


if __name__ == "__main__":
    main()
