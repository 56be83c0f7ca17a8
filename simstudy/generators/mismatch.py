"""The mismatch-controlled generator of study 5 (THEORY.md sections 2 and 6).

The synthetic law is the true minority law moved by a mean shift delta (and optionally a
covariance scale s): P~1 = law of E X + delta + s (X - E X), X ~ P1. Its mismatch at theta*,

    psi(delta) = E_{P~1} grad l(theta*; X, y1) - E_{P1} grad l(theta*; X, y1),

is set to a requested magnitude r and angle phi to g:

    psi_target = r (cos(phi) u + sin(phi) v),

u = g / |g| and v a unit vector orthogonal to u (the given ``direction`` made orthogonal to g,
or by default the feature coordinate axis with the smallest |u_j|, lowest index on ties).
phi = 0 is aligned with g (alignment c = <psi, g> / |g|^2 = r / |g| > 0), 90 orthogonal, 180
anti-aligned. Under local symmetry (g = 0) ``direction`` is required and plays the role of u.

Solving for delta:

* Squared loss without intercept, exactly. With mu = E X, e = mu' theta - y1 and c0 the psi of
  the covariance scale alone, psi(delta) = c0 + 2 [(e + t) delta + t mu] with t = theta' delta.
  Writing q = (psi_target - c0) / 2, t solves t^2 + (2 e + y1) t - theta' q = 0 (the root
  nearest 0, continuous in q) and delta = (q - t mu) / (e + t). A negative discriminant means
  no mean shift reaches the target at this covariance scale (a smaller cov_scale moves psi
  against theta*): ValueError.
* Otherwise by Levenberg-Marquardt (Newton's method when the system is square) on the exact
  moments: d psi / d delta = E[l''(eta) z] theta_x' + E[l'(eta)] dz/dx under the shifted law,
  read off the moments of the intercept-augmented model (its Hessian's intercept column is
  E[l'' z], its gradient's first entry E[l']). Without intercept the system is square and the
  target is hit to quadrature accuracy (ValueError if no mean shift reaches it).
* With an intercept psi has p = d + 1 components but delta only d. By default (a fixed
  cov_scale) delta minimises |psi(delta) - psi_target| (least squares) and the attributes
  report what is realised (``psi``, ``residual``, ``magnitude_realised``,
  ``angle_deg_realised``); this can miss the request by tens of degrees. ``cov_scale=None``
  makes log s a (d + 1)-th unknown (its Jacobian column by a central difference), so the
  system is square again and the target is hit exactly whenever some (delta, s) reaches it.

A mean shift reaches only part of the plane. With squared loss the discriminant above gives
theta*' psi >= theta*' c0 - (2 e + y1)^2 / 2 (r cos(phi) >= -1/6 in study 3's design); the
logistic and probit scores are bounded, with similar limits. Large anti-aligned targets
therefore raise ValueError; a cov_scale < 1 widens the reachable set there.

The generator does not depend on data: ``fit`` returns the generator itself.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy.optimize import least_squares

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.fitting import GLM
from simstudy.generators.base import FittedGenerator, Generator, check_pair
from simstudy.population import Population

_PARALLEL_TOL = 1e-8


class MismatchGenerator(Generator, FittedGenerator):
    """Draws from law1 shifted (and scaled) so that psi has norm r and angle phi to g.

    It is its own fitted generator: the law does not depend on data.

    Parameters
    ----------
    population : simstudy.population.Population
        theta*, g, the class laws and the model.
    magnitude : float
        r, a finite number >= 0.
    angle_deg : float
        phi in [0, 180] (0 aligned with g, 180 anti-aligned).
    direction : array_like of shape (p,), optional
        A vector in parameter space: the orthogonal reference, or the reference itself under
        symmetry (where it is required).
    cov_scale : float or None, default 1.0
        s > 0, or None to solve for it (intercept models only).

    Attributes
    ----------
    law : simstudy.laws.ClassLaw
        The synthetic law.
    delta : ndarray of shape (d,)
        The mean shift.
    cov_scale : float
        The covariance scale, solved or given.
    cov_scale_solved : bool
        Whether cov_scale was solved for.
    target : ndarray of shape (p,)
        psi_target.
    moments : simstudy.laws.Moments
        The synthetic law's moments at theta* (its gradient, Hessian H~ and score covariance
        Sigma~), as the theory uses them.
    psi : ndarray of shape (p,)
        The realised mismatch.
    residual : float
        |psi - target|.
    magnitude_realised : float
        |psi|.
    angle_deg_realised : float
        The angle between psi and the reference axis u, in [0, 180].
    alignment_c : float
        <psi, g> / |g|^2 (NaN under symmetry, where g = 0).
    axes : tuple
        (u, v), unit vectors of shape (p,) spanning the plane of psi; v is None when no
        orthogonal feature axis is available (the parameter space has one dimension).
    population, magnitude, angle_deg
        The constructor arguments (magnitude and angle_deg as floats).
    dim : int
        d.
    name : str
        "mismatch".
    data_dependent : bool
        False.

    Raises
    ------
    ValueError
        If ``population`` is not a Population, ``magnitude``, ``angle_deg`` or ``cov_scale`` is
        out of range, ``cov_scale`` is None without an intercept, ``direction`` is invalid
        (not a finite non-zero (p,) vector, parallel to g, or missing under symmetry), v is
        None and phi is neither 0 nor 180, or no mean shift reaches
        the target (module docstring).
    """

    name: ClassVar[str] = "mismatch"
    data_dependent: ClassVar[bool] = False

    def __init__(
        self,
        population: Population,
        magnitude: float,
        angle_deg: float,
        direction=None,
        cov_scale: float | None = 1.0,
    ):
        if not isinstance(population, Population):
            raise ValueError(f"population must be a simstudy.population.Population, got {type(population).__name__}")
        r = float(magnitude)
        if not (np.isfinite(r) and r >= 0):
            raise ValueError(f"magnitude must be a finite number >= 0, got {magnitude!r}")
        phi = float(angle_deg)
        if not (np.isfinite(phi) and 0.0 <= phi <= 180.0):
            raise ValueError(f"angle_deg must lie in [0, 180] (0 aligned with g, 180 anti-aligned), got {angle_deg!r}")
        model = population.model
        self.cov_scale_solved = cov_scale is None
        if self.cov_scale_solved:
            if not model.intercept:
                raise ValueError(
                    "cov_scale=None (solve for it) needs a model with an intercept, where psi has one "
                    "component more than delta; without one delta alone fixes psi: pass a number"
                )
            cov_scale = 1.0
        s = float(cov_scale)
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"cov_scale must be a finite number > 0 or None, got {cov_scale!r}")
        self.population = population
        self.magnitude = r
        self.angle_deg = phi
        self.cov_scale = s
        self.dim = population.d

        self._theta = population.theta_star
        self._y1 = population.process.labels[1]
        self._base_grad = population.moments_star[1].grad

        u, v = self._axes(direction)
        self.axes = (u, v)
        rad = math.radians(phi)
        sin = 0.0 if phi in (0.0, 180.0) else math.sin(rad)
        if v is None and sin != 0.0:
            raise ValueError(f"the parameter space has one dimension, so angle_deg must be 0 or 180, got {phi}")
        self.target = r * (math.cos(rad) * u + (sin * v if v is not None else 0.0))

        if model.family.name == "squared" and not model.intercept:
            self.delta = self._solve_squared()
        else:
            self.delta, self.cov_scale = self._solve_newton()
        self.law = self._law(self.delta, self.cov_scale)
        self.moments = self.law.moments(self._theta, self._y1, model)
        self.psi = self.moments.grad - self._base_grad
        self.residual = float(np.linalg.norm(self.psi - self.target))
        self.magnitude_realised = float(np.linalg.norm(self.psi))
        along = float(self.psi @ u)
        self.angle_deg_realised = math.degrees(math.atan2(float(np.linalg.norm(self.psi - along * u)), along))
        g = population.g
        self.alignment_c = float(self.psi @ g / (g @ g)) if population.regime == "asymmetry" else math.nan

    def __repr__(self) -> str:
        return (
            f"MismatchGenerator(r={self.magnitude}, phi={self.angle_deg}, cov_scale={self.cov_scale}, "
            f"realised r={self.magnitude_realised:.6g}, phi={self.angle_deg_realised:.6g})"
        )

    # -- the plane of psi ----------------------------------------------------------------------

    def _axes(self, direction):
        pop = self.population
        p = pop.p
        if direction is not None:
            direction = np.asarray(direction, dtype=np.float64)
            if direction.shape != (p,) or not np.all(np.isfinite(direction)) or not np.any(direction):
                raise ValueError(
                    f"direction must be a finite non-zero vector of shape ({p},) in parameter space, got {direction!r}"
                )
        if pop.regime == "symmetry":
            if direction is None:
                raise ValueError(
                    "under local symmetry (g = 0) the angle needs a reference: pass direction=<(p,) vector>"
                )
            u = direction / np.linalg.norm(direction)
            return u, self._default_orthogonal(u)
        u = pop.g / np.linalg.norm(pop.g)
        if direction is None:
            return u, self._default_orthogonal(u)
        rest = direction - (direction @ u) * u
        if np.linalg.norm(rest) <= _PARALLEL_TOL * np.linalg.norm(direction):
            raise ValueError(f"direction must not be parallel to g = {pop.g}, got {direction}")
        return u, rest / np.linalg.norm(rest)

    def _default_orthogonal(self, u):
        """The feature axis least aligned with u, made orthogonal to u (None if p = 1)."""
        offset = int(self.population.model.intercept)
        # rounding keeps the choice stable against last-bit noise in u
        j = offset + int(np.argmin(np.round(np.abs(u[offset:]), 12)))
        e = np.zeros_like(u)
        e[j] = 1.0
        rest = e - u[j] * u
        norm = np.linalg.norm(rest)
        return rest / norm if norm > _PARALLEL_TOL else None

    # -- psi and its solution ------------------------------------------------------------------

    def _law(self, delta, s):
        law1 = self.population.process.law1
        return (law1 if s == 1.0 else law1.scaled(s)).shifted(delta)

    def _psi(self, law):
        return law.moments(self._theta, self._y1, self.population.model).grad - self._base_grad

    def _solve_squared(self):
        theta, y = self._theta, self._y1
        start = self._law(np.zeros(self.dim), self.cov_scale)
        mu = start.mean
        e = float(mu @ theta) - y
        q = 0.5 * (self.target - self._psi(start))
        B = 2.0 * e + y
        tq = float(theta @ q)
        D = B * B + 4.0 * tq
        if D < 0:
            raise ValueError(
                f"no mean shift reaches psi = {self.target} (magnitude {self.magnitude}, angle "
                f"{self.angle_deg}, cov_scale {self.cov_scale}): theta*' psi is too negative; "
                f"lower the magnitude or use a smaller cov_scale"
            )
        # the root nearest 0, in the cancellation-free form
        t = 2.0 * tq / (B + math.copysign(math.sqrt(D), B)) if B != 0 else 0.5 * math.sqrt(D)
        if abs(e + t) <= 1e-12 * (abs(e) + abs(t) + 1.0):
            raise ValueError(
                f"psi = {self.target} needs theta*' (mu + delta) = y1 exactly: no finite mean shift gives it"
            )
        return (q - t * mu) / (e + t)

    def _unpack(self, params):
        if self.cov_scale_solved:
            return params[:-1], math.exp(params[-1])
        return params, self.cov_scale

    def _psi_and_jacobian(self, params):
        """psi and its Jacobian in the unknowns: delta, then log(cov_scale) when it is solved."""
        model = self.population.model
        theta = self._theta
        delta, s = self._unpack(params)
        if model.intercept:
            aug, theta_aug = model, theta
        else:
            aug = GLM(model.family, intercept=True, ridge=model.ridge)
            theta_aug = np.r_[0.0, theta]
        mom = self._law(delta, s).moments(theta_aug, self._y1, aug)
        mean_score, mean_curv_z = mom.grad[0], mom.hess[:, 0]
        if model.intercept:
            grad = mom.grad
            jac = np.outer(mean_curv_z, theta[1:]) + mean_score * np.eye(len(theta), self.dim, -1)
        else:
            grad = mom.grad[1:]
            jac = np.outer(mean_curv_z[1:], theta) + mean_score * np.eye(self.dim)
        if self.cov_scale_solved:
            # the scale column has no moment identity; a central difference in log s is accurate
            # to ~1e-10, which only affects the rate of convergence, not the root
            h = 1e-5
            up = self._psi(self._law(delta, s * math.exp(h)))
            down = self._psi(self._law(delta, s * math.exp(-h)))
            jac = np.column_stack([jac, (up - down) / (2.0 * h)])
        return grad - self._base_grad, jac

    def _solve_newton(self):
        # Levenberg-Marquardt (MINPACK) with the Jacobian above: Newton's method when the
        # system is square and solvable, a robust least-squares solver when it is not
        last = {}

        def residual(params):
            psi, jac = self._psi_and_jacobian(params)
            last["params"], last["jac"] = params.copy(), jac
            return psi - self.target

        def jacobian(params):
            if not np.array_equal(params, last.get("params")):
                residual(params)
            return last["jac"]

        unknowns = self.dim + int(self.cov_scale_solved)
        eps = np.finfo(float).eps
        sol = least_squares(residual, np.zeros(unknowns), jac=jacobian, method="lm", xtol=eps, ftol=eps, gtol=eps)
        norm = float(np.linalg.norm(sol.fun))
        square = self.population.p == unknowns
        if not np.all(np.isfinite(sol.x)) or (square and norm > 1e-9 * max(1.0, self.magnitude)):
            raise ValueError(
                f"no mean shift reaches psi = {self.target} (magnitude {self.magnitude}, angle "
                f"{self.angle_deg}, cov_scale {'solved' if self.cov_scale_solved else self.cov_scale}): "
                f"the closest found misses by {norm:.3g}; lower the magnitude or change cov_scale"
            )
        return self._unpack(sol.x)

    # -- the generator interface ---------------------------------------------------------------

    def fit(self, X1, X0, rng) -> MismatchGenerator:
        """The law does not depend on data: check the dimension and return self.

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
        MismatchGenerator
            ``self``.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or d differs from the population's dimension.
        """
        X1, _ = check_pair(X1, X0, min_n1=0)
        if X1.shape[1] != self.dim:
            raise ValueError(f"X1 has {X1.shape[1]} columns but the population has dimension {self.dim}")
        return self

    def _sample(self, m, rng):
        return self.law.sample(m, rng)


__all__ = ["MismatchGenerator"]
