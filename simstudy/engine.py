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
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.fitting import GLM, fit_glm

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Design:
    """Sizes and Monte Carlo settings of a cell. n_tilde = round(gamma (n0 - n1)), half to even.

    Parameters
    ----------
    n0 : int
        Majority rows, an integer > n1.
    n1 : int
        Minority rows, an integer >= 1.
    gammas : sequence of float
        The synthetic multipliers gamma, finite and >= 0, at least one; stored as a tuple of
        floats.
    reps : int
        Monte Carlo replications R, an integer >= 2.
    seed : int, default 0
        The root seed of the cell's streams.
    chunk : int, default 10
        Replications per chunk of ``run_cell``, an integer >= 1.

    Raises
    ------
    ValueError
        If a field is out of range.
    """

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
        """n0 - n1, the synthetic size of full balancing (gamma = 1).

        Returns
        -------
        int
            n0 - n1.
        """
        return self.n0 - self.n1

    @property
    def n_tilde(self) -> np.ndarray:
        """The synthetic sizes n~ = round(gamma (n0 - n1)) of the grid, half to even.

        Returns
        -------
        ndarray of int64, shape (G,)
            One size per gamma.
        """
        return np.rint(np.asarray(self.gammas) * self.gap).astype(np.int64)


def stable_key(obj) -> tuple[int, ...]:
    """Four 32-bit words of the SHA-256 of obj's canonical JSON.

    A seed key that is the same on every machine, process and Python hash seed.

    Parameters
    ----------
    obj : object
        JSON-serialisable data (keys sorted; other objects by ``str``).

    Returns
    -------
    tuple of int
        Four integers in [0, 2^32), the first 16 digest bytes read little-endian.
    """
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams(NamedTuple):
    """The three independent streams of one replication.

    Attributes
    ----------
    data : numpy.random.Generator
        The real data.
    fit : numpy.random.Generator
        The generator's fit.
    pool : numpy.random.Generator
        The synthetic pool.
    """

    data: np.random.Generator
    fit: np.random.Generator
    pool: np.random.Generator


def replication_streams(seed: int, data_key, generator_key, r: int) -> Streams:
    """The three independent streams of replication r (see the module docstring).

    Parameters
    ----------
    seed : int
        The cell's root seed.
    data_key : tuple of int
        The cell's data key (a ``stable_key``).
    generator_key : tuple of int
        The generator's key (a ``stable_key``).
    r : int
        The replication.

    Returns
    -------
    Streams
        data from SeedSequence(seed, spawn_key=(*data_key, r)); fit and pool the two children of
        SeedSequence(seed, spawn_key=(*data_key, r, *generator_key)).
    """
    data = np.random.SeedSequence(seed, spawn_key=(*data_key, r))
    fit, pool = np.random.SeedSequence(seed, spawn_key=(*data_key, r, *generator_key)).spawn(2)
    return Streams(*(np.random.default_rng(s) for s in (data, fit, pool)))


STREAM_TAGS = MappingProxyType(
    {
        # after (data key, generator key): one stream per use in a job
        "theory_refits": 1,  # the theory step's generator refits
        "bootstrap": 2,  # the empirical optimum's bootstrap (curve cells and study 6)
        "verdict": 3,  # the first-order verdict's band and CI
        "verdict_refined": 4,  # the refined prediction's verdict
        # after (data key, replication): a key one word shorter than the above, never equal
        "selectors": 2,  # the selectors of studies 6 and 7
        "symmetry_bootstrap": 5,  # the symmetry test's bootstrap resamples (study.kind diagnostics)
        "feature_map": 6,  # a feature map drawn per replication (study 6, selection.feature_map.refit: fold)
        "symmetry_tilted": 7,  # the symmetry test's tilted bootstrap resamples (study.kind diagnostics)
    }
)
"""The last word of every auxiliary spawn key, in one table (``auxiliary_seed``). The values
are the published ones: changing one changes every number drawn from that stream."""


def auxiliary_seed(seed: int, key, tag: str) -> np.random.SeedSequence:
    """SeedSequence(seed, spawn_key=(*key, STREAM_TAGS[tag])): an auxiliary stream of a job.

    Parameters
    ----------
    seed : int
        The root seed.
    key : sequence of int
        The spawn key before the tag.
    tag : str
        A key of ``STREAM_TAGS``.

    Returns
    -------
    numpy.random.SeedSequence
        The auxiliary stream's seed.

    Raises
    ------
    KeyError
        If ``tag`` is not a key of ``STREAM_TAGS``.
    """
    return np.random.SeedSequence(seed, spawn_key=(*key, STREAM_TAGS[tag]))


class Cell(NamedTuple):
    """Everything one cell needs; keys come from the cell's config (see stable_key).

    Attributes
    ----------
    process : simstudy.processes.Process
        The data-generating process (``labels`` and ``sample`` are used).
    generator : simstudy.generators.base.Generator
        The unfitted generator.
    model : simstudy.fitting.GLM
        The model fitted.
    design : Design
        Sizes and Monte Carlo settings.
    data_key : tuple of int
        Key of the real data's streams.
    generator_key : tuple of int
        Key of the generator's streams (after the data key and r).
    """

    process: object
    generator: object
    model: GLM
    design: Design
    data_key: tuple[int, ...]
    generator_key: tuple[int, ...]


def draw_replication(cell: Cell, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The stacked design [X0; X1; pool] and labels of replication r.

    Parameters
    ----------
    cell : Cell
        The cell.
    r : int
        The replication.

    Returns
    -------
    X : ndarray of shape (N, d)
        n0 majority rows, n1 minority rows, then the pool of max n~ synthetic rows;
        N = n0 + n1 + max n~.
    y : ndarray of float64, shape (N,)
        y0 for the majority rows, y1 for the others.
    """
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

    Built once per design and shared read-only by every replication fitted with it (its cost
    against a replication's: benchmarks/README.md).

    Parameters
    ----------
    design : Design
        The design (cached by value, up to 16 designs).

    Returns
    -------
    ndarray of float64, shape (G, N)
        The weights, N = n0 + n1 + max n~; not writeable.
    """
    n_real, pool = design.n0 + design.n1, int(design.n_tilde.max())
    synthetic = np.arange(pool)[None, :] < design.n_tilde[:, None]
    weights = np.hstack([np.ones((len(design.gammas), n_real)), synthetic.astype(np.float64)])
    weights.setflags(write=False)
    return weights


class FitBlock(NamedTuple):
    """The fits of consecutive replications.

    Attributes
    ----------
    theta : ndarray of shape (C, G, p)
        Coefficients per replication and gamma.
    info : simstudy.fitting.FitInfo
        Diagnostics, each of shape (C, G).
    """

    theta: np.ndarray  # (C, G, p)
    info: object  # FitInfo with (C, G) arrays


def fit_replication(cell: Cell, r: int, theta0=None):
    """Draw replication r and fit all its gammas in one batched call; returns the Fit.

    Parameters
    ----------
    cell : Cell
        The cell.
    r : int
        The replication.
    theta0 : array_like of shape (G, p) or (p,), optional
        Warm starts (default zeros).

    Returns
    -------
    simstudy.fitting.Fit
        theta of shape (G, p) and FitInfo arrays of shape (G,).
    """
    X, y = draw_replication(cell, r)
    return fit_glm(X, y, prefix_weights(cell.design), model=cell.model, theta0=theta0)


def stack_fits(fits) -> FitBlock:
    """The Fits of consecutive replications as one FitBlock.

    Parameters
    ----------
    fits : iterable of simstudy.fitting.Fit
        C fits of one shape, at least one.

    Returns
    -------
    FitBlock
        theta and info fields stacked along a new first axis.
    """
    fits = list(fits)
    info = type(fits[0].info)(*(np.stack(field) for field in zip(*(fit.info for fit in fits))))
    return FitBlock(np.stack([fit.theta for fit in fits]), info)


def fit_replications(cell: Cell, reps, theta0=None) -> FitBlock:
    """Fit every gamma of each replication in reps, one after another in this thread.

    Parameters
    ----------
    cell : Cell
        The cell.
    reps : iterable of int
        The replications, at least one.
    theta0 : array_like of shape (G, p) or (p,), optional
        Warm starts (default zeros).

    Returns
    -------
    FitBlock
        theta (C, G, p) and FitInfo arrays (C, G), C = len(reps).
    """
    return stack_fits(fit_replication(cell, r, theta0) for r in reps)


def ordered_map(function, items, workers: int) -> Iterator:
    """function(item) for each item, in order, computed by ``workers`` threads.

    At most 2 * workers items are computed ahead of the consumer (so memory stays bounded).

    Parameters
    ----------
    function : callable
        Called with one item.
    items : iterable
        The items.
    workers : int
        Threads, >= 1.

    Yields
    ------
    object
        function(item), in the order of ``items``; an exception of a call is raised when its
        result is reached.
    """
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
    its Python, numpy draws and JAX execution alternate); more than two threads per core
    gained nothing (measured on study 2: benchmarks/README.md).

    Returns
    -------
    int
        min(4, 2 * cores), at least 1, counting the cores this process may run on.
    """
    # the cores this process may run on (a Slurm job's allocation), not the machine's
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, 2 * cores))


def replication_rows(cell: Cell, population, reps, block: FitBlock) -> pd.DataFrame:
    """One tidy row per (replication, gamma) with the per-fit numbers and diagnostics.

    Parameters
    ----------
    cell : Cell
        The cell (its design's gammas and sizes).
    population : simstudy.population.Population
        Gives the exact excess risk and theta*.
    reps : sequence of int
        The C replications of the block.
    block : FitBlock
        Their fits, theta of shape (C, G, p).

    Returns
    -------
    pandas.DataFrame
        C G rows with columns "replication", "gamma", "n_tilde", "excess" (R_bal(theta) -
        R_bal(theta*)), "param_error" (||theta - theta*||), "iterations", "grad_norm",
        "converged", "separated", "nonfinite" and "theta_0", ..., "theta_{p-1}".
    """
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
    """A Progress that prints a line to stderr per tenth of the work or per ``every_seconds``.

    It prints at the end too: done/total, elapsed and the linear estimate of what is left.

    Parameters
    ----------
    label : str
        Printed in brackets at the start of each line.
    unit : str, default "replications"
        What is counted.
    every_seconds : float, default 5.0
        Longest quiet time between lines (checked when the progress is reported).

    Returns
    -------
    callable
        ``report(done, total, elapsed)`` (a ``Progress``), returning None.
    """
    last = {"fraction": 0.0, "elapsed": 0.0}

    def report(done: int, total: int, elapsed: float):
        fraction = done / total
        if done < total and fraction - last["fraction"] < 0.1 and elapsed - last["elapsed"] < every_seconds:
            return
        last.update(fraction=fraction, elapsed=elapsed)
        left = elapsed / done * (total - done)
        print(
            f"[{label}] {done}/{total} {unit}, {elapsed:.1f} s elapsed, ~{left:.1f} s left", file=sys.stderr, flush=True
        )

    return report


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread.

    Studies multiply small matrices (data, generator fits, exact risks, theory refits), where
    BLAS threads gain nothing and their spinning idle workers take the cores the JAX fits need
    next (measured on study 2: benchmarks/README.md). It also keeps a job's numbers
    independent of the machine's BLAS thread count.

    Returns
    -------
    threadpoolctl.threadpool_limits
        The limiter, used as a context manager: threadpoolctl applies the limit when it is
        created and restores the previous limits when the ``with`` block exits.
    """
    return threadpool_limits(limits=1, user_api="blas")


def run_cell(
    cell: Cell, population, theta0=None, progress: Progress | None = None, workers: int | None = None
) -> pd.DataFrame:
    """All replications of a cell, in chunks; returns the tidy replications table.

    Each replication's numbers depend on its own streams only, so they do not depend on
    ``workers`` or the design's ``chunk``.

    Parameters
    ----------
    cell : Cell
        The cell.
    population : simstudy.population.Population
        Gives the exact excess risk and theta*.
    theta0 : array_like of shape (G, p), optional
        Warm starts per gamma (the population limit theta_bar(n~) is a good one); converged
        answers do not depend on it beyond the solver tolerance.
    progress : callable, optional
        ``progress(done, total, elapsed)`` after each chunk (see ``progress_printer``).
    workers : int, optional
        Replications drawn and fitted at once, each in its own thread (default
        ``default_workers()``), an integer >= 1.

    Returns
    -------
    pandas.DataFrame
        R G rows, as ``replication_rows``, in replication order.

    Raises
    ------
    ValueError
        If ``workers`` is not an integer >= 1.
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
    """Per-gamma Monte Carlo summaries (THEORY.md section 7: every estimate with its MCSE).

    Attributes
    ----------
    mean : ndarray of shape (G,)
        Mean over replications.
    mcse : ndarray of shape (G,)
        Its Monte Carlo standard error sd / sqrt(R).
    quantiles : ndarray of shape (len(QUANTILES), G)
        The QUANTILES (0.1, 0.5, 0.9) over replications.
    """

    mean: np.ndarray
    mcse: np.ndarray
    quantiles: np.ndarray  # (len(QUANTILES), G)


def summarise_curve(values: np.ndarray) -> CurveSummary:
    """values (R, G): mean, MCSE = sd / sqrt(R), quantiles over replications.

    Parameters
    ----------
    values : ndarray of shape (R, G)
        One row per replication, one column per gamma.

    Returns
    -------
    CurveSummary
        mean, mcse (sd with ddof 1) and quantiles per gamma.
    """
    R = values.shape[0]
    return CurveSummary(
        values.mean(axis=0),
        values.std(axis=0, ddof=1) / np.sqrt(R),
        np.quantile(values, QUANTILES, axis=0),
    )


class RootMeanSquare(NamedTuple):
    """A root mean square over replications with its Monte Carlo standard error.

    Attributes
    ----------
    value : ndarray of shape (G,)
        sqrt(mean(values^2)).
    mcse : ndarray of shape (G,)
        The delta-method MCSE (0 where value is 0).
    """

    value: np.ndarray
    mcse: np.ndarray


def root_mean_square(values: np.ndarray) -> RootMeanSquare:
    """sqrt(mean(values^2)) over replications, with its delta-method MCSE.

    The MCSE is sd(values^2) / (2 sqrt(R) rms): the theory predicts E||theta_hat - theta*||^2,
    so the parameter error is compared on this scale.

    Parameters
    ----------
    values : ndarray of shape (R, G)
        One row per replication.

    Returns
    -------
    RootMeanSquare
        value and mcse per column.
    """
    squares = values**2
    rms = np.sqrt(squares.mean(axis=0))
    se = squares.std(axis=0, ddof=1) / np.sqrt(values.shape[0]) / np.where(rms > 0, 2 * rms, np.inf)
    return RootMeanSquare(rms, se)


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n): how often each of n units appears in each of n_boot resamples.

    Each resample draws n units with replacement. Means over resamples are then one product,
    counts @ values / n, without the (n_boot, n, G) array that indexing builds.

    Parameters
    ----------
    n : int
        Number of units.
    n_boot : int
        Number of resamples.
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    ndarray of float64, shape (n_boot, n)
        The counts; each row sums to n.
    """
    idx = rng.integers(0, n, size=(n_boot, n))
    rows = np.arange(n_boot)[:, None] * n
    return np.bincount((idx + rows).ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


class EmpiricalOptimum(NamedTuple):
    """The empirical optimum of a simulated curve (``empirical_optimum``).

    Attributes
    ----------
    gamma : float
        The grid point where the mean curve is smallest.
    ci : tuple of (float, float)
        The percentile bootstrap CI of the argmin, grid values.
    level : float
        The CI's level.
    """

    gamma: float
    ci: tuple[float, float]
    level: float


def empirical_optimum(
    values: np.ndarray, gammas, rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95
) -> EmpiricalOptimum:
    """Argmin over the gamma grid of the mean curve, with a percentile bootstrap CI.

    The CI is over replications (THEORY.md section 7: non-mean summaries get a bootstrap CI).
    The argmin takes grid values only, so the CI's ends are grid values too (the inverse of
    the bootstrap distribution function, no interpolation between grid points): at least
    ``level`` of the bootstrap argmins lie in it.

    Parameters
    ----------
    values : ndarray of shape (R, G)
        One row per replication, one column per gamma.
    gammas : array_like of shape (G,)
        The grid.
    rng : numpy.random.Generator
        Draws the bootstrap resamples.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    level : float, default 0.95
        The CI's level.

    Returns
    -------
    EmpiricalOptimum
        The argmin gamma of the mean curve, the CI (low, high) and the level.
    """
    gammas = np.asarray(gammas)
    R = values.shape[0]
    boot = gammas[np.argmin(bootstrap_counts(R, n_boot, rng) @ values, axis=1)]
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail], method="inverted_cdf")
    return EmpiricalOptimum(float(gammas[np.argmin(values.mean(axis=0))]), (float(low), float(high)), level)


def _mean_and_se(counts: np.ndarray, values: np.ndarray):
    """Means and standard errors of the mean, sd (ddof 1) / sqrt(n), over each resample (a row
    of counts) of the n rows of values."""
    n = values.shape[0]
    # centred first: E x^2 - (E x)^2 loses the variance to rounding when the mean dominates
    centre = values.mean(axis=0)
    shifted = counts @ (values - centre) / n
    var = np.clip(counts @ (values - centre) ** 2 / n - shifted**2, 0.0, None)
    var = var * (n / (n - 1)) if n > 1 else 0.0 * var
    return shifted + centre, np.sqrt(var / n)


class Band(NamedTuple):
    """The simultaneous check of a predicted curve against the simulated one (``simultaneous_band``).

    Attributes
    ----------
    z : ndarray of shape (G,)
        (simulated mean - predicted) / se.
    se : ndarray of shape (G,)
        sqrt(MCSE^2 + theory_se^2).
    max_abs_z : float
        max_g |z_g|.
    critical : float
        The bootstrap (1 - alpha) quantile of max_g |t*_g|: the band is predicted +- critical * se.
    p_value : float
        The bootstrap p-value (1 + #{T* >= max_abs_z}) / (n_boot + 1).
    alpha : float
        The family-wise error rate.
    """

    z: np.ndarray
    """(G,) (simulated mean - predicted) / se."""
    se: np.ndarray
    """(G,) sqrt(MCSE^2 + theory_se^2)."""
    max_abs_z: float
    critical: float
    """The bootstrap (1 - alpha) quantile of max_g |t*_g|: the band is predicted +- critical * se."""
    p_value: float
    alpha: float

    @property
    def inside(self) -> bool:
        """Whether the whole predicted curve lies in the band.

        Returns
        -------
        bool
            max_abs_z <= critical.
        """
        return self.max_abs_z <= self.critical


def simultaneous_band(
    values: np.ndarray, theory_fits: np.ndarray, rng: np.random.Generator, alpha: float = 0.05, n_boot: int = 2000
) -> Band:
    """Does the whole predicted curve lie in a band with family-wise error rate alpha?

    With m the simulated mean, s its MCSE and tau the SE of t (sd over fits / sqrt F), the
    statistic is T = max_g |m_g - t_g| / sqrt(s_g^2 + tau_g^2). Its law when the prediction is
    right is estimated by the max-|t| bootstrap: T* = max_g |(m*_g - m_g) - (t*_g - t_g)| /
    sqrt(s*_g^2 + tau*_g^2), replications and fits resampled with replacement (independently:
    the theory's fits are not the simulation's), each resample studentised by its own SEs.
    Taking the max over the grid inside each resample keeps the strong correlation between
    gammas (every gamma is fitted on the same replications), so the critical value
    c = (1 - alpha) quantile of T* makes P(T > c) = alpha for the grid as a whole; a per-gamma
    threshold such as |z| < 4 has no stated error rate.

    Parameters
    ----------
    values : array_like of shape (R, G)
        The simulated replications.
    theory_fits : array_like of shape (F, G) or (G,)
        The prediction's per-fit terms, whose mean t is the predicted curve (F = 1 for an exact
        prediction, whose SE is 0).
    rng : numpy.random.Generator
        Draws the bootstrap resamples (replications first, then fits when F > 1).
    alpha : float, default 0.05
        The family-wise error rate.
    n_boot : int, default 2000
        Number of bootstrap resamples.

    Returns
    -------
    Band
        z, se, max |z|, the critical value, the p-value and alpha.
    """
    values, fits = np.asarray(values, dtype=np.float64), np.atleast_2d(np.asarray(theory_fits, dtype=np.float64))
    R, F = values.shape[0], fits.shape[0]
    m, s = _mean_and_se(np.ones((1, R)), values)
    t, tau = _mean_and_se(np.ones((1, F)), fits)
    se = np.hypot(s[0], tau[0])
    z = (m[0] - t[0]) / np.where(se > 0, se, np.inf)
    m_b, s_b = _mean_and_se(bootstrap_counts(R, n_boot, rng), values)
    t_b, tau_b = _mean_and_se(bootstrap_counts(F, n_boot, rng), fits) if F > 1 else (t, tau)
    se_b = np.hypot(s_b, tau_b)
    boot = np.max(np.abs((m_b - m) - (t_b - t)) / np.where(se_b > 0, se_b, np.inf), axis=1)
    max_z = float(np.max(np.abs(z)))
    return Band(
        z, se, max_z, float(np.quantile(boot, 1 - alpha)), float((1 + np.sum(boot >= max_z)) / (n_boot + 1)), alpha
    )


def _finite(x) -> float | None:
    """x for summary.json: None when not finite (JSON has no NaN)."""
    x = float(x)
    return x if np.isfinite(x) else None


class RelativeError(NamedTuple):
    """simulated / predicted - 1 per gamma with a pointwise confidence interval.

    Attributes
    ----------
    value : ndarray of shape (G,)
        m / t - 1 (NaN where t <= 0).
    low : ndarray of shape (G,)
        Lower end of the interval.
    high : ndarray of shape (G,)
        Upper end of the interval.
    level : float
        The interval's level.
    """

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float

    def largest(self, gammas) -> dict | None:
        """The gamma where |value| is largest, with its value and interval.

        None when no gamma has a positive prediction.

        Parameters
        ----------
        gammas : array_like of shape (G,)
            The grid.

        Returns
        -------
        dict or None
            {"gamma": float, "value": float, "ci": [low, high]} (an end is None when not finite), or
            None when every value is NaN.
        """
        if np.all(np.isnan(self.value)):
            return None
        i = int(np.nanargmax(np.abs(self.value)))
        return {
            "gamma": float(np.asarray(gammas)[i]),
            "value": float(self.value[i]),
            "ci": [_finite(self.low[i]), _finite(self.high[i])],
        }


def relative_error(values: np.ndarray, theory_fits: np.ndarray, level: float = 0.95) -> RelativeError:
    """m / t - 1 per gamma (m the simulated mean, t the prediction) with a delta-method interval.

    m and t are independent means, so Var(m / t) ~ (s^2 + (m / t)^2 tau^2) / t^2 with s, tau
    their standard errors (as in ``simultaneous_band``). NaN where t <= 0.

    Parameters
    ----------
    values : array_like of shape (R, G)
        The simulated replications.
    theory_fits : array_like of shape (F, G) or (G,)
        The prediction's per-fit terms.
    level : float, default 0.95
        The normal interval's level.

    Returns
    -------
    RelativeError
        value, low and high per gamma, and the level.
    """
    from scipy.stats import norm  # 0.8 s to import: loaded by the one function that needs it

    values, fits = np.asarray(values, dtype=np.float64), np.atleast_2d(np.asarray(theory_fits, dtype=np.float64))
    (m,), (s,) = _mean_and_se(np.ones((1, values.shape[0])), values)
    (t,), (tau,) = _mean_and_se(np.ones((1, fits.shape[0])), fits)
    positive = t > 0
    safe = np.where(positive, t, 1.0)
    ratio = np.where(positive, m / safe, np.nan)
    half = norm.ppf(0.5 + level / 2) * np.sqrt(s**2 + ratio**2 * tau**2) / safe
    return RelativeError(ratio - 1, ratio - 1 - half, ratio - 1 + half, level)


def nearest_grid_points(gammas, gamma: float) -> np.ndarray:
    """The grid points nearest gamma (both at a tie).

    Parameters
    ----------
    gammas : array_like
        The grid (duplicates removed, sorted).
    gamma : float
        The point.

    Returns
    -------
    ndarray of float64
        One grid point, or two at a tie, in increasing order.
    """
    grid = np.unique(np.asarray(gammas, dtype=np.float64))
    distance = np.abs(grid - gamma)
    return grid[distance <= distance.min()]


MIN_VERDICT_REPLICATIONS = 10
"""Below this many replications the verdict reads "undetermined": its bootstrap band has too
few distinct resamples to hold a stated error rate."""


def verdict(
    values: np.ndarray,
    theory_fits: np.ndarray,
    gamma_star_theory,
    gammas,
    rng: np.random.Generator,
    alpha: float = 0.05,
    n_boot: int = 2000,
) -> dict:
    """Does the simulation agree with the theory, and by how much does it not?

    Two checks at level alpha / 2 each, so that "disagree" has probability at most alpha when
    the prediction is exact (Bonferroni):

    * curve: the whole predicted curve inside the simulated one's family-wise band
      (``simultaneous_band`` at alpha / 2);
    * optimum: the predicted optimal gamma* matched by the empirical argmin's (1 - alpha / 2)
      bootstrap CI, i.e. the grid point nearest gamma* lies in the CI: the argmin takes grid
      values only, so this widens the CI by half the grid interval that holds gamma*, the local
      spacing (skipped when gamma_star_theory is None).

    Also reported, whatever the label: per-gamma z and the relative error simulated /
    predicted - 1 with its 95% interval (``relative_error``), and the largest |relative error|.

    Parameters
    ----------
    values : ndarray of shape (R, G)
        Simulated replications over the grid ``gammas``.
    theory_fits : ndarray of shape (F, G)
        The prediction's per-fit terms (its mean is the predicted curve; see
        ``simultaneous_band``).
    gamma_star_theory : float or None
        The predicted optimal gamma*; None (or not finite) skips the optimum check.
    gammas : array_like of shape (G,)
        The grid.
    rng : numpy.random.Generator
        Draws the band's bootstrap, then the optimum's.
    alpha : float, default 0.05
        The overall false-alarm rate.
    n_boot : int, default 2000
        Bootstrap resamples of each check.

    Returns
    -------
    dict
        "label" ("agree", "disagree", or "undetermined" below MIN_VERDICT_REPLICATIONS
        replications or when the band's bootstrap degenerates), "alpha", "rule" (the rule in words),
        "curve_inside_band", "max_abs_z", "critical_z", "curve_p_value", "z" (per gamma),
        "gammas_outside_band", "gamma_star", "gamma_star_grid" (the nearest grid points or
        None), "gamma_star_ci", "gamma_star_ci_level", "gamma_star_in_ci" (None when skipped),
        "relative_error", "relative_error_ci" and "largest_relative_error"; in "z",
        "gamma_star" and the relative errors a non-finite number is None.
    """
    gammas = np.asarray(gammas, dtype=np.float64)
    band = simultaneous_band(values, theory_fits, rng, alpha / 2, n_boot)
    optimum = empirical_optimum(values, gammas, rng, n_boot, level=1 - alpha / 2)
    low, high = optimum.ci
    inside, grid_star = None, None
    if gamma_star_theory is not None and np.isfinite(gamma_star_theory):
        nearest = nearest_grid_points(gammas, float(gamma_star_theory))
        inside = bool(np.any((low <= nearest) & (nearest <= high)))
        grid_star = [float(g) for g in nearest]
    rel = relative_error(values, theory_fits)
    agree = band.inside and inside is not False
    # with too few replications the bootstrap of the band degenerates (at R = 2 every resample
    # has max |t| = 0): no test at the stated level is possible
    determined = values.shape[0] >= MIN_VERDICT_REPLICATIONS and band.critical > 0
    return {
        "label": ("agree" if agree else "disagree") if determined else "undetermined",
        "alpha": alpha,
        "rule": (
            f"agree when the predicted curve lies in the family-wise {1 - alpha / 2:.1%} band of the "
            f"simulated one (max |z| <= critical z) and the grid point nearest the predicted gamma* lies "
            f"in the {1 - alpha / 2:.1%} bootstrap CI of the empirical argmin: false-alarm rate at most "
            f"{alpha:.0%} when the prediction is exact"
        ),
        "curve_inside_band": band.inside,
        "max_abs_z": band.max_abs_z,
        "critical_z": band.critical,
        "curve_p_value": band.p_value,
        "z": [_finite(v) for v in band.z],
        "gammas_outside_band": [float(g) for g in gammas[np.abs(band.z) > band.critical]],
        "gamma_star": None if gamma_star_theory is None else _finite(gamma_star_theory),
        "gamma_star_grid": grid_star,
        "gamma_star_ci": [low, high],
        "gamma_star_ci_level": optimum.level,
        "gamma_star_in_ci": inside,
        "relative_error": [_finite(v) for v in rel.value],
        "relative_error_ci": [[_finite(a), _finite(b)] for a, b in zip(rel.low, rel.high)],
        "largest_relative_error": rel.largest(gammas),
    }
