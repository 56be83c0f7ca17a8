"""Class laws P_k and their exact moments of the loss (THEORY.md sections 1-3).

For one class law P (the law of X given the label) and a fixed label y, the model's loss
l(theta; z, y) with z = z(x) (x, or (1, x) with an intercept) has the moments used everywhere
in the theory:

    risk      R(theta)   = E l(theta; z, y)                           (section 1, R_k)
    grad      grad R     = E[score(eta, y) z]                         (section 2, g)
    hess      hess R     = E[curvature(eta, y) z z']                  (section 3, H_k)
    score_cov Sigma      = Cov(score(eta, y) z)                       (section 3, Sigma_k)

with eta = theta' z. Three laws compute them:

* ``GaussianMixtureLaw`` -- exact for any GLM family by reduction to 1-D integrals along eta
  (trapezoidal quadrature on the Gaussian, accurate to ~1e-14).
* ``SymmetricNoiseLaw`` -- mean + scale * xi with symmetric i.i.d.-like noise; closed forms
  for squared loss from the noise's fourth-moment tensor.
* ``EmpiricalLaw`` -- a large fixed sample, for designs with no reduction; moments are Monte
  Carlo estimates and ``moments_se`` reports their standard errors.

Every law samples i.i.d. rows from an explicit ``np.random.Generator`` and is closed under
``shifted`` (X + delta) and ``scaled`` (mean + s (X - mean)); ``risk_batch`` evaluates R at
many parameter vectors in one vectorised pass.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.fitting import GLM


class Moments(NamedTuple):
    """Moments of l(theta; z, y) under one class law with the label y fixed.

    ``ClassLaw.moments_se`` returns the same fields holding standard errors instead.

    Attributes
    ----------
    risk : float
        R(theta) = E l.
    grad : ndarray of shape (p,)
        E[score(eta, y) z].
    hess : ndarray of shape (p, p)
        E[curvature(eta, y) z z'].
    score_cov : ndarray of shape (p, p)
        Cov(score(eta, y) z), about its mean.
    """

    risk: float
    """R(theta) = E l."""
    grad: np.ndarray
    """(p,) E[score(eta, y) z]."""
    hess: np.ndarray
    """(p, p) E[curvature(eta, y) z z']."""
    score_cov: np.ndarray
    """(p, p) Cov(score(eta, y) z), about its mean."""


# ---------------------------------------------------------------------------------------------
# input checks


def _vector(value, name: str, size: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (size is not None and arr.shape[0] != size):
        want = f"({size},)" if size is not None else "(k,)"
        raise ValueError(f"{name} must be a 1-D array of shape {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr}")
    return arr


def _count(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {n!r}")
    return int(n)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_model(model) -> GLM:
    if not isinstance(model, GLM):
        raise ValueError(f"model must be a simstudy.fitting.GLM, got {type(model).__name__}")
    return model


def _check_label(label) -> float:
    y = float(label)
    if not np.isfinite(y):
        raise ValueError(f"label must be a finite number, got {label!r}")
    return y


def _positive_scale(s) -> float:
    s = float(s)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"scale factor s must be a finite number > 0, got {s!r}")
    return s


def _embedding(model: GLM, d: int) -> np.ndarray:
    """J (p, d) with z(x) = z(0) + J x: the identity on the feature rows, zero on the intercept."""
    return np.eye(model.n_params(d), d, -int(model.intercept))


# ---------------------------------------------------------------------------------------------
# the family's elementwise functions, stacked so one quadrature pass serves all of them


@functools.cache
def _loss_only(family) -> Callable:
    # cached so that the jitted quadrature sees the same static function on every call
    return lambda eta, y: family.loss(eta, y)[None]


@functools.cache
def _all_integrands(family) -> Callable:
    """(loss, score, curvature, score^2): the integrands of risk, grad, hess and E[s^2 z z']."""

    def stacked(eta, y):
        score = family.score(eta, y)
        return jnp.stack([family.loss(eta, y), score, family.curvature(eta, y), score * score])

    return stacked


# ---------------------------------------------------------------------------------------------
# 1-D Gaussian expectations

_U_STEP = 0.25
"""Largest node spacing in u = (eta - m) / s: the trapezoid error for a smooth integrand times
the N(0, 1) density is about exp(-2 pi^2 / h^2) = e^-316 at h = 0.25."""
_ETA_STEP = 0.5
"""Largest node spacing in eta. The logistic loss is analytic in the strip |Im eta| < pi
(singularities at +-i pi) and the probit one in a strip of similar width, so a step of 0.5 in
eta keeps the trapezoid error near exp(-2 pi pi / 0.5) = e^-39 however wide the Gaussian is
(Gauss-Hermite with a fixed node count loses accuracy as s grows: its nodes spread with s)."""
_HALF_WIDTH = 9.5
"""Truncation |u| <= 9.5: the N(0, 1) tail beyond it is below 1e-20."""
_BASE_NODES = math.ceil(_HALF_WIDTH / _U_STEP)
_MIN_ROWS = 64


@functools.cache
def _stack_size(fn: Callable) -> int:
    """q, the number of integrands fn stacks (from its traced shape: evaluating fn each call
    took a seventh of a theory step)."""
    probe = jax.ShapeDtypeStruct((1,), jnp.float64)
    return jax.eval_shape(fn, probe, jax.ShapeDtypeStruct((), jnp.float64)).shape[0]


@functools.partial(jax.jit, static_argnames=("fn", "J"))
def _trapezoid(fn, m, s, h, y, J):
    j = jnp.arange(-J, J + 1, dtype=jnp.float64)
    u = h[:, None] * j
    w = h[:, None] * jnp.exp(-0.5 * u * u) * (1.0 / math.sqrt(2.0 * math.pi))
    wv = w * fn(m[:, None] + s[:, None] * u, y)
    return jnp.stack([wv.sum(-1), (wv * u).sum(-1), (wv * u * u).sum(-1)], axis=-1)


def gaussian_expectations(fn: Callable, m, s, y: float) -> np.ndarray:
    """E f(m + s U), E[U f(m + s U)] and E[U^2 f(m + s U)] for U ~ N(0, 1), elementwise.

    Rule: the trapezoid on the nodes u_j = h j, |j| <= J, with h = min(0.25, 0.5 / s) (see
    ``_U_STEP``, ``_ETA_STEP``) and J a power-of-two multiple of 38 with h J >= 9.5. Elements
    needing a larger J are evaluated in their own group, so one wide Gaussian does not slow the
    rest; groups are padded to a power-of-two size so the kernel compiles for few shapes.

    Parameters
    ----------
    fn : callable
        ``fn(eta, y)`` (jax-traceable) returns q stacked integrands, shape (q,) + eta.shape; it
        must be hashable and stable across calls (it is a static argument of a jitted kernel).
    m : array_like
        Means of the Gaussians, any shape.
    s : array_like
        Standard deviations s >= 0, the shape of ``m``.
    y : float
        The label passed to ``fn``.

    Returns
    -------
    ndarray of float64, shape (q,) + m.shape + (3,)
        The last axis holds E f, E[U f] and E[U^2 f] for each of the q integrands. Non-finite m
        or s give NaN.
    """
    m = np.asarray(m, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    shape = m.shape
    m, s = m.reshape(-1), s.reshape(-1)
    finite = np.isfinite(m) & np.isfinite(s)
    h = np.full(m.shape, _U_STEP)
    wide = finite & (s * _U_STEP > _ETA_STEP)
    h[wide] = _ETA_STEP / s[wide]
    level = np.zeros(m.shape, dtype=int)
    level[wide] = np.maximum(0, np.ceil(np.log2(_HALF_WIDTH / h[wide] / _BASE_NODES))).astype(int)
    yy = jnp.asarray(y, dtype=jnp.float64)
    q = _stack_size(fn)
    out = np.full((q, m.size, 3), np.nan)
    for k in np.unique(level[finite]):
        idx = np.flatnonzero(finite & (level == k))
        rows = max(_MIN_ROWS, 1 << (idx.size - 1).bit_length())
        pad = rows - idx.size
        mk = np.pad(m[idx], (0, pad))
        sk = np.pad(s[idx], (0, pad))
        hk = np.pad(h[idx], (0, pad), constant_values=_U_STEP)
        res = _trapezoid(fn, mk, sk, hk, yy, J=int(_BASE_NODES * 2**k))
        out[:, idx, :] = np.asarray(res)[:, : idx.size, :]
    return out.reshape((q,) + shape + (3,))


# ---------------------------------------------------------------------------------------------
# the abstract law


class ClassLaw(ABC):
    """The law of X (dim ``dim``) within one class, with the loss moments of the theory.

    Abstract: a subclass implements ``sample``, ``moments``, ``shifted``, ``scaled`` and
    ``_risk_rows``; ``moments_se`` and ``risk_batch`` are built on them.

    Attributes
    ----------
    dim : int
        Dimension d of X.
    mean : ndarray of shape (dim,)
        E X (for an ``EmpiricalLaw``, its fixed sample's mean).
    """

    dim: int
    mean: np.ndarray

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dim) i.i.d. rows of X.

        Parameters
        ----------
        n : int
            Number of rows, >= 0.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of float64, shape (n, dim)
            The draws.

        Raises
        ------
        ValueError
            In the implementations here, if ``n`` is not an integer >= 0 or ``rng`` is not a
            ``numpy.random.Generator``.
        """

    @abstractmethod
    def moments(self, theta, label: float, model: GLM) -> Moments:
        """Moments of l(theta; z, label) under this law (module docstring).

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept (the ridge plays no part).

        Returns
        -------
        Moments
            risk, grad (p,), hess (p, p) and score_cov (p, p) at theta.

        Raises
        ------
        ValueError
            In the implementations here, if ``model`` is not a GLM, ``theta`` is not a finite
            vector of shape (p,) or ``label`` is not a finite number.
        """

    @abstractmethod
    def shifted(self, delta) -> ClassLaw:
        """The law of X + delta.

        Parameters
        ----------
        delta : array_like of shape (dim,)
            The shift.

        Returns
        -------
        ClassLaw
            A new law of the same class.

        Raises
        ------
        ValueError
            In the implementations here, if ``delta`` is not a finite vector of shape (dim,).
        """

    @abstractmethod
    def scaled(self, s: float) -> ClassLaw:
        """The law of mean + s (X - mean): covariance times s^2, s > 0.

        Parameters
        ----------
        s : float
            The scale factor, a finite number > 0.

        Returns
        -------
        ClassLaw
            A new law of the same class.

        Raises
        ------
        ValueError
            In the implementations here, if ``s`` is not a finite number > 0.
        """

    @abstractmethod
    def _risk_rows(self, thetas: np.ndarray, label: float, model: GLM) -> np.ndarray:
        """R at each row of thetas (B, p)."""

    def moments_se(self, theta, label: float, model: GLM) -> Moments:
        """Standard errors of ``moments``.

        Zero for an exact law (quadrature and closed forms are exact to rounding), Monte Carlo
        standard errors for an estimated one. This base implementation is the exact case and looks at ``model`` only.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            The model; p = model.n_params(dim).

        Returns
        -------
        Moments
            The standard error of each field of ``moments``: here 0.0 and zero arrays of shapes
            (p,), (p, p) and (p, p).

        Raises
        ------
        ValueError
            If ``model`` is not a GLM.
        """
        p = _check_model(model).n_params(self.dim)
        return Moments(0.0, np.zeros(p), np.zeros((p, p)), np.zeros((p, p)))

    def risk_batch(self, thetas, label: float, model: GLM) -> np.ndarray:
        """R(theta) for thetas of shape (..., p): returns shape (...), vectorised.

        Parameters
        ----------
        thetas : array_like of shape (..., p)
            Parameter vectors, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        ndarray of float64, shape (...)
            R at each parameter vector.

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``thetas`` does not have shape (..., p) or ``label`` is not a
            finite number.
        """
        model = _check_model(model)
        p = model.n_params(self.dim)
        arr = np.asarray(thetas, dtype=np.float64)
        if arr.ndim < 1 or arr.shape[-1] != p:
            raise ValueError(
                f"thetas must have shape (..., {p}) for dim {self.dim} and intercept="
                f"{model.intercept}, got shape {arr.shape}"
            )
        flat = arr.reshape(-1, p)
        return self._risk_rows(flat, _check_label(label), model).reshape(arr.shape[:-1])

    def moments_batch(self, thetas, label: float, model: GLM) -> Moments:
        """``moments`` at each row of thetas, the fields stacked along a leading axis.

        This base implementation calls ``moments`` row by row; Gaussian mixtures evaluate all
        rows in one quadrature call.

        Parameters
        ----------
        thetas : array_like of shape (B, p)
            Finite parameter vectors, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            risk (B,), grad (B, p), hess (B, p, p) and score_cov (B, p, p).

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``thetas`` is not a finite array of shape (B, p) or
            ``label`` is not a finite number.
        """
        thetas = self._thetas(thetas, model)
        rows = [self.moments(theta, label, model) for theta in thetas]
        return Moments(*(np.array(field) for field in zip(*rows)))

    def _theta(self, theta, model: GLM) -> np.ndarray:
        p = _check_model(model).n_params(self.dim)
        return _vector(theta, "theta", p)

    def _thetas(self, thetas, model: GLM) -> np.ndarray:
        p = _check_model(model).n_params(self.dim)
        arr = np.asarray(thetas, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != p or arr.shape[0] == 0:
            raise ValueError(f"thetas must have shape (B, {p}) with B >= 1, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("thetas must be finite")
        return arr


# ---------------------------------------------------------------------------------------------
# Gaussian mixtures


def _psd_factor(cov: np.ndarray, name: str) -> np.ndarray:
    """F with F F' = cov, from the eigendecomposition (cov may be singular)."""
    w, V = np.linalg.eigh(cov)
    tol = 1e-10 * max(1.0, float(np.max(np.abs(w))))
    if w[0] < -tol:
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue {w[0]:.3g}")
    return V * np.sqrt(np.clip(w, 0.0, None))


class GaussianMixtureLaw(ClassLaw):
    """X ~ sum_k w_k N(mu_k, S_k); the S_k may be singular (e.g. a coordinate fixed at 0).

    Moments, exact for any family (THEORY.md sections 1-3): in component k, z = z(x) is
    Gaussian with mean mu_z and covariance S_z (zero intercept row and column), so
    eta = theta' z ~ N(m, v) with m = theta' mu_z, v = theta' S_z theta. Writing
    eta = m + sqrt(v) U and b = S_z theta / sqrt(v) (b = 0 when v = 0),

        z = mu_z + b U + r,   r independent of U, E r = 0, Cov r = S_z - b b',

    hence for any h:  E[h z] = E[h] mu_z + E[U h] b  and
    E[h z z'] = E[h] (mu_z mu_z' + S_z - b b') + E[U h] (mu_z b' + b mu_z') + E[U^2 h] b b'.
    The 1-D expectations come from ``gaussian_expectations``; with squared loss the integrands
    are polynomials and the result equals the closed form to rounding.

    Parameters
    ----------
    weights : array_like of shape (K,)
        Mixture weights w_k >= 0 summing to 1 (within 1e-9; renormalised).
    means : array_like of shape (K, d)
        Component means mu_k, K >= 1, d >= 1.
    covs : array_like of shape (K, d, d)
        Component covariances S_k: symmetric (to within 1e-12 max(1, max_k |S_k|) entrywise) and
        positive semi-definite.

    Attributes
    ----------
    weights : ndarray of shape (K,)
        The weights divided by their sum.
    means : ndarray of shape (K, d)
        The component means.
    covs : ndarray of shape (K, d, d)
        The covariances, symmetrised.
    dim : int
        d.
    mean : ndarray of shape (d,)
        E X = sum_k w_k mu_k.

    Raises
    ------
    ValueError
        If the shapes disagree, a weight is negative or not finite, the weights do not sum to 1,
        a mean or covariance is not finite, or a covariance is not symmetric or not positive
        semi-definite.
    """

    def __init__(self, weights, means, covs):
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
            raise ValueError(f"means must be a 2-D array (K, d) with K, d >= 1, got shape {means.shape}")
        K, d = means.shape
        weights = _vector(weights, "weights", K)
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must be >= 0 and sum to 1 (within 1e-9), got {weights} (sum {weights.sum()!r})")
        covs = np.asarray(covs, dtype=np.float64)
        if covs.shape != (K, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = {(K, d, d)}, got {covs.shape}")
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covs))):
            raise ValueError("means and covs must be finite")
        if not np.allclose(covs, np.swapaxes(covs, 1, 2), rtol=0.0, atol=1e-12 * max(1.0, np.abs(covs).max())):
            raise ValueError("covs must be symmetric matrices")
        self.weights = weights / weights.sum()
        self.means = means
        self.covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
        self.dim = d
        self.mean = self.weights @ means
        self._factors = np.stack([_psd_factor(c, f"covs[{k}]") for k, c in enumerate(self.covs)])

    def __repr__(self) -> str:
        return f"GaussianMixtureLaw(K={self.weights.size}, dim={self.dim})"

    def sample(self, n, rng):
        """(n, dim) i.i.d. rows of X.

        Each row draws a component by the weights, then adds its mean to a square root of its
        covariance times a standard normal vector.

        Parameters
        ----------
        n : int
            Number of rows, >= 0.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of float64, shape (n, dim)
            The draws.

        Raises
        ------
        ValueError
            If ``n`` is not an integer >= 0 or ``rng`` is not a ``numpy.random.Generator``.
        """
        n, rng = _count(n, "n"), _check_rng(rng)
        K = self.weights.size
        comp = rng.choice(K, size=n, p=self.weights) if K > 1 else np.zeros(n, dtype=int)
        out = rng.standard_normal((n, self.dim))
        order = np.argsort(comp, kind="stable")
        bounds = np.searchsorted(comp[order], np.arange(K + 1))
        for k in range(K):
            rows = order[bounds[k] : bounds[k + 1]]
            if rows.size:
                out[rows] = out[rows] @ self._factors[k].T + self.means[k]
        return out

    def shifted(self, delta):
        """The law of X + delta: every component mean moved by delta.

        Parameters
        ----------
        delta : array_like of shape (dim,)
            The shift.

        Returns
        -------
        GaussianMixtureLaw
            Same weights and covariances, means mu_k + delta.

        Raises
        ------
        ValueError
            If ``delta`` is not a finite vector of shape (dim,).
        """
        delta = _vector(delta, "delta", self.dim)
        return GaussianMixtureLaw(self.weights, self.means + delta, self.covs)

    def scaled(self, s):
        """The law of mean + s (X - mean): means mean + s (mu_k - mean), covariances s^2 S_k.

        Parameters
        ----------
        s : float
            The scale factor, a finite number > 0.

        Returns
        -------
        GaussianMixtureLaw
            The scaled mixture (same weights).

        Raises
        ------
        ValueError
            If ``s`` is not a finite number > 0.
        """
        s = _positive_scale(s)
        return GaussianMixtureLaw(self.weights, self.mean + s * (self.means - self.mean), s * s * self.covs)

    def _design(self, model: GLM):
        mu_z = model.features(self.means)
        J = _embedding(model, self.dim)
        S_z = J @ self.covs @ J.T
        return mu_z, S_z

    def moments(self, theta, label, model):
        """Moments of l(theta; z, label), exact for any family (class docstring).

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            risk, grad (p,), and the symmetrised hess and score_cov (p, p).

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``theta`` is not a finite vector of shape (p,) or ``label``
            is not a finite number.
        """
        theta = self._theta(theta, model)
        y = _check_label(label)
        mu_z, S_z = self._design(model)
        m = mu_z @ theta
        S_theta = S_z @ theta
        v = np.clip(S_theta @ theta, 0.0, None)
        s = np.sqrt(v)
        b = np.where(s[:, None] > 0, S_theta / np.where(s > 0, s, 1.0)[:, None], 0.0)
        E = gaussian_expectations(_all_integrands(model.family), m, s, y) * self.weights[None, :, None]
        risk = float(E[0, :, 0].sum())
        grad = E[1, :, 0] @ mu_z + E[1, :, 1] @ b
        base = mu_z[:, :, None] * mu_z[:, None, :] + S_z - b[:, :, None] * b[:, None, :]
        cross = mu_z[:, :, None] * b[:, None, :]
        cross = cross + np.swapaxes(cross, 1, 2)
        outer_b = b[:, :, None] * b[:, None, :]

        def second(Ef):
            return (
                np.einsum("k,kij->ij", Ef[:, 0], base)
                + np.einsum("k,kij->ij", Ef[:, 1], cross)
                + np.einsum("k,kij->ij", Ef[:, 2], outer_b)
            )

        hess = second(E[2])
        score_cov = second(E[3]) - np.outer(grad, grad)
        return Moments(risk, grad, 0.5 * (hess + hess.T), 0.5 * (score_cov + score_cov.T))

    def moments_batch(self, thetas, label, model):
        """``moments`` at each row of thetas in one quadrature call (``ClassLaw.moments_batch``).

        With b_k = S_k theta / s_k and E_j = E[U^j f] for the integrand f (class docstring),
        E[f z z'] = sum_k w_k (E_0 (mu_k mu_k' + S_k) + (E_2 - E_0) b_k b_k' + E_1 (mu_k b_k' + b_k mu_k')),
        ``moments``'s three terms regrouped.
        """
        thetas = self._thetas(thetas, model)
        y = _check_label(label)
        mu_z, S_z = self._design(model)
        m = thetas @ mu_z.T  # (B, K)
        S_theta = np.einsum("kpq,bq->bkp", S_z, thetas)
        s = np.sqrt(np.clip(np.einsum("bkp,bp->bk", S_theta, thetas), 0.0, None))
        b = np.where(s[..., None] > 0, S_theta / np.where(s > 0, s, 1.0)[..., None], 0.0)
        E = gaussian_expectations(_all_integrands(model.family), m, s, y) * self.weights[:, None]
        risk = E[0, ..., 0].sum(axis=1)
        grad = E[1, ..., 0] @ mu_z + np.einsum("bk,bkp->bp", E[1, ..., 1], b)
        second_moment = mu_z[:, :, None] * mu_z[:, None, :] + S_z

        def second(Ef):
            mixed = np.einsum("bk,kp,bkq->bpq", Ef[..., 1], mu_z, b)
            return (
                np.einsum("bk,kpq->bpq", Ef[..., 0], second_moment)
                + np.einsum("bk,bkp,bkq->bpq", Ef[..., 2] - Ef[..., 0], b, b)
                + mixed
                + np.swapaxes(mixed, 1, 2)
            )

        hess = second(E[2])
        score_cov = second(E[3]) - grad[:, :, None] * grad[:, None, :]
        return Moments(
            risk, grad, 0.5 * (hess + np.swapaxes(hess, 1, 2)), 0.5 * (score_cov + np.swapaxes(score_cov, 1, 2))
        )

    def _risk_rows(self, thetas, label, model):
        mu_z, S_z = self._design(model)
        m = thetas @ mu_z.T
        v = np.clip(np.einsum("bp,kpq,bq->bk", thetas, S_z, thetas, optimize=True), 0.0, None)
        E = gaussian_expectations(_loss_only(model.family), m, np.sqrt(v), label)
        return E[0, :, :, 0] @ self.weights


# ---------------------------------------------------------------------------------------------
# symmetric noise around a mean

_NOISES = ("gaussian", "uniform_cube", "rademacher", "uniform_sphere")

_MC_SIZE = 200_000
"""Sample size of the Monte Carlo fallbacks (``EmpiricalLaw`` default)."""


def _noise_scale(scale, d: int):
    """One scale (a float) or d of them (a read-only vector), all finite and > 0."""
    values = np.asarray(scale, dtype=np.float64)
    if values.shape not in ((), (d,)) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"scale must be a finite number > 0 or {d} of them, got {scale!r}")
    if values.ndim == 0:
        return float(values)
    values = values.copy()
    values.flags.writeable = False
    return values


class SymmetricNoiseLaw(ClassLaw):
    """X = mean + scale * xi, xi with zero-mean unit-variance, sign-symmetric coordinates.

    ``scale`` is one number or one per coordinate (X = mean + D xi, D = diag(scale): classes
    whose covariances differ, as in the symmetry test's null of AUTHORS_DESIGNS.md section D).

    ``noise`` (THEORY.md section 6, study 1): "gaussian" N(0, I); "uniform_cube"
    Unif[-sqrt 3, sqrt 3]^d; "rademacher" +-1 coordinates; "uniform_sphere" uniform on the
    sphere of radius sqrt(d). All have E xi xi' = I, vanishing odd moments and the
    fourth-moment tensor

        E[xi_a xi_b xi_c xi_e] = beta (d_ab d_ce + d_ac d_be + d_ae d_bc) + (kappa - 3 beta) d_abce

    with (beta, kappa) = (1, 3), (1, 9/5), (1, 1), (d/(d+2), 3d/(d+2)) respectively.

    Squared loss, closed form (one scale): with t the feature part of theta, e = theta' z(mean) - y,
    mu_z = z(mean) and J the feature embedding (``_embedding``),
    R = e^2 + scale^2 |t|^2, grad = 2 (e mu_z + scale^2 J t), hess = 2 (mu_z mu_z' + scale^2 J J'),
    Sigma = 4 scale^2 [e^2 J J' + e (J t mu_z' + mu_z t' J') + |t|^2 mu_z mu_z'] + 4 scale^4 J M J',
    M = Cov((xi xi' - I) t) = beta |t|^2 I + (2 beta - 1) t t' + (kappa - 3 beta) diag(t^2).
    Per-coordinate scales reduce to it: with D = diag(scale), z' theta = theta_0 + mu' t + xi' D t
    is the one-scale law of mean D^{-1} mu at theta' = (theta_0, D t), so the moments at theta are
    those at theta' with the gradient mapped by T = diag(1, D) (intercept first), the Hessian
    and score covariance by T . T.

    Other families: gaussian noise delegates to ``GaussianMixtureLaw`` (exact); the other
    noises fall back on an ``EmpiricalLaw`` of ``mc_size`` draws seeded by ``mc_seed``, whose
    Monte Carlo standard errors ``moments_se`` reports.

    Parameters
    ----------
    mean : array_like of shape (d,)
        The centre of the law, finite, d >= 1.
    noise : {"gaussian", "uniform_cube", "rademacher", "uniform_sphere"}, default "gaussian"
        The law of xi.
    scale : float or array_like of shape (d,), default 1.0
        Finite numbers > 0: one for every coordinate, or one each.
    mc_size : int, default 200_000
        Draws of the Monte Carlo fallback (keyword only; an integer >= 0, and the fallback itself
        needs at least 2).
    mc_seed : int or numpy.random.SeedSequence, default 0
        Seed of the Monte Carlo fallback (keyword only).

    Attributes
    ----------
    mean : ndarray of shape (d,)
        The centre (E X).
    noise : str
        The noise law's name.
    scale : float or ndarray of shape (d,)
        The scale (a float when one number was given).
    dim : int
        d.
    mc_size, mc_seed
        The fallback's settings.

    Raises
    ------
    ValueError
        If ``mean`` is empty or not a finite vector, ``noise`` is unknown, ``scale`` is not a
        finite number > 0 or a vector of d of them, or ``mc_size`` is not an integer >= 0.
    """

    def __init__(
        self,
        mean,
        noise: str = "gaussian",
        scale: float = 1.0,
        *,
        mc_size: int = _MC_SIZE,
        mc_seed: int = 0,
    ):
        self.mean = _vector(mean, "mean")
        if self.mean.size == 0:
            raise ValueError("mean must have at least one coordinate")
        if noise not in _NOISES:
            raise ValueError(f"noise must be one of {_NOISES}, got {noise!r}")
        self.dim = self.mean.size
        self.scale = _noise_scale(scale, self.dim)
        self.noise = noise
        self.mc_size = _count(mc_size, "mc_size")
        self.mc_seed = mc_seed
        self._fallback: ClassLaw | None = None

    def __repr__(self) -> str:
        scale = self.scale if np.ndim(self.scale) == 0 else self.scale.tolist()
        return f"SymmetricNoiseLaw(dim={self.dim}, noise={self.noise!r}, scale={scale})"

    @property
    def beta(self) -> float:
        """beta of the fourth-moment tensor: d / (d + 2) for "uniform_sphere", else 1.

        Returns
        -------
        float
            beta.
        """
        d = self.dim
        return d / (d + 2.0) if self.noise == "uniform_sphere" else 1.0

    @property
    def kappa(self) -> float:
        """kappa = E xi_a^4 of the fourth-moment tensor: 3, 9/5, 1 or 3 d / (d + 2) by noise law.

        Returns
        -------
        float
            kappa.
        """
        d = self.dim
        return {
            "gaussian": 3.0,
            "uniform_cube": 9.0 / 5.0,
            "rademacher": 1.0,
            "uniform_sphere": 3.0 * d / (d + 2.0),
        }[self.noise]

    def _noise(self, n, rng):
        d = self.dim
        if self.noise == "gaussian":
            return rng.standard_normal((n, d))
        if self.noise == "uniform_cube":
            return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=(n, d))
        if self.noise == "rademacher":
            return 2.0 * rng.integers(0, 2, size=(n, d)).astype(np.float64) - 1.0
        xi = rng.standard_normal((n, d))
        xi *= math.sqrt(d) / np.linalg.norm(xi, axis=1, keepdims=True)
        return xi

    def sample(self, n, rng):
        """(n, dim) i.i.d. rows mean + scale * xi.

        Parameters
        ----------
        n : int
            Number of rows, >= 0.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of float64, shape (n, dim)
            The draws.

        Raises
        ------
        ValueError
            If ``n`` is not an integer >= 0 or ``rng`` is not a ``numpy.random.Generator``.
        """
        n, rng = _count(n, "n"), _check_rng(rng)
        return self.mean + self.scale * self._noise(n, rng)

    def shifted(self, delta):
        """The law of X + delta: the mean moved by delta, noise, scale and Monte Carlo settings kept.

        Parameters
        ----------
        delta : array_like of shape (dim,)
            The shift.

        Returns
        -------
        SymmetricNoiseLaw
            The shifted law.

        Raises
        ------
        ValueError
            If ``delta`` is not a finite vector of shape (dim,).
        """
        delta = _vector(delta, "delta", self.dim)
        return SymmetricNoiseLaw(self.mean + delta, self.noise, self.scale, mc_size=self.mc_size, mc_seed=self.mc_seed)

    def scaled(self, s):
        """The law of mean + s (X - mean): the scale multiplied by s.

        Parameters
        ----------
        s : float
            The scale factor, a finite number > 0.

        Returns
        -------
        SymmetricNoiseLaw
            The scaled law (same mean, noise and Monte Carlo settings).

        Raises
        ------
        ValueError
            If ``s`` is not a finite number > 0.
        """
        s = _positive_scale(s)
        return SymmetricNoiseLaw(self.mean, self.noise, s * self.scale, mc_size=self.mc_size, mc_seed=self.mc_seed)

    def _delegate(self) -> ClassLaw:
        """The law used for non-squared families (built once)."""
        if self._fallback is None:
            if self.noise == "gaussian":
                cov = self.scale**2 * np.eye(self.dim)  # diag(scale^2) for per-coordinate scales
                self._fallback = GaussianMixtureLaw(np.ones(1), self.mean[None], cov[None])
            else:
                self._fallback = EmpiricalLaw(sampler=self.sample, n=self.mc_size, seed=self.mc_seed)
        return self._fallback

    def moments_batch(self, thetas, label, model):
        """``moments`` at each row of thetas: the delegate's batch for a non-squared family
        (``ClassLaw.moments_batch``)."""
        if _check_model(model).family.name != "squared":
            return self._delegate().moments_batch(thetas, label, model)
        return super().moments_batch(thetas, label, model)

    def moments(self, theta, label, model):
        """Moments of l(theta; z, label): the closed form for squared loss, else the delegate's.

        See the class docstring.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            risk, grad (p,), hess (p, p) and score_cov (p, p) at theta; Monte Carlo estimates for a
            non-squared family with non-Gaussian noise.

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``theta`` is not a finite vector of shape (p,) or ``label``
            is not a finite number.
        """
        model = _check_model(model)
        if model.family.name != "squared":
            return self._delegate().moments(theta, label, model)
        theta = self._theta(theta, model)
        y = _check_label(label)
        if np.ndim(self.scale):
            return self._per_coordinate_moments(theta, y, model)
        mu_z = model.features(self.mean)
        J = _embedding(model, self.dim)
        t = theta[int(model.intercept) :]
        s2 = self.scale**2
        e = float(mu_z @ theta) - y
        tt = float(t @ t)
        Jt = J @ t
        JJ = J @ J.T
        risk = e * e + s2 * tt
        grad = 2.0 * (e * mu_z + s2 * Jt)
        hess = 2.0 * (np.outer(mu_z, mu_z) + s2 * JJ)
        beta, kappa = self.beta, self.kappa
        M = beta * tt * np.eye(self.dim) + (2.0 * beta - 1.0) * np.outer(t, t) + (kappa - 3.0 * beta) * np.diag(t * t)
        cross = np.outer(Jt, mu_z)
        score_cov = 4.0 * s2 * (e * e * JJ + e * (cross + cross.T) + tt * np.outer(mu_z, mu_z)) + 4.0 * s2 * s2 * (
            J @ M @ J.T
        )
        return Moments(risk, grad, hess, score_cov)

    def _per_coordinate_moments(self, theta, y: float, model: GLM) -> Moments:
        """Squared-loss moments with per-coordinate scales, by the reduction in the class docstring."""
        one_scale = SymmetricNoiseLaw(self.mean / self.scale, self.noise)
        T = np.concatenate([np.ones(int(model.intercept)), self.scale])
        m = one_scale.moments(T * theta, y, model)
        TT = np.outer(T, T)
        return Moments(m.risk, T * m.grad, TT * m.hess, TT * m.score_cov)

    def moments_se(self, theta, label, model):
        """Standard errors of ``moments``.

        Zero for squared loss and for Gaussian noise, the Monte Carlo fallback's otherwise.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            The standard error of each field of ``moments``.

        Raises
        ------
        ValueError
            If ``model`` is not a GLM (and, for the Monte Carlo fallback, if ``theta`` or ``label``
            is invalid as in ``moments``).
        """
        model = _check_model(model)
        if model.family.name != "squared":
            return self._delegate().moments_se(theta, label, model)
        return super().moments_se(theta, label, model)

    def _risk_rows(self, thetas, label, model):
        if model.family.name != "squared":
            return self._delegate()._risk_rows(thetas, label, model)
        e = thetas @ model.features(self.mean) - label
        t = thetas[:, int(model.intercept) :]
        if np.ndim(self.scale):
            return e * e + np.einsum("bi,bi->b", t, self.scale**2 * t)
        return e * e + self.scale**2 * np.einsum("bi,bi->b", t, t)


# ---------------------------------------------------------------------------------------------
# a large fixed sample


class EmpiricalLaw(ClassLaw):
    """A law known through a large fixed sample (designs with no reduction, e.g. the noisy ring).

    Moments are the averages over the N fixed rows (Monte Carlo estimates of the true law's
    moments); ``moments_se`` gives their standard errors, sd / sqrt(N) entrywise. Because every
    theta is evaluated on the same rows, differences such as R(theta) - R(theta*) carry far
    less noise than either term (common random numbers).

    Build it from ``sample`` (an (N, d) array) or from ``sampler(n, rng)``, an exact sampler of
    the law, drawing N = ``n`` rows from a generator seeded by ``seed`` (an int or
    SeedSequence). ``sample(n, rng)`` uses ``sampler`` when there is one, else resamples the
    fixed rows. ``mean`` is the fixed sample's mean, and ``scaled`` is about that mean.

    Parameters
    ----------
    sample : array_like of shape (N, d), optional
        The fixed rows, finite, N >= 2 and d >= 1. When given, ``n`` and ``seed`` are unused.
    sampler : callable, optional
        ``sampler(n, rng) -> (n, d) array``, an exact sampler of the law (keyword only).
    n : int, default 200_000
        N when the rows are drawn from ``sampler``, an integer >= 2 (keyword only).
    seed : int or numpy.random.SeedSequence, default 0
        Seed of the PCG64 generator that draws the fixed rows from ``sampler`` (keyword only).

    Attributes
    ----------
    rows : ndarray of float64, shape (N, d)
        The fixed sample.
    sampler : callable or None
        The exact sampler, if any.
    dim : int
        d.
    mean : ndarray of shape (d,)
        The fixed sample's mean.

    Raises
    ------
    ValueError
        If neither ``sample`` nor ``sampler`` is given, ``n`` is not an integer >= 2, or the rows
        are not a finite 2-D array with N >= 2 and d >= 1.
    """

    def __init__(self, sample=None, *, sampler: Callable | None = None, n: int = _MC_SIZE, seed=0):
        if sample is None:
            if sampler is None:
                raise ValueError("EmpiricalLaw needs sample=<(N, d) array> or sampler=<callable(n, rng)>, got neither")
            n = _count(n, "n")
            if n < 2:
                raise ValueError(f"n must be >= 2 to estimate standard errors, got {n}")
            ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
            sample = sampler(n, np.random.Generator(np.random.PCG64(ss)))
        rows = np.asarray(sample, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] == 0:
            raise ValueError(f"sample must be a 2-D array (N, d) with N >= 2 and d >= 1, got shape {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise ValueError("sample contains NaN or infinite values")
        self.rows = rows
        self.sampler = sampler
        self.dim = rows.shape[1]
        self.mean = rows.mean(axis=0)

    def __repr__(self) -> str:
        return f"EmpiricalLaw(N={self.rows.shape[0]}, dim={self.dim})"

    def sample(self, n, rng):
        """(n, dim) rows of X.

        From ``sampler`` when there is one, else the fixed rows resampled uniformly with
        replacement.

        Parameters
        ----------
        n : int
            Number of rows, >= 0.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of float64, shape (n, dim)
            The draws.

        Raises
        ------
        ValueError
            If ``n`` is not an integer >= 0 or ``rng`` is not a ``numpy.random.Generator``.
        """
        n, rng = _count(n, "n"), _check_rng(rng)
        if self.sampler is not None:
            return np.asarray(self.sampler(n, rng), dtype=np.float64).reshape(n, self.dim)
        return self.rows[rng.integers(0, self.rows.shape[0], size=n)]

    def shifted(self, delta):
        """The law of X + delta: the fixed rows and the sampler's draws moved by delta.

        Parameters
        ----------
        delta : array_like of shape (dim,)
            The shift.

        Returns
        -------
        EmpiricalLaw
            A law on the shifted rows (the same rows, so common random numbers carry over).

        Raises
        ------
        ValueError
            If ``delta`` is not a finite vector of shape (dim,).
        """
        delta = _vector(delta, "delta", self.dim)
        base = self.sampler
        sampler = None if base is None else (lambda n, rng: base(n, rng) + delta)
        return EmpiricalLaw(self.rows + delta, sampler=sampler)

    def scaled(self, s):
        """The law of mean + s (X - mean), about the fixed sample's mean.

        The fixed rows and the sampler's draws are scaled about that mean.

        Parameters
        ----------
        s : float
            The scale factor, a finite number > 0.

        Returns
        -------
        EmpiricalLaw
            A law on the scaled rows.

        Raises
        ------
        ValueError
            If ``s`` is not a finite number > 0.
        """
        s = _positive_scale(s)
        base, centre = self.sampler, self.mean
        sampler = None if base is None else (lambda n, rng: centre + s * (base(n, rng) - centre))
        return EmpiricalLaw(centre + s * (self.rows - centre), sampler=sampler)

    def _terms(self, theta, label, model):
        theta = self._theta(theta, model)
        y = _check_label(label)
        Z = model.features(self.rows)
        eta = Z @ theta
        f = model.family
        loss = np.asarray(f.loss(eta, y))
        score = np.asarray(f.score(eta, y))
        curv = np.asarray(f.curvature(eta, y))
        return Z, loss, score, curv

    def mean_score(self, theta, label, model) -> np.ndarray:
        """``moments(theta, label, model).grad`` alone, the same numbers without the other
        moments' passes over the rows.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        ndarray of shape (p,)
            The average of score(theta'z_i, y) z_i over the N fixed rows.

        Raises
        ------
        ValueError
            As ``moments``.
        """
        model = _check_model(model)
        theta = self._theta(theta, model)
        Z = model.features(self.rows)
        score = np.asarray(model.family.score(Z @ theta, _check_label(label)))
        return (Z * score[:, None]).mean(axis=0)

    def moments(self, theta, label, model):
        """Moments of l(theta; z, label) as averages over the N fixed rows.

        score_cov has divisor N.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter, p = model.n_params(dim).
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            risk, grad (p,), hess (p, p) and score_cov (p, p), Monte Carlo estimates.

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``theta`` is not a finite vector of shape (p,) or ``label``
            is not a finite number.
        """
        Z, loss, score, curv = self._terms(theta, label, _check_model(model))
        N = Z.shape[0]
        Q = Z * score[:, None]
        grad = Q.mean(axis=0)
        hess = (Z * curv[:, None]).T @ Z / N
        Qc = Q - grad
        return Moments(float(loss.mean()), grad, hess, Qc.T @ Qc / N)

    def moments_se(self, theta, label, model):
        """Monte Carlo standard errors of ``moments``.

        Each is the rows' standard deviation (ddof 0) of the averaged term over sqrt(N), entrywise.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.
        label : float
            The fixed label y.
        model : simstudy.fitting.GLM
            Family and intercept.

        Returns
        -------
        Moments
            Standard errors of risk (float), grad (p,), hess (p, p) and score_cov (p, p).

        Raises
        ------
        ValueError
            If ``model`` is not a GLM, ``theta`` is not a finite vector of shape (p,) or ``label``
            is not a finite number.
        """
        Z, loss, score, curv = self._terms(theta, label, _check_model(model))
        N = Z.shape[0]
        Q = Z * score[:, None]
        grad = Q.mean(axis=0)
        hess = (Z * curv[:, None]).T @ Z / N
        # E[(c z_i z_j)^2] = E[c^2 z_i^2 z_j^2]: one (p, p) product instead of an (N, p, p) array
        Z2 = Z * Z
        hess_sq = (Z2 * (curv * curv)[:, None]).T @ Z2 / N
        Qc = Q - grad
        cov = Qc.T @ Qc / N
        Qc2 = Qc * Qc
        cov_sq = Qc2.T @ Qc2 / N
        root = math.sqrt(N)
        return Moments(
            float(loss.std() / root),
            Q.std(axis=0) / root,
            np.sqrt(np.clip(hess_sq - hess * hess, 0.0, None)) / root,
            np.sqrt(np.clip(cov_sq - cov * cov, 0.0, None)) / root,
        )

    def _risk_rows(self, thetas, label, model):
        Z = model.features(self.rows)
        # (N, chunk) blocks of eta keep memory near 32 MB whatever the number of thetas; the
        # last block is padded so the jitted kernel compiles once per (N, p)
        chunk = max(1, 4_000_000 // Z.shape[0])
        B = thetas.shape[0]
        padded = np.zeros((-(-B // chunk) * chunk, thetas.shape[1]))
        padded[:B] = thetas
        y = jnp.asarray(label, dtype=jnp.float64)
        Zj = jnp.asarray(Z)
        out = [np.asarray(_mean_loss(model.family, Zj, padded[i : i + chunk], y)) for i in range(0, len(padded), chunk)]
        return np.concatenate(out)[:B]


@functools.partial(jax.jit, static_argnames=("family",))
def _mean_loss(family, Z, thetas, y):
    return family.loss(Z @ thetas.T, y).mean(axis=0)


__all__ = [
    "ClassLaw",
    "EmpiricalLaw",
    "GaussianMixtureLaw",
    "Moments",
    "SymmetricNoiseLaw",
    "gaussian_expectations",
]
