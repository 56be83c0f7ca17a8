"""Classification metrics of a binary GLM on test rows, from its linear predictors (study 7)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from simstudy.families import get_family
from simstudy.fitting import GLM, fit_glm
from simstudy.selection import balanced_loss

METRICS = (
    "balanced_log_loss",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "mcc",
    "auroc",
    "auprc",
    "precision",
    "recall",
    "jaccard",
    "youden",
    "excess_risk",
)
"""The metrics ``classification_metrics`` returns, in the order tables show them."""

REFERENCE_RIDGE = 1e-8
"""Ridge of the nearly unpenalised fit behind ``excess_risk`` (``reference_loss``)."""


def reference_loss(family, X, y, intercept: bool = True) -> float:
    """The balanced loss of a nearly unpenalised GLM fitted on the test rows themselves.

    The GLM (``family``, ``intercept``, ridge ``REFERENCE_RIDGE`` in simstudy's convention
    sum_i w_i l_i + (ridge / 2) ||theta||^2) is fitted to (X, y) with the balancing weights
    w_i = n / (2 n_{y_i}), which are all 1 on a balanced test set, and scored on the same rows.
    No rule linear in X does better on these rows (up to the ridge), so ``balanced_log_loss``
    minus this number, ``excess_risk``, is an empirical balanced excess risk of a fitted model
    over the best one of its class, both measured on the test rows.

    Parameters
    ----------
    family : Family or str
        The loss family (binary), or its name.
    X : array_like of shape (n, d)
        The test rows, in the space the model is fitted in (preprocessed).
    y : array_like of shape (n,)
        Their 0/1 labels, both present.
    intercept : bool, default True
        Whether the reference has an (unpenalised) intercept, as the model scored against it.

    Returns
    -------
    float
        L_bal of the reference fit on (X, y). On separable rows the fit stops at
        ``fit_glm``'s separation margin and the number is close to 0.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=2)
    weights = y.size / (2.0 * counts[y])
    model = GLM(family, intercept, REFERENCE_RIDGE)
    fit = fit_glm(X, y.astype(np.float64), weights, model=model)
    return float(balanced_loss(model.family, model.features(X) @ fit.theta, y))


def classification_metrics(family, eta, y, reference: float) -> dict:
    """The metrics of study 7 from the linear predictors eta of test rows with labels y.

    p = P(y = 1 | x) from the link (sigmoid or Phi), prediction 1 where p > 1/2 (eta > 0);
    balanced_log_loss is L_bal with the family's exact loss (no clipping); the others are
    sklearn.metrics: accuracy, balanced accuracy, F1 (0 when nothing is predicted positive),
    MCC, AUROC (roc_auc_score) and AUPRC (average_precision_score). From the confusion counts of
    the positive class: precision tp / (tp + fp) (0 when nothing is predicted positive), recall
    tp / (tp + fn), the Jaccard index tp / (tp + fp + fn) and Youden's index recall +
    specificity - 1 (= 2 balanced accuracy - 1). excess_risk is balanced_log_loss minus
    ``reference``.

    Parameters
    ----------
    family : Family or str
        The binary loss family, or its name.
    eta : array_like of shape (n,)
        The model's linear predictors of the test rows.
    y : array_like of shape (n,)
        Their 0/1 labels, both present.
    reference : float
        The balanced loss of the reference fit on the same rows (``reference_loss``).

    Returns
    -------
    dict
        One float per name of ``METRICS``.
    """
    family = get_family(family)
    eta = np.asarray(eta, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    p = family.probability(eta)
    pred = (eta > 0).astype(np.int64)
    loss = float(balanced_loss(family, eta, y))
    # the confusion counts of the positive class; y holds both labels, so recall, specificity
    # and the Jaccard denominator are defined, and only precision needs a rule for 0 / 0
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    recall, specificity = tp / (tp + fn), tn / (tn + fp)
    return {
        "balanced_log_loss": loss,
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0.0)),
        "mcc": float(skm.matthews_corrcoef(y, pred)),
        "auroc": float(skm.roc_auc_score(y, p)),
        "auprc": float(skm.average_precision_score(y, p)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": recall,
        "jaccard": tp / (tp + fp + fn),
        "youden": recall + specificity - 1.0,
        "excess_risk": loss - float(reference),
    }
