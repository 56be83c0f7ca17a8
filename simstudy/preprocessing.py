"""Imputation (median or mean) and standardisation fitted on training rows only (study 7, and
any table a selection study reads), so that no held-out row informs the transform."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

IMPUTATIONS = ("median", "mean")
"""The imputation rules of ``preprocess``."""


class Preprocessor(NamedTuple):
    """Imputation and standardisation fitted on training rows (``preprocess``)."""

    keep: np.ndarray  # indices of the columns kept
    fill: np.ndarray  # the training medians (or means) of the kept columns, put in for NaN
    mean: np.ndarray  # training means after imputation
    scale: np.ndarray  # training SDs after imputation (ddof = 0, as StandardScaler)

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)[:, self.keep]
        X = np.where(np.isnan(X), self.fill, X)
        return (X - self.mean) / self.scale


def preprocess(X_train, imputation: str = "median") -> Preprocessor:
    """Fit imputation and scaling on the training rows only.

    Column j is kept when it has an observed training value and a positive training SD after
    imputation (a constant column is collinear with the intercept and carries nothing); its
    missing entries become the median (or mean) m_j of its observed training values and
    x -> (x - mean_j) / sd_j, with mean_j and sd_j (divisor n) of the imputed training column.

    Parameters
    ----------
    X_train : array_like of shape (n, d)
        The training rows; NaN marks a missing value. No entry may be infinite.
    imputation : {"median", "mean"}, default "median"
        What a missing value becomes (scikit-learn's SimpleImputer strategies of those names).

    Returns
    -------
    Preprocessor
        The fitted transform.

    Raises
    ------
    ValueError
        If ``imputation`` is not one of ``IMPUTATIONS``, X_train holds an infinite value, or no
        column is kept.
    """
    if imputation not in IMPUTATIONS:
        raise ValueError(f"imputation must be one of {list(IMPUTATIONS)}, got {imputation!r}")
    X = np.asarray(X_train, dtype=np.float64)
    # an infinite value is not missing data: its column's SD would be NaN, and the column dropped
    # below as if it were constant, without a word
    infinite = np.flatnonzero(np.isinf(X).any(axis=0))
    if infinite.size:
        raise ValueError(
            f"X_train holds infinite values in column(s) {infinite[:10].tolist()}; only NaN "
            "(a missing value, imputed) is allowed besides finite numbers"
        )
    observed = ~np.all(np.isnan(X), axis=0)
    fill = np.full(X.shape[1], np.nan)
    # only observed columns: nanmedian / nanmean of an all-NaN column warn and give NaN, and
    # such a column is dropped anyway
    fill[observed] = (np.nanmedian if imputation == "median" else np.nanmean)(X[:, observed], axis=0)
    filled = np.where(np.isnan(X), fill, X)
    sd = filled.std(axis=0)
    keep = np.flatnonzero(observed & (sd > 0))
    if keep.size == 0:
        raise ValueError("no training column has an observed, non-constant value")
    return Preprocessor(keep, fill[keep], filled[:, keep].mean(axis=0), sd[keep])


class TablePreprocessor(TransformerMixin, BaseEstimator):
    """``preprocess`` as a scikit-learn transformer, for the selectors' ``preprocessor``: they
    refit a clone inside every validation split on its fitting rows alone.

    Parameters
    ----------
    imputation : {"median", "mean"}, default "median"
        What a missing value becomes.

    Attributes
    ----------
    preprocessor_ : Preprocessor
        The transform fitted on the rows given to ``fit``.
    """

    def __init__(self, imputation="median"):
        self.imputation = imputation

    def fit(self, X, y=None):
        """Fit imputation and scaling on X (n, d), NaN marking missing values; returns self."""
        self.preprocessor_ = preprocess(X, self.imputation)
        return self

    def transform(self, X) -> np.ndarray:
        """The kept columns of X, imputed and standardised as fitted."""
        return self.preprocessor_.transform(X)
