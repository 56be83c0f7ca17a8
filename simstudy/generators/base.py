"""The generator contract: an unfitted ``Generator`` and the ``FittedGenerator`` it returns.

THEORY.md section 1: a generator is fitted on the n1 real minority points (some also look at
the n0 majority points) and then emits synthetic minority points from a law P~1. Section 2
measures its mismatch psi at theta* through that law, so a fitted generator exposes ``law``
(the synthetic law given the fit) whenever it is known exactly.

Pool contract (section 5 takes candidate sizes as nested prefixes of one pool): for every
fitted generator and every m <= M, the first m rows of ``sample(M, rng)`` are a valid draw of
size m. Generators whose rows are i.i.d. given the fit satisfy this automatically; samplers
whose output is not i.i.d. (fixed per-point allocations, blocks per cluster) return their pool
in uniformly random order, so that any prefix is a uniformly random subset of it. Each
generator documents which case it is in.

Randomness enters only through the ``np.random.Generator`` passed in; nothing here touches a
global seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)

if TYPE_CHECKING:
    from simstudy.laws import ClassLaw


def check_count(m, name: str = "m") -> int:
    """Return m as a Python int, or raise ValueError unless it is an integer >= 0.

    Parameters
    ----------
    m : int
        The count (a Python or numpy integer; bool is refused).
    name : str, default "m"
        The argument's name in the error message.

    Returns
    -------
    int
        ``m``.

    Raises
    ------
    ValueError
        If ``m`` is not an integer >= 0.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= 0, got {m!r} of type {type(m).__name__}")
    if m < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {m}")
    return int(m)


def check_points(X, name: str, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """Return X as a finite float64 (n, d) array with n >= min_rows (and d == dim if given).

    Parameters
    ----------
    X : array_like of shape (n, d)
        The points.
    name : str
        The argument's name in error messages.
    min_rows : int, default 1
        Fewest rows allowed.
    dim : int, optional
        The required number of columns.

    Returns
    -------
    ndarray of float64, shape (n, d)
        ``X`` as an array.

    Raises
    ------
    ValueError
        Naming the argument, if X is not 2-D, has no column, has the wrong number of columns,
        too few rows, or a NaN or infinite value.
    """
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} columns but {dim} are expected")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_pair(X1, X0, min_n1: int = 1, require_X0: bool = False):
    """Validate the (minority, majority) pair given to ``Generator.fit``.

    X0 may be None for generators that never look at the majority (unless require_X0); when
    given it must have the same number of columns as X1.

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
        The real minority points.
    X0 : array_like of shape (n0, d) or None
        The real majority points (at least one row when given).
    min_n1 : int, default 1
        Fewest minority rows allowed.
    require_X0 : bool, default False
        Refuse X0 = None.

    Returns
    -------
    X1 : ndarray of float64, shape (n1, d)
        The checked minority points.
    X0 : ndarray of float64, shape (n0, d), or None
        The checked majority points, None when not given.

    Raises
    ------
    ValueError
        If either array fails ``check_points`` or X0 is None although required.
    """
    X1 = check_points(X1, "X1", min_rows=min_n1)
    if X0 is None:
        if require_X0:
            raise ValueError("X0 (the real majority points) is required here, got None")
        return X1, None
    return X1, check_points(X0, "X0", min_rows=1, dim=X1.shape[1])


def substreams(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    """k independent generators seeded from a fixed amount of rng's output.

    A sampler that needs several kinds of draws (an index, a noise vector, a uniform step)
    takes each from its own substream. The amount consumed from rng does not depend on the
    pool size, and numpy fills arrays row by row from a stream, so sample(M)[:m] equals
    sample(m) from the same rng state: the prefix property holds draw for draw (up to
    the rounding of a BLAS product, whose blocking can depend on the number of rows).

    Parameters
    ----------
    rng : numpy.random.Generator
        The parent stream; 2 k 64-bit integers are drawn from it.
    k : int
        Number of substreams.

    Returns
    -------
    list of numpy.random.Generator
        k PCG64 generators.
    """
    keys = rng.integers(0, 2**63, size=(k, 2), dtype=np.uint64)
    return [np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key)))) for key in keys]


class FittedGenerator(ABC):
    """A generator after its fit: a sampler of synthetic minority points in dimension ``dim``.

    ``law`` is the synthetic law P~1 given the fit when it is known exactly (a ClassLaw), else
    None. Subclasses implement ``_sample``; ``sample`` checks m and handles m = 0.

    Attributes
    ----------
    dim : int
        Dimension of the points.
    law : simstudy.laws.ClassLaw or None
        The synthetic law given the fit, None when not known exactly.
    """

    dim: int
    law: ClassLaw | None = None  # a subclass overrides it with an attribute or a property

    def sample(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """Return an (m, dim) array of synthetic minority points (see the pool contract).

        Parameters
        ----------
        m : int
            Number of points, >= 0.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of shape (m, dim)
            The points (an empty float64 array when m = 0).

        Raises
        ------
        ValueError
            If ``m`` is not an integer >= 0 or ``rng`` is not a ``numpy.random.Generator``.
        """
        m = check_count(m, "m")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if m == 0:
            return np.empty((0, self.dim))
        return self._sample(m, rng)

    @abstractmethod
    def _sample(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """Draw m >= 1 points."""


class Generator(ABC):
    """An unfitted generator: parameters only, cheap to build and to pickle.

    Attributes
    ----------
    name : str
        Identifies the generator in results.
    data_dependent : bool
        False when the synthetic law does not depend on the real sample (the oracle), True
        otherwise (section 3: a fitted generator adds a random part of order n1^{-1/2} to psi).
    """

    name: str
    data_dependent: bool

    @abstractmethod
    def fit(self, X1, X0, rng: np.random.Generator) -> FittedGenerator:
        """Fit on the real minority X1 (n1, d) and majority X0 (n0, d).

        rng serves generators whose fit is itself random; a deterministic fit ignores it.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points.
        X0 : array_like of shape (n0, d) or None
            The real majority points; generators that never look at them accept None.
        rng : numpy.random.Generator
            The source of randomness of a random fit.

        Returns
        -------
        FittedGenerator
            The sampler of synthetic minority points.

        Raises
        ------
        ValueError
            In the implementations here, if X1 or X0 is invalid (``check_pair``) or too small for
            the generator.
        """
