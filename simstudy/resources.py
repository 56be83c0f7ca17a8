"""What a curve cell needs, estimated from its sizes, and the preflight check that refuses a
cell this machine cannot run.

A curve cell (``simstudy.engine.run_cell``) with N = n0 + n1 + max n~ rows in its stacked
design, G gammas, d covariates and p = d (+ 1 with an intercept) coefficients, R replications
and W workers holds at its peak (8 bytes per float64 number):

* the process itself: Python with JAX, pandas and matplotlib, the population and the theory
  (``BASE_BYTES``);
* the (G, N) prefix weights, shared by the workers (``engine.prefix_weights``);
* per worker, one replication in flight (``engine.ordered_map`` runs W at once; the 2 W it
  keeps queued hold only their small Fits): its draw and stacked design, about 4 + 2 d numbers
  per row, the fitter's temporaries, about 6 (G, N) arrays, and the Hessians' products:
  the row outer products (N p^2) on fitting's Newton path for G >= 4 and p <= 32, the weighted
  design of every problem (G N p) where each problem's Hessian is formed (the squared loss's
  exact solve, or Newton otherwise), the run sums in numpy (N p) on the quasi-Newton path of a
  binary family;
* the replications table, R G (10 + p) numbers, three times over (chunks, their concatenation,
  the parquet copy), and after the loop the bootstrap counts of the summaries, (2000, R)
  arrays, four at once (``engine.bootstrap_counts``).

The constants were calibrated on the peak RSS and time of twelve measured cells, from the
quickstart's to 2.3 million rows and 100,000 replications; the estimate was 1.1-1.9 times the
measured peak on every cell (the table: benchmarks/README.md). Time on one core is
SECONDS_PER_REPLICATION per replication (draw, fit, rows, summaries) plus SECONDS_PER_FIT_NUMBER
per G N p, and for the theory's generator refits SECONDS_PER_REFIT_NUMBER per row and feature
of a refit's n0 + n1 rows (counted for every generator, although a fixed law takes a single
fit), plus SECONDS_PER_JOB for what every job pays whatever its size (compilation, the theory's
fixed part, the figure and the files).

``check_budget`` refuses (``ConfigError``) a cell whose estimate exceeds ``MEMORY_SHARE`` of
the memory available now, or ``MAX_HOURS`` hours. ``SIMSTUDY_NO_BUDGET=1`` in the environment
skips it: for a cluster, whose nodes the submitting machine's memory says nothing about.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from simstudy.cell import make_dgp
from simstudy.config import ConfigError, RunConfig
from simstudy.engine import default_workers
from simstudy.fitting import _OUTER_PRODUCT_GROUP, _OUTER_PRODUCT_MAX_P, choose_method

BASE_BYTES = 700e6
"""The process without the cell's arrays (measured at the presets' sizes: benchmarks/README.md)."""
FITTER_ARRAYS = 6
"""(G, N) temporaries of one replication's fit: weights, linear predictors, loss, score,
curvature and their weighted products (3.1 fitted for the squared loss, 4.3-6.1 for the
iterative fits)."""
TABLE_COPIES = 3
BOOTSTRAP_RESAMPLES = 2000
"""``n_boot`` of engine.empirical_optimum and engine.simultaneous_band."""
BOOTSTRAP_COPIES = 4
"""The draws, their offsets, the counts and their float copy (engine.bootstrap_counts)."""
SECONDS_PER_JOB = 2.0
"""A job's cost at any size: 1.0-2.35 s recorded for two-replication cells of five presets."""
SECONDS_PER_REPLICATION = 2.5e-3
SECONDS_PER_FIT_NUMBER = 25e-9
"""Seconds per G N p of one replication's fits."""
SECONDS_PER_REFIT_NUMBER = 1e-6
"""Seconds per row and feature of one theory refit's n0 + n1 rows."""
SECONDS_PER_REAL_DATA_FIT = 1.0
"""Study 7, per split, dataset and generator (or the baselines): the default study's 20 splits
of 4 datasets with 4 generators took about 10 minutes. Its memory follows the data files."""
MEMORY_SHARE = 0.8
MAX_HOURS = 7 * 24.0
OVERRIDE = "SIMSTUDY_NO_BUDGET"

# The largest sizes of the shipped presets and `make figures` (asym_biased's n1 = 3200 and
# gammas up to 6, kappa 20, asym_consistent's 23 gammas, d = 20, the quickstart's 200
# replications, 200 theory refits): an error names the size key that exceeds its own by the
# largest factor
SHIPPED = {"n1": 3200, "kappa": 20.0, "gammas": 23, "max_gamma": 6.0, "d": 20, "reps": 200, "refits": 200}


class CellSizes(NamedTuple):
    """The sizes a curve cell's needs depend on."""

    n0: int
    n1: int
    pool: int
    """max n~ = round(max gamma (n0 - n1)), the synthetic rows of every replication."""
    G: int
    d: int
    p: int
    reps: int
    refits: int
    workers: int
    family: str

    @property
    def rows(self) -> int:
        """N, the rows of a replication's stacked design."""
        return self.n0 + self.n1 + self.pool


class Estimate(NamedTuple):
    loop_bytes: float
    """The replication loop's arrays: prefix weights and the workers' replications."""
    table_bytes: float
    """The replications table, built during the loop and kept to the end."""
    bootstrap_bytes: float
    """The summaries' bootstrap counts, after the loop."""
    seconds: float

    @property
    def peak_bytes(self) -> float:
        # the workers' arrays are freed before the summaries' bootstrap starts
        return BASE_BYTES + self.table_bytes + max(self.loop_bytes, self.bootstrap_bytes)


def cell_sizes(run: RunConfig) -> CellSizes:
    """The sizes of run's curve cell; builds its process (cheap) for the dimension."""
    design = run.design
    d = make_dgp(run.dgp).dim  # as BuiltCell builds and reports it
    pool = round(max(design.gammas) * (design.n0 - design.n1))
    workers = default_workers() if run.workers is None else run.workers
    return CellSizes(
        design.n0,
        design.n1,
        pool,
        len(design.gammas),
        d,
        d + int(run.model.intercept),
        design.reps,
        run.theory_refits,
        min(workers, design.reps),
        run.model.family,
    )


def _hessian_numbers_per_row(s: CellSizes) -> float:
    """Numbers per design row that one replication's Hessians materialise (module docstring)."""
    method = choose_method("auto", s.G, s.rows, s.p)
    if method == "newton" and s.G >= _OUTER_PRODUCT_GROUP and s.p <= _OUTER_PRODUCT_MAX_P:
        return s.p * s.p
    if method == "quasi_newton" and s.family != "squared":
        return s.p
    return s.G * s.p


def _worker_bytes(s: CellSizes) -> float:
    """One replication in flight: its draw, design, fit temporaries and Hessian products."""
    return 8.0 * s.rows * (4 + 2 * s.d + FITTER_ARRAYS * s.G + _hessian_numbers_per_row(s))


def _seconds(s: CellSizes) -> float:
    per_replication = SECONDS_PER_REPLICATION + SECONDS_PER_FIT_NUMBER * s.G * s.rows * s.p
    refits = SECONDS_PER_REFIT_NUMBER * s.refits * (s.n0 + s.n1) * s.d
    return SECONDS_PER_JOB + s.reps * per_replication + refits


def estimate(s: CellSizes) -> Estimate:
    """Peak memory (bytes; 1.1-1.9 times the measured peaks) and rough time on one core
    (seconds) of a curve cell of sizes s."""
    loop = 8.0 * s.G * s.rows + s.workers * _worker_bytes(s)
    table = 8.0 * TABLE_COPIES * s.reps * s.G * (10 + s.p)
    bootstrap = 8.0 * BOOTSTRAP_COPIES * BOOTSTRAP_RESAMPLES * s.reps
    return Estimate(loop, table, bootstrap, _seconds(s))


def available_bytes() -> float:
    """Memory available to a new job now: MemAvailable from /proc/meminfo, else (no such file)
    the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _excess(s: CellSizes) -> dict:
    """How far each size key goes beyond the largest the shipped studies use."""
    return {
        "design.n1": s.n1 / SHIPPED["n1"],
        "design.n0": s.n0 / s.n1 / SHIPPED["kappa"],
        "design.gammas": max(s.G / SHIPPED["gammas"], s.pool / (s.n0 - s.n1) / SHIPPED["max_gamma"]),
        "dgp": s.d / SHIPPED["d"],
        "design.reps": s.reps / SHIPPED["reps"],
        "theory.refits": s.refits / SHIPPED["refits"],
    }


def responsible_key(s: CellSizes, est: Estimate, memory: bool) -> str:
    """The size key most responsible for the memory (``memory``) or the time estimate: for
    memory, design.reps when the table and bootstrap outweigh the replication loop, else the
    row and width keys; for time, any key. Among those, the key furthest beyond the shipped
    studies."""
    if memory and est.table_bytes + est.bootstrap_bytes >= est.loop_bytes:
        return "design.reps"
    excess = _excess(s)
    if memory:
        del excess["design.reps"], excess["theory.refits"]
    return max(excess, key=excess.get)


def _value(run: RunConfig, key: str):
    d = run.design
    return {
        "design.n1": d.n1,
        "design.n0": d.n0,
        "design.gammas": list(d.gammas),
        "dgp": run.dgp,
        "design.reps": d.reps,
        "theory.refits": run.theory_refits,
    }[key]


def vtss_estimate(run: RunConfig) -> tuple[float, float, dict[str, float]]:
    """(peak bytes, seconds on one core, how far each size key goes beyond vtss_ring's default
    cell, the largest shipped one) of a study-6 cell, a rough
    bound rather than a calibrated model: per replication the curve's fits and each selector's
    (fold, candidate) fits, 2 selectors x (K + 2) batches of G_sel fits over N rows of p model
    features at SECONDS_PER_FIT_NUMBER, and in memory two batches' designs and temporaries
    plus the fixed test set (2 test_per_class rows of p features). vtss_ring's default cell
    (N = 15,600, p = 101, K = 5) gives 17 s per replication (measured: benchmarks/README.md)."""
    sel = run.selection
    d = run.design
    phi = sel.feature_map
    dim = make_dgp(run.dgp).dim  # as BuiltCell builds and reports it, so bad options fail here
    width = phi.n_features if phi else dim
    p = width + int(run.model.intercept)
    rows = d.n0 + d.n1 + round(max(d.gammas) * (d.n0 - d.n1))
    candidates = max(len(sel.gammas or range(41)), len(d.gammas))
    cv = sel.cv
    folds = 1 if cv == "holdout" else (cv[1] * cv[2] if isinstance(cv, tuple) else cv)
    test = 2 * sel.test_per_class if phi or sel.scoring == "test_set" else 0
    fit_numbers = 2 * (folds + 2) * candidates * rows * p
    seconds = SECONDS_PER_JOB + d.reps * (SECONDS_PER_REPLICATION + SECONDS_PER_FIT_NUMBER * fit_numbers)
    memory = BASE_BYTES + 8.0 * (2 * rows * (p + (FITTER_ARRAYS + p) * candidates) + 2 * test * p)
    excess = {
        "selection.test_per_class": test / 40000,
        "selection.feature_map.n_features": width / 100,
        "design.n1": rows / 15600,
        "design.reps": d.reps / 100,
    }
    return memory, seconds, excess


def estimated_seconds(run: RunConfig) -> float | None:
    """A rough time on one core of run's job.

    Parameters
    ----------
    run : RunConfig
        A validated config.

    Returns
    -------
    float or None
        ``estimate`` for a curve cell, ``vtss_estimate`` for study 6, SECONDS_PER_REAL_DATA_FIT
        per split, dataset and generator (or the baselines) for study 7; None for the other
        kinds (diagnostics, network, a user's), which have no estimate.
    """
    if run.kind == "curve":
        return estimate(cell_sizes(run)).seconds
    if run.kind == "vtss":
        return vtss_estimate(run)[1]
    if run.kind == "real_data":
        data = run.data
        fits = run.design.reps * len(data.datasets or [data.path]) * (1 + len(data.generators))
        return fits * SECONDS_PER_REAL_DATA_FIT
    return None


def check_budget(run: RunConfig) -> None:
    """Raise ConfigError when run's cell would need more than MEMORY_SHARE of the memory
    available now, or more than MAX_HOURS (estimates of ``estimate`` for a curve cell,
    ``vtss_estimate`` for study 6, time only for study 7, whose memory follows its data files);
    nothing when SIMSTUDY_NO_BUDGET=1."""
    if os.environ.get(OVERRIDE) == "1":
        return
    override = f"{OVERRIDE}=1 skips this check (e.g. for a cluster's larger nodes)"
    if run.kind == "real_data":
        seconds = estimated_seconds(run)
        if seconds / 3600 > MAX_HOURS:
            raise ConfigError(
                "design.reps",
                run.design.reps,
                f"the study would take about {seconds / 3600:,.0f} "
                f"hours on one core, more than {MAX_HOURS:.0f}; {override}",
            )
        return
    if run.kind == "vtss":
        memory, seconds, excess = vtss_estimate(run)
        sel = run.selection
        values = {
            "selection.test_per_class": sel.test_per_class,
            "design.n1": run.design.n1,
            "selection.feature_map.n_features": None if sel.feature_map is None else sel.feature_map.n_features,
            "design.reps": run.design.reps,
        }
        if memory > MEMORY_SHARE * available_bytes():
            key = max((k for k in excess if k != "design.reps"), key=excess.get)
            raise ConfigError(
                key,
                values[key],
                f"the cell would need about {memory / 1e9:.3g} GB, more than "
                f"{MEMORY_SHARE:.0%} of the {available_bytes() / 1e9:.3g} GB free; {override}",
            )
        if seconds / 3600 > MAX_HOURS:
            key = max(excess, key=excess.get)
            raise ConfigError(
                key,
                values[key],
                f"the cell would take about {seconds / 3600:,.0f} hours on one "
                f"core, more than {MAX_HOURS:.0f}; {override}",
            )
        return
    s = cell_sizes(run)
    est = estimate(s)
    limit = MEMORY_SHARE * available_bytes()
    override = f"{OVERRIDE}=1 skips this check (e.g. for a cluster's larger nodes)"
    if est.peak_bytes > limit:
        key = responsible_key(s, est, memory=True)
        raise ConfigError(
            key,
            _value(run, key),
            f"the cell would need about {est.peak_bytes / 1e9:.3g} GB "
            f"(N = {s.rows:,} rows x {s.G} gammas, {s.reps:,} replications), more than the "
            f"{limit / 1e9:.3g} GB available ({MEMORY_SHARE:.0%} of free memory); {override}",
        )
    hours = est.seconds / 3600
    if hours > MAX_HOURS:
        key = responsible_key(s, est, memory=False)
        raise ConfigError(
            key,
            _value(run, key),
            f"the cell would take about {hours:,.0f} hours on one core, more than {MAX_HOURS:.0f}; {override}",
        )
