"""The symmetry test's references: seconds per replication of each (``wald_symmetry_test``'s
``reference``) on the smallest and the largest cell of ``sweep=symmetry_test_size`` and at the
nulls of studies 1 and 2 (``study=symmetry_test_ls``, ``study=symmetry_test_logit``).

Run: ``.venv/bin/python benchmarks/bench_symmetry.py`` (``--reps`` replications per cell and
reference, ``--n-boot`` the resamples). Each reference is run once on the cell's first
replication beforehand, so that compilation is not timed; the references then take turns on
the same replications. As in a job, numpy's BLAS runs on one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import simstudy  # noqa: F401
from simstudy.composition import compose
from simstudy.config import validate
from simstudy.diagnostics import REFERENCES, wald_symmetry_test
from simstudy.engine import one_blas_thread
from simstudy.studies.diagnostics import STUDY, _data_stream

CELLS = {
    "size: d = 2, n1 = 50, n0 = 250": ["study=symmetry_test_size", "dgp.d=2", "design.n1=50", "design.kappa=5"],
    "size: d = 10, n1 = 500, n0 = 10000": ["study=symmetry_test_size", "dgp.d=10", "design.n1=500", "design.kappa=20"],
    "study 1's null: p = 20, n1 = 100, n0 = 2000": ["study=symmetry_test_ls"],
    "study 2's null: p = 20, n1 = 556, n0 = 4444": ["study=symmetry_test_logit"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=199)
    args = parser.parse_args()
    print(f"seconds per replication, B = {args.n_boot}, mean of {args.reps} replications")
    print("| cell | " + " | ".join(REFERENCES) + " |")
    print("|---|" + "---|" * len(REFERENCES))
    with one_blas_thread():
        for label, overrides in CELLS.items():
            cell = STUDY.build(validate(compose([*overrides, "figures_dir=null"])))
            d, labels = cell.run.design, cell.built.process.labels
            data = [cell.built.process.sample(d.n0, d.n1, _data_stream(cell, r)) for r in range(args.reps + 1)]
            seconds = dict.fromkeys(REFERENCES, 0.0)
            for r, (X0, X1) in enumerate(data):
                for reference in REFERENCES:
                    rng = np.random.default_rng(r)
                    start = time.perf_counter()
                    wald_symmetry_test(X0, X1, cell.model, labels, reference=reference, rng=rng, n_boot=args.n_boot)
                    if r:  # replication 0 compiles
                        seconds[reference] += time.perf_counter() - start
            row = " | ".join(f"{seconds[ref] / args.reps:.3f}" for ref in REFERENCES)
            print(f"| {label} | {row} |", flush=True)


if __name__ == "__main__":
    main()
