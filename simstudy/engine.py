"""The study engine: one design cell, R Monte Carlo replications, every gamma fitted at once.

A cell is (process, generator, model, n0, n1, gamma grid, R, seed) (THEORY.md section 6). For
replication r:

1. real data X0 (n0 rows from P0) and X1 (n1 rows from P1) from the cell's data stream r;
2. the generator fitted once on them, and one synthetic pool of the largest size
   max n~ = round(max gamma (n0 - n1)) drawn from the generator's own stream r;
3. every candidate size n~ is a nested prefix of that pool, so the G fits of a replication share
   one design matrix [X0; X1; pool] and differ only in their 0/1 weights: the batched fitter
   streams the design once per Newton step for all G sizes;
4. exact excess balanced risk E(theta) = R_bal(theta) - R_bal(theta*) and parameter error
   ||theta - theta*|| per fit, from the population (no test set).

Randomness: numpy SeedSequence streams keyed by (seed, cell data key, r) for the real data and
(seed, cell data key, r, generator key) for the generator, so different generators in the same
cell see the same real data (common random numbers) and any replication can be regenerated
alone. Replications are processed in chunks of ``chunk``; each replication is drawn and fitted as
its own batch of G problems by one of ``workers`` threads, so the numbers do not depend on the
chunk size, the thread count or the order of cells.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterator, NamedTuple

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.fitting import GLM, fit_glm

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Design:
    """Sizes and Monte Carlo settings of a cell. n_tilde = round(gamma (n0 - n1)), half to even."""

    n0: int
    n1: int
    gammas: tuple[float, ...]
    reps: int
    seed: int = 0
    chunk: int = 10

    def __post_init__(self):
        object.__setattr__(self, "gammas", tuple(float(g) for g in self.gammas))
        if not (isinstance(self.n1, (int, np.integer)) and self.n1 >= 1):
            raise ValueError(f"n1 must be an integer >= 1, got {self.n1!r}")
        if not (isinstance(self.n0, (int, np.integer)) and self.n0 > self.n1):
            raise ValueError(f"n0 must be an integer > n1 = {self.n1}, got {self.n0!r}")
        if not self.gammas or not all(np.isfinite(g) and g >= 0 for g in self.gammas):
            raise ValueError(f"gammas must be a non-empty list of finite numbers >= 0, got {self.gammas}")
        if not (isinstance(self.reps, (int, np.integer)) and self.reps >= 2):
            raise ValueError(f"reps must be an integer >= 2, got {self.reps!r}")
        if not (isinstance(self.chunk, (int, np.integer)) and self.chunk >= 1):
            raise ValueError(f"chunk must be an integer >= 1, got {self.chunk!r}")

    @property
    def gap(self) -> int:
        """n0 - n1, the synthetic size of full balancing (gamma = 1)."""
        return self.n0 - self.n1

    @property
    def n_tilde(self) -> np.ndarray:
        return np.rint(np.asarray(self.gammas) * self.gap).astype(np.int64)


def stable_key(obj) -> tuple[int, ...]:
    """Four 32-bit words of the SHA-256 of obj's canonical JSON: a seed key that is the same on
    every machine, process and Python hash seed."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams(NamedTuple):
    data: np.random.Generator
    fit: np.random.Generator
    pool: np.random.Generator


def replication_streams(seed: int, data_key, generator_key, r: int) -> Streams:
    """The three independent streams of replication r (see the module docstring)."""
    data = np.random.SeedSequence(seed, spawn_key=(*data_key, r))
    fit, pool = np.random.SeedSequence(seed, spawn_key=(*data_key, r, *generator_key)).spawn(2)
    return Streams(*(np.random.default_rng(s) for s in (data, fit, pool)))


class Cell(NamedTuple):
    """Everything one cell needs; keys come from the cell's config (see stable_key)."""

    process: object
    generator: object
    model: GLM
    design: Design
    data_key: tuple[int, ...]
    generator_key: tuple[int, ...]


def draw_replication(cell: Cell, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The stacked design [X0; X1; pool] and labels of replication r."""
    design, (y0, y1) = cell.design, cell.process.labels
    streams = replication_streams(design.seed, cell.data_key, cell.generator_key, r)
    X0, X1 = cell.process.sample(design.n0, design.n1, streams.data)
    pool = cell.generator.fit(X1, X0, streams.fit).sample(int(design.n_tilde.max()), streams.pool)
    X = np.vstack([X0, X1, pool])
    y = np.concatenate([np.full(design.n0, y0), np.full(design.n1 + len(pool), y1)])
    return X, y


@functools.lru_cache(maxsize=16)
def prefix_weights(design: Design) -> np.ndarray:
    """(G, N) 0/1 weights: all real rows, and the first n~_g rows of the pool for gamma_g.

    Built once per design (1.75 ms for study 2, against 11 ms for a whole replication) and
    shared read-only by every replication fitted with it."""
    n_real, pool = design.n0 + design.n1, int(design.n_tilde.max())
    synthetic = np.arange(pool)[None, :] < design.n_tilde[:, None]
    weights = np.hstack([np.ones((len(design.gammas), n_real)), synthetic.astype(np.float64)])
    weights.setflags(write=False)
    return weights


class FitBlock(NamedTuple):
    theta: np.ndarray  # (C, G, p)
    info: object       # FitInfo with (C, G) arrays


def fit_replication(cell: Cell, r: int, theta0=None):
    """Draw replication r and fit all its gammas in one batched call; returns the Fit."""
    X, y = draw_replication(cell, r)
    return fit_glm(X, y, prefix_weights(cell.design), model=cell.model, theta0=theta0)


def stack_fits(fits) -> FitBlock:
    """The Fits of consecutive replications as one FitBlock."""
    fits = list(fits)
    info = type(fits[0].info)(*(np.stack(field) for field in zip(*(fit.info for fit in fits))))
    return FitBlock(np.stack([fit.theta for fit in fits]), info)


def fit_replications(cell: Cell, reps, theta0=None) -> FitBlock:
    """Fit every gamma of each replication in reps, one after another in this thread."""
    return stack_fits(fit_replication(cell, r, theta0) for r in reps)


def ordered_map(function, items, workers: int) -> Iterator:
    """function(item) for each item, in order, computed by ``workers`` threads at most
    2 * workers items ahead of the consumer (so memory stays bounded)."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque(pool.submit(function, item) for item in islice(items, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(function, item) for item in islice(items, 1))
            yield result


def default_workers() -> int:
    """Replications fitted at once by run_cell: two per core, at most 4.

    A single fit leaves the cores partly idle (its products are too small to split well, and
    its Python, numpy draws and JAX execution alternate). Study 2 on the 2-core machine:
    12.7-15.3 ms per replication with one thread, 11.5-13.2 with two, 10.6-12.9 with four; six
    and eight gained nothing more.
    """
    # the cores this process may run on (a Slurm job's allocation), not the machine's
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, 2 * cores))


def replication_rows(cell: Cell, population, reps, block: FitBlock) -> pd.DataFrame:
    """One tidy row per (replication, gamma) with the per-fit numbers and diagnostics."""
    design = cell.design
    C, G, p = block.theta.shape
    excess = np.asarray(population.excess(block.theta)).reshape(C, G)
    error = np.linalg.norm(block.theta - population.theta_star, axis=-1)
    frame = {
        "replication": np.repeat(np.asarray(reps, dtype=np.int64), G),
        "gamma": np.tile(np.asarray(design.gammas), C),
        "n_tilde": np.tile(design.n_tilde, C),
        "excess": excess.ravel(),
        "param_error": error.ravel(),
        "iterations": block.info.iterations.ravel().astype(np.int64),
        "grad_norm": block.info.grad_norm.ravel(),
        "converged": block.info.converged.ravel(),
        "separated": block.info.separated.ravel(),
        "nonfinite": block.info.nonfinite.ravel(),
    }
    for j in range(p):
        frame[f"theta_{j}"] = block.theta[:, :, j].ravel()
    return pd.DataFrame(frame)


Progress = Callable[[int, int, float], None]


def progress_printer(label: str, unit: str = "replications", every_seconds: float = 5.0) -> Progress:
    """A Progress that prints one stderr line per tenth of the work or per ``every_seconds``,
    and at the end: done/total, elapsed and the linear estimate of what is left."""
    import sys

    last = {"fraction": 0.0, "elapsed": 0.0}

    def report(done: int, total: int, elapsed: float):
        fraction = done / total
        if done < total and fraction - last["fraction"] < 0.1 and elapsed - last["elapsed"] < every_seconds:
            return
        last.update(fraction=fraction, elapsed=elapsed)
        left = elapsed / done * (total - done)
        print(f"[{label}] {done}/{total} {unit}, {elapsed:.1f} s elapsed, ~{left:.1f} s left",
              file=sys.stderr, flush=True)

    return report


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread.

    Studies multiply small matrices (data, generator fits, exact risks, theory refits), where
    BLAS threads gain nothing and their spinning idle workers take the cores the JAX fits need
    next: one BLAS thread took the study 2 fits from 25 to 15 ms per replication. It also
    keeps a job's numbers independent of the machine's BLAS thread count.
    """
    return threadpool_limits(limits=1, user_api="blas")


def run_cell(cell: Cell, population, theta0=None, progress: Progress | None = None,
             workers: int | None = None) -> pd.DataFrame:
    """All replications of a cell, in chunks; returns the tidy replications table.

    theta0 (G, p), optional: warm starts per gamma (the population limit theta_bar(n~) is a good
    one); converged answers do not depend on it beyond the solver tolerance.
    workers: replications drawn and fitted at once, each in its own thread (default
    ``default_workers()``). Each replication's numbers depend on its own streams only, so they
    do not depend on workers or chunk.
    """
    design = cell.design
    workers = default_workers() if workers is None else workers
    if not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    frames, start = [], time.perf_counter()
    with one_blas_thread():
        fits = ordered_map(lambda r: fit_replication(cell, r, theta0), range(design.reps), workers)
        for first in range(0, design.reps, design.chunk):
            reps = range(first, min(first + design.chunk, design.reps))
            block = stack_fits(islice(fits, len(reps)))
            frames.append(replication_rows(cell, population, reps, block))
            if progress is not None:
                progress(reps[-1] + 1, design.reps, time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True)


class CurveSummary(NamedTuple):
    """Per-gamma Monte Carlo summaries (THEORY.md section 7: every estimate with its MCSE)."""

    mean: np.ndarray
    mcse: np.ndarray
    quantiles: np.ndarray  # (len(QUANTILES), G)


def summarise_curve(values: np.ndarray) -> CurveSummary:
    """values (R, G): mean, MCSE = sd / sqrt(R), quantiles over replications."""
    R = values.shape[0]
    return CurveSummary(
        values.mean(axis=0),
        values.std(axis=0, ddof=1) / np.sqrt(R),
        np.quantile(values, QUANTILES, axis=0),
    )


class RootMeanSquare(NamedTuple):
    value: np.ndarray
    mcse: np.ndarray


def root_mean_square(values: np.ndarray) -> RootMeanSquare:
    """sqrt(mean(values^2)) over replications, with the delta-method MCSE
    sd(values^2) / (2 sqrt(R) rms): the theory predicts E||theta_hat - theta*||^2, so the
    parameter error is compared on this scale."""
    squares = values**2
    rms = np.sqrt(squares.mean(axis=0))
    se = squares.std(axis=0, ddof=1) / np.sqrt(values.shape[0]) / np.where(rms > 0, 2 * rms, np.inf)
    return RootMeanSquare(rms, se)


class EmpiricalOptimum(NamedTuple):
    gamma: float
    ci: tuple[float, float]
    level: float


def empirical_optimum(values: np.ndarray, gammas, rng: np.random.Generator, n_boot: int = 2000,
                      level: float = 0.95) -> EmpiricalOptimum:
    """Argmin over the gamma grid of the mean curve, with a percentile bootstrap CI over
    replications (THEORY.md section 7: non-mean summaries get a bootstrap CI)."""
    gammas = np.asarray(gammas)
    R = values.shape[0]
    idx = rng.integers(0, R, size=(n_boot, R))
    boot = gammas[np.argmin(values[idx].mean(axis=1), axis=1)]
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return EmpiricalOptimum(float(gammas[np.argmin(values.mean(axis=0))]), (float(low), float(high)), level)


def verdict(curve: CurveSummary, theory_excess, gamma_star_theory, optimum: EmpiricalOptimum,
            gammas, z_threshold: float = 4.0, theory_se=None) -> dict:
    """Does the simulation agree with the theory?

    ``max_abs_z`` is the largest |simulated mean - predicted| / SE over the grid, with
    SE^2 = MCSE^2 + theory_se^2 (a data-dependent generator's prediction is itself a Monte
    Carlo average over generator refits, with standard error theory_se).
    ``gamma_star_in_ci`` asks whether the predicted optimal gamma lies in the empirical CI,
    widened by half the local grid spacing on each side since the empirical argmin can only
    take grid values. The label is "agree" when both hold (|z| below ``z_threshold``).
    """
    gammas = np.asarray(gammas)
    se = np.hypot(curve.mcse, 0.0 if theory_se is None else np.asarray(theory_se))
    z = (curve.mean - np.asarray(theory_excess)) / np.where(se > 0, se, np.inf)
    spacing = np.diff(gammas).max() / 2 if len(gammas) > 1 else 0.0
    low, high = optimum.ci
    inside = None
    if gamma_star_theory is not None and np.isfinite(gamma_star_theory):
        inside = bool(low - spacing <= gamma_star_theory <= high + spacing)
    max_z = float(np.max(np.abs(z)))
    agree = (inside is not False) and max_z < z_threshold
    return {
        "label": "agree" if agree else "disagree",
        "max_abs_z": max_z,
        "z_threshold": z_threshold,
        "gammas_beyond_threshold": [float(g) for g in gammas[np.abs(z) >= z_threshold]],
        "gamma_star_in_ci": inside,
    }
