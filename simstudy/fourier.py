"""Random Fourier features (Rahimi and Recht 2007): a fixed random map under which a linear
model approximates a kernel machine with the Gaussian kernel (THEORY.md section 6, study 6(b))."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import pdist


class RandomFourierFeatures:
    """phi(x) = sqrt(2 / D) cos(W x + b), W (D, d), b (D,).

    With the rows of W drawn from N(0, I / ell^2) and b from Unif[0, 2 pi) (``draw``),
    E phi(x)' phi(x') = exp(-||x - x'||^2 / (2 ell^2)), the Gaussian kernel of lengthscale ell
    (Rahimi and Recht 2007): logistic regression on phi approximates a kernel logistic
    regression (THEORY.md section 6, study 6(b)). The parameters are fixed at construction.
    """

    def __init__(self, W, b):
        W = np.array(W, dtype=np.float64)
        b = np.array(b, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
            raise ValueError(f"W must be a non-empty 2-D array (D, d), got shape {W.shape}")
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape (D,) = ({W.shape[0]},) to match W, got {b.shape}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise ValueError("W and b must be finite")
        W.flags.writeable = False
        b.flags.writeable = False
        self.W, self.b = W, b

    @classmethod
    def draw(cls, d: int, n_features: int, lengthscale: float, rng: np.random.Generator):
        """W with i.i.d. N(0, 1 / lengthscale^2) entries and b ~ Unif[0, 2 pi), from rng."""
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be an integer >= 1, got {d!r}")
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
        if not (isinstance(lengthscale, (int, float)) and math.isfinite(lengthscale) and lengthscale > 0):
            raise ValueError(f"lengthscale must be a finite number > 0, got {lengthscale!r}")
        W = rng.standard_normal((int(n_features), int(d))) / lengthscale
        b = rng.uniform(0.0, 2.0 * math.pi, size=int(n_features))
        return cls(W, b)

    @property
    def n_features(self) -> int:
        return self.W.shape[0]

    @property
    def dim(self) -> int:
        return self.W.shape[1]

    def __call__(self, X) -> np.ndarray:
        """phi of rows X (..., n, d), shape (..., n, D)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim < 1 or X.shape[-1] != self.dim:
            raise ValueError(f"X must have {self.dim} columns (the map's input dimension), got shape {X.shape}")
        out = X @ self.W.T
        out += self.b
        np.cos(out, out=out)
        out *= math.sqrt(2.0 / self.n_features)
        return out

    def __repr__(self) -> str:
        return f"RandomFourierFeatures(D={self.n_features}, d={self.dim})"


def variance_lengthscale(X) -> float:
    """The lengthscale of the bandwidth g = 1 / (d Var(X)), Var over all entries of X.

    The authors' RFF bandwidth (AUTHORS_DESIGNS.md section B; scikit-learn's gamma="scale"):
    exp(-g ||x - x'||^2) is the Gaussian kernel exp(-||x - x'||^2 / (2 ell^2)) with
    ell = sqrt(d Var(X) / 2).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.size < 2:
        raise ValueError(f"X must be a 2-D array with at least 2 entries, got shape {X.shape}")
    var = float(X.var())
    if not var > 0:
        raise ValueError("every entry of X is the same: Var(X) is 0")
    return math.sqrt(X.shape[1] * var / 2.0)


LENGTHSCALE_RULES = ("median", "variance")
"""Lengthscales computed from the rows a map is fitted on (``RandomFourierSpec``)."""


class RandomFourierSpec:
    """Random Fourier features to be drawn afresh on the rows they serve: ``fit(X, rng)``
    returns ``RandomFourierFeatures.draw(d, n_features, ell, rng)`` with ell from X.

    A selector given a spec instead of a fixed map (``simstudy.selection``, "Feature maps")
    refits it on each validation fold's fitting rows and on all training rows, as the authors'
    study 6b does (AUTHORS_DESIGNS.md section B).

    Parameters
    ----------
    n_features : int
        D >= 1.
    lengthscale : float, "median" or "variance"
        A fixed ell > 0, the median pairwise distance of X's rows (``median_lengthscale``), or
        the authors' g = 1 / (d Var(X)) (``variance_lengthscale``).
    """

    def __init__(self, n_features: int, lengthscale="variance"):
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
        if isinstance(lengthscale, str):
            if lengthscale not in LENGTHSCALE_RULES:
                raise ValueError(f"lengthscale must be a number > 0, 'median' or 'variance', got {lengthscale!r}")
        elif isinstance(lengthscale, bool) or not (
            isinstance(lengthscale, (int, float)) and math.isfinite(lengthscale) and lengthscale > 0
        ):
            raise ValueError(f"lengthscale must be a number > 0, 'median' or 'variance', got {lengthscale!r}")
        self.n_features = int(n_features)
        self.lengthscale = lengthscale

    def lengthscale_of(self, X) -> float:
        """ell for the rows X (n, d)."""
        if self.lengthscale == "median":
            return median_lengthscale(X)
        if self.lengthscale == "variance":
            return variance_lengthscale(X)
        return float(self.lengthscale)

    def fit(self, X, rng: np.random.Generator) -> RandomFourierFeatures:
        """A fresh map for the rows X (n, d): ell from X, W and b drawn from rng."""
        X = np.asarray(X, dtype=np.float64)
        return RandomFourierFeatures.draw(X.shape[1], self.n_features, self.lengthscale_of(X), rng)

    def __repr__(self) -> str:
        return f"RandomFourierSpec(n_features={self.n_features}, lengthscale={self.lengthscale!r})"


def median_lengthscale(X) -> float:
    """The median heuristic: the median Euclidean distance over all pairs of rows of X."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be a 2-D array with at least 2 rows, got shape {X.shape}")
    ell = float(np.median(pdist(X)))
    if not ell > 0:
        raise ValueError("the rows of X coincide: the median pairwise distance is 0")
    return ell
