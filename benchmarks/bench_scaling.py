"""How a curve cell's cost grows, on whatever JAX backend is present (CPU, or a GPU when
``JAX_PLATFORMS`` is unset or "cuda"): study 2's oracle cell (logistic, n0 = 4444, n1 = 556,
21 gammas) timed at R, at 2R, with its gamma grid doubled (the midpoints added) and as two
cells in one process, each in a fresh process so that its peak resident memory is its own.

Run: ``.venv/bin/python benchmarks/bench_scaling.py`` (``--reps`` for R, default 100).

Each line gives the engine's seconds (draw, fit, risks, summaries per replication; compilation
is paid by a two-replication warm-up first and reported apart), fits per second, the peak RSS
(VmHWM) and the ratio to the base line. Linear growth doubles the seconds; a cell's memory
should not grow with R, since replications are drawn, fitted and reduced ``design.chunk`` at a
time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from bench_study import study_config  # this directory is on sys.path when run as a script

import simstudy  # noqa: F401
from simstudy.cell import BuiltCell
from simstudy.engine import run_cell

SHAPES = {
    "base": {"reps": 1, "gammas": 1, "cells": 1},
    "2R": {"reps": 2, "gammas": 1, "cells": 1},
    "2 x gammas": {"reps": 1, "gammas": 2, "cells": 1},
    "2 cells": {"reps": 1, "gammas": 1, "cells": 2},
}


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM; ru_maxrss would include a parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def denser(gammas) -> list[float]:
    """The grid with the midpoint of every neighbouring pair added: 2G - 1 points."""
    g = np.asarray(gammas, dtype=float)
    return sorted({*g.tolist(), *((g[:-1] + g[1:]) / 2).tolist()})


def built_cell(reps: int, gammas_factor: int, seed: int) -> BuiltCell:
    run = study_config("oracle", reps, f"seed={seed}")
    gammas = run.design.gammas if gammas_factor == 1 else tuple(denser(run.design.gammas))
    return BuiltCell(dataclasses.replace(run, design=dataclasses.replace(run.design, gammas=gammas)))


def one(reps: int, gammas_factor: int, cells: int) -> dict:
    """Time ``cells`` cells of ``reps`` replications in this process (after a warm-up)."""
    start = time.perf_counter()
    warm = built_cell(2, gammas_factor, seed=0)
    run_cell(warm.cell, warm.population)
    compile_seconds = time.perf_counter() - start
    built = [built_cell(reps, gammas_factor, seed=1 + c) for c in range(cells)]
    start = time.perf_counter()
    fits = 0
    for b in built:
        rows = run_cell(b.cell, b.population)
        fits += len(rows)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "fits": fits, "warm_up": compile_seconds, "peak_rss": peak_rss_bytes()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--one", nargs=3, type=int, metavar=("REPS", "GAMMAS_FACTOR", "CELLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    print(f"backend {jax.default_backend()}: {', '.join(str(d) for d in jax.devices())}")
    print(f"XLA_PYTHON_CLIENT_PREALLOCATE={os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE', '(unset)')}")
    base = None
    for name, shape in SHAPES.items():
        sizes = (args.reps * shape["reps"], shape["gammas"], shape["cells"])
        argv = [sys.executable, __file__, "--one", *map(str, sizes)]
        result = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        base = base or result
        print(
            f"{name:>11}: {result['seconds']:6.2f} s ({result['fits'] / result['seconds']:6.0f} fits/s), "
            f"x{result['seconds'] / base['seconds']:.2f} the base; warm-up {result['warm_up']:.1f} s; "
            f"peak RSS {result['peak_rss'] / 2**30:.2f} GiB (x{result['peak_rss'] / base['peak_rss']:.2f})"
        )


if __name__ == "__main__":
    main()
