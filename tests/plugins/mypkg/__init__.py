"""A user's package that plugs a process, a generator and a kind of study into simstudy without
touching it (README, "Adding a process, a generator, a family or a kind of study");
tests/test_plugins.py runs sweeps with them.

Its configs live in ``mypkg/conf`` (``hydra.searchpath=[pkg://mypkg.conf]``):
``conf/dgp/myprocess.yaml``, ``conf/generator/mine.yaml`` and ``conf/study/excess_table.yaml``.
"""

from __future__ import annotations

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from simstudy.cell import BuiltCell
from simstudy.engine import fit_replications, replication_rows, run_cell
from simstudy.families import Family
from simstudy.generators.base import FittedGenerator, Generator, check_pair
from simstudy.laws import GaussianMixtureLaw
from simstudy.processes import Process
from simstudy.schema import ConfigError


def two_gaussians(d: int = 2, delta: float = 1.0, spread: float = 1.0) -> Process:
    """Majority N(0, I), minority N(delta e1, spread^2 I) in dimension d, labels 0/1."""
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    if not spread > 0:
        raise ValueError(f"spread must be > 0, got {spread!r}")
    mu1 = np.zeros(d)
    mu1[0] = delta
    return Process(
        "two_gaussians",
        GaussianMixtureLaw(np.ones(1), np.zeros((1, d)), np.eye(d)[None]),
        GaussianMixtureLaw(np.ones(1), mu1[None], (spread**2 * np.eye(d))[None]),
    )


class _FittedShrunk(FittedGenerator):
    def __init__(self, X1: np.ndarray, shrink: float):
        self.X1, self.shrink, self.dim = X1, shrink, X1.shape[1]
        self.centre = X1.mean(axis=0)

    def _sample(self, m, rng):  # i.i.d. given the fit: any prefix of a pool is a draw
        rows = self.X1[rng.integers(0, len(self.X1), size=m)]
        return self.centre + self.shrink * (rows - self.centre)


class ShrunkBootstrap(Generator):
    """Bootstrap minority points pulled toward the minority mean by the factor ``shrink``.

    ``process`` is completed by simstudy (the cell's process): the generator checks that the
    data have its dimension.
    """

    name = "shrunk_bootstrap"
    data_dependent = True

    def __init__(self, process, shrink: float = 0.5):
        if not 0.0 <= shrink <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], got {shrink!r}")
        self.dim, self.shrink = process.dim, float(shrink)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        X1, _ = check_pair(X1, X0, min_n1=1)
        if X1.shape[1] != self.dim:
            raise ValueError(f"X1 has {X1.shape[1]} columns, the process {self.dim}")
        return _FittedShrunk(X1, self.shrink)


class ExcessTable:
    """A kind of study: the simulated excess risk per gamma (mean and Monte Carlo SE) of a
    curve cell, without the theory; implements simstudy.studies.protocol.Study."""

    figures = ("table",)
    unit = "replication"
    row_tables = ("parquet",)

    def validate(self, run, sections):
        if sections:
            key = next(iter(sections))
            raise ConfigError(key, sections[key], "ExcessTable reads no such section")
        return run

    def build(self, run):
        return BuiltCell(run)

    def label(self, built):
        return f"{built.run.study} excess table", "replications"

    def run(self, built, progress):
        return run_cell(built.cell, built.population, progress=progress, workers=1)

    def summarise(self, built, rows):
        excess = rows.pivot(index="replication", columns="gamma", values="excess")
        return {
            "gammas": [float(g) for g in excess.columns],
            "excess_mean": [float(v) for v in excess.mean()],
            "excess_mcse": [float(v) for v in excess.std(ddof=1) / np.sqrt(len(excess))],
        }

    def documents(self, summary):
        lines = ["| gamma | excess | MCSE |", "|---|---|---|"]
        for g, m, se in zip(summary["gammas"], summary["excess_mean"], summary["excess_mcse"]):
            lines.append(f"| {g:g} | {m:.4g} | {se:.2g} |")
        return {"table.md": "\n".join(lines) + "\n"}

    def draw(self, summary):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.errorbar(summary["gammas"], summary["excess_mean"], yerr=summary["excess_mcse"], marker="o")
        ax.set(xlabel="gamma", ylabel="excess risk")
        return {"figure": fig}

    def replicate(self, run, summary, r):
        built = BuiltCell(run)
        return replication_rows(built.cell, built.population, [r], fit_replications(built.cell, [r]))


def _cloglog_u(eta):
    return jnp.exp(eta)


def _cloglog_loss(eta, y):
    # p = 1 - exp(-e^eta): -log p = -log(-expm1(-u)), -log(1 - p) = u
    u = _cloglog_u(eta)
    return -y * jnp.log(-jnp.expm1(-u)) + (1.0 - y) * u


def _cloglog_score(eta, y):
    u = _cloglog_u(eta)
    return -y * u / jnp.expm1(u) + (1.0 - y) * u


def _cloglog_curvature(eta, y):
    # d/d eta of -u / (e^u - 1) = -u h'(u), h(u) = u / (e^u - 1), written without the
    # cancellations of the plain formula: a series below u = 0.01, e^u / (e^u - 1) as
    # 1 / (1 - e^-u) above
    u = _cloglog_u(eta)
    exact = (1.0 - u / -jnp.expm1(-u)) / jnp.expm1(jnp.maximum(u, 1e-2))
    series = -0.5 + u / 6.0 - u**3 / 180.0
    return -y * u * jnp.where(u < 1e-2, series, exact) + (1.0 - y) * u


CLOGLOG = Family(
    "cloglog",
    _cloglog_loss,
    _cloglog_score,
    _cloglog_curvature,
    binary=True,
    probability=lambda eta: -np.expm1(-np.exp(eta)),
)
"""A family from this package: the Bernoulli likelihood under the complementary log-log link,
P(y = 1 | x) = 1 - exp(-exp(eta)) (``model.family=mypkg.CLOGLOG``)."""
