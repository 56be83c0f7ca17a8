"""Median imputation and standardisation fitted on training rows only (study 7, and any table
a selection study reads), so that no held-out row informs the transform."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Preprocessor(NamedTuple):
    """Median imputation and standardisation fitted on training rows (``preprocess``)."""

    keep: np.ndarray  # indices of the columns kept
    median: np.ndarray  # training medians of the kept columns
    mean: np.ndarray  # training means after imputation
    scale: np.ndarray  # training SDs after imputation (ddof = 0, as StandardScaler)

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)[:, self.keep]
        X = np.where(np.isnan(X), self.median, X)
        return (X - self.mean) / self.scale


def preprocess(X_train) -> Preprocessor:
    """Fit imputation and scaling on the training rows only.

    Column j is kept when it has an observed training value and a positive training SD after
    imputation (a constant column is collinear with the intercept and carries nothing); its
    missing entries become the training median m_j and x -> (x - mean_j) / sd_j, with mean_j
    and sd_j (divisor n) of the imputed training column.
    """
    X = np.asarray(X_train, dtype=np.float64)
    observed = ~np.all(np.isnan(X), axis=0)
    median = np.full(X.shape[1], np.nan)
    median[observed] = np.nanmedian(X[:, observed], axis=0)
    filled = np.where(np.isnan(X), median, X)
    sd = filled.std(axis=0)
    keep = np.flatnonzero(observed & (sd > 0))
    if keep.size == 0:
        raise ValueError("no training column has an observed, non-constant value")
    return Preprocessor(keep, median[keep], filled[:, keep].mean(axis=0), sd[keep])
