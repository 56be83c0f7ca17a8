"""The classic generators of THEORY.md sections 1 and 6, in plain numpy.

Every sampler here has rows i.i.d. given the fit, so any prefix of a pool is a valid draw
(base.py, pool contract). Except for ``Oracle`` and ``SemiOracle`` (whose rows come from the
class law's own ``sample``), each one also draws from a fixed number of substreams of the rng
(``base.substreams``) or from the rng alone in row order, so that ``sample(M, rng)[:m]`` equals
``sample(m, rng)`` from the same rng state, draw for draw (bit for bit, except that the
Gaussian fit's matrix product may round differently in the last place).

* ``Oracle``        fresh draws from the true minority law P1 (psi = 0 exactly).
* ``ConsistentShift``  P1 shifted by shift / sqrt(log m), m the minority rows it is fitted on
                    (study 4's slowly consistent generator).
* ``SemiOracle``    the minority sample mean plus fresh noise from the true noise law: the law of
                    X + (x̄1 - E X), X ~ P1 (study 1).
* ``GaussianFit``   N(x̄1, (1 - s) S + s (tr S / d) I), S the sample covariance (studies 1-2).
* ``Smote``         SMOTE (Chawla et al. 2002), k nearest minority neighbours (studies 1, 2, 6a).
* ``BootstrapJitter``  a resampled minority point plus N(0, sd^2 I) noise (study 6b).
* ``FeatureJitter``    a resampled minority point plus N(0, diag(scale^2 s_j^2)) noise, s_j the
                       sample SD of feature j (study 7).
* ``LocalJitter``      a resampled minority point x_i plus N(0, s_i^2 I) noise, s_i scaled by the
                       distances to x_i's nearest minority neighbours (the network study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.generators.base import (
    FittedGenerator,
    Generator,
    check_pair,
    substreams,
)
from simstudy.laws import ClassLaw, GaussianMixtureLaw


def _check_neighbour_count(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _minority_neighbours(X1, X0, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The checked minority rows and each one's k nearest minority neighbours (n1, k)."""
    X1, _ = check_pair(X1, X0, min_n1=1)
    if X1.shape[0] < k + 1:
        raise ValueError(
            f"k = {k} neighbours need at least k + 1 = {k + 1} minority points, but X1 has {X1.shape[0]} rows"
        )
    return X1, nearest_neighbours(X1, k)


def _check_number(value, name: str, low: float, high: float = np.inf) -> float:
    """value as a float in [low, high], or a ValueError naming the argument."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = np.nan
    if not (np.isfinite(x) and low <= x <= high):
        allowed = f">= {low}" if high == np.inf else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return x


def _check_law(law1) -> None:
    if not isinstance(law1, ClassLaw):
        raise ValueError(f"law1 must be a simstudy.laws.ClassLaw, got {type(law1).__name__}")


def _check_law_dim(law1, X1, X0, min_n1: int):
    X1, X0 = check_pair(X1, X0, min_n1=min_n1)
    if X1.shape[1] != law1.dim:
        raise ValueError(f"X1 has {X1.shape[1]} columns but the minority law has dim {law1.dim}")
    return X1


class _LawSampler(FittedGenerator):
    """Draws i.i.d. rows from a known ClassLaw."""

    def __init__(self, law):
        self.law = law
        self.dim = int(law.dim)

    def _sample(self, m, rng):
        return np.asarray(self.law.sample(m, rng), dtype=np.float64).reshape(m, self.dim)


@dataclass(frozen=True)
class Oracle(Generator):
    """Fresh draws from the true minority law P1, so psi = 0 (THEORY.md section 3).

    The ideal generator. The fit ignores the data apart from checking its dimension.

    Parameters
    ----------
    law1 : simstudy.laws.ClassLaw
        The true minority law P1.

    Attributes
    ----------
    name : str
        "oracle".
    data_dependent : bool
        False.

    Raises
    ------
    ValueError
        If ``law1`` is not a ClassLaw.
    """

    law1: ClassLaw
    name: ClassVar[str] = "oracle"
    data_dependent: ClassVar[bool] = False

    def __post_init__(self):
        _check_law(self.law1)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Check the data's dimension and return a sampler of law1.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points (may have no rows).
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedGenerator
            I.i.d. draws from ``law1``, whose ``law`` is ``law1``.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or d differs from the law's dimension.
        """
        _check_law_dim(self.law1, X1, X0, min_n1=0)
        return _LawSampler(self.law1)


@dataclass(frozen=True, eq=False)
class ConsistentShift(Generator):
    """P1 shifted by ``shift / sqrt(log m)``, m the number of minority rows it is fitted on.

    THEORY.md study 4's slowly consistent generator, synthetic mean mu1 + shift / sqrt(log m),
    as AUTHORS_DESIGNS.md section A runs it inside the selectors: fitted on a CV or GQS fold it
    is as accurate as that fold's minority count allows. Fitted on the cell's n1 rows it is
    ``Oracle(law1.shifted(shift / sqrt(log n1)))``, draw for draw. Only the count of X1 matters,
    not its values (``data_dependent`` is False: given n1 the law is fixed).

    Parameters
    ----------
    law1 : simstudy.laws.ClassLaw
        The true minority law P1.
    shift : array_like of shape (d,)
        The shift at log m = 1.

    Attributes
    ----------
    name : str
        "shifted".
    data_dependent : bool
        False.

    Raises
    ------
    ValueError
        If ``law1`` is not a ClassLaw or ``shift`` is not a finite vector of its dimension.
    """

    law1: ClassLaw
    shift: np.ndarray
    name: ClassVar[str] = "shifted"
    data_dependent: ClassVar[bool] = False

    def __post_init__(self):
        _check_law(self.law1)
        shift = np.asarray(self.shift, dtype=np.float64)
        if shift.shape != (self.law1.dim,) or not np.all(np.isfinite(shift)):
            raise ValueError(f"shift must be a finite vector of length {self.law1.dim}, got {self.shift!r}")
        object.__setattr__(self, "shift", shift)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """A sampler of law1 shifted by shift / sqrt(log m), m = X1's number of rows.

        Parameters
        ----------
        X1 : array_like of shape (m, d)
            The real minority points, m >= 2 (log 1 = 0); only their count is used.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedGenerator
            I.i.d. draws from the shifted law, which is its ``law``.

        Raises
        ------
        ValueError
            If X1 has fewer than 2 rows, or X1 or X0 is invalid.
        """
        _check_law_dim(self.law1, X1, X0, min_n1=2)
        # multiplied by the reciprocal, as the curve study has always computed it (same bits)
        factor = 1.0 / math.sqrt(math.log(np.shape(X1)[0]))
        return _LawSampler(self.law1.shifted(self.shift * factor))


@dataclass(frozen=True)
class SemiOracle(Generator):
    """The minority sample mean plus fresh noise from the true noise law (study 1).

    With P1 the law of X = E X + xi, the synthetic law is that of x̄1 + xi, i.e.
    law1.shifted(x̄1 - E X): right shape, and a location error x̄1 - E X of order n1^{-1/2}.

    Parameters
    ----------
    law1 : simstudy.laws.ClassLaw
        The true minority law P1.

    Attributes
    ----------
    name : str
        "semi_oracle".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``law1`` is not a ClassLaw.
    """

    law1: ClassLaw
    name: ClassVar[str] = "semi_oracle"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_law(self.law1)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Return a sampler of law1 shifted by x̄1 - E X.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least one.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedGenerator
            I.i.d. draws from ``law1.shifted(X1.mean(axis=0) - law1.mean)``, which is its ``law``.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or d differs from the law's dimension.
        """
        X1 = _check_law_dim(self.law1, X1, X0, min_n1=1)
        return _LawSampler(self.law1.shifted(X1.mean(axis=0) - np.asarray(self.law1.mean)))


@dataclass(frozen=True)
class GaussianFit(Generator):
    """A Gaussian fitted to the minority sample, covariance shrunk toward a multiple of I.

    Law: N(x̄1, (1 - s) S + s (tr S / d) I), S the unbiased sample covariance and s the
    shrinkage in [0, 1] (study 1 uses s = 0.1). Sampling uses a square root of the covariance
    from its eigendecomposition, so s = 0 with n1 <= d (singular S) still works.

    Parameters
    ----------
    shrinkage : float, default 0.1
        s, a number in [0, 1].

    Attributes
    ----------
    name : str
        "gaussian_fit".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``shrinkage`` is not a finite number in [0, 1].
    """

    shrinkage: float = 0.1
    name: ClassVar[str] = "gaussian_fit"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_number(self.shrinkage, "shrinkage", 0.0, 1.0)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Fit the shrunk Gaussian to the minority points.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least two.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedGaussian
            N(x̄1, (1 - s) S + s (tr S / d) I).

        Raises
        ------
        ValueError
            If X1 (fewer than 2 rows) or X0 is invalid.
        """
        X1, _ = check_pair(X1, X0, min_n1=2)
        d = X1.shape[1]
        S = np.cov(X1, rowvar=False, ddof=1).reshape(d, d)
        cov = (1.0 - self.shrinkage) * S + self.shrinkage * (np.trace(S) / d) * np.eye(d)
        return FittedGaussian(X1.mean(axis=0), cov)


class FittedGaussian(FittedGenerator):
    """N(mean, cov) sampled as mean + Z F' with F F' = cov (F from the eigendecomposition).

    Eigenvalues below d eps times the largest are set to zero, so a rank-deficient cov draws on
    its span only.

    Parameters
    ----------
    mean : ndarray of shape (d,)
        The mean.
    cov : ndarray of shape (d, d)
        The covariance, symmetric positive semi-definite.

    Attributes
    ----------
    mean : ndarray of shape (d,)
        The mean.
    cov : ndarray of shape (d, d)
        The covariance.
    dim : int
        d.
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray):
        self.mean = mean
        self.cov = cov
        self.dim = mean.shape[0]
        w, V = np.linalg.eigh(cov)
        # a rank-deficient S (n1 <= d, no shrinkage) has zero eigenvalues that come out as
        # +-1e-17 times the largest; their square roots (1e-9) would leak noise off its span
        w = np.where(w > self.dim * np.finfo(float).eps * max(w.max(), 0.0), w, 0.0)
        self._factor = V * np.sqrt(w)

    @cached_property
    def law(self) -> GaussianMixtureLaw:
        """The synthetic law N(mean, cov), built on first access.

        Returns
        -------
        simstudy.laws.GaussianMixtureLaw
            The one-component mixture.
        """
        return GaussianMixtureLaw(np.ones(1), self.mean[None, :], self.cov[None, :, :])

    def _sample(self, m, rng):
        out = rng.standard_normal((m, self.dim)) @ self._factor.T
        out += self.mean
        return out


def nearest_neighbours(X: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Indices (n, k) of the k nearest other rows of X (Euclidean), nearest first.

    A point is never its own neighbour, even when it has exact duplicates (which are then
    neighbours at distance 0). Brute force in row blocks keeps memory at block * n.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The points.
    k : int
        Neighbours per point, 1 <= k <= n - 1.
    block : int, default 1024
        Rows per block of the distance computation.

    Returns
    -------
    ndarray of intp, shape (n, k)
        Row indices of each point's neighbours, nearest first.
    """
    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    out = np.empty((n, k), dtype=np.intp)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        D = sq[rows, None] + sq[None, :] - 2.0 * X[rows] @ X.T
        D[np.arange(rows.size), rows] = np.inf
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(D, part, axis=1), axis=1, kind="stable")
        out[rows] = np.take_along_axis(part, order, axis=1)
    return out


@dataclass(frozen=True)
class Smote(Generator):
    """SMOTE with k nearest minority neighbours, vectorised.

    Each synthetic point is x_i + u (x_j - x_i) with i uniform on the minority points, j
    uniform on the k nearest minority neighbours of x_i (Euclidean, x_i itself excluded) and
    u ~ U(0, 1), all independent: the same law as imbalanced-learn's SMOTE. The neighbour
    table is computed once in ``fit``; sampling is three vectorised draws.

    Parameters
    ----------
    k : int, default 5
        Number of neighbours, an integer >= 1.

    Attributes
    ----------
    name : str
        "smote".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``k`` is not an integer >= 1.
    """

    k: int = 5
    name: ClassVar[str] = "smote"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_neighbour_count(self.k)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Compute the neighbour table of the minority points.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least k + 1.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedSmote
            The SMOTE sampler on X1.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or X1 has fewer than k + 1 rows.
        """
        X1, neighbours = _minority_neighbours(X1, X0, self.k)
        return FittedSmote(X1, neighbours)


class FittedSmote(FittedGenerator):
    """SMOTE sampler on fixed minority points X1 (n1, d) and neighbour table (n1, k).

    Its law given the fit is not built (``law`` is None). Each ``sample`` call draws from three
    substreams of its rng (``substreams``).

    Parameters
    ----------
    X1 : ndarray of shape (n1, d)
        The minority points.
    neighbours : ndarray of int, shape (n1, k)
        Row indices of each point's k nearest neighbours.

    Attributes
    ----------
    X1, neighbours
        The constructor arguments.
    dim : int
        d.
    """

    def __init__(self, X1: np.ndarray, neighbours: np.ndarray):
        self.X1 = X1
        self.neighbours = neighbours
        self.dim = X1.shape[1]

    def _sample(self, m, rng):
        base_rng, nb_rng, step_rng = substreams(rng, 3)
        n1, k = self.neighbours.shape
        i = base_rng.integers(n1, size=m)
        j = self.neighbours[i, nb_rng.integers(k, size=m)]
        u = step_rng.random(m)[:, None]
        # in place: fresh (m, d) temporaries cost page faults that dominate the whole draw
        out = self.X1[i]
        step = self.X1[j]
        step -= out
        step *= u
        out += step
        return out


class FittedJitter(FittedGenerator):
    """A uniformly resampled row of X1 plus N(0, diag(sd^2)) noise.

    Its law given the fit is the equal-weight Gaussian mixture with one component per row of
    X1 (built on first access: it factors n1 covariance matrices).

    Parameters
    ----------
    X1 : ndarray of shape (n1, d)
        The minority points.
    sd : ndarray of shape (d,)
        Per-coordinate noise SDs.

    Attributes
    ----------
    X1, sd
        The constructor arguments.
    dim : int
        d.
    """

    def __init__(self, X1: np.ndarray, sd: np.ndarray):
        self.X1 = X1
        self.sd = sd
        self.dim = X1.shape[1]

    @cached_property
    def law(self) -> GaussianMixtureLaw:
        """The synthetic law: the equal-weight mixture of N(X1[i], diag(sd^2)), built on first access.

        Returns
        -------
        simstudy.laws.GaussianMixtureLaw
            The n1-component mixture.
        """
        n1 = self.X1.shape[0]
        covs = np.broadcast_to(np.diag(self.sd**2), (n1, self.dim, self.dim))
        return GaussianMixtureLaw(np.full(n1, 1.0 / n1), self.X1, covs)

    def _sample(self, m, rng):
        idx_rng, noise_rng = substreams(rng, 2)
        i = idx_rng.integers(self.X1.shape[0], size=m)
        noise = noise_rng.standard_normal((m, self.dim))
        noise *= self.sd
        noise += self.X1[i]
        return noise


@dataclass(frozen=True)
class BootstrapJitter(Generator):
    """Bootstrap plus isotropic Gaussian noise: X1[i] + sd Z, i uniform, Z ~ N(0, I) (study 6b).

    Parameters
    ----------
    sd : float, default 1.0
        The noise SD, a finite number >= 0.

    Attributes
    ----------
    name : str
        "jitter".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``sd`` is not a finite number >= 0.
    """

    sd: float = 1.0
    name: ClassVar[str] = "jitter"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_number(self.sd, "sd", 0.0)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Keep the minority points and the noise SD.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least one.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedJitter
            With sd in every coordinate.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid.
        """
        X1, _ = check_pair(X1, X0, min_n1=1)
        return FittedJitter(X1, np.full(X1.shape[1], float(self.sd)))


@dataclass(frozen=True)
class FeatureJitter(Generator):
    """Bootstrap plus per-feature Gaussian noise with SD scale * s_j.

    s_j is the sample SD of feature j among the minority points (ddof = 1), so the jitter
    follows each feature's units.

    Parameters
    ----------
    scale : float, default 0.1
        The noise SD in units of each feature's SD, a finite number >= 0.

    Attributes
    ----------
    name : str
        "feature_jitter".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``scale`` is not a finite number >= 0.
    """

    scale: float = 0.1
    name: ClassVar[str] = "feature_jitter"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_number(self.scale, "scale", 0.0)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Keep the minority points and the per-feature noise SDs scale * s_j.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least two.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedJitter
            With sd = scale * X1.std(axis=0, ddof=1).

        Raises
        ------
        ValueError
            If X1 (fewer than 2 rows) or X0 is invalid.
        """
        X1, _ = check_pair(X1, X0, min_n1=2)
        return FittedJitter(X1, float(self.scale) * X1.std(axis=0, ddof=1))


@dataclass(frozen=True)
class LocalJitter(Generator):
    """Bootstrap plus isotropic noise scaled by each point's neighbourhood (AUTHORS_DESIGNS.md E).

    A synthetic point is x_i + s_i Z with i uniform on the minority points, Z ~ N(0, I) and

        s_i = scale * median(distances from x_i to its k nearest minority neighbours) / sqrt(d)

    (Euclidean, x_i itself excluded; the design has scale = 0.08, k = 3): points in sparse
    regions are jittered more. Rows are i.i.d. given the fit.

    Parameters
    ----------
    scale : float, default 0.08
        The noise SD per unit of median neighbour distance per sqrt(d), a finite number >= 0.
    k : int, default 3
        Number of neighbours, an integer >= 1.

    Attributes
    ----------
    name : str
        "local_jitter".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``scale`` is not a finite number >= 0 or ``k`` is not an integer >= 1.
    """

    scale: float = 0.08
    k: int = 3
    name: ClassVar[str] = "local_jitter"
    data_dependent: ClassVar[bool] = True

    def __post_init__(self):
        _check_number(self.scale, "scale", 0.0)
        _check_neighbour_count(self.k)

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """The per-point noise SDs s_i from the minority neighbour distances.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points, at least k + 1.
        X0 : array_like of shape (n0, d) or None
            The real majority points, only checked.
        rng : numpy.random.Generator
            Unused.

        Returns
        -------
        FittedLocalJitter
            The sampler with its (n1,) SDs.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or X1 has fewer than k + 1 rows.
        """
        X1, neighbours = _minority_neighbours(X1, X0, self.k)
        distances = np.linalg.norm(X1[neighbours] - X1[:, None, :], axis=-1)
        sd = float(self.scale) * np.median(distances, axis=1) / np.sqrt(X1.shape[1])
        return FittedLocalJitter(X1, sd)


class FittedLocalJitter(FittedGenerator):
    """A uniformly resampled row x_i of X1 plus N(0, sd_i^2 I) noise.

    Its law given the fit is the equal-weight mixture of N(x_i, sd_i^2 I), not built here
    (``law`` is None). Each ``sample`` call draws from two substreams of its rng.

    Parameters
    ----------
    X1 : ndarray of shape (n1, d)
        The minority points.
    sd : ndarray of shape (n1,)
        Each point's noise SD.

    Attributes
    ----------
    X1, sd
        The constructor arguments.
    dim : int
        d.
    """

    def __init__(self, X1: np.ndarray, sd: np.ndarray):
        self.X1 = X1
        self.sd = sd
        self.dim = X1.shape[1]

    def _sample(self, m, rng):
        idx_rng, noise_rng = substreams(rng, 2)
        i = idx_rng.integers(self.X1.shape[0], size=m)
        noise = noise_rng.standard_normal((m, self.dim))
        noise *= self.sd[i, None]
        noise += self.X1[i]
        return noise


__all__ = [
    "BootstrapJitter",
    "FeatureJitter",
    "FittedGaussian",
    "FittedJitter",
    "FittedLocalJitter",
    "FittedSmote",
    "GaussianFit",
    "LocalJitter",
    "Oracle",
    "SemiOracle",
    "Smote",
    "nearest_neighbours",
]
