"""Data-driven diagnostics of THEORY.md section 4: the symmetry test, the generator quality
score, the alignment of the mismatch and the plug-in theory target.

Everything here is a function of the real training data only: the majority rows X0 (n0, d),
the minority rows X1 (n1, d), their labels ``labels = (y0, y1)`` (default 0/1), a GLM and,
for the generator diagnostics, an unfitted generator. Nothing looks at P0 or P1.

Notation (section 3). For class k with label y_k, the per-row score is
grad l(theta; x, y_k) = l'(z' theta, y_k) z and the per-row Hessian is l''(z' theta, y_k) z z',
z = model.features(x). At the balanced pilot theta_hat the class means of these are m_k and
H_k, and S_k is the covariance of the per-row scores. H = (H0 + H1)/2 + lambda P is the
Hessian of the pilot's own objective (lambda the model's ridge, P the identity with the
intercept's entry zeroed); the ridge term is ~1e-8 and makes the linearisation below exact
for the pilot as it is actually fitted.

The Wald variance (section 4), derived. The pilot solves (m0(theta) + m1(theta))/2 +
lambda P theta = 0. Write e_k = m_k(theta_0) - E m_k(theta_0) for the centred class means at
the population pilot theta_0 (theta* when lambda = 0); Cov e_k = S_k / n_k. To first order
theta_hat - theta_0 = -H^{-1} (e0 + e1) / 2, and

    g_phi_hat - g_phi = e0 - e1 + (H0 - H1)(theta_hat - theta_0)
                      = (I - G H^{-1}/2) e0 + (-I - G H^{-1}/2) e1 = A0 e0 + A1 e1,

with G = H0 - H1. The classes are independent, so Cov g_phi_hat = A0 S0 A0'/n0 + A1 S1 A1'/n1
= V: THEORY.md's formula is the delta-method covariance, under the null and off it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import chi2
from sklearn.base import clone

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import newton
from simstudy.fitting import GLM, Fit, FitInfo, fit_glm


class ClassScoreStats(NamedTuple):
    """Per-class score moments at one parameter value (batch shape ... of the inputs).

    Attributes
    ----------
    mean : ndarray of shape (..., p)
        m = mean_i l'(eta_i, y) z_i: the gradient of the class's mean loss.
    hessian : ndarray of shape (..., p, p)
        H = mean_i l''(eta_i, y) z_i z_i': the Hessian of the mean loss.
    cov : ndarray of shape (..., p, p)
        S = sample covariance (divisor n - 1) of the per-row scores.
    n : int
        Number of rows.
    """

    mean: np.ndarray
    """m = mean_i l'(eta_i, y) z_i, shape (..., p): the gradient of the class's mean loss."""
    hessian: np.ndarray
    """H = mean_i l''(eta_i, y) z_i z_i', shape (..., p, p): the Hessian of the mean loss."""
    cov: np.ndarray
    """S = sample covariance (divisor n - 1) of the per-row scores, shape (..., p, p)."""
    n: int
    """Number of rows."""


class WaldResult(NamedTuple):
    """The local-symmetry Wald test (THEORY.md section 4); arrays carry the batch shape.

    Attributes
    ----------
    statistic : ndarray of shape (...)
        T = g_phi_hat' V^{-1} g_phi_hat, asymptotically chi2_df when g_phi = 0.
    df : int
        p, the number of coefficients.
    p_value : ndarray of shape (...)
        P(chi2_df > T), or the bootstrap p-value (``reference``); reject local symmetry at
        level alpha when p_value <= alpha.
    g_phi_hat : ndarray of shape (..., p)
        m0 - m1 at the pilot, estimating g_phi = grad R0(theta*) - grad R1(theta*).
    V : ndarray of shape (..., p, p)
        Delta-method covariance of g_phi_hat (module docstring).
    theta_pilot : ndarray of shape (..., p)
        The balanced pilot.
    pilot_info : FitInfo
        Convergence / separation flags of the pilot fit (section 7: count failures).
    reference : {"chi2", "bootstrap", "tilted", "tilted_double"}
        The null distribution ``p_value`` refers T to.
    boot_statistics : ndarray of shape (..., B) or None
        The bootstrap statistics T*_b (any ``reference`` but "chi2"), else None.
    tilt_share : ndarray of shape (...) or None
        For "tilted" and "tilted_double": s, the part of the way to the null the first level's
        resampling law reached (1 where the null was imposed; ``null_tilt``), else None.
    boot_scale : ndarray of shape (...) or None
        For "tilted_double": r = median(T**) / median(T*), the second level's estimate of how
        much the tilted bootstrap overstates T's scale (1 where it cannot be estimated), else
        None.
    """

    statistic: np.ndarray
    """T = g_phi_hat' V^{-1} g_phi_hat, asymptotically chi2_df when g_phi = 0."""
    df: int
    """p, the number of coefficients."""
    p_value: np.ndarray
    """P(chi2_df > T), or the bootstrap p-value (``reference``); reject when p_value <= alpha."""
    g_phi_hat: np.ndarray
    """m0 - m1 at the pilot, estimating g_phi = grad R0(theta*) - grad R1(theta*), (..., p)."""
    V: np.ndarray
    """Delta-method covariance of g_phi_hat, (..., p, p) (module docstring)."""
    theta_pilot: np.ndarray
    """The balanced pilot, (..., p)."""
    pilot_info: FitInfo
    """Convergence / separation flags of the pilot fit (section 7: count failures)."""
    reference: str = "chi2"
    """The null distribution ``p_value`` refers T to: one of ``REFERENCES``."""
    boot_statistics: np.ndarray | None = None
    """The bootstrap statistics T*_b, (..., B), for any ``reference`` but "chi2"."""
    tilt_share: np.ndarray | None = None
    """For the tilted references: s, the part of the way to the null the first level reached, (...)."""
    boot_scale: np.ndarray | None = None
    """For "tilted_double": r = median(T**) / median(T*), the second level's scale correction, (...)."""


class GQSResult(NamedTuple):
    """The generator quality score (THEORY.md section 4) and its ingredients.

    Attributes
    ----------
    gqs : float
        [(n0 - n1)^2 / (2 n0)] delta' H^{-1} delta / tr(H^{-1} Sigma_aug): the squared bias to
        variance ratio of the fully balanced fit (section 3 with gamma = 1 and H_w = H).
    delta : ndarray of shape (p,)
        Cross-fitted mean synthetic score minus mean held-out minority score at the pilot: the
        estimate psi_hat of the mismatch psi (section 2). Also available as ``psi_hat``.
    Sigma_aug : ndarray of shape (p, p)
        Sigma0/2 + (n1/(2 n0)) Sigma1 + ((n0 - n1)/(2 n0)) Sigma_tilde.
    Sigma_tilde : ndarray of shape (p, p)
        Synthetic score covariance given the generator: the within-fold covariances, averaged.
    H : ndarray of shape (p, p)
        The pilot Hessian (H0 + H1)/2 + lambda P.
    delta_cov : ndarray of shape (p, p)
        C, the first-order sampling covariance of delta given the fitted generators; only for a
        generator whose law ignores the data (``generator.data_dependent`` False), all NaN
        otherwise.
    noise_floor : float
        [(n0 - n1)^2 / (2 n0)] tr(H^{-1} C) / tr(H^{-1} Sigma_aug), NaN when C is.
    delta_folds : ndarray of shape (K, p)
        Per-fold deltas; delta is their mean.
    theta_pilot : ndarray of shape (p,)
        The balanced pilot.
    null_weights : ndarray of shape (p,)
        The weights lambda of GQS's first-order law under an exact generator,
        sum_j lambda_j chi2_1 (``exact_generator_null``).
    p_value : float
        P(sum_j lambda_j chi2_1 > gqs), the calibrated decision's p-value.
    pool_null_weights : ndarray of shape (p,)
        The first-order law's weights with the minority's score covariance taken from the
        synthetic pools instead of the data (``pool_generator_null``).
    pool_p_value : float
        P(sum_j lambda_j chi2_1 > gqs) under ``pool_null_weights``, the pool-calibrated
        decision's p-value.
    """

    gqs: float
    """[(n0 - n1)^2 / (2 n0)] delta' H^{-1} delta / tr(H^{-1} Sigma_aug): the squared bias to
    variance ratio of the fully balanced fit (section 3 with gamma = 1 and H_w = H)."""
    delta: np.ndarray
    """Cross-fitted mean synthetic score minus mean held-out minority score at the pilot, (p,):
    the estimate psi_hat of the mismatch psi (section 2). Also available as ``psi_hat``."""
    Sigma_aug: np.ndarray
    """Sigma0/2 + (n1/(2 n0)) Sigma1 + ((n0 - n1)/(2 n0)) Sigma_tilde, (p, p)."""
    Sigma_tilde: np.ndarray
    """Synthetic score covariance given the generator: the within-fold covariances, averaged."""
    H: np.ndarray
    """The pilot Hessian (H0 + H1)/2 + lambda P, (p, p)."""
    delta_cov: np.ndarray
    """C, the first-order sampling covariance of delta given the fitted generators: held-out
    minority means, finite synthetic pools and the pilot's own error (see ``_delta_cov``).
    Only for a generator whose law ignores the data (``generator.data_dependent`` False, e.g.
    the oracle); nan otherwise, because the fold-k generator is fitted on rows that are held out
    in the other folds, and these errors cancel in the fold average in a way C cannot know
    (completely for a generator that copies the moments the score depends on: GaussianFit
    under squared loss scores about 0.2 where a fixed law would score about 13)."""
    noise_floor: float
    """[(n0 - n1)^2 / (2 n0)] tr(H^{-1} C) / tr(H^{-1} Sigma_aug) (nan when C is): since
    delta' H^{-1} delta has mean psi' H^{-1} psi + tr(H^{-1} C), E gqs ~ (population GQS) +
    noise_floor, and the exact minority law (psi = 0) scores about noise_floor. With n0 =
    kappa n1 and large pools it is about (kappa - 1)^2 / (2 kappa) tr(H^{-1} S1) /
    tr(H^{-1} Sigma_aug), the trace ratio being 1 when the score covariances agree: about 9 at
    kappa = 20, next to the threshold 10."""
    delta_folds: np.ndarray
    """Per-fold deltas, (K, p); delta is their mean."""
    theta_pilot: np.ndarray
    """The balanced pilot, (p,)."""
    null_weights: np.ndarray
    """lambda, (p,): under an exact generator (the minority's own law, same n0, n1, folds and
    pool) GQS is distributed as sum_j lambda_j chi2_1 to first order (``exact_generator_null``)."""
    p_value: float
    """P(sum_j lambda_j chi2_1 > gqs): the calibrated decision calls the generator biased at
    level alpha when p_value <= alpha, so that an exact generator is flagged at rate alpha."""
    pool_null_weights: np.ndarray
    """lambda, (p,), of the same first-order law with the minority's score covariance from the
    synthetic pools, Sigma_tilde, in place of the data's S1, and the statistic's own Sigma_aug
    (``pool_generator_null``)."""
    pool_p_value: float
    """P(sum_j lambda_j chi2_1 > gqs) under ``pool_null_weights``: the pool-calibrated decision
    (``gqs_rule="calibrated_pool"``) calls the generator biased when it is <= alpha."""

    def threshold(self, level: float = 0.05, null: str = "data") -> float:
        """The calibrated threshold: the (1 - level) quantile of GQS under an exact generator.

        Parameters
        ----------
        level : float, default 0.05
            The false-alarm rate, in (0, 1).
        null : {"data", "pool"}, default "data"
            The law's weights: ``null_weights`` ("data") or ``pool_null_weights`` ("pool").

        Returns
        -------
        float
            t with P(sum_j lambda_j chi2_1 > t) = level (``weighted_chi2_quantile``); 0 when
            the weights are all zero (a point mass, which exceeds no t >= 0).
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        if null not in ("data", "pool"):
            raise ValueError(f"null must be 'data' or 'pool', got {null!r}")
        return weighted_chi2_quantile(1.0 - level, self.null_weights if null == "data" else self.pool_null_weights)

    @property
    def psi_hat(self) -> np.ndarray:
        """The estimated mismatch psi_hat, which is ``delta``.

        Returns
        -------
        ndarray of shape (p,)
            ``delta``.
        """
        return self.delta


class Alignment(NamedTuple):
    """Direction and size of the estimated mismatch relative to the estimated shift.

    Attributes
    ----------
    cosine : float
        cos(psi_hat, g_phi_hat); NaN if either vector is zero.
    norm_ratio : float
        ||psi_hat|| / ||g_phi_hat||; inf if g_phi_hat is zero.
    c : float
        The alignment coefficient c_hat = 2 <psi_hat, g_phi_hat> / ||g_phi_hat||^2 (section 2);
        NaN if g_phi_hat is zero.
    """

    cosine: float
    """cos(psi_hat, g_phi_hat) = <psi_hat, g_phi_hat> / (||psi_hat|| ||g_phi_hat||); nan if
    either vector is zero."""
    norm_ratio: float
    """||psi_hat|| / ||g_phi_hat||."""
    c: float
    """The alignment coefficient c_hat = 2 <psi_hat, g_phi_hat> / ||g_phi_hat||^2 (section 2)
    = 2 cosine norm_ratio."""


class PlugInTarget(NamedTuple):
    """The plug-in theory target of section 4: n_TG = (n0 - n1) / (1 - c_hat).

    Attributes
    ----------
    n_tilde : float or None
        n_TG, or None when it is undefined (see ``reason``).
    gamma : float or None
        n_TG / (n0 - n1) = 1 / (1 - c_hat), or None.
    c : float
        The estimated alignment coefficient c_hat (NaN if g_phi_hat = 0).
    reason : str
        "ok", or why there is no target.
    """

    n_tilde: float | None
    """n_TG, or None when it is undefined (see ``reason``)."""
    gamma: float | None
    """n_TG / (n0 - n1) = 1 / (1 - c_hat), or None."""
    c: float
    """The estimated alignment coefficient c_hat (nan if g_phi_hat = 0)."""
    reason: str
    """"ok", or why there is no target."""


class Diagnostics(NamedTuple):
    """Everything section 4 computes, from one pilot fit.

    Attributes
    ----------
    wald : WaldResult
        The local-symmetry Wald test.
    gqs : GQSResult
        The generator quality score and its ingredients.
    alignment : Alignment
        The alignment of psi_hat (the GQS's delta) with g_phi_hat (the Wald test's).
    target : PlugInTarget
        The plug-in theory target.
    """

    wald: WaldResult
    gqs: GQSResult
    alignment: Alignment
    target: PlugInTarget


class _Pilot(NamedTuple):
    fit: Fit
    stats0: ClassScoreStats
    stats1: ClassScoreStats
    H: np.ndarray


def _check_model(model) -> GLM:
    if not isinstance(model, GLM):
        raise ValueError(f"model must be a simstudy.fitting.GLM, got {type(model).__name__}")
    return model


def _check_labels(labels, model: GLM) -> tuple[float, float]:
    try:
        y0, y1 = (float(v) for v in labels)
    except (TypeError, ValueError):
        raise ValueError(f"labels must be a pair of numbers (y0, y1), got {labels!r}") from None
    if not (np.isfinite(y0) and np.isfinite(y1)) or y0 == y1:
        raise ValueError(f"labels must be two distinct finite numbers, got {labels!r}")
    if model.family.binary and {y0, y1} != {0.0, 1.0}:
        raise ValueError(f"family {model.family.name!r} needs labels (0, 1) or (1, 0), got {labels!r}")
    return y0, y1


def _check_rows(X, name: str, min_rows: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (..., n, d), got shape {X.shape}")
    if X.shape[-2] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {X.shape[-2]}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _check_classes(X0, X1, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    X0 = _check_rows(X0, "X0", min_rows)
    X1 = _check_rows(X1, "X1", min_rows)
    if X0.shape[-1] != X1.shape[-1]:
        raise ValueError(f"X0 has {X0.shape[-1]} columns but X1 has {X1.shape[-1]}")
    try:
        batch = np.broadcast_shapes(X0.shape[:-2], X1.shape[:-2])
    except ValueError:
        raise ValueError(f"batch shapes of X0 {X0.shape[:-2]} and X1 {X1.shape[:-2]} do not broadcast") from None
    return (np.broadcast_to(X0, batch + X0.shape[-2:]), np.broadcast_to(X1, batch + X1.shape[-2:]))


STABILISER = 1e-8
"""The reference variant's ridge, relative to the matrix's scale (AUTHORS_DESIGNS.md section C)."""


def _solve(A, B, what: str, stabilised: bool = False, cause: str | None = None):
    """A^{-1} B; a singular A is a ValueError naming ``what`` and ``cause`` (default: a
    constant or collinear feature)."""
    if stabilised:
        # pinv(A + 1e-8 s I) B, s = tr(A) / p: never raises on a singular A (section C)
        p = A.shape[-1]
        scale = np.abs(np.trace(A, axis1=-2, axis2=-1))[..., None, None] / p
        return np.linalg.pinv(A + STABILISER * scale * np.eye(p)) @ B
    try:
        return np.linalg.solve(A, B)
    except np.linalg.LinAlgError:
        cause = cause or "a feature is constant (or collinear) within the data; drop it or add an intercept/ridge"
        raise ValueError(f"{what} is singular: {cause}") from None


def _right_solve(B, A, what: str, stabilised: bool = False):
    """B A^{-1} for symmetric A, as (A^{-1} B')'."""
    return np.swapaxes(_solve(A, np.swapaxes(B, -1, -2), what, stabilised), -1, -2)


def _row_scores(theta, X, label: float, model: GLM):
    """Per-row score vectors l'(eta, y) z (..., n, p), curvatures l'' (..., n) and Z."""
    Z = np.asarray(model.features(X))
    eta = np.einsum("...np,...p->...n", Z, theta)
    score = np.asarray(model.family.score(eta, label))
    curvature = np.asarray(model.family.curvature(eta, label))
    return score[..., None] * Z, curvature, Z


def _score_cov(Q):
    n = Q.shape[-2]
    centred = Q - Q.mean(axis=-2, keepdims=True)
    return np.einsum("...np,...nq->...pq", centred, centred) / (n - 1)


def class_score_stats(theta, X, label, model: GLM) -> ClassScoreStats:
    """Mean score m, Hessian H and score covariance S of one class at theta (section 4).

    With z_i = model.features(x_i) and eta_i = z_i' theta:
    m = (1/n) sum_i l'(eta_i, y) z_i, H = (1/n) sum_i l''(eta_i, y) z_i z_i' and
    S = (1/(n - 1)) sum_i (l'(eta_i, y) z_i - m)(...)'.

    Parameters
    ----------
    theta : array_like of shape (..., p)
        The parameter, p = model.n_params(d); its batch axes broadcast with X's.
    X : array_like of shape (..., n, d)
        The class's rows, finite, n >= 2.
    label : float
        The label of every row of X; 0 or 1 for a binary family.
    model : simstudy.fitting.GLM
        Family, intercept and features.

    Returns
    -------
    ClassScoreStats
        m (..., p), H (..., p, p), S (..., p, p) and n.

    Raises
    ------
    ValueError
        If ``model`` is not a GLM, X has fewer than 2 dimensions or 2 rows or a non-finite value,
        theta does not end in p coefficients, or ``label`` is not finite (or not 0/1 for a binary
        family).
    """
    model = _check_model(model)
    X = _check_rows(X, "X", 2)
    theta = np.asarray(theta, dtype=np.float64)
    p = model.n_params(X.shape[-1])
    if theta.shape[-1:] != (p,):
        raise ValueError(f"theta must end in p = {p} coefficients, got shape {theta.shape}")
    label = float(label)
    if not np.isfinite(label):
        raise ValueError(f"label must be a finite number, got {label!r}")
    if model.family.binary and label not in (0.0, 1.0):
        raise ValueError(f"family {model.family.name!r} needs label 0 or 1, got {label!r}")
    Q, curvature, Z = _row_scores(theta, X, label, model)
    n = X.shape[-2]
    H = np.einsum("...n,...np,...nq->...pq", curvature, Z, Z) / n
    return ClassScoreStats(Q.mean(axis=-2), H, _score_cov(Q), n)


def balanced_pilot(X0, X1, model: GLM, labels=(0, 1)) -> Fit:
    """The balanced pilot of section 4: argmin R0_hat/2 + R1_hat/2 (+ the model's ridge).

    ERM with weight 1/(2 n0) on each majority row and 1/(2 n1) on each minority row. Each
    batch element is fitted separately (one vectorised call of ``fit_glm``).

    Parameters
    ----------
    X0 : array_like of shape (..., n0, d)
        Majority rows, finite, n0 >= 2.
    X1 : array_like of shape (..., n1, d)
        Minority rows, finite, n1 >= 2; the batch axes of X0 and X1 broadcast.
    model : simstudy.fitting.GLM
        The model fitted.
    labels : pair of float, default (0, 1)
        (y0, y1), two distinct finite numbers; (0, 1) or (1, 0) for a binary family.

    Returns
    -------
    simstudy.fitting.Fit
        theta of shape batch + (p,) and its FitInfo.

    Raises
    ------
    ValueError
        If ``model`` is not a GLM, X0 or X1 is not an array (..., n, d) of at least 2 finite
        rows, their column counts differ or batch shapes do not broadcast, or ``labels`` is
        invalid.
    """
    model = _check_model(model)
    X0, X1 = _check_classes(X0, X1)
    y0, y1 = _check_labels(labels, model)
    return _fit_pilot(X0, X1, model, y0, y1)


def _fit_pilot(X0, X1, model, y0, y1) -> Fit:
    n0, n1 = X0.shape[-2], X1.shape[-2]
    X = np.concatenate([X0, X1], axis=-2)
    y = np.concatenate([np.full(n0, y0), np.full(n1, y1)])
    w = np.concatenate([np.full(n0, 0.5 / n0), np.full(n1, 0.5 / n1)])
    return fit_glm(X, y, w, model=model)


def _ridge(model: GLM, p: int) -> np.ndarray:
    """lambda P: the ridge's Hessian, the intercept's entry zero."""
    penalty = np.full(p, model.ridge)
    if model.intercept:
        penalty[0] = 0.0
    return np.diag(penalty)


def _pilot(X0, X1, model, y0, y1) -> _Pilot:
    fit = _fit_pilot(X0, X1, model, y0, y1)
    stats0 = class_score_stats(fit.theta, X0, y0, model)
    stats1 = class_score_stats(fit.theta, X1, y1, model)
    H = (stats0.hessian + stats1.hessian) / 2 + _ridge(model, fit.theta.shape[-1])
    return _Pilot(fit, stats0, stats1, H)


def wald_covariance(s0: ClassScoreStats, s1: ClassScoreStats, H, stabilised: bool = False):
    """g_phi_hat = m0 - m1 and its delta-method covariance V (module docstring).

    With G = H0 - H1, A0 = I - G H^{-1}/2 and A1 = -I - G H^{-1}/2,
    V = A0 S0 A0'/n0 + A1 S1 A1'/n1; at population moments (n0, n1 the design's sizes) it is
    the covariance the Wald test's power is predicted with.

    Parameters
    ----------
    s0, s1 : ClassScoreStats
        The classes' mean scores, Hessians, score covariances and sizes (batch shape ...).
    H : ndarray of shape (..., p, p)
        The pilot's Hessian.
    stabilised : bool, default False
        Stabilised pseudo-inverses instead of solves (``diagnose``'s reference variant).

    Returns
    -------
    g : ndarray of shape (..., p)
    V : ndarray of shape (..., p, p)
    """
    p = H.shape[-1]
    half_GHinv = _right_solve(s0.hessian - s1.hessian, H, "the pilot Hessian H", stabilised) / 2
    eye = np.eye(p)
    A0 = eye - half_GHinv
    A1 = -eye - half_GHinv
    V = A0 @ s0.cov @ np.swapaxes(A0, -1, -2) / s0.n + A1 @ s1.cov @ np.swapaxes(A1, -1, -2) / s1.n
    return s0.mean - s1.mean, V


def _few_rows(n0: int, n1: int, p: int) -> str | None:
    """The likely cause of a singular V when a class has at most p rows, else None.

    V = A0 S0 A0' / n0 + A1 S1 A1' / n1 with A0 = (H1 + R) H^{-1} and A1 = -(H0 + R) H^{-1}
    (R the ridge's Hessian): a class of n rows caps its Hessian's rank at n and its score
    covariance's at n - 1, so without a ridge V's rank is at most 2 n - 1, and with n <= p V is
    near singular whatever the features (the constant-feature message would mislead there).
    """
    if min(n0, n1) > p:
        return None
    return (
        f"likely too few rows for the model's {p} parameters: the minority (X1) has {n1} rows and "
        f"the majority (X0) {n0}; each class needs more than {p}"
    )


def _wald(pilot: _Pilot, stabilised: bool = False) -> WaldResult:
    p = pilot.H.shape[-1]
    g, V = wald_covariance(pilot.stats0, pilot.stats1, pilot.H, stabilised)
    cause = _few_rows(pilot.stats0.n, pilot.stats1.n, p)
    T = np.einsum("...p,...p->...", g, _solve(V, g[..., None], "the Wald covariance V", stabilised, cause)[..., 0])
    return WaldResult(T, p, chi2.sf(T, p), g, V, pilot.fit.theta, pilot.fit.info)


VARIANTS = ("simstudy", "reference")
"""How ``diagnose`` computes the diagnostics: THEORY.md section 4, or the authors' reference
implementation (AUTHORS_DESIGNS.md section C)."""

REFERENCES = ("chi2", "bootstrap", "tilted", "tilted_double")
"""The null distributions ``wald_symmetry_test`` can refer T to."""

BOOTSTRAP_MEMORY = 4_000_000
"""Floats of row-by-feature work per block of bootstrap resamples (bounds memory, not results)."""


def _outer_rows(Z):
    """The rows' outer products z_i z_i' flattened, (n, p^2), when that fits the memory bound, else None."""
    n, p = Z.shape
    if n * p * p > BOOTSTRAP_MEMORY:
        return None
    return (Z[:, :, None] * Z[:, None, :]).reshape(n, p * p)


def _weighted_gram(W, Z, outer):
    """sum_i W[b, i] z_i z_i' for every b, (b, p, p): one matrix product with the rows' outer
    products when they are stored, else one per resample."""
    p = Z.shape[1]
    if outer is not None:
        return (W @ outer).reshape(len(W), p, p)
    return np.swapaxes(W[:, :, None] * Z, -1, -2) @ Z


def _resampled_stats(theta, Z, outer, counts, label: float, model: GLM) -> ClassScoreStats:
    """``class_score_stats`` of resamples given as row counts (b, n) of one class's rows Z."""
    n = Z.shape[0]
    eta = theta @ Z.T
    score = np.asarray(model.family.score(eta, label))
    curvature = np.asarray(model.family.curvature(eta, label))
    mean = (counts * score) @ Z / n
    hessian = _weighted_gram(counts * curvature, Z, outer) / n
    second = _weighted_gram(counts * score * score, Z, outer) / n
    cov = (second - mean[:, :, None] * mean[:, None, :]) * (n / (n - 1))
    return ClassScoreStats(mean, hessian, cov, n)


def _counts(idx, n: int) -> np.ndarray:
    """Row counts (b, n) of resamples given by their row indices (b, n)."""
    b = idx.shape[0]
    return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _bootstrap_statistics(X0, X1, model, y0, y1, g_hat, rng, n_boot: int, stabilised: bool) -> np.ndarray:
    """T*_b = (g*_b - g_hat)' V*_b^{-1} (g*_b - g_hat) over n_boot class-wise resamples of one data set."""
    n0, n1 = X0.shape[0], X1.shape[0]
    # every index is drawn before any fit, so the block size cannot move a resample
    idx0 = rng.integers(0, n0, size=(n_boot, n0))
    idx1 = rng.integers(0, n1, size=(n_boot, n1))

    def counts(rows):
        return _counts(idx0[rows], n0), _counts(idx1[rows], n1)

    return _resample_statistics(X0, X1, model, y0, y1, counts, n_boot, g_hat, stabilised).statistic


class _Resamples(NamedTuple):
    """A bootstrap level's resamples: T*_b, (B,), and each resample's g*_b and pilot theta*_b, (B, p)."""

    statistic: np.ndarray
    g_phi: np.ndarray
    theta: np.ndarray


def _resample_statistics(X0, X1, model, y0, y1, counts, n_boot: int, centre, stabilised: bool) -> _Resamples:
    """T*_b = (g*_b - c_b)' V*_b^{-1} (g*_b - c_b) of resamples given as row counts:
    ``counts(rows)`` returns the counts (b, n0) and (b, n1) of the resamples in slice ``rows``;
    ``centre`` is c, one (p,) for all or one row per resample (n_boot, p).
    Each block of resamples is one batched refit of the pilot and one matrix product per class."""
    n0, n1 = X0.shape[0], X1.shape[0]
    X = np.concatenate([X0, X1])[None]
    y = np.concatenate([np.full(n0, y0), np.full(n1, y1)])
    Z0, Z1 = np.asarray(model.features(X0)), np.asarray(model.features(X1))
    outer0, outer1 = _outer_rows(Z0), _outer_rows(Z1)
    p = Z0.shape[1]
    ridge = _ridge(model, p)
    stored = outer0 is not None and outer1 is not None
    block = max(1, BOOTSTRAP_MEMORY // ((n0 + n1) * (1 if stored else p)))
    centre = np.broadcast_to(centre, (n_boot, p))
    out = _Resamples(np.empty(n_boot), np.empty((n_boot, p)), np.empty((n_boot, p)))
    for start in range(0, n_boot, block):
        rows = slice(start, start + block)
        c0, c1 = counts(rows)
        fit = fit_glm(X, y, np.concatenate([c0 * (0.5 / n0), c1 * (0.5 / n1)], axis=1), model=model)
        s0 = _resampled_stats(fit.theta, Z0, outer0, c0, y0, model)
        s1 = _resampled_stats(fit.theta, Z1, outer1, c1, y1, model)
        pilot = _Pilot(fit, s0, s1, (s0.hessian + s1.hessian) / 2 + ridge)
        out.statistic[rows] = _studentised(pilot, centre[rows], stabilised)
        out.g_phi[rows] = s0.mean - s1.mean
        out.theta[rows] = np.asarray(fit.theta)
    return out


TILT_STEPS = 50
"""Newton steps ``exponential_tilt`` takes before it calls the target unreachable: Newton
converges quadratically near a reachable target, while outside the rows' convex hull lambda
runs off and the gradient never vanishes."""

TILT_TOL = 1e-10
"""||sum_i pi_i u_i||_inf on the standardised rows u at which the tilt has converged."""

TILT_RANK_TOL = 1e-10
"""Singular values of the standardised rows below this fraction of the largest span no
direction the tilt moves in (``exponential_tilt``)."""

TILT_GRAM_TOL = 1e-12
"""Smallest eigenvalue of the standardised rows' Gram matrix, relative to its largest, above
which the tilt takes the rows as spanning every direction (the smallest singular value above
1e-6 of the largest: far from ``TILT_RANK_TOL``)."""

TILT_HALVINGS = 10
"""How often the tilted bootstrap halves its step towards the null before it falls back to the
plain studentised bootstrap (share 0)."""


def exponential_tilt(Q, target, base=None) -> np.ndarray | None:
    """Row probabilities with mean ``target``, closest to ``base`` in Kullback-Leibler divergence.

    pi_i = b_i exp(lambda' q_i) / sum_j b_j exp(lambda' q_j), with lambda the minimiser of the
    convex f(lambda) = log sum_i b_i exp(lambda' (q_i - target)), whose gradient is
    sum_i pi_i (q_i - target): at its minimum sum_i pi_i q_i = target, and pi minimises
    KL(pi || b) under that constraint (Efron 1981, "Nonparametric standard errors and confidence
    intervals", section 11; the tilted bootstrap of Hall and Presnell 1999, "Intentionally
    biased bootstrap methods", JRSS B 61). Damped Newton on f, the columns of q - target scaled
    to unit standard deviation (which leaves pi unchanged).

    Parameters
    ----------
    Q : ndarray of shape (n, p)
        The rows q_i.
    target : ndarray of shape (p,)
        The mean pi must give.
    base : ndarray of shape (n,), optional
        Nonnegative weights b (uniform when None); rows of weight 0 keep probability 0.

    Returns
    -------
    ndarray of shape (n,) or None
        pi, or None when the target is not reached in ``TILT_STEPS`` Newton steps or the line
        search fails: it is outside the convex hull of the rows of positive weight (a target
        on the hull's boundary may give weights that all but vanish off the boundary's rows).

    Raises
    ------
    ValueError
        If Q is not a finite (n, p) array, target not a finite (p,) vector, or base not n
        finite weights >= 0 with a positive sum.
    """
    Q = np.asarray(Q, dtype=np.float64)
    if Q.ndim != 2 or not Q.size or not np.all(np.isfinite(Q)):
        raise ValueError(f"Q must be a non-empty finite 2-D array (n, p), got shape {Q.shape}")
    n, p = Q.shape
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (p,) or not np.all(np.isfinite(target)):
        raise ValueError(f"target must be a finite vector of shape ({p},), got shape {target.shape}")
    b = _tilt_base(base, n)
    keep = b > 0
    U = Q[keep] - target
    U = U / np.where((sd := U.std(axis=0)) > 0, sd, 1.0)
    # Newton in the span of the rows: collinear scores (a duplicated feature, fewer rows than
    # coefficients) leave f flat along the rest, where its Hessian is singular. Rows whose Gram
    # matrix is well conditioned span every direction, and the SVD (most of a tilt's cost at
    # n >> p: the double tilted bootstrap tilts once per resample) is skipped.
    gram = np.linalg.eigvalsh(U.T @ U)
    if not gram[0] > TILT_GRAM_TOL * gram[-1]:
        _, singular, Vt = np.linalg.svd(U, full_matrices=False)
        U = U @ Vt[singular > TILT_RANK_TOL * singular[0]].T if singular[0] > 0 else U[:, :0]
    log_b = np.log(b[keep])

    def log_partition(lam):
        # a trial step far past the minimum can overflow U @ lam: its f is then nan or inf,
        # which the line search refuses like any other value that does not decrease f
        with np.errstate(over="ignore", invalid="ignore"):
            a = log_b + U @ lam
            e = np.exp(a - a.max())
            return a.max() + np.log(e.sum()), e / e.sum()

    lam = np.zeros(U.shape[1])
    f, w = log_partition(lam)
    for _ in range(TILT_STEPS + 1):
        grad = w @ U
        if np.abs(grad).max(initial=0.0) <= TILT_TOL:
            pi = np.zeros(n)
            pi[keep] = w
            return pi
        centred = U - grad
        try:
            step = np.linalg.solve((centred * w[:, None]).T @ centred, grad)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):  # a numerically singular Hessian: no finite way on
            return None
        t, slack = 1.0, newton.decrease_slack(f)
        # the slack: near the minimum the predicted decrease falls below f's rounding, and
        # without it the test refused every step there (a tilt stalled at |grad| = 4e-10)
        while not (f_t := log_partition(lam - t * step))[0] <= f - newton.ARMIJO * t * (grad @ step) + slack:
            t *= 0.5
            if t < 1e-10:
                return None
        lam, (f, w) = lam - t * step, f_t
    return None


def _tilt_base(base, n: int) -> np.ndarray:
    """The base law of a tilt as probabilities: uniform when ``base`` is None, else its weights
    normalised."""
    if base is None:
        return np.full(n, 1.0 / n)
    b = np.asarray(base, dtype=np.float64)
    if b.shape != (n,) or not np.all(np.isfinite(b)) or np.any(b < 0) or not b.sum() > 0:
        raise ValueError(f"base must be {n} finite weights >= 0 with a positive sum")
    return b / b.sum()


def null_tilt(Q0, Q1, base0=None, base1=None, start: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Class row probabilities under which the balanced pilot is unchanged and g_phi is 0.

    With m_k the class means of the rows' scores at the pilot (under the class's base weights,
    uniform by default) and c = (m0 + m1)/2 (0 without a ridge: the pilot's own equation), each
    class is tilted (``exponential_tilt``) to mean m_k + s (c - m_k). The pilot's equation still
    holds for every s (the two means sum to 2c), so the pilot of the tilted law is the pilot of
    the base law, and its g_phi is (1 - s) (m0 - m1). s = 1 imposes the null; where a class
    cannot reach c (c outside its rows' convex hull, as happens when n_k is a few times p), s
    halves from ``start`` up to ``TILT_HALVINGS`` times, then is 0 (the base law). A binary
    family with an intercept never reaches s = 1: class 0's intercept scores l'(eta, 0) are all
    > 0 and class 1's all < 0, so g_phi's intercept entry is > 0 for every law and local
    symmetry (g_phi = 0) cannot hold there.

    Parameters
    ----------
    Q0, Q1 : ndarray of shapes (n0, p), (n1, p)
        The classes' score rows at the pilot.
    base0, base1 : ndarray of shapes (n0,), (n1,), optional
        Nonnegative row weights of the law to tilt (a resample's row counts; uniform when None).
    start : float, default 1.0
        The first s tried, in [0, 1] (0: the base law, untilted).

    Returns
    -------
    pi0, pi1 : ndarray of shapes (n0,), (n1,)
    share : float
        s, the part of the way to the null that was reached.
    """
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"start must be a share in [0, 1], got {start!r}")
    b0, b1 = _tilt_base(base0, len(Q0)), _tilt_base(base1, len(Q1))
    # an unweighted class keeps the plain mean, the tilted bootstrap's first level to the last bit
    m0 = Q0.mean(axis=0) if base0 is None else b0 @ Q0
    m1 = Q1.mean(axis=0) if base1 is None else b1 @ Q1
    c = (m0 + m1) / 2
    s = start
    for _ in range(TILT_HALVINGS + 1 if start > 0 else 0):
        pi0 = exponential_tilt(Q0, m0 + s * (c - m0), base0)
        pi1 = None if pi0 is None else exponential_tilt(Q1, m1 + s * (c - m1), base1)
        if pi1 is not None:
            return pi0, pi1, s
        s *= 0.5
    return b0, b1, 0.0


def _tilted_statistics(X0, X1, model, y0, y1, theta, g_hat, rng, n_boot: int, stabilised: bool):
    """The n_boot resamples from the null-tilted classes (``null_tilt`` at the pilot theta),
    T*_b centred at the tilted law's own g_phi = (1 - s) g_hat, their counts, and s."""
    n0, n1 = X0.shape[0], X1.shape[0]
    Q0 = _row_scores(theta, X0, y0, model)[0]
    Q1 = _row_scores(theta, X1, y1, model)[0]
    pi0, pi1, share = null_tilt(Q0, Q1)
    # every count is drawn before any fit, so the block size cannot move a resample
    c0 = rng.multinomial(n0, pi0, size=n_boot).astype(np.float64)
    c1 = rng.multinomial(n1, pi1, size=n_boot).astype(np.float64)
    boot = _resample_statistics(
        X0, X1, model, y0, y1, lambda rows: (c0[rows], c1[rows]), n_boot, (1.0 - share) * g_hat, stabilised
    )
    return boot, c0, c1, share


def _second_level_statistics(X0, X1, model, y0, y1, first: _Resamples, c0, c1, share, rng, stabilised: bool):
    """T**_b: one resample from each first-level resample b's own null-tilted law (``null_tilt``
    of its rows, weighted by its counts, at its pilot theta*_b, halving from the first level's
    share: a law the first level could not tilt all the way is not tried at full tilt 199
    times), centred at that law's g_phi."""
    n0, n1 = X0.shape[0], X1.shape[0]
    n_boot = len(c0)
    Z0, Z1 = np.asarray(model.features(X0)), np.asarray(model.features(X1))
    # every resample's l'(z' theta*_b, y) in one call per class: (n_boot, n)
    slope0 = np.asarray(model.family.score(first.theta @ Z0.T, y0))
    slope1 = np.asarray(model.family.score(first.theta @ Z1.T, y1))
    d0, d1, centre = np.empty_like(c0), np.empty_like(c1), np.empty_like(first.g_phi)
    for b in range(n_boot):
        Q0, Q1 = slope0[b, :, None] * Z0, slope1[b, :, None] * Z1
        pi0, pi1, reached = null_tilt(Q0, Q1, c0[b], c1[b], start=share)
        d0[b] = rng.multinomial(n0, pi0)
        d1[b] = rng.multinomial(n1, pi1)
        centre[b] = (1.0 - reached) * first.g_phi[b]
    counts = lambda rows: (d0[rows], d1[rows])  # noqa: E731
    return _resample_statistics(X0, X1, model, y0, y1, counts, n_boot, centre, stabilised).statistic


def median_scale(first, second) -> float:
    """r = median(second) / median(first): how much a bootstrap level inflates the statistic's
    scale, estimated one level down; 1 where either median is not finite and positive (more
    than half of a level's resamples could not be studentised). Where most V* are all but
    singular (n1 a few times p) T* can be ~1e15 and r absurdly small; the p-value is then
    near 1, on the conservative side."""
    top, bottom = np.median(second), np.median(first)
    if not (np.isfinite(top) and np.isfinite(bottom) and top > 0 and bottom > 0):
        return 1.0
    return float(top / bottom)


def _studentised(pilot: _Pilot, centre, stabilised: bool) -> np.ndarray:
    """T*_b of a block of resamples, g*_b centred at ``centre[b]`` (b, p); a resample whose H* or V* is
    singular (repeated rows can leave a class with fewer distinct rows than features) cannot be
    studentised and gets T*_b = inf, which counts against the data's T (the conservative side)."""
    try:
        boot = _wald(pilot, stabilised)
        centred = boot.g_phi_hat - centre
        solved = _solve(boot.V, centred[..., None], "a bootstrap Wald covariance V*", stabilised)[..., 0]
        return np.einsum("bp,bp->b", centred, solved)
    except ValueError:
        if len(pilot.H) == 1:
            return np.array([np.inf])
        return np.concatenate(
            [_studentised(_one(pilot, b), centre[b : b + 1], stabilised) for b in range(len(pilot.H))]
        )


def _one(pilot: _Pilot, b: int) -> _Pilot:
    """Resample b of a block, as a block of one."""

    def take(s: ClassScoreStats) -> ClassScoreStats:
        return ClassScoreStats(s.mean[b : b + 1], s.hessian[b : b + 1], s.cov[b : b + 1], s.n)

    return _Pilot(pilot.fit, take(pilot.stats0), take(pilot.stats1), pilot.H[b : b + 1])


def wald_symmetry_test(
    X0,
    X1,
    model: GLM,
    labels=(0, 1),
    *,
    reference: str = "chi2",
    rng=None,
    n_boot: int = 199,
    variant: str = "simstudy",
) -> WaldResult:
    """Local-symmetry Wald test (THEORY.md section 4).

    At the balanced pilot: g_phi_hat = m0 - m1, G = H0 - H1, A0 = I - G H^{-1}/2,
    A1 = -I - G H^{-1}/2, V = A0 S0 A0'/n0 + A1 S1 A1'/n1 (the delta-method covariance of
    g_phi_hat, derived in the module docstring) and T = g_phi_hat' V^{-1} g_phi_hat. T is
    invariant under invertible linear reparametrisations of theta and under swapping the two
    classes with their labels. Reject H0: g_phi = 0 at level alpha when p_value <= alpha.

    ``reference`` "chi2" refers T to chi2_p, its limit under H0. That limit is reached slowly
    in n1 / p: measured sizes at alpha = 0.05 (squared loss, Gaussian study-1 design, p = 2:
    0.087 at n1 = 50, 0.055 at n1 = 500; p = 20, n1 = 100 (study 1's scale): about 0.5;
    logistic study-2 design with p = 3, whose scores are skewed: 0.14 at n1 = 250, 0.06 at
    n1 = 1000; README, "Calibrated diagnostics", for the whole grid).

    ``reference`` "bootstrap" is the studentised (bootstrap-t) calibration: B resamples drawn
    with replacement within each class (n0 and n1 rows), each refitting the pilot and
    recomputing g* and V*, give T*_b = (g*_b - g_phi_hat)' V*_b^{-1} (g*_b - g_phi_hat), whose
    law mimics that of T under H0 including V's own estimation error (the chi2's main fault
    at small n1 / p). p_value = (1 + #{b: T*_b >= T}) / (B + 1). It is second-order
    accurate, not exact: README, "Calibrated diagnostics", has its measured sizes, including
    where it still misses the nominal level (n1 / p = 5, and study 1's null at p = 20).

    ``reference`` "tilted" draws the resamples from a law under which the null holds instead of
    centring them: each class's rows are reweighted by exponential tilting (``null_tilt``) so
    that the balanced pilot is unchanged and both class mean scores equal their average, so
    g_phi = 0; B resamples of n0 and n1 rows from these weights refit the pilot and give
    T*_b = g*_b' V*_b^{-1} g*_b (Hall and Presnell 1999's tilted bootstrap; where a class
    cannot be tilted all the way, T*_b is centred at the part of g_phi_hat left, ``tilt_share``
    tells how far it got; a binary family with an intercept never gets all the way, since
    g_phi's intercept entry is > 0 for every law: ``null_tilt``). Imposing the null also moves
    the resamples' skewness and spread towards the null's, which the centred bootstrap leaves
    at the data's: README, "Calibrated diagnostics", has its sizes beside the bootstrap's.

    ``reference`` "tilted_double" corrects the tilted bootstrap's scale by a second level (an
    iterated bootstrap, Beran 1988, reduced to one scale factor): from each first-level
    resample b, itself tilted to its own null (``null_tilt`` of its rows, weighted by its
    counts, at its pilot), one resample gives T**_b, centred at that law's g_phi. Where the
    tilted bootstrap overstates T's spread, the assumption is that it does so again one level
    down: r = median(T**) / median(T*) estimates the factor, and p_value =
    (1 + #{b: T*_b >= r T}) / (B + 1) (``median_scale``). The median, not the mean, because a
    resample whose V* is singular has T = inf. Its first level is "tilted"'s, resample for
    resample from the same rng; the second adds B refits and 2 B tilts, which make it 4 to 13
    times as costly. Measured (README, "Calibrated diagnostics"): at study 1's null, r = 1.05
    and the size 0.051 against the tilted bootstrap's 0.026; at study 2's null r is about 1 and
    it keeps the tilted bootstrap's size, 0.063 +- 0.004 at nominal 0.05 (3000 replications).

    Parameters
    ----------
    X0 : array_like of shape (..., n0, d)
        Majority rows, finite, n0 >= 2.
    X1 : array_like of shape (..., n1, d)
        Minority rows, finite, n1 >= 2; the batch axes of X0 and X1 broadcast and give a batch
        of tests.
    model : simstudy.fitting.GLM
        The model of the pilot.
    labels : pair of float, default (0, 1)
        (y0, y1), two distinct finite numbers; (0, 1) or (1, 0) for a binary family.
    reference : {"chi2", "bootstrap", "tilted", "tilted_double"}, default "chi2"
        The null distribution of T (keyword only).
    rng : numpy.random.Generator, optional
        Draws the resamples; required for every reference but "chi2" (keyword only). A batch of
        tests is resampled in its C order, all of one data set's resamples at once
        ("tilted_double": its first level, the same resamples as "tilted" from the same rng,
        then its second).
    n_boot : int, default 199
        B, the bootstrap resamples, an integer >= 19 (keyword only).
    variant : {"simstudy", "reference"}, default "simstudy"
        "reference": every inverse a stabilised pseudo-inverse (as ``diagnose``), so a singular
        H or V does not raise (keyword only).

    Returns
    -------
    WaldResult
        T, df = p, the p-value, g_phi_hat, V, the pilot and its FitInfo, with the batch shape;
        the reference and, for the bootstraps, the T*_b (the tilted ones' ``tilt_share``, and
        "tilted_double"'s ``boot_scale``).

    Raises
    ------
    ValueError
        If the inputs are invalid (as for ``balanced_pilot``), ``reference`` is unknown, the
        bootstrap lacks a ``numpy.random.Generator`` or ``n_boot`` is not an integer >= 19, or
        the pilot Hessian H or the covariance V of the data is singular (a feature constant or
        collinear within the data; a resample whose H* or V* is singular gets T*_b = inf).
    """
    model = _check_model(model)
    X0, X1 = _check_classes(X0, X1)
    y0, y1 = _check_labels(labels, model)
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    stabilised = variant == "reference"
    if reference != "chi2":
        n_boot = _check_int(n_boot, "n_boot", 19)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"the {reference} reference needs rng, a numpy.random.Generator, got {type(rng).__name__}")
    wald = _wald(_pilot(X0, X1, model, y0, y1), stabilised)
    if reference == "chi2":
        return wald
    batch = X0.shape[:-2]
    flat0 = X0.reshape((-1,) + X0.shape[-2:])
    flat1 = X1.reshape((-1,) + X1.shape[-2:])
    g_hats = wald.g_phi_hat.reshape(len(flat0), -1)
    thetas = wald.theta_pilot.reshape(len(flat0), -1)
    boot = np.empty((len(flat0), n_boot))
    shares, scales = np.ones(len(flat0)), np.ones(len(flat0))
    for i in range(len(flat0)):
        if reference == "bootstrap":
            boot[i] = _bootstrap_statistics(flat0[i], flat1[i], model, y0, y1, g_hats[i], rng, n_boot, stabilised)
            continue
        first, c0, c1, shares[i] = _tilted_statistics(
            flat0[i], flat1[i], model, y0, y1, thetas[i], g_hats[i], rng, n_boot, stabilised
        )
        boot[i] = first.statistic
        if reference == "tilted_double":
            second = _second_level_statistics(
                flat0[i], flat1[i], model, y0, y1, first, c0, c1, shares[i], rng, stabilised
            )
            scales[i] = median_scale(first.statistic, second)
    boot = boot.reshape(batch + (n_boot,))
    scales = scales.reshape(batch)
    p_value = bootstrap_p_value(boot, scales * np.asarray(wald.statistic))
    tilted = reference in ("tilted", "tilted_double")
    return wald._replace(
        p_value=p_value,
        reference=reference,
        boot_statistics=boot,
        tilt_share=shares.reshape(batch) if tilted else None,
        boot_scale=scales if reference == "tilted_double" else None,
    )


def bootstrap_p_value(boot_statistics, statistic):
    """(1 + #{b: T*_b >= T}) / (B + 1) over the last axis of ``boot_statistics`` (..., B), T of
    shape (...): the bootstrap p-value, never 0 (Davison and Hinkley 1997, eq. 4.11)."""
    boot_statistics = np.asarray(boot_statistics)
    exceed = (boot_statistics >= np.asarray(statistic)[..., None]).sum(axis=-1)
    return (1.0 + exceed) / (boot_statistics.shape[-1] + 1.0)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return int(value)


def _check_single(X0, X1):
    X0, X1 = _check_classes(X0, X1)
    if X0.ndim != 2:
        raise ValueError(
            f"the generator diagnostics take one data set: X0 and X1 must be 2-D, got shapes {X0.shape} and {X1.shape}"
        )
    if X0.shape[0] <= X1.shape[0]:
        raise ValueError(f"class 0 must be the majority: n0 = {X0.shape[0]} rows in X0 but n1 = {X1.shape[0]} in X1")
    return X0, X1


def _gqs(pilot: _Pilot, X0, X1, generator, model, rng, n_folds, y1, pool_size) -> GQSResult:
    n0, n1 = X0.shape[0], X1.shape[0]
    theta = pilot.fit.theta
    folds = np.array_split(rng.permutation(n1), n_folds)
    p = theta.shape[-1]
    delta_folds = np.empty((n_folds, p))
    Sigma_tilde_folds = np.empty((n_folds, p, p))
    hessian_tilde_folds = np.empty((n_folds, p, p))
    real_scores, _, _ = _row_scores(theta, X1, y1, model)
    # the generator never sees the rows it is judged against (cross-fitting), so delta is not
    # flattered by synthetic points that copy the real ones (SMOTE, jitter)
    for k, held in enumerate(folds):
        train = np.setdiff1d(np.arange(n1), held, assume_unique=True)
        fitted = generator.fit(X1[train], X0, rng)
        synthetic = np.asarray(fitted.sample(pool_size, rng), dtype=np.float64)
        if synthetic.shape != (pool_size, X1.shape[1]) or not np.all(np.isfinite(synthetic)):
            raise ValueError(
                f"generator {generator!r} returned a sample of shape {synthetic.shape} (or with "
                f"non-finite values); expected finite ({pool_size}, {X1.shape[1]})"
            )
        synth_scores, synth_curvature, Z = _row_scores(theta, synthetic, y1, model)
        delta_folds[k] = synth_scores.mean(axis=0) - real_scores[held].mean(axis=0)
        Sigma_tilde_folds[k] = _score_cov(synth_scores)
        hessian_tilde_folds[k] = np.einsum("n,np,nq->pq", synth_curvature, Z, Z) / pool_size
    delta = delta_folds.mean(axis=0)
    Sigma_tilde = Sigma_tilde_folds.mean(axis=0)
    S0, S1 = pilot.stats0.cov, pilot.stats1.cov
    Sigma_aug = S0 / 2 + n1 / (2 * n0) * S1 + (n0 - n1) / (2 * n0) * Sigma_tilde
    H = pilot.H
    scale = (n0 - n1) ** 2 / (2 * n0)
    variance = np.trace(_solve(H, Sigma_aug, "the pilot Hessian H"))
    gqs = scale * delta @ _solve(H, delta, "the pilot Hessian H") / variance
    if getattr(generator, "data_dependent", True):
        delta_cov = np.full((p, p), np.nan)
        noise_floor = np.nan
    else:
        delta_cov = _delta_cov(pilot, folds, Sigma_tilde_folds, hessian_tilde_folds, pool_size)
        noise_floor = scale * np.trace(_solve(H, delta_cov, "the pilot Hessian H")) / variance
    fold_sizes = [len(f) for f in folds]
    weights = exact_generator_null(pilot, fold_sizes, pool_size)
    pool_weights = pool_generator_null(Sigma_tilde, Sigma_aug, H, fold_sizes, pool_size, n0)
    return GQSResult(
        float(gqs),
        delta,
        Sigma_aug,
        Sigma_tilde,
        H,
        delta_cov,
        float(noise_floor),
        delta_folds,
        theta,
        weights,
        weighted_chi2_sf(float(gqs), weights),
        pool_weights,
        weighted_chi2_sf(float(gqs), pool_weights),
    )


def exact_generator_null(pilot: _Pilot, fold_sizes, pool_size: int, stabilised: bool = False) -> np.ndarray:
    """Weights lambda of GQS's first-order null law, sum_j lambda_j chi2_1, for an exact generator.

    An exact generator draws from the minority's own law, whatever the data: its synthetic
    Hessian is H1 (so the pilot's error drops out of delta, B = 0 in ``_delta_cov``) and its
    score covariance is S1, so delta ~ N(0, C) with C = S1 (sum_k 1/|fold k| + K / pool) / K^2
    and Sigma_aug = S0/2 + S1/2. With GQS = c delta' H^{-1} delta, c = [(n0 - n1)^2 / (2 n0)] /
    tr(H^{-1} Sigma_aug), GQS = sum_j lambda_j Z_j^2 where lambda are the eigenvalues of
    c L' H^{-1} L, C = L L'. These use the data's S0, S1 and H, so the law is that of an exact
    generator of this design's sizes; it is first order in the score means (the measured
    false-alarm rates are in README, "Calibrated diagnostics").

    Parameters
    ----------
    pilot : _Pilot
        The balanced pilot with its class statistics.
    fold_sizes : sequence of int
        The held-out minority rows of each of the K folds.
    pool_size : int
        Synthetic rows per fold.
    stabilised : bool, default False
        Stabilised pseudo-inverses instead of solves (the reference variant, ``diagnose``).

    Returns
    -------
    ndarray of shape (p,)
        lambda, >= 0, in increasing order.
    """
    s0, s1 = pilot.stats0, pilot.stats1
    return _null_weights(s1.cov, (s0.cov + s1.cov) / 2, pilot.H, fold_sizes, pool_size, s0.n, s1.n, stabilised)


def pool_generator_null(
    Sigma_tilde, Sigma_aug, H, fold_sizes, pool_size: int, n0: int, stabilised: bool = False
) -> np.ndarray:
    """``exact_generator_null``'s law with the minority's score covariance from the pools.

    Under an exact generator its pools' score covariance Sigma_tilde and the data's S1 estimate
    the same matrix, but not equally well when p / n1 is large: S1 comes from the rows the
    pilot was fitted on, whose scores it has pulled in (on study 6b's 101 features with
    n1 = 200, tr(H^{-1} S1) is about 20 where the pools' tr(H^{-1} Sigma_tilde) is 390-550),
    while the pools are fresh rows. So here C = Sigma_tilde (sum_k 1/|fold k| + K / pool) / K^2,
    and c uses the statistic's own Sigma_aug, so that GQS = sum_j lambda_j Z_j^2 with lambda
    the eigenvalues of c L' H^{-1} L, C = L L'. A generator whose rows are more spread than the
    minority's widens its own null, which costs power against it (README, "Calibrated
    diagnostics", has the measured rates).

    Parameters
    ----------
    Sigma_tilde : ndarray of shape (p, p)
        The pools' score covariance (``GQSResult.Sigma_tilde``).
    Sigma_aug : ndarray of shape (p, p)
        The statistic's Sigma_aug (``GQSResult.Sigma_aug``).
    H : ndarray of shape (p, p)
        The pilot Hessian.
    fold_sizes : sequence of int
        The held-out minority rows of each of the K folds (their sum is n1).
    pool_size : int
        Synthetic rows per fold.
    n0 : int
        Majority rows.
    stabilised : bool, default False
        Stabilised pseudo-inverses instead of solves (the reference variant).

    Returns
    -------
    ndarray of shape (p,)
        lambda, >= 0, in increasing order.
    """
    return _null_weights(Sigma_tilde, Sigma_aug, H, fold_sizes, pool_size, n0, sum(fold_sizes), stabilised)


def _null_weights(S1, Sigma_aug, H, fold_sizes, pool_size: int, n0: int, n1: int, stabilised: bool) -> np.ndarray:
    """Eigenvalues of c L' H^{-1} L, C = S1 (sum_k 1/|fold k| + K / pool) / K^2 = L L',
    c = [(n0 - n1)^2 / (2 n0)] / tr(H^{-1} Sigma_aug): GQS's law sum_j lambda_j chi2_1 when
    delta ~ N(0, C)."""
    K = len(fold_sizes)
    C = S1 * (sum(1.0 / m for m in fold_sizes) + K / pool_size) / K**2
    c = (n0 - n1) ** 2 / (2 * n0) / np.trace(_solve(H, Sigma_aug, "the pilot Hessian H", stabilised))
    values, vectors = np.linalg.eigh(C)
    L = vectors * np.sqrt(np.clip(values, 0.0, None))
    M = c * L.T @ _solve(H, L, "the pilot Hessian H", stabilised)
    return np.clip(np.linalg.eigvalsh((M + M.T) / 2), 0.0, None)


def _check_weights(weights) -> np.ndarray:
    lam = np.asarray(weights, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam) & (lam >= 0)):
        raise ValueError(f"weights must be a non-empty vector of finite numbers >= 0, got {weights!r}")
    return lam


def _pearson(lam: np.ndarray) -> tuple[float, float, float]:
    """(a, b, nu) of Pearson's three-moment fit a chi2_nu + b to sum_j lambda_j chi2_1, lambda not all zero."""
    c1, c2, c3 = lam.sum(), (lam**2).sum(), (lam**3).sum()
    a, nu = c3 / c2, c2**3 / c3**2
    return a, c1 - a * nu, nu


def _stratified_folds(n0: int, n1: int, n_folds: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds of (majority rows, minority rows), each class permuted and split evenly."""
    return list(zip(np.array_split(rng.permutation(n0), n_folds), np.array_split(rng.permutation(n1), n_folds)))


def _reference_gqs(
    pilot: _Pilot, X0, X1, generator, model, rng, n_folds, y0, y1, pool_size, preprocessor=None
) -> GQSResult:
    """The GQS as the authors' reference implementation cross-fits it (AUTHORS_DESIGNS.md
    section C): stratified K-fold over both classes; in fold k a balanced pilot theta_k on the
    fold's training rows, the generator fitted on them, and delta_k, the class Hessians and
    score covariances at theta_k from the held-out rows of both classes (the synthetic ones
    from the fold's pool); every matrix inverted by the stabilised pseudo-inverse. The GQS
    formula is section 4's with these fold averages; the exact-generator null is
    ``exact_generator_null`` at the same averages (C and the noise floor are not derived for
    per-fold pilots: NaN). With a ``preprocessor`` X0 and X1 are raw, and fold k transforms
    its four row sets by a clone fitted on its training rows alone (AUTHORS_DESIGNS.md F)."""
    n0, n1, p = X0.shape[0], X1.shape[0], pilot.H.shape[-1]
    folds = _stratified_folds(n0, n1, n_folds, rng)
    delta_folds = np.empty((n_folds, p))
    tilde, held0, held1 = [], [], []
    for k, (out0, out1) in enumerate(folds):
        in0 = np.setdiff1d(np.arange(n0), out0, assume_unique=True)
        in1 = np.setdiff1d(np.arange(n1), out1, assume_unique=True)
        train0, train1, test0, test1 = X0[in0], X1[in1], X0[out0], X1[out1]
        if preprocessor is not None:
            train0, train1, test0, test1 = _fold_transformed(preprocessor, (train0, train1), (test0, test1), k)
        theta = _fit_pilot(train0, train1, model, y0, y1).theta
        if theta.shape != (p,):
            raise ValueError(f"the preprocessor kept a different set of columns in GQS fold {k} than on all rows")
        fitted = generator.fit(train1, train0, rng)
        synthetic = np.asarray(fitted.sample(pool_size, rng), dtype=np.float64)
        if synthetic.shape != (pool_size, train1.shape[1]) or not np.all(np.isfinite(synthetic)):
            raise ValueError(
                f"generator {generator!r} returned a sample of shape {synthetic.shape} (or with "
                f"non-finite values); expected finite ({pool_size}, {train1.shape[1]})"
            )
        tilde.append(class_score_stats(theta, synthetic, y1, model))
        held0.append(class_score_stats(theta, test0, y0, model))
        held1.append(class_score_stats(theta, test1, y1, model))
        delta_folds[k] = tilde[-1].mean - held1[-1].mean

    def average(stats, n):
        return ClassScoreStats(
            np.mean([s.mean for s in stats], axis=0),
            np.mean([s.hessian for s in stats], axis=0),
            np.mean([s.cov for s in stats], axis=0),
            n,
        )

    stats0, stats1, synth = average(held0, n0), average(held1, n1), average(tilde, pool_size)
    H = (stats0.hessian + stats1.hessian) / 2 + _ridge(model, p)
    folded = _Pilot(pilot.fit, stats0, stats1, H)
    delta = delta_folds.mean(axis=0)
    Sigma_aug = stats0.cov / 2 + n1 / (2 * n0) * stats1.cov + (n0 - n1) / (2 * n0) * synth.cov
    scale = (n0 - n1) ** 2 / (2 * n0)
    variance = np.trace(_solve(H, Sigma_aug, "the pilot Hessian H", True))
    gqs = float(scale * delta @ _solve(H, delta, "the pilot Hessian H", True) / variance)
    fold_sizes = [len(out1) for _, out1 in folds]
    weights = exact_generator_null(folded, fold_sizes, pool_size, stabilised=True)
    pool_weights = pool_generator_null(synth.cov, Sigma_aug, H, fold_sizes, pool_size, n0, stabilised=True)
    return GQSResult(
        gqs,
        delta,
        Sigma_aug,
        synth.cov,
        H,
        np.full((p, p), np.nan),
        float("nan"),
        delta_folds,
        pilot.fit.theta,
        weights,
        weighted_chi2_sf(gqs, weights),
        pool_weights,
        weighted_chi2_sf(gqs, pool_weights),
    )


def _fold_transformed(preprocessor, train, held, k: int):
    """The fold's training and held-out row sets through a clone of ``preprocessor`` fitted on
    the training sets alone (no held-out row informs it)."""
    fitted = clone(preprocessor).fit(np.vstack(train))
    out = [np.asarray(fitted.transform(X), dtype=np.float64) for X in (*train, *held)]
    if not all(np.all(np.isfinite(Z)) for Z in out):
        raise ValueError(f"the preprocessor returned non-finite values in GQS fold {k}")
    return out


def weighted_chi2_sf(x: float, weights) -> float:
    """P(Q > x) for Q = sum_j lambda_j Z_j^2 (Z_j i.i.d. N(0, 1)), by Pearson's three-moment fit.

    With c_k = sum_j lambda_j^k, Q is approximated by a chi2_nu + b, nu = c2^3 / c3^2,
    a = c3 / c2, b = c1 - a nu, which has Q's mean, variance and third cumulant (Pearson 1959;
    Imhof 1961, section 4, finds it accurate in the upper tail). Exact when the nonzero
    lambda are equal (a chi2 with their count as degrees of freedom).

    All lambda zero give Q = 0, a point mass (the pool-calibrated null of a generator whose
    rows are all equal).

    Parameters
    ----------
    x : float
        The point.
    weights : array_like of shape (k,)
        lambda, finite and >= 0, k >= 1.

    Returns
    -------
    float
        The approximate survival function at x.

    Raises
    ------
    ValueError
        If the weights are not a non-empty vector of finite numbers >= 0.
    """
    lam = _check_weights(weights)
    if not lam.any():
        return float("nan") if np.isnan(x) else float(x < 0)
    a, b, nu = _pearson(lam)
    return float(chi2.sf((x - b) / a, nu))


def weighted_chi2_quantile(q: float, weights) -> float:
    """The q quantile of sum_j lambda_j chi2_1 by Pearson's fit (``weighted_chi2_sf``): b + a chi2_nu(q).

    Parameters
    ----------
    q : float
        The probability, in (0, 1).
    weights : array_like of shape (k,)
        lambda, finite and >= 0, k >= 1 (all zero: the point mass at 0, whose quantiles are 0).

    Returns
    -------
    float
        The approximate quantile.

    Raises
    ------
    ValueError
        If q is not in (0, 1) or the weights are invalid.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), got {q!r}")
    lam = _check_weights(weights)
    if not lam.any():
        return 0.0
    a, b, nu = _pearson(lam)
    return float(b + a * chi2.ppf(q, nu))


def _delta_cov(pilot: _Pilot, folds, Sigma_tilde_folds, hessian_tilde_folds, pool_size):
    """First-order sampling covariance of delta given the fitted generators.

    delta - psi ~ -sum_i (a_i I + B / n1) eps1_i - B e0 + (synthetic pool errors), where
    a_i = 1/(K |fold(i)|) weighs real minority row i in the held-out means, eps1_i is its
    centred score, e0 the majority's centred mean score, and B = D H^{-1}/2 carries the pilot's
    error theta_hat - theta* = -H^{-1}(e0 + e1)/2 into delta through D = H_tilde1 - H1, the
    synthetic minus real minority Hessian. Summing the independent pieces gives
    (sum_i a_i^2) S1 + (B S1 + S1 B' + B S1 B') / n1 + B S0 B' / n0
    + (1/K^2) sum_k Sigma_tilde_k / pool_size.
    """
    s0, s1 = pilot.stats0, pilot.stats1
    K = len(folds)
    D = hessian_tilde_folds.mean(axis=0) - s1.hessian
    B = _right_solve(D, pilot.H, "the pilot Hessian H") / 2
    sum_a2 = sum(1.0 / len(f) for f in folds) / K**2
    BS1 = B @ s1.cov
    return (
        sum_a2 * s1.cov
        + (BS1 + BS1.T + BS1 @ B.T) / s1.n
        + B @ s0.cov @ B.T / s0.n
        + Sigma_tilde_folds.sum(axis=0) / (K**2 * pool_size)
    )


def _check_gqs_args(X0, X1, generator, model, rng, n_folds, labels, pool_size):
    model = _check_model(model)
    X0, X1 = _check_single(X0, X1)
    y0, y1 = _check_labels(labels, model)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not callable(getattr(generator, "fit", None)):
        raise ValueError(f"generator must have a .fit(X1, X0, rng) method, got {generator!r}")
    n_folds = _check_int(n_folds, "n_folds", 2, X1.shape[0])
    n0, n1 = X0.shape[0], X1.shape[0]
    pool_size = _check_int(max(n0 - n1, 2) if pool_size is None else pool_size, "pool_size", 2)
    return model, X0, X1, y0, y1, n_folds, pool_size


def generator_quality_score(
    X0,
    X1,
    generator,
    model: GLM,
    rng: np.random.Generator,
    *,
    n_folds: int = 5,
    labels=(0, 1),
    pool_size: int | None = None,
) -> GQSResult:
    """Generator quality score (THEORY.md section 4), cross-fitted.

    The minority rows are split at random into n_folds folds of near-equal size (the folds
    stratify by class trivially: only the minority is split; the generator sees all of X0).
    For fold k the generator is fitted on the other folds, ``pool_size`` points are drawn
    (default n0 - n1, the full-balancing size), and delta_k = mean synthetic score minus mean
    score of the fold's real points, all at the balanced pilot with the minority label.
    delta = mean_k delta_k estimates psi, and

        GQS = [(n0 - n1)^2 / (2 n0)] delta' H^{-1} delta / tr(H^{-1} Sigma_aug),
        Sigma_aug = Sigma0/2 + (n1/(2 n0)) Sigma1 + ((n0 - n1)/(2 n0)) Sigma_tilde.

    This is section 3's squared bias over variance at gamma = 1 (b = (n0 - n1) psi, N = 2 n0)
    with H_w replaced by H, exact when the synthetic Hessian equals H1. Because delta is noisy,
    E GQS exceeds the population value by about ``noise_floor`` when the generator's law ignores
    the data: about 9 at kappa = 20 even for the exact law. For a data-dependent generator the
    cross-fitted fold errors partly cancel, so GQS mostly measures its systematic mismatch
    E psi, not the n1^{-1/2} random part that section 3 also counts as bias.

    The generator follows simstudy.generators.base: ``generator.fit(X1_train, X0, rng)``
    returns an object whose ``sample(m, rng)`` gives an (m, d) array. rng drives the fold
    split, the fits and the draws, in that order.

    Parameters
    ----------
    X0 : array_like of shape (n0, d)
        Majority rows (one data set: 2-D), finite, n0 > n1.
    X1 : array_like of shape (n1, d)
        Minority rows, finite, n1 >= 2.
    generator : simstudy.generators.base.Generator
        An unfitted generator (any object with ``fit(X1, X0, rng)``).
    model : simstudy.fitting.GLM
        The model of the pilot and the scores.
    rng : numpy.random.Generator
        The source of randomness.
    n_folds : int, default 5
        Number of folds K, an integer in [2, n1] (keyword only).
    labels : pair of float, default (0, 1)
        (y0, y1), two distinct finite numbers; (0, 1) or (1, 0) for a binary family (keyword
        only).
    pool_size : int, optional
        Synthetic points per fold, an integer >= 2; default max(n0 - n1, 2) (keyword only).

    Returns
    -------
    GQSResult
        The score and its ingredients.

    Raises
    ------
    ValueError
        If ``model``, X0, X1 or ``labels`` is invalid (as for ``balanced_pilot``), X0 or X1 is
        not 2-D, class 0 is not the majority, ``rng`` is not a ``numpy.random.Generator``,
        ``generator`` has no ``fit`` method, ``n_folds`` or ``pool_size`` is out of range, the
        generator returns a sample of the wrong shape or with non-finite values, or the pilot
        Hessian H is singular.
    """
    model, X0, X1, y0, y1, n_folds, pool_size = _check_gqs_args(
        X0, X1, generator, model, rng, n_folds, labels, pool_size
    )
    pilot = _pilot(X0, X1, model, y0, y1)
    return _gqs(pilot, X0, X1, generator, model, rng, n_folds, y1, pool_size)


def _alignment(psi, g) -> Alignment:
    psi_norm, g_norm = np.linalg.norm(psi), np.linalg.norm(g)
    inner = float(psi @ g)
    cosine = inner / (psi_norm * g_norm) if psi_norm > 0 and g_norm > 0 else np.nan
    ratio = psi_norm / g_norm if g_norm > 0 else np.inf
    c = 2 * inner / g_norm**2 if g_norm > 0 else np.nan
    return Alignment(float(cosine), float(ratio), float(c))


def _target(psi, g, n0: int, n1: int) -> PlugInTarget:
    c = _alignment(psi, g).c
    if not np.isfinite(c):
        return PlugInTarget(None, None, c, "g_phi_hat is zero: the target is undefined")
    if 1 - c <= 0:
        return PlugInTarget(
            None,
            None,
            c,
            f"c_hat = {c:.3g} >= 1: the mismatch is at least as majority-like as the shift, so "
            f"no synthetic size cancels the bias (section 3)",
        )
    gamma = 1 / (1 - c)
    return PlugInTarget(float((n0 - n1) * gamma), float(gamma), c, "ok")


def alignment_estimates(
    X0,
    X1,
    generator,
    model: GLM,
    rng: np.random.Generator,
    *,
    n_folds: int = 5,
    labels=(0, 1),
    pool_size: int | None = None,
) -> Alignment:
    """cos(psi_hat, g_phi_hat), ||psi_hat|| / ||g_phi_hat|| and c_hat (sections 2 and 4).

    c_hat = 2 <psi_hat, g_phi_hat> / ||g_phi_hat||^2, with psi_hat the cross-fitted delta of
    ``generator_quality_score`` (same arguments) and g_phi_hat the Wald test's m0 - m1.

    Parameters
    ----------
    X0, X1, generator, model, rng, n_folds, labels, pool_size
        As for ``generator_quality_score``.

    Returns
    -------
    Alignment
        cosine, norm_ratio and c.

    Raises
    ------
    ValueError
        As for ``generator_quality_score``, and when the Wald covariance V is singular.
    """
    return diagnose(X0, X1, generator, model, rng, n_folds=n_folds, labels=labels, pool_size=pool_size).alignment


def plug_in_target(
    X0,
    X1,
    generator,
    model: GLM,
    rng: np.random.Generator,
    *,
    n_folds: int = 5,
    labels=(0, 1),
    pool_size: int | None = None,
) -> PlugInTarget:
    """The plug-in theory target of section 4.

        n_TG = (n0 - n1) / (1 - 2 <psi_hat, g_phi_hat> / ||g_phi_hat||^2)

    is section 3's bias-cancelling size for an aligned mismatch psi = c g, gamma* = 1/(1 - c),
    with psi and g_phi replaced by their estimates. Returned only when the denominator is
    positive; otherwise ``n_tilde`` is None and ``reason`` says why.

    Parameters
    ----------
    X0, X1, generator, model, rng, n_folds, labels, pool_size
        As for ``generator_quality_score``.

    Returns
    -------
    PlugInTarget
        n_tilde, gamma, c and reason.

    Raises
    ------
    ValueError
        As for ``generator_quality_score``, and when the Wald covariance V is singular.
    """
    return diagnose(X0, X1, generator, model, rng, n_folds=n_folds, labels=labels, pool_size=pool_size).target


def diagnose(
    X0,
    X1,
    generator,
    model: GLM,
    rng: np.random.Generator,
    *,
    n_folds: int = 5,
    labels=(0, 1),
    pool_size: int | None = None,
    variant: str = "simstudy",
    preprocessor=None,
) -> Diagnostics:
    """All of section 4 from one balanced pilot.

    The Wald test, the GQS, the alignment of psi_hat with g_phi_hat and the plug-in target.
    Arguments as ``generator_quality_score``. ``variant`` "reference" computes them as the
    authors' reference implementation does (AUTHORS_DESIGNS.md section C): the GQS cross-fitted
    over stratified folds of both classes with a pilot per fold (``_reference_gqs``), and every
    inverse a stabilised pseudo-inverse pinv(M + 1e-8 s I), s = tr(M) / p, so that a singular H
    or V does not raise.

    Parameters
    ----------
    X0 : array_like of shape (n0, d)
        Majority rows, finite, n0 > n1.
    X1 : array_like of shape (n1, d)
        Minority rows, finite, n1 >= 2.
    generator : simstudy.generators.base.Generator
        An unfitted generator (any object with ``fit(X1, X0, rng)``).
    model : simstudy.fitting.GLM
        The model of the pilot and the scores.
    rng : numpy.random.Generator
        Drives the GQS's fold split, fits and draws.
    n_folds : int, default 5
        Number of GQS folds, an integer in [2, n1] (keyword only).
    labels : pair of float, default (0, 1)
        (y0, y1) (keyword only).
    pool_size : int, optional
        Synthetic points per fold, >= 2; default max(n0 - n1, 2) (keyword only).
    variant : {"simstudy", "reference"}, default "simstudy"
        THEORY.md section 4's diagnostics, or the authors' reference implementation's (keyword
        only).
    preprocessor : transformer, optional
        A scikit-learn-style transformer (``fit``, ``transform``). X0 and X1 are then raw (NaN
        allowed where it imputes): the pilot, the Wald test and simstudy's GQS use them
        transformed by a clone fitted on all rows (simstudy's GQS has one pilot on all rows
        anyway); the reference GQS refits a clone on each fold's training rows alone (keyword
        only).

    Returns
    -------
    Diagnostics
        wald, gqs, alignment and target.

    Raises
    ------
    ValueError
        As for ``generator_quality_score``, and when the Wald covariance V is singular.
    """
    raw = None
    if preprocessor is not None:
        raw = (np.asarray(X0, dtype=np.float64), np.asarray(X1, dtype=np.float64))
        fitted = clone(preprocessor).fit(np.vstack(raw))
        X0, X1 = (np.asarray(fitted.transform(X), dtype=np.float64) for X in raw)
    model, X0, X1, y0, y1, n_folds, pool_size = _check_gqs_args(
        X0, X1, generator, model, rng, n_folds, labels, pool_size
    )
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    pilot = _pilot(X0, X1, model, y0, y1)
    if variant == "reference":
        wald = _wald(pilot, stabilised=True)
        X0_gqs, X1_gqs = (X0, X1) if raw is None else raw
        gqs = _reference_gqs(pilot, X0_gqs, X1_gqs, generator, model, rng, n_folds, y0, y1, pool_size, preprocessor)
    else:
        wald = _wald(pilot)
        gqs = _gqs(pilot, X0, X1, generator, model, rng, n_folds, y1, pool_size)
    n0, n1 = X0.shape[0], X1.shape[0]
    return Diagnostics(wald, gqs, _alignment(gqs.delta, wald.g_phi_hat), _target(gqs.delta, wald.g_phi_hat, n0, n1))
