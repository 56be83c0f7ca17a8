"""Classification metrics of a binary GLM on test rows, from its linear predictors (study 7)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from simstudy.families import get_family
from simstudy.selection import balanced_loss

METRICS = ("balanced_log_loss", "accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc")
"""The metrics ``classification_metrics`` returns, in the order tables show them."""


def classification_metrics(family, eta, y) -> dict:
    """The metrics of study 7 from the linear predictors eta of test rows with labels y.

    p = P(y = 1 | x) from the link (sigmoid or Phi), prediction 1 where p > 1/2 (eta > 0);
    balanced_log_loss is L_bal with the family's exact loss (no clipping); the others are
    sklearn.metrics: accuracy, balanced accuracy, F1 (0 when nothing is predicted positive),
    MCC, AUROC (roc_auc_score) and AUPRC (average_precision_score).
    """
    family = get_family(family)
    eta = np.asarray(eta, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    p = family.probability(eta)
    pred = (eta > 0).astype(np.int64)
    return {
        "balanced_log_loss": float(balanced_loss(family, eta, y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0.0)),
        "mcc": float(skm.matthews_corrcoef(y, pred)),
        "auroc": float(skm.roc_auc_score(y, p)),
        "auprc": float(skm.average_precision_score(y, p)),
    }
