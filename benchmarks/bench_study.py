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

import simstudy  # noqa: F401
from simstudy.config import BuiltCell, validate
from simstudy.engine import draw_replication, run_cell

GENERATORS = ("oracle", "gaussian_fit", "smote")


def study_config(generator: str, reps: int):
    from hydra import compose, initialize_config_dir

    from simstudy.app import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=["study=logit_symmetric", f"generator={generator}",
                                           f"design.reps={reps}"])
    return validate(cfg)


def engine_seconds(built: BuiltCell) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    rows = run_cell(built.cell, built.population)
    return time.perf_counter() - start, rows["excess"].to_numpy()


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--loop-reps", type=int, default=3)
    args = parser.parse_args()
    total_engine = total_loop = 0.0
    for name in GENERATORS:
        built = BuiltCell(study_config(name, args.reps))
        # compile once outside the timing, as a long study amortises it
        run_cell(built.cell._replace(design=dataclasses.replace(built.design, reps=2)), built.population)
        seconds, excess = engine_seconds(built)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loop, loop_excess = notebook_seconds(built, args.loop_reps)
        G = len(built.design.gammas)
        gap = np.max(np.abs(loop_excess - excess[: args.loop_reps * G]))
        per_rep_loop = loop / args.loop_reps
        total_engine += seconds
        total_loop += per_rep_loop * args.reps
        print(f"{name}: engine {seconds:.1f} s for R = {args.reps} x {G} gammas "
              f"({args.reps * G / seconds:.0f} fits/s); sklearn loop {per_rep_loop:.2f} s per "
              f"replication -> {per_rep_loop * args.reps:.0f} s for R = {args.reps}; "
              f"ratio {per_rep_loop * args.reps / seconds:.1f}x; max |excess gap| {gap:.1e}")
    print(f"study 2 end to end: engine {total_engine:.1f} s, notebook loop {total_loop:.0f} s "
          f"(extrapolated), ratio {total_loop / total_engine:.1f}x")


if __name__ == "__main__":
    main()
