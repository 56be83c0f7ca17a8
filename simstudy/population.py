"""The population quantities of a process and a model (THEORY.md sections 1-3).

``Population(process, model)`` solves theta* = argmin R_bal, R_bal = (R0 + R1) / 2 (section 1),
by damped Newton (``simstudy.newton``) on the exact moments of the class laws
(``simstudy.laws``) and holds everything the first-order theory (sections 2-3) needs at
theta*: g, g_phi, H0, H1, H, Sigma0, Sigma1 and the regime.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import newton
from simstudy.fitting import GLM
from simstudy.laws import Moments
from simstudy.processes import Process

_FOC_TOL = 1e-10
_FLAT_TOL = 1e-8
# theta* is solved to the rounding floor: no gradient tolerance, three stalled steps in a row
# and up to 200 steps (the kernel's defaults, 1e-13, two and 100, moved theta* by an ulp)
_NEWTON_TOL = 0.0
_NEWTON_STALLS = 3
_NEWTON_STEPS = 200


class Population:
    """Everything at theta* for a process and a model (THEORY.md sections 1-3).

    theta* = argmin R_bal, R_bal = (R0 + R1) / 2, found by damped Newton from 0 on the exact
    gradient and Hessian of the class laws (never hard-coded); construction fails unless the
    first-order condition ||grad R_bal(theta*)|| <= 1e-10 holds (``foc_norm`` records it).
    For an ``EmpiricalLaw`` class the attributes are Monte Carlo estimates (``moments_se`` of
    the laws gives their errors).

    Parameters
    ----------
    process : simstudy.processes.Process
        The two class laws and their labels (y0, y1).
    model : simstudy.fitting.GLM
        Family and intercept; a binary family needs the labels {0, 1}.
    symmetry_tol : float, default 1e-8
        A finite number > 0 (keyword only): the regime is "symmetry" when ||g|| < symmetry_tol.

    Attributes
    ----------
    process, model, symmetry_tol
        The constructor arguments (symmetry_tol as a float).
    d : int
        The process's dimension.
    p : int
        Number of coefficients, model.n_params(d).
    theta_star : ndarray of shape (p,)
        theta* = argmin R_bal.
    risk_star : float
        R_bal(theta*).
    foc_norm : float
        ||grad R_bal(theta*)||.
    g : ndarray of shape (p,)
        grad R0(theta*) (= -grad R1(theta*)).
    g_phi : ndarray of shape (p,)
        2 g.
    H0, H1 : ndarray of shape (p, p)
        The class Hessians of R0 and R1 at theta*.
    H : ndarray of shape (p, p)
        (H0 + H1) / 2.
    Sigma0, Sigma1 : ndarray of shape (p, p)
        The class score covariances at theta*.
    moments_star : tuple of (Moments, Moments)
        ``moments(theta_star)``, kept for what is built on the population (e.g. a generator's
        mismatch is measured from the minority's moments there).
    regime : {"symmetry", "asymmetry"}
        "symmetry" when ||g|| < ``symmetry_tol``, else "asymmetry".

    Raises
    ------
    ValueError
        If ``process`` is not a Process or ``model`` not a GLM, a binary family meets labels
        other than 0/1, ``symmetry_tol`` is not a finite number > 0, or theta* is not identified:
        the Hessian of R_bal or E[z z'] is singular, R_bal has no minimiser (its Hessian vanishes:
        separable classes), or Newton stops short of the first-order condition.
    """

    def __init__(self, process: Process, model: GLM, *, symmetry_tol: float = 1e-8):
        if not isinstance(process, Process):
            raise ValueError(f"process must be a Process, got {type(process).__name__}")
        if not isinstance(model, GLM):
            raise ValueError(f"model must be a simstudy.fitting.GLM, got {type(model).__name__}")
        if model.family.binary and set(process.labels) != {0.0, 1.0}:
            raise ValueError(
                f"the {model.family.name} family needs labels 0/1, but process {process.name!r} has "
                f"labels {process.labels}; use the squared family or a 0/1 design"
            )
        symmetry_tol = float(symmetry_tol)
        if not (np.isfinite(symmetry_tol) and symmetry_tol > 0):
            raise ValueError(f"symmetry_tol must be a finite number > 0, got {symmetry_tol!r}")
        self.process = process
        self.model = model
        self.symmetry_tol = symmetry_tol
        self.d = process.dim
        self.p = model.n_params(self.d)
        self.theta_star = self._solve()
        m0, m1 = self.moments(self.theta_star)
        self.moments_star = (m0, m1)
        self.risk_star = 0.5 * (m0.risk + m1.risk)
        self.foc_norm = float(np.linalg.norm(0.5 * (m0.grad + m1.grad)))
        self.g = m0.grad
        self.g_phi = 2.0 * m0.grad
        self.H0, self.H1 = m0.hess, m1.hess
        self.H = 0.5 * (m0.hess + m1.hess)
        self.Sigma0, self.Sigma1 = m0.score_cov, m1.score_cov
        self.regime = "symmetry" if np.linalg.norm(self.g) < symmetry_tol else "asymmetry"

    def __repr__(self) -> str:
        return (
            f"Population({self.process.name!r}, {self.model.family.name}, intercept={self.model.intercept}, "
            f"regime={self.regime!r}, |g|={np.linalg.norm(self.g):.3g})"
        )

    def moments(self, theta) -> tuple[Moments, Moments]:
        """(moments under P0 with label y0, moments under P1 with label y1) at theta.

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.

        Returns
        -------
        tuple of (Moments, Moments)
            The class-0 and class-1 moments of the model's loss at theta.

        Raises
        ------
        ValueError
            If ``theta`` is not a finite vector of shape (p,).
        """
        y0, y1 = self.process.labels
        return (
            self.process.law0.moments(theta, y0, self.model),
            self.process.law1.moments(theta, y1, self.model),
        )

    def _risk_bal_batch(self, thetas) -> np.ndarray:
        y0, y1 = self.process.labels
        r0 = self.process.law0.risk_batch(thetas, y0, self.model)
        r1 = self.process.law1.risk_batch(thetas, y1, self.model)
        return 0.5 * (r0 + r1)

    def risk_bal(self, theta) -> float:
        """R_bal(theta) = (R0(theta) + R1(theta)) / 2 at one theta (p,).

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.

        Returns
        -------
        float
            The balanced risk.

        Raises
        ------
        ValueError
            If ``theta`` does not have shape (p,).
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.p,):
            raise ValueError(f"theta must have shape ({self.p},), got {theta.shape}")
        return float(self._risk_bal_batch(theta[None])[0])

    def grad_bal(self, theta) -> np.ndarray:
        """grad R_bal(theta), shape (p,).

        Parameters
        ----------
        theta : array_like of shape (p,)
            The parameter.

        Returns
        -------
        ndarray of shape (p,)
            (grad R0(theta) + grad R1(theta)) / 2.

        Raises
        ------
        ValueError
            If ``theta`` is not a finite vector of shape (p,).
        """
        m0, m1 = self.moments(theta)
        return 0.5 * (m0.grad + m1.grad)

    def excess(self, thetas) -> np.ndarray:
        """Excess balanced risk R_bal(theta) - R_bal(theta*) for thetas (..., p), shape (...).

        Parameters
        ----------
        thetas : array_like of shape (..., p)
            Parameter vectors.

        Returns
        -------
        ndarray of float64, shape (...)
            The excess balanced risk of each vector.

        Raises
        ------
        ValueError
            If ``thetas`` does not have shape (..., p).
        """
        return self._risk_bal_batch(thetas) - self.risk_star

    def _check_identified(self, theta):
        """Reject a flat optimum: when the classes are separable the binary losses have no
        minimiser, Newton runs off to large theta and the gradient underflows, so the first-order
        condition alone would pass. There the Hessian vanishes against the second moments
        E[z z'], while at a genuine minimiser H >= c E[z z'] with c well above 1e-8."""
        squared = GLM("squared", intercept=self.model.intercept)
        y0, y1 = self.process.labels
        second = 0.25 * (
            self.process.law0.moments(theta, y0, squared).hess + self.process.law1.moments(theta, y1, squared).hess
        )
        m0, m1 = self.moments(theta)
        try:
            ratio = float(scipy.linalg.eigh(0.5 * (m0.hess + m1.hess), second, eigvals_only=True)[0])
        except np.linalg.LinAlgError:
            raise ValueError(
                f"E[z z'] is singular for process {self.process.name!r}: some feature is constant, so "
                f"theta* is not identified"
            ) from None
        if ratio <= _FLAT_TOL:
            raise ValueError(
                f"R_bal has no minimiser for process {self.process.name!r} with the "
                f"{self.model.family.name} family: its Hessian vanishes (relative curvature {ratio:.3g}) "
                f"at theta = {theta}; the classes are separable"
            )

    def _derivatives(self, theta):
        """R_bal, its gradient and Hessian at theta (the Newton kernel's objective)."""
        m0, m1 = self.moments(theta)
        return 0.5 * (m0.risk + m1.risk), 0.5 * (m0.grad + m1.grad), 0.5 * (m0.hess + m1.hess)

    def _solve(self) -> np.ndarray:
        """theta* by ``newton.minimise`` from 0, then the identification and first-order checks."""
        theta, info = newton.minimise(
            self._derivatives,
            self._risk_bal_batch,
            np.zeros(self.p),
            tol=_NEWTON_TOL,
            max_steps=_NEWTON_STEPS,
            stall_steps=_NEWTON_STALLS,
        )
        if info.stop == "singular":
            raise ValueError(
                f"the Hessian of R_bal is singular at theta = {theta} for process "
                f"{self.process.name!r}: theta* is not identified"
            )
        self._check_identified(theta)
        if not info.grad_norm <= _FOC_TOL:
            raise ValueError(
                f"Newton did not reach the first-order condition for process {self.process.name!r} "
                f"with the {self.model.family.name} family: ||grad R_bal|| = {info.grad_norm:.3g} > "
                f"{_FOC_TOL:g} at theta = {theta} (does the minimiser exist?)"
            )
        return theta


__all__ = ["Population"]
