"""The theory engine: what a simulation study is checked against (THEORY.md sections 2-3).

Given a population (``simstudy.population.Population``: theta*, g, H0, H1, H, Sigma0, Sigma1)
and a generator, this module predicts, for synthetic sizes n~ = round(gamma (n0 - n1)) (half
to even, as the study engine rounds), N = n0 + n1 + n~:

* the **exact population limit** theta_bar(n~), the root of
  n0 grad R0(theta) + n1 grad R1(theta) + n~ grad R~1(theta) = 0 (section 3, "Population limit"),
  and its excess R_bal(theta_bar) - R_bal(theta*) -- bias only, no linearisation;
* the **first-order expected excess** (section 3, "Excess-risk expansion").

A cell's predictions come from one ``Theory``, built from the population, the generator's
``synthetic_moments`` and (n0, n1): it checks them and builds the terms that the predicted
curves, the optimal sizes and the refined curve share once. ``predict``, ``optimal_sizes`` and
``refined_prediction`` are one-call conveniences that build a ``Theory`` each.

First-order expansion, conditional on the generator's fit. Linearising the pooled score
equation at theta* gives theta_hat - theta* ~ -H_w^{-1} u / N with

    u = (n0 - n1 - n~) g + n~ psi + n0 e0 + n1 e1 + n~ e~,
    H_w = (n0 H0 + n1 H1 + n~ H~) / N,

where e0, e1 are the mean score deviations of the real samples (Cov Sigma_k / n_k), e~ that of
the n~ synthetic points given the fit (Cov Sigma~ / n~, mean zero given the fit), and psi, H~,
Sigma~ are the fitted generator's mismatch, Hessian and score covariance at theta*. A
data-dependent generator is fitted **once per replication**: its randomness (of order
n1^{-1/2}) is shared by all n~ synthetic points and does not average out as n~ grows. So the
expansion is made conditionally on the fit r (the real and synthetic sampling noise only) and
then averaged over R independent fits, M_r = H_w,r^{-1} H H_w,r^{-1}:

    E excess ~ mean_r (1 / (2 N^2)) [ b_r' M_r b_r                                -> bias_term
                                     + 2 b_r' M_r (n1 e1_r + n0 e0_r)             -> cross_term
                                     + tr(M_r (n0 Sigma0 + n1 Sigma1 + n~ Sigma~_r)) ] -> variance_term

with b_r = (n0 - n1 - n~) g + n~ psi_r and e1_r (e0_r) the mean score deviation of the very
sample fit r was made on. For a fixed law (R = 1, e = 0) this is THEORY.md's formula exactly.
For a random psi its leading order is THEORY.md's with E[psi psi'] = mean mean' + Cov psi
(coefficient n~^2: the bias term), plus two effects THEORY.md omits, both measured to matter:

* the **cross term**: a generator fitted on the minority sample reuses that sample's noise,
  E[cross] ~ n~ n1 tr(M (C1 + C1')) / (2 N^2), C1 = Cov(psi, e1). For the semi-oracle with
  squared loss psi = A (x̄1 - mu1) + O(1/n1) and e1 = A (x̄1 - mu1) + O(1/n1), so C1 ~ Cov psi:
  the synthetic points copy the minority sample's mean error. Omitting it under-predicts the
  semi-oracle's excess by 10 Monte Carlo standard errors (tests/test_theory.py). C0 is nonzero
  only for generators that look at the majority (``synthetic_moments(n0=...)``).
* the **random synthetic Hessian**: H~_r fluctuates by O(n1^{-1/2}) together with psi_r, and
  under asymmetry it multiplies a Theta(1) bias, which shifts E excess by O(1/n1) -- the order
  of the variance term itself. Evaluating M at the mean H~ was measured 9% (33 Monte Carlo
  standard errors) off for the semi-oracle at gamma = 4 in the d = 2 Gaussian design
  (n0 = 1000, n1 = 100); the per-fit average agrees within 1 standard error.

What remains is second order: the O(1/N) mean shift of theta_hat from the random real-data
Hessians times a Theta(1) bias (0.25% at gamma = 0 in that design, 3.6 standard errors at
8000 replications), and O(1/n1) terms of the fit (3-4% for the semi-oracle and SMOTE in the
d = 3 symmetric design at n1 = 100, within 1-2% at n1 = 400). For a binary family a large random
bias n~ psi_r / N is also linearised: the exact excess of the per-fit population limit is
smaller than b_r' M_r b_r / (2 N^2) (``bias_linearisation`` measures the gap; 25% of the bias term
at gamma = 2 for study 2's Gaussian fit, which is where that cell's prediction runs high).

Refined prediction (``Theory.refined_prediction``): the same per-fit average with each fit's
bias term replaced by the exact excess of its population limit, R_bal(theta_bar_r(n~)) -
R_bal(theta*), theta_bar_r the root of n0 grad R0 + n1 grad R1 + n~ grad R~1,r = 0 with fit
r's own synthetic law; the cross and variance terms are kept. It reuses the fits of
``synthetic_moments`` (their laws are kept in ``fit_laws``) and needs each fit's law. For
squared loss it is the first-order prediction itself (theta_bar_r is linear in psi_r and the
excess quadratic); for a binary family the R fits' limits are solved together by damped Newton
on Gaussian-mixture laws, 1-D quadrature per component (its cost: benchmarks/README.md).

A pool-based psi_r (generator without a law) carries the pool's noise, Cov Sigma~_r / pool,
which would add n~^2 tr(M_r Sigma~_r) / pool to b_r' M_r b_r: it is subtracted. The average
over fits is a Monte Carlo estimate; its standard error is reported (``theory_excess_se``).
The parameter error is predicted as sqrt(E||theta_hat - theta*||^2), the same average of
||H_w,r^{-1} u||^2 / N^2 (a root mean square, not E||.||).

Bias-optimal size (section 3): minimising E||(n0 - n1 - n~) g + n~ psi||_M^2 over n~ gives
n~* = (n0 - n1) <g, g - E psi>_M / (||g - E psi||_M^2 + tr(M Cov psi)), which is the closed
form of THEORY.md for a fixed law (Cov psi = 0). That minimises ||b||_M with N held fixed; the
bias term is ||b||_M^2 / (2 N^2) with N = n0 + n1 + n~ growing with n~, whose minimiser
(``gamma_star_bias_per_point``) differs unless the bias can be cancelled (aligned psi = c g,
c < 1: both give 1/(1 - c)). M depends on n~ through H_w; both closed forms are iterated,
gamma <- closed form(M(gamma)) from gamma = 1, to their fixed point.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.linalg
from scipy.optimize import minimize_scalar

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import newton
from simstudy.engine import ordered_map
from simstudy.families import SQUARED
from simstudy.generators import Oracle
from simstudy.generators.base import Generator
from simstudy.laws import ClassLaw, EmpiricalLaw, GaussianMixtureLaw, gaussian_expectations
from simstudy.population import Population

_FOC_FAIL = 1e-9
"""A population limit whose ||grad Phi|| stays above this did not converge."""
_FIXED_POINT_TOL = 1e-13
_FIXED_POINT_MAX = 200
_FLAT = 1e-14
"""A population curve whose largest value is below this is flat: no bias at any size."""
_FLOOR_HORIZON = 1e12
"""A bias floor below the variance term at N = 1e12 counts as no floor (exponent -1)."""


# ---------------------------------------------------------------------------------------------
# input checks


def _check_population(population) -> Population:
    if not isinstance(population, Population):
        raise ValueError(f"population must be a simstudy.population.Population, got {type(population).__name__}")
    return population


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_sizes(n0, n1) -> tuple[int, int]:
    n0, n1 = _check_int(n0, "n0", 1), _check_int(n1, "n1", 1)
    if n0 <= n1:
        raise ValueError(f"n0 (majority) must exceed n1 (minority), got n0={n0}, n1={n1}")
    return n0, n1


def _check_gammas(gammas) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"gammas must be a non-empty 1-D sequence of finite numbers >= 0, got {gammas!r}")
    return arr


def _check_synthetic(synthetic, population: Population) -> SyntheticMoments:
    if not isinstance(synthetic, SyntheticMoments):
        raise ValueError(
            f"synthetic must be a SyntheticMoments (from synthetic_moments), got {type(synthetic).__name__}"
        )
    if synthetic.psi_mean.shape != (population.p,):
        raise ValueError(
            f"synthetic moments have {synthetic.psi_mean.shape[0]} parameters but the population has p={population.p}"
        )
    return synthetic


def _check_design_sizes(synthetic: SyntheticMoments, n0: int, n1: int) -> None:
    """psi's covariance and cross covariances scale with the fitting sample sizes: they must match."""
    if synthetic.refits == 1:
        return
    if synthetic.n1 != n1:
        raise ValueError(
            f"the synthetic moments were estimated from refits on n1={synthetic.n1} minority points, "
            f"but n1={n1} was given: recompute synthetic_moments with n1={n1}"
        )
    if synthetic.n0 is not None and synthetic.n0 != n0:
        raise ValueError(
            f"the synthetic moments were estimated from refits that saw n0={synthetic.n0} majority "
            f"points, but n0={n0} was given: recompute synthetic_moments with n0={n0}"
        )


# ---------------------------------------------------------------------------------------------
# the synthetic class at theta*


class SyntheticMoments(NamedTuple):
    """The synthetic minority class at theta* (THEORY.md sections 2-3), per fit and averaged."""

    psi_mean: np.ndarray
    """(p,) E psi, psi = grad R~1(theta*) - grad R1(theta*) (section 2)."""
    psi_cov: np.ndarray
    """(p, p) Cov psi over generator fits on fresh samples of size n1 (zero for a fixed law)."""
    H_tilde: np.ndarray
    """(p, p) E hess R~1(theta*)."""
    Sigma_tilde: np.ndarray
    """(p, p) E of the synthetic score covariance at theta* (the within-fit Sigma~)."""
    grad_tilde: np.ndarray
    """(p,) E grad R~1(theta*) = grad R1(theta*) + psi_mean."""
    refits: int
    """Generator fits averaged over (1 for a fixed law)."""
    se_psi_mean: np.ndarray
    """(p,) Monte Carlo standard error of psi_mean (zeros when exact)."""
    law: ClassLaw | None
    """The synthetic law when it is fixed and known (oracle, mismatch): the population limit is
    then exact. None for data-dependent generators."""
    cross1: np.ndarray
    """(p, p) Cov(psi, e1), e1 the mean score deviation of the n1 real minority points the
    generator was fitted on (module docstring: the cross term). Zero for a fixed law."""
    cross0: np.ndarray
    """(p, p) Cov(psi, e0) for a generator that also looks at the n0 majority points (zero
    unless ``synthetic_moments`` was given n0)."""
    n1: int
    """Minority sample size of the fits (the per-fit quantities are for this n1)."""
    n0: int | None
    """Majority sample size of the fits, or None when the generator was not shown X0."""
    pool: int
    """Synthetic points per fit that psi_r was measured on; 0 when it is exact (from a law)."""
    fit_psi: np.ndarray
    """(R, p) psi_r of each fit."""
    fit_H: np.ndarray
    """(R, p, p) hess R~1(theta*) of each fit."""
    fit_Sigma: np.ndarray
    """(R, p, p) synthetic score covariance at theta* of each fit."""
    fit_e1: np.ndarray
    """(R, p) mean score deviation at theta* of the minority sample each fit was made on."""
    fit_e0: np.ndarray
    """(R, p) the same for the majority sample (zeros when the generator was not shown X0)."""
    fit_laws: tuple
    """The synthetic law of each fit (``FittedGenerator.law``; None where it is not known): kept so
    that ``Theory.refined_prediction`` solves each fit's exact population limit without refitting."""


def synthetic_moments(
    population: Population,
    generator: Generator,
    n1: int,
    rng: np.random.Generator,
    refits: int = 200,
    pool: int = 20_000,
    n0: int | None = None,
) -> SyntheticMoments:
    """The synthetic class's moments at theta* for ``generator`` fitted on n1 minority points.

    Fixed law (``generator.data_dependent`` False): one fit, exact moments of its ``law``
    (psi_cov, cross covariances and se_psi_mean are zero). A fixed generator without a law is
    measured on one pool of ``pool`` points (se_psi_mean its Monte Carlo error).

    Data-dependent generator: ``refits`` independent fits, each on a fresh minority sample of
    n1 points from P1 (and, when ``n0`` is given, a fresh majority sample of n0 points from P0
    passed as X0; give n0 only to generators that use the majority). Per fit r, the synthetic
    moments at theta* come from the fitted ``law`` exactly when it exists, else from ``pool``
    synthetic points; psi_r is paired with the fitting sample's own mean score deviation
    e1_r = mean_i grad l(theta*; x_i, y1) - grad R1(theta*) (and e0_r). Reported: the per-fit
    arrays (``predict`` averages over them), their means, psi_cov = sample covariance of psi_r
    (minus the pool's own noise E[Sigma~_r] / pool when the pool was used, an unbiased
    correction, then clipped to the PSD cone), the cross covariances Cov(psi, e_k), and
    se_psi_mean = sd(psi_r) / sqrt(refits).
    """
    population = _check_population(population)
    if not isinstance(generator, Generator):
        raise ValueError(f"generator must be a simstudy Generator, got {type(generator).__name__}")
    n1 = _check_int(n1, "n1", 2)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    refits = _check_int(refits, "refits", 2)
    pool = _check_int(pool, "pool", 2)
    if n0 is not None:
        n0 = _check_int(n0, "n0", 1)

    process, model = population.process, population.model
    y0, y1 = process.labels
    theta = population.theta_star
    p = population.p
    real1 = process.law1.moments(theta, y1, model)
    fixed = not generator.data_dependent
    R = 1 if fixed else refits

    fit_psi, fit_e1, fit_e0 = np.zeros((R, p)), np.zeros((R, p)), np.zeros((R, p))
    fit_H, fit_Sigma = np.empty((R, p, p)), np.empty((R, p, p))

    def fits():
        """Each refit's samples, generator fit and pool, drawn in order from the one rng."""
        for _ in range(R):
            X1 = process.law1.sample(n1, rng)
            X0 = process.law0.sample(n0, rng) if n0 is not None else None
            fitted = generator.fit(X1, X0, rng)
            yield X1, X0, fitted, None if fitted.law is not None else fitted.sample(pool, rng)

    def moments_of(refit):
        X1, X0, fitted, rows = refit
        law = fitted.law if rows is None else EmpiricalLaw(rows)
        mom = law.moments(theta, y1, model)
        e1 = e0 = np.zeros(p)
        if not fixed:
            # a fixed law ignores its fitting sample: no coupling to the real noise
            e1 = EmpiricalLaw(X1).mean_score(theta, y1, model) - real1.grad
            if X0 is not None:
                e0 = EmpiricalLaw(X0).mean_score(theta, y0, model) - population.g
        return fitted, rows is not None, mom, e1, e0

    fit_laws = []
    used_pool = False
    # the draws stay in this thread, in order; a worker computes each refit's moments meanwhile
    for r, (fitted, pooled, mom, e1, e0) in enumerate(ordered_map(moments_of, fits(), workers=1)):
        fit_laws.append(fitted.law)
        used_pool |= pooled
        fit_psi[r] = mom.grad - real1.grad
        fit_H[r], fit_Sigma[r] = mom.hess, mom.score_cov
        fit_e1[r], fit_e0[r] = e1, e0
    pool_used = pool if used_pool else 0

    psi_mean = fit_psi.mean(axis=0)
    Sigma_tilde = fit_Sigma.mean(axis=0)
    zero = np.zeros((p, p))
    if fixed:
        psi_cov = cross1 = cross0 = zero
        se = np.sqrt(np.diag(Sigma_tilde) / pool) if used_pool else np.zeros(p)
    else:
        centred = fit_psi - psi_mean
        raw = centred.T @ centred / (R - 1) - (Sigma_tilde / pool if used_pool else zero)
        w, V = np.linalg.eigh(0.5 * (raw + raw.T))
        psi_cov = (V * np.clip(w, 0.0, None)) @ V.T
        cross1 = centred.T @ (fit_e1 - fit_e1.mean(axis=0)) / (R - 1)
        cross0 = centred.T @ (fit_e0 - fit_e0.mean(axis=0)) / (R - 1) if n0 is not None else zero
        se = centred.std(axis=0, ddof=1) / math.sqrt(R)
    return SyntheticMoments(
        psi_mean=psi_mean,
        psi_cov=psi_cov,
        H_tilde=fit_H.mean(axis=0),
        Sigma_tilde=Sigma_tilde,
        grad_tilde=real1.grad + psi_mean,
        refits=R,
        se_psi_mean=se,
        law=fitted.law if fixed else None,
        cross1=cross1,
        cross0=cross0,
        n1=n1,
        n0=n0,
        pool=pool_used,
        fit_psi=fit_psi,
        fit_H=fit_H,
        fit_Sigma=fit_Sigma,
        fit_e1=fit_e1,
        fit_e0=fit_e0,
        fit_laws=tuple(fit_laws),
    )


# ---------------------------------------------------------------------------------------------
# first-order terms


class _FirstOrder(NamedTuple):
    """Per size (G,): the three terms, their sum's Monte Carlo SE over fits, E||.||^2 and its SE;
    and per (size, fit) (G, R): the bias term and the sum of the three, whose means over fits
    are ``bias`` and the predicted excess."""

    bias: np.ndarray
    cross: np.ndarray
    variance: np.ndarray
    total_se: np.ndarray
    param_sq: np.ndarray
    param_sq_se: np.ndarray
    fit_bias: np.ndarray
    fit_total: np.ndarray


_CHUNK_ELEMENTS = 2_000_000
"""Sizes are processed in chunks so that the (sizes, fits, p) arrays stay near 16 MB."""


class _FirstOrderTerms:
    """The per-fit averaged terms of the module docstring as functions of the size n~, from
    one simultaneous diagonalisation per fit instead of a p x p inverse per (size, fit).

    With real = n0 H0 + n1 H1 = L L' (Cholesky) and L^{-1} H~_r L^{-T} = U_r diag(lambda_r) U_r',
    B_r = L^{-T} U_r diagonalises both: real + n~ H~_r = B_r^{-T} (I + n~ diag(lambda_r)) B_r^{-1},
    so H_w,r^{-1} = N B_r D B_r' with D = diag(1 / (1 + n~ lambda_r)). Writing beta = B_r' b_r,
    K_r = B_r' H B_r, P_r = B_r' B_r and Q = B_r' V B_r for V = n0 Sigma0 + n1 Sigma1 + n~ Sigma~_r,

        b' M b / N^2 = beta' D K D beta,      tr(M V) / N^2 = tr(D K D Q),
        b' W b / N^2 = beta' D P D beta,      tr(W V) / N^2 = tr(D P D Q)   (W = H_w^{-T} H_w^{-1}),

    and M b / N^2 = B D K D beta: O(p^2) work per (size, fit) after O(R p^3) set-up. With
    u = D beta and Q = Q_real + n~ Q_syn, tr(D K D Q) = D' (K o Q_real') D + n~ D' (K o Q_syn') D
    (o: elementwise), so no (size, fit, p, p) array is formed.
    """

    def __init__(self, pop: Population, syn: SyntheticMoments, n0: int, n1: int):
        self.n0, self.n1, self.pool = n0, n1, syn.pool
        self.R = syn.fit_psi.shape[0]
        L = np.linalg.cholesky(n0 * pop.H0 + n1 * pop.H1)
        L_inv = scipy.linalg.solve_triangular(L, np.eye(pop.p), lower=True)
        C = L_inv @ syn.fit_H @ L_inv.T
        self.lam, U = np.linalg.eigh(0.5 * (C + np.swapaxes(C, -1, -2)))
        self.B = L_inv.T @ U  # (R, p, p)
        Bt = np.swapaxes(self.B, -1, -2)
        self.K = Bt @ pop.H @ self.B
        self.P = Bt @ self.B
        Q_real = Bt @ (n0 * pop.Sigma0 + n1 * pop.Sigma1) @ self.B
        Q_syn = Bt @ syn.fit_Sigma @ self.B
        # the traces' kernels: tr(D X D Q) = D' (X o Q') D for X = K, P and Q = Q_real, Q_syn
        self.traces = {
            (name, which): X * np.swapaxes(Q, -1, -2)
            for name, X in (("K", self.K), ("P", self.P))
            for which, Q in (("real", Q_real), ("syn", Q_syn))
        }
        self.g_B = Bt @ pop.g
        self.psi_B = np.einsum("rji,rj->ri", self.B, syn.fit_psi)
        self.noise = n1 * syn.fit_e1 + n0 * syn.fit_e0

    def __call__(self, nt) -> _FirstOrder:
        nt = np.asarray(nt, dtype=np.float64)
        R, p = self.R, self.lam.shape[-1]
        step = max(1, _CHUNK_ELEMENTS // (R * p))
        parts = [self._terms(nt[lo : lo + step]) for lo in range(0, nt.size, step)]
        bias, cross, variance, param = (np.concatenate(arrs) for arrs in zip(*parts))
        total = bias + cross + variance

        def se(x):
            return x.std(axis=1, ddof=1) / math.sqrt(R) if R > 1 else np.zeros(x.shape[0])

        return _FirstOrder(
            bias.mean(axis=1),
            cross.mean(axis=1),
            variance.mean(axis=1),
            se(total),
            param.mean(axis=1),
            se(param),
            bias,
            total,
        )

    def _terms(self, nt):
        """Per (size, fit): bias, cross, variance and parameter-error terms, each (g, R)."""
        n0, n1, R = self.n0, self.n1, self.R
        unbias = R / (R - 1) if R > 1 else 0.0
        a = nt[:, None]  # (g, 1): broadcasts over fits
        D = 1.0 / (1.0 + a[..., None] * self.lam)  # (g, R, p)
        u = D * ((n0 - n1 - a)[..., None] * self.g_B + a[..., None] * self.psi_B)

        def form(X, v, w):
            return np.einsum("gri,rij,grj->gr", v, X, w)

        K_u, P_u = (np.einsum("rij,grj->gri", X, u) for X in (self.K, self.P))
        t = self.traces
        bias = 0.5 * np.einsum("gri,gri->gr", u, K_u)
        variance = 0.5 * (form(t["K", "real"], D, D) + a * form(t["K", "syn"], D, D))
        param = np.einsum("gri,gri->gr", u, P_u) + form(t["P", "real"], D, D) + a * form(t["P", "syn"], D, D)
        # M b / N^2 = B D K u and W b / N^2 = B D P u in the original coordinates, for the
        # control variates: E e_k = 0 exactly, so subtracting the fit-averaged b' M e_r and
        # b' W e_r leaves the expectation alone and removes the noise that does not couple to
        # the fit (all of it at n~ = 0, where the generator plays no part); centring on the
        # sample mean scales the expectation by (R - 1) / R, which ``unbias`` undoes
        Mb, Wb = (np.einsum("rij,grj->gri", self.B, D * X_u) for X_u in (K_u, P_u))
        cross = unbias * np.einsum("gri,ri->gr", Mb - Mb.mean(axis=1, keepdims=True), self.noise)
        param = param + 2.0 * unbias * np.einsum("gri,ri->gr", Wb - Wb.mean(axis=1, keepdims=True), self.noise)
        if self.pool:
            # the pool's noise in psi_r, Cov Sigma~_r / pool, entered b_r with coefficient n~
            pool_var = a * a / self.pool
            bias = bias - 0.5 * pool_var * form(t["K", "syn"], D, D)
            param = param - pool_var * form(t["P", "syn"], D, D)
        return bias, cross, variance, param


# ---------------------------------------------------------------------------------------------
# the exact population limit


class _PooledRisk:
    """Phi(theta) = (n0 R0 + n1 R1 + n~ R~1) / N and its derivatives.

    R~1 is the fixed synthetic law's exact risk when ``syn.law`` is known; otherwise the mean
    synthetic risk is approximated by R1 plus the mismatch expanded to second order at theta*,
    R1(theta) + psi'(theta - theta*) + (1/2)(theta - theta*)'(H~ - H1)(theta - theta*), so that
    its gradient and Hessian at theta* are the averaged grad_tilde and H_tilde.
    """

    def __init__(self, pop: Population, syn: SyntheticMoments):
        self.pop, self.syn = pop, syn
        self.y0, self.y1 = pop.process.labels
        self.D = syn.H_tilde - pop.H1

    def _extra(self, thetas):
        """R~1 - R1 at each row of thetas (the approximate case)."""
        e = thetas - self.pop.theta_star
        return e @ self.syn.psi_mean + 0.5 * np.einsum("bi,ij,bj->b", e, self.D, e)

    def derivatives(self, theta, w):
        w0, w1, wt = w
        model = self.pop.model
        m0 = self.pop.process.law0.moments(theta, self.y0, model)
        m1 = self.pop.process.law1.moments(theta, self.y1, model)
        grad = w0 * m0.grad + w1 * m1.grad
        hess = w0 * m0.hess + w1 * m1.hess
        if self.syn.law is not None:
            mt = self.syn.law.moments(theta, self.y1, model)
            risk_t, grad_t, hess_t = mt.risk, mt.grad, mt.hess
        else:
            e = theta - self.pop.theta_star
            risk_t = m1.risk + float(self._extra(theta[None])[0])
            grad_t = m1.grad + self.syn.psi_mean + self.D @ e
            hess_t = m1.hess + self.D
        risk = w0 * m0.risk + w1 * m1.risk + wt * risk_t
        return risk, grad + wt * grad_t, hess + wt * hess_t

    def derivatives_batch(self, thetas, weights):
        """``derivatives`` at each row of thetas (B, p), row b with the class weights
        weights[b] = (n0 / N, n1 / N, n~ / N) of its own size: (B,), (B, p), (B, p, p)."""
        w0, w1, wt = (column[:, None] for column in weights.T)
        model = self.pop.model
        m0 = self.pop.process.law0.moments_batch(thetas, self.y0, model)
        m1 = self.pop.process.law1.moments_batch(thetas, self.y1, model)
        if self.syn.law is not None:
            mt = self.syn.law.moments_batch(thetas, self.y1, model)
            risk_t, grad_t, hess_t = mt.risk, mt.grad, mt.hess
        else:
            e = thetas - self.pop.theta_star
            risk_t = m1.risk + self._extra(thetas)
            grad_t = m1.grad + self.syn.psi_mean + e @ self.D
            hess_t = m1.hess + self.D
        risk = w0[:, 0] * m0.risk + w1[:, 0] * m1.risk + wt[:, 0] * risk_t
        grad = w0 * m0.grad + w1 * m1.grad + wt * grad_t
        hess = w0[..., None] * m0.hess + w1[..., None] * m1.hess + wt[..., None] * hess_t
        return risk, grad, hess

    def risks(self, thetas, w):
        w0, w1, wt = w
        model = self.pop.model
        r0 = self.pop.process.law0.risk_batch(thetas, self.y0, model)
        r1 = self.pop.process.law1.risk_batch(thetas, self.y1, model)
        if self.syn.law is not None:
            rt = self.syn.law.risk_batch(thetas, self.y1, model)
        else:
            rt = r1 + self._extra(thetas)
        return w0 * r0 + w1 * r1 + wt * rt


def _path_predictor(nts, roots, nt) -> np.ndarray:
    """The Lagrange polynomial through the (up to three) previous roots at sizes nts, evaluated
    at nt: where the next root should be if theta_bar is smooth in n~."""
    start = np.zeros_like(roots[0])
    for j, (nj, root) in enumerate(zip(nts, roots)):
        others = [nk for k, nk in enumerate(nts) if k != j]
        start = start + root * np.prod([(nt - nk) / (nj - nk) for nk in others])
    return start


# ---------------------------------------------------------------------------------------------
# predictions


class Prediction(NamedTuple):
    """The predicted curve over gamma (THEORY.md section 3); every array has shape (G,)."""

    gammas: np.ndarray
    n_tilde: np.ndarray
    """round(gamma (n0 - n1)), half to even (the study engine's rounding)."""
    theta_bar: np.ndarray
    """(G, p) the population limit: root of n0 grad R0 + n1 grad R1 + n~ grad R~1."""
    population_excess: np.ndarray
    """R_bal(theta_bar) - R_bal(theta*): the exact bias-only excess."""
    population_param_error: np.ndarray
    """||theta_bar - theta*||."""
    bias_term: np.ndarray
    """mean over fits of (1/2) b_r' M_r b_r / N^2 (module docstring)."""
    cross_term: np.ndarray
    """mean over fits of b_r' M_r (n1 e1_r + n0 e0_r) / N^2; zero for a fixed law."""
    variance_term: np.ndarray
    """mean over fits of tr(H H_w^{-1} Sigma_w H_w^{-1}) / (2N)."""
    theory_excess: np.ndarray
    """bias_term + cross_term + variance_term: the first-order E[excess]."""
    theory_excess_se: np.ndarray
    """Monte Carlo standard error of theory_excess from the average over fits (0 for a fixed law)."""
    param_error_theory: np.ndarray
    """sqrt(E||theta_hat - theta*||^2) to first order (root mean square)."""
    param_error_theory_se: np.ndarray
    """Its Monte Carlo standard error over fits (delta method; 0 for a fixed law)."""
    exact_population: bool
    """True when theta_bar is exact (fixed synthetic law); False when it uses the mean
    synthetic gradient and Hessian of a data-dependent generator (``_PooledRisk``)."""
    fit_excess: np.ndarray
    """(R, G) the per-fit sums of the three terms: theory_excess is their mean over the R fits
    (R = 1 for a fixed law), theory_excess_se their standard error."""


# ---------------------------------------------------------------------------------------------
# the refined prediction: each fit's bias without linearisation


class RefinedPrediction(NamedTuple):
    """The expected excess with each generator fit's bias taken exactly (module docstring,
    "Refined prediction"); arrays have shape (G,) but ``fit_excess``."""

    gammas: np.ndarray
    n_tilde: np.ndarray
    exact_bias: np.ndarray
    """mean over fits of R_bal(theta_bar_r(n~)) - R_bal(theta*), theta_bar_r the exact population
    limit with fit r's synthetic law: what ``bias_term`` linearises."""
    theory_excess: np.ndarray
    """exact_bias + the first-order cross and variance terms."""
    theory_excess_se: np.ndarray
    """Monte Carlo standard error of theory_excess over the fits."""
    fit_excess: np.ndarray
    """(R, G) per fit: its exact bias + cross + variance terms (theory_excess is their mean)."""
    method: str
    """How exact_bias was obtained."""


def _refinement_unavailable(pop: Population, syn: SyntheticMoments) -> str | None:
    """Why the refined prediction cannot be computed for these moments, or None when it can
    (``Theory.refinement_unavailable``; it depends on neither n0 nor n1)."""
    if syn.refits == 1:
        return (
            "a fixed synthetic law has one deterministic bias, already exact in population_excess; "
            "the refinement concerns the random bias of a data-dependent generator"
        )
    if pop.model.family is SQUARED:
        return None
    if any(law is None for law in syn.fit_laws):
        return (
            "the generator has no fitted law (its psi is measured on a pool), so no fit's exact "
            "population limit can be solved"
        )
    laws = (pop.process.law0, pop.process.law1, *syn.fit_laws)
    if not all(isinstance(law, GaussianMixtureLaw) for law in laws):
        kinds = sorted({type(law).__name__ for law in laws} - {"GaussianMixtureLaw"})
        return f"exact per-fit limits are solved for Gaussian-mixture laws only, not {', '.join(kinds)}"
    if len({law.weights.size for law in syn.fit_laws}) > 1:
        return "the fitted laws have different numbers of mixture components"
    return None


@functools.cache
def _newton_integrands(family) -> Callable:
    # cached: the jitted quadrature takes it as a static argument and must see one object
    return lambda eta, y: jnp.stack([family.loss(eta, y), family.score(eta, y), family.curvature(eta, y)])


_QUADRATURE_ROWS = 4096
"""Components per quadrature call in ``_FitRisks``: the jitted quadrature's time per row grows
past this (measured: benchmarks/README.md)."""


class _FitRisks:
    """Phi_r(theta) = (n0 R0 + n1 R1 + n~ R~1,r)(theta) / N for every fit r at once, R~1,r the
    Gaussian-mixture law of fit r.

    In each component of a class law, z = z(x) is Gaussian (mean mu, covariance S) and eta =
    theta'z ~ N(mu'theta, theta'S theta), so with b = S theta / sd(eta) and E_j = E[U^j h] for
    h the loss, score or curvature (``simstudy.laws.GaussianMixtureLaw``):

        E h = E_0,   E[h z] = E_0 mu + E_1 b,
        E[h z z'] = E_0 S + [mu b] [[E_0, E_1], [E_1, E_2 - E_0]] [mu b]'.

    The last form keeps the (fits, components, p, p) work to the two passes over S. Class 0's
    and class 1's components are shared by all fits (broadcast, never copied); the
    components of all fits go through the quadrature together, ``_QUADRATURE_ROWS`` at a time.
    """

    def __init__(self, pop: Population, laws):
        model = pop.model
        self.family = model.family
        y0, y1 = pop.process.labels
        synthetic = [np.stack(parts) for parts in zip(*(self._components(law, model) for law in laws))]
        # (label, means (F|1, K, p), covariances (F|1, K, p, p), weights (F|1, K), class weight index)
        self.parts = (
            (y0, *(x[None] for x in self._components(pop.process.law0, model)), 0),
            (y1, *(x[None] for x in self._components(pop.process.law1, model)), 1),
            (y1, *synthetic, 2),
        )
        widest = max(part[1].shape[1] for part in self.parts)
        self.chunks = np.array_split(np.arange(len(laws)), -(-len(laws) * widest // _QUADRATURE_ROWS))

    @staticmethod
    def _components(law: GaussianMixtureLaw, model):
        """Component means and covariances of z = z(x), and the weights."""
        J = np.eye(model.n_params(law.dim), law.dim, -int(model.intercept))
        return model.features(law.means), J @ law.covs @ J.T, law.weights

    def derivatives(self, theta, w):
        """Phi_r, its gradient and Hessian at row r of theta (F, p) for every fit r (w: the class
        weights n0 / N, n1 / N, n~ / N)."""
        F, p = theta.shape
        risk, grad, hess = np.zeros(F), np.zeros((F, p)), np.zeros((F, p, p))
        for rows in self.chunks:
            th = theta[rows]
            for y, mean, cov, weight, which in self.parts:
                if which == 2:  # the synthetic law: one per fit
                    mean, cov, weight = mean[rows], cov[rows], weight[rows]
                m = np.einsum("fkp,fp->fk", mean, th)
                S_theta = np.einsum("fkpq,fq->fkp", cov, th)
                s = np.sqrt(np.clip(np.einsum("fkp,fp->fk", S_theta, th), 0.0, None))
                b = S_theta / np.where(s > 0, s, np.inf)[..., None]
                E = gaussian_expectations(_newton_integrands(self.family), m, s, y) * (w[which] * weight)[..., None]
                risk[rows] += E[0, ..., 0].sum(axis=1)
                grad[rows] += np.einsum("fk,fkp->fp", E[1, ..., 0], mean) + np.einsum("fk,fkp->fp", E[1, ..., 1], b)
                E0, E1, E2 = (E[2, ..., j] for j in range(3))
                V = np.stack([np.broadcast_to(mean, b.shape), b], axis=2)  # (f, K, 2, p)
                C = np.stack([np.stack([E0, E1], -1), np.stack([E1, E2 - E0], -1)], -2)  # (f, K, 2, 2)
                W = (C @ V).reshape(len(rows), -1, p)
                hess[rows] += np.einsum("fk,fkpq->fpq", E0, cov) + np.swapaxes(V.reshape(len(rows), -1, p), 1, 2) @ W
        return risk, grad, 0.5 * (hess + np.swapaxes(hess, 1, 2))


def _linearised_limit(pop: Population, n0: int, n1: int, nt, H_syn, psi) -> np.ndarray:
    """theta* - (N H_w)^{-1} b, the population limit at synthetic size n~ to first order, with
    N H_w = n0 H0 + n1 H1 + n~ H~ and b = (n0 - n1 - n~) g + n~ psi: one solve with the
    unnormalised sums. ``nt`` (a size, or sizes (G,)) broadcasts against the leading axes of
    H_syn (..., p, p) and psi (..., p): the sizes of a grid with the pooled moments, or one size
    with every generator fit's own."""
    nt = np.asarray(nt, dtype=np.float64)
    pooled = n0 * pop.H0 + n1 * pop.H1 + nt[..., None, None] * H_syn
    b = (n0 - n1 - nt)[..., None] * pop.g + nt[..., None] * psi
    return pop.theta_star - np.linalg.solve(pooled, b[..., None])[..., 0]


def _fit_limits(risk: _FitRisks, n0: int, n1: int, nt: float, start: np.ndarray) -> np.ndarray:
    """theta_bar_r(n~) of every fit (F, p), by ``newton.minimise_batch`` from ``start``."""
    N = n0 + n1 + nt
    w = (n0 / N, n1 / N, nt / N)
    theta, info = newton.minimise_batch(lambda th: risk.derivatives(th, w), start)
    if not np.all(info.grad_norm <= _FOC_FAIL):
        r = int(np.argmax(info.grad_norm))
        raise RuntimeError(
            f"fit {r}'s population limit at n~ = {nt:g} did not converge: ||grad Phi|| = "
            f"{info.grad_norm[r]:.3g} at theta = {theta[r]}"
        )
    return theta


# ---------------------------------------------------------------------------------------------
# optimal sizes


class OptimalSize(NamedTuple):
    """Predicted best synthetic multipliers (THEORY.md section 3, "Consequences")."""

    gamma_star_bias: float | None
    """THEORY.md's bias-optimal size n~*/(n0 - n1) = <g, g - psi>_M / (||g - psi||_M^2 +
    tr(M Cov psi)), at its fixed point in M (module docstring); 0 under symmetry with a
    mismatched generator; None when no positive size reduces ||b||_M (see ``reason``)."""
    gamma_star_bias_per_point: float | None
    """The minimiser of the first-order bias term E||b||_M^2 / (2 N^2) itself, N growing with
    n~ (``Theory._closed_form``). THEORY.md's form holds N fixed; both equal 1/(1 - c) for an
    aligned psi = c g, c < 1, but differ otherwise: for 1 < c < 1 + (n0 - n1)/(n0 + n1) the bias
    per point keeps falling as n~ grows (None here, gamma_star_population at gamma_max)."""
    reason: str
    """How the two closed forms were obtained, or why they are None."""
    gamma_star_total: float
    """Argmin over [0, gamma_max] of the first-order predicted total (bias + cross + variance),
    with n~ treated as continuous: a grid, then bounded scalar minimisation."""
    gamma_star_population: float | None
    """Argmin over [0, gamma_max] of the exact population excess; None when that curve is flat
    (no bias at any size)."""
    recommendation: str
    alignment_c: float | None
    """c = <E psi, g> / ||g||^2 (None under symmetry)."""
    mismatch_norm: float
    """||E psi||."""
    mismatch_angle_deg: float | None
    """Angle between E psi and g in degrees (None under symmetry or when E psi = 0)."""


def _minimise(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, points: int) -> float:
    """Argmin on [lo, hi]: the best of a grid, refined by bounded Brent between its neighbours."""
    grid = np.linspace(lo, hi, points)
    values = fn(grid)
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
    res = minimize_scalar(
        lambda x: float(fn(np.array([x]))[0]), bounds=(a, b), method="bounded", options={"xatol": 1e-10 * max(1.0, hi)}
    )
    return float(res.x) if res.fun <= values[i] else float(grid[i])


# ---------------------------------------------------------------------------------------------
# the theory of one cell


class Theory:
    """The theory of one design cell (THEORY.md sections 2-3): a population, a generator's
    synthetic moments at theta* and the real sample sizes n0 > n1, checked once, with the terms
    that all of the cell's predictions share built once.

    Held (the module docstring has the formulas):

    * the first-order terms as functions of the synthetic size n~ (section 3, "Excess-risk
      expansion", averaged over the generator fits r): with n0 H0 + n1 H1 = L L' (one Cholesky
      factor) and L^{-1} H~_r L^{-T} = U_r diag(lambda_r) U_r' (one eigendecomposition per fit),
      B_r = L^{-T} U_r diagonalises every H_w,r, and H, the score covariances, g and psi_r are
      kept in its coordinates (``_FirstOrderTerms``); the bias, cross, variance and
      parameter-error terms then cost O(p^2) per (size, fit);
    * the pooled population risk Phi(theta) = (n0 R0 + n1 R1 + n~ R~1)(theta) / N, whose
      minimiser is the population limit theta_bar(n~) (section 3, "Population limit"), with the
      fixed synthetic law's exact risk or, for a data-dependent generator, the mean mismatch
      expanded to second order (``_PooledRisk``);
    * built on first use, by the refined prediction of a binary family only: every fit's pooled
      risk Phi_r with that fit's own Gaussian-mixture synthetic law (``_FitRisks``).

    The methods take multipliers gamma and use n~ = round(gamma (n0 - n1)), half to even (the
    study engine's rounding). The held terms are only read, and each call splits its sizes
    into the same chunks as a Theory built for that call alone, so a method's numbers do not
    depend on what was computed before it.

    Parameters
    ----------
    population : Population
        theta*, g, H0, H1, H, Sigma0 and Sigma1 of the design's classes and model.
    synthetic : SyntheticMoments
        From ``synthetic_moments``: for a data-dependent generator, fitted with the same n1
        (and the same n0, if it was given one).
    n0, n1 : int
        Real majority and minority sample sizes, n0 > n1 >= 1.

    Attributes
    ----------
    population : Population
    synthetic : SyntheticMoments
    n0, n1 : int
        The checked inputs.

    Raises
    ------
    ValueError
        When an input fails its check, or the moments were fitted at other sample sizes.
    """

    def __init__(self, population: Population, synthetic: SyntheticMoments, n0: int, n1: int):
        self.population = _check_population(population)
        self.synthetic = _check_synthetic(synthetic, self.population)
        self.n0, self.n1 = _check_sizes(n0, n1)
        _check_design_sizes(self.synthetic, self.n0, self.n1)
        self._first_order = _FirstOrderTerms(self.population, self.synthetic, self.n0, self.n1)
        self._risk = _PooledRisk(self.population, self.synthetic)

    @functools.cached_property
    def _fit_risks(self) -> _FitRisks:
        return _FitRisks(self.population, self.synthetic.fit_laws)

    def _sizes(self, gammas: np.ndarray) -> np.ndarray:
        return np.rint(gammas * (self.n0 - self.n1)).astype(np.int64)

    def _population_limit(self, nt: float, start: np.ndarray) -> np.ndarray:
        """theta_bar(n~) by ``newton.minimise`` on Phi from ``start``."""
        n0, n1 = self.n0, self.n1
        N = n0 + n1 + nt
        w = (n0 / N, n1 / N, nt / N)
        risk = self._risk
        theta, info = newton.minimise(lambda th: risk.derivatives(th, w), lambda ths: risk.risks(ths, w), start)
        if not info.grad_norm <= _FOC_FAIL:
            raise RuntimeError(
                f"the population limit at n~ = {nt:g} did not converge: ||grad Phi|| = {info.grad_norm:.3g} "
                f"at theta = {theta}"
            )
        return theta

    def _population_path(self, nts) -> np.ndarray:
        """theta_bar at every size of nts (G,) at once (``newton.minimise_batch``), each solve
        started at its linearised limit (``_linearised_limit`` with H~ and E psi), or at theta*
        itself where that already meets the tolerance (no bias at that size): there it stays exact, not moved by the
        rounding of the linearisation."""
        pop, syn, n0, n1 = self.population, self.synthetic, self.n0, self.n1
        nts = np.asarray(nts, dtype=np.float64)
        weights = np.stack([np.full(nts.shape, float(n0)), np.full(nts.shape, float(n1)), nts], axis=1)
        weights /= weights.sum(axis=1, keepdims=True)
        linearised = _linearised_limit(pop, n0, n1, nts, syn.H_tilde, syn.psi_mean)
        at_star = np.broadcast_to(pop.theta_star, linearised.shape)

        def derivatives(thetas):
            return self._risk.derivatives_batch(thetas, weights)

        exact = np.linalg.norm(derivatives(at_star)[1], axis=1) <= newton.GRAD_TOL
        start = np.where(exact[:, None], at_star, linearised)
        theta, info = newton.minimise_batch(derivatives, start)
        failed = ~(info.grad_norm <= _FOC_FAIL)
        if failed.any():
            i = int(np.flatnonzero(failed)[0])
            raise RuntimeError(
                f"the population limit at n~ = {nts[i]:g} did not converge: ||grad Phi|| = "
                f"{info.grad_norm[i]:.3g} at theta = {theta[i]}"
            )
        return theta

    def warm_start(self, gammas) -> np.ndarray:
        """theta_bar at each gamma, solved one size after another: the simulation's fits start
        here (``simstudy.studies.curve``).

        The same limits as ``predict``'s theta_bar to the solver's tolerance where both routes
        converge, by another route: each Newton solve starts where the quadratic through the
        three previous roots predicts the next (fewer roots at the start, or after a repeated
        size), and a solve that fails raises (the batched route may still succeed). A fit's
        last bits depend on its start, so this route is kept as it was when the published
        replications were run: their numbers stay bit for bit.

        Parameters
        ----------
        gammas : array_like
            Synthetic multipliers, a non-empty 1-D sequence of finite numbers >= 0.

        Returns
        -------
        ndarray of shape (G, p)
            theta_bar(n~) per gamma.

        Raises
        ------
        RuntimeError
            If a solve does not converge (naming its size).
        """
        pop = self.population
        nts = self._sizes(_check_gammas(gammas)).astype(np.float64)
        out = np.empty((len(nts), pop.p))
        for i, nt in enumerate(nts):
            previous = list(range(max(0, i - 3), i))
            while len(set(nts[previous])) < len(previous):  # the Lagrange basis needs distinct sizes
                previous.pop(0)
            start = _path_predictor(nts[previous], out[previous], nt) if previous else pop.theta_star
            out[i] = self._population_limit(float(nt), start)
        return out

    def predict(self, gammas) -> Prediction:
        """The exact population limit and the first-order expected excess at each gamma.

        Parameters
        ----------
        gammas : array_like
            Synthetic multipliers, a non-empty 1-D sequence of finite numbers >= 0.

        Returns
        -------
        Prediction
            The predicted curves over gamma (module docstring for the formulas).
        """
        pop = self.population
        gammas = _check_gammas(gammas)
        nt = self._sizes(gammas)
        theta_bar = self._population_path(nt)
        fo = self._first_order(nt)
        return Prediction(
            gammas=gammas,
            n_tilde=nt,
            theta_bar=theta_bar,
            population_excess=pop.excess(theta_bar),
            population_param_error=np.linalg.norm(theta_bar - pop.theta_star, axis=1),
            bias_term=fo.bias,
            cross_term=fo.cross,
            variance_term=fo.variance,
            theory_excess=fo.bias + fo.cross + fo.variance,
            theory_excess_se=fo.total_se,
            param_error_theory=np.sqrt(fo.param_sq),
            param_error_theory_se=fo.param_sq_se / (2.0 * np.sqrt(fo.param_sq)),
            exact_population=self.synthetic.law is not None,
            fit_excess=fo.fit_total.T,
        )

    def refinement_unavailable(self) -> str | None:
        """Why ``refined_prediction`` cannot be computed for this cell.

        Returns
        -------
        str or None
            The reason, or None when it can be computed.
        """
        return _refinement_unavailable(self.population, self.synthetic)

    def _exact_fit_excess(self, nt: np.ndarray) -> np.ndarray:
        """(G, R) R_bal(theta_bar_r(n~)) - R_bal(theta*) for every size and fit. As in
        ``warm_start``, each fit's Newton solve starts where the quadratic through its three
        previous roots predicts the next; the first two start at the fit's linearised limit
        theta* - H_w,r^{-1} b_r / N, which is further off (its gradient 1e-2 to 2e-1 in study 2,
        against 1e-4 to 1e-6 from the predictor)."""
        pop, syn, n0, n1 = self.population, self.synthetic, self.n0, self.n1
        nt = nt.astype(np.float64)
        roots = np.empty((nt.size, syn.refits, pop.p))
        out = np.empty((nt.size, syn.refits))
        for i, a in enumerate(nt):
            previous = list(range(max(0, i - 3), i))
            while len(set(nt[previous])) < len(previous):  # the Lagrange basis needs distinct sizes
                previous.pop(0)
            if len(previous) >= 2:
                start = _path_predictor(nt[previous], roots[previous], a)
            else:
                start = _linearised_limit(pop, n0, n1, a, syn.fit_H, syn.fit_psi)
            roots[i] = _fit_limits(self._fit_risks, n0, n1, a, start)
            # one size at a time: all sizes' risks in one quadrature call took 0.8 GB at 2000 fits
            out[i] = pop.excess(roots[i])
        return out

    def refined_prediction(self, gammas) -> RefinedPrediction:
        """The refined expected excess at each gamma (module docstring, "Refined prediction").

        Per fit r of the synthetic moments (no refitting: the fits, their laws and sample
        deviations are the ones ``predict`` averages over), the first-order bias term
        b_r' M_r b_r / (2 N^2) is replaced by the exact excess of that fit's population limit,
        and the cross and variance terms are kept. Squared loss needs no solve: the limit is
        linear in psi_r and the excess quadratic, so the two coincide and the refined curve is
        the first-order one.

        Parameters
        ----------
        gammas : array_like
            Synthetic multipliers, a non-empty 1-D sequence of finite numbers >= 0.

        Returns
        -------
        RefinedPrediction
            The refined curve over gamma, per fit and averaged.

        Raises
        ------
        ValueError
            With ``refinement_unavailable``'s reason when it cannot be computed.
        """
        pop, syn = self.population, self.synthetic
        gammas = _check_gammas(gammas)
        why = self.refinement_unavailable()
        if why is not None:
            raise ValueError(f"no refined prediction: {why}")
        nt = self._sizes(gammas)
        fo = self._first_order(nt)
        if pop.model.family is SQUARED:
            exact, method = fo.fit_bias, "identical to first order (squared loss: the linearised bias is exact)"
        else:
            exact, method = self._exact_fit_excess(nt), "exact population limit of each generator fit"
        fits = fo.fit_total - fo.fit_bias + exact
        return RefinedPrediction(
            gammas=gammas,
            n_tilde=nt,
            exact_bias=exact.mean(axis=1),
            theory_excess=fits.mean(axis=1),
            theory_excess_se=fits.std(axis=1, ddof=1) / math.sqrt(syn.refits),
            fit_excess=fits.T,
            method=method,
        )

    def _closed_form(self, per_point: bool) -> tuple[float | None, str]:
        """Fixed point in M of a bias-optimal closed form (module docstring); (gamma or None, reason).

        per_point False: THEORY.md's n~* = G <g, d>_M / (||d||_M^2 + tau), d = g - E psi,
        tau = tr(M Cov psi), G = n0 - n1: the minimiser of E||b||_M^2 with N held fixed.
        per_point True: the minimiser of E||b||_M^2 / N^2 with N = N0 + n~, N0 = n0 + n1,
        n~* = G (G ||g||_M^2 + N0 <d, g>_M) / (N0 (||d||_M^2 + tau) + G <g, d>_M) (setting the
        derivative to zero; the two agree when the bias cancels, e.g. aligned psi = c g, c < 1).
        """
        pop, syn, n0, n1 = self.population, self.synthetic, self.n0, self.n1
        g, psi = pop.g, syn.psi_mean
        G, N0 = n0 - n1, n0 + n1
        c = float(psi @ g / (g @ g))
        gamma = 1.0
        for it in range(1, _FIXED_POINT_MAX + 1):
            nt = gamma * G
            Hw = (n0 * pop.H0 + n1 * pop.H1 + nt * syn.H_tilde) / (N0 + nt)
            Hw_inv = np.linalg.inv(Hw)
            M = Hw_inv @ pop.H @ Hw_inv
            d = g - psi
            gd, dd, gg = float(g @ M @ d), float(d @ M @ d), float(g @ M @ g)
            tau = float(np.trace(M @ syn.psi_cov))
            if per_point:
                num, den = G * gg + N0 * gd, N0 * (dd + tau) + G * gd
            else:
                num, den = gd, dd + tau
            if num <= 0.0:
                return None, (
                    f"no positive size reduces the bias (c = {c:.6g}; aligned mismatch with c >= 1): "
                    f"it is smallest at gamma = 0"
                )
            if den <= 1e-14 * abs(num):
                return None, (
                    f"no finite size minimises the bias (c = {c:.6g}): it keeps falling as gamma grows, "
                    f"toward its limit at n~ = infinity"
                )
            new = num / den
            if abs(new - gamma) <= _FIXED_POINT_TOL * max(1.0, new):
                return new, f"fixed point in M after {it} iterations"
            gamma = new
        return gamma, f"M at the last of {_FIXED_POINT_MAX} fixed-point iterations (not converged)"

    def _bias_optimum(self):
        """(THEORY.md's gamma*, the per-point gamma*, reason) -- see ``_closed_form``."""
        syn = self.synthetic
        if self.population.regime == "symmetry":
            if np.any(syn.psi_mean != 0.0) or np.any(syn.psi_cov != 0.0):
                return 0.0, 0.0, "local symmetry: the bias n~ psi grows with n~, so it is smallest at gamma = 0"
            return None, None, "local symmetry and psi = 0: there is no bias at any size"
        theory, why = self._closed_form(per_point=False)
        per_point, why_n = self._closed_form(per_point=True)
        return theory, per_point, f"THEORY.md closed form: {why}; per-point closed form: {why_n}"

    def _total_optimum(self, gamma_max: float) -> float:
        G = self.n0 - self.n1

        def total(gs):
            fo = self._first_order(gs * G)
            return fo.bias + fo.cross + fo.variance

        return _minimise(total, 0.0, gamma_max, 401)

    def _population_optimum(self, gamma_max: float) -> float | None:
        pop, n0, n1 = self.population, self.n0, self.n1
        G = n0 - n1
        grid = np.linspace(0.0, gamma_max, 41)
        path = self._population_path(grid * G)
        values = pop.excess(path)
        if np.max(np.abs(values)) < _FLAT:
            return None
        i = int(np.argmin(values))

        def excess(x):
            return float(pop.excess(self._population_limit(x * G, path[i])[None])[0])

        a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = minimize_scalar(excess, bounds=(a, b), method="bounded", options={"xatol": 1e-10 * max(1.0, gamma_max)})
        return float(res.x) if res.fun <= values[i] else float(grid[i])

    def optimal_sizes(self, gamma_max: float = 4.0) -> OptimalSize:
        """Bias-optimal, total-risk-optimal and population-optimal gamma, with the mismatch geometry.

        Parameters
        ----------
        gamma_max : float
            The upper end of the range [0, gamma_max] searched for the total-risk and population
            optima; finite and > 0.

        Returns
        -------
        OptimalSize
            The optima, how they were found, a recommendation and the alignment of E psi with g.
        """
        pop, syn = self.population, self.synthetic
        gamma_max = float(gamma_max)
        if not (np.isfinite(gamma_max) and gamma_max > 0):
            raise ValueError(f"gamma_max must be a finite number > 0, got {gamma_max!r}")

        gamma_bias, gamma_per_point, reason = self._bias_optimum()
        gamma_total = self._total_optimum(gamma_max)
        gamma_pop = self._population_optimum(gamma_max)
        psi = syn.psi_mean
        norm = float(np.linalg.norm(psi))
        ideal = not np.any(psi != 0.0) and not np.any(syn.psi_cov != 0.0) and not np.any(syn.cross1 != 0.0)
        if pop.regime == "symmetry":
            c = angle = None
            if ideal:
                recommendation = (
                    f"local symmetry with an ideal generator (psi = 0): synthetic points only add sample size; "
                    f"the predicted total keeps falling, optimum at gamma = {gamma_total:.3g} (the largest allowed)"
                )
            else:
                recommendation = (
                    "local symmetry: no or minimal augmentation "
                    f"(predicted total-risk optimum gamma = {gamma_total:.3g})"
                )
        else:
            g = pop.g
            c = float(psi @ g / (g @ g))
            angle = (
                math.degrees(math.acos(float(np.clip(psi @ g / (norm * np.linalg.norm(g)), -1.0, 1.0))))
                if norm > 0
                else None
            )
            if gamma_bias is None:
                recommendation = (
                    f"local asymmetry: no size cancels the bias (c = {c:.3g}); use the predicted total-risk "
                    f"optimum gamma = {gamma_total:.4g}"
                )
            else:
                per_point = "none" if gamma_per_point is None else f"{gamma_per_point:.4g}"
                recommendation = (
                    f"local asymmetry: bias-optimal gamma* = {gamma_bias:.4g} (c = {c:.3g}; per point {per_point}); "
                    f"predicted total-risk optimum gamma = {gamma_total:.4g}"
                )
        return OptimalSize(gamma_bias, gamma_per_point, reason, gamma_total, gamma_pop, recommendation, c, norm, angle)


def predict(population: Population, synthetic: SyntheticMoments, n0: int, n1: int, gammas) -> Prediction:
    """``Theory(population, synthetic, n0, n1).predict(gammas)``, for a single prediction: a cell
    that asks for more builds its ``Theory`` once."""
    return Theory(population, synthetic, n0, n1).predict(gammas)


def optimal_sizes(
    population: Population, synthetic: SyntheticMoments, n0: int, n1: int, gamma_max: float = 4.0
) -> OptimalSize:
    """``Theory(population, synthetic, n0, n1).optimal_sizes(gamma_max)``, for a single call."""
    return Theory(population, synthetic, n0, n1).optimal_sizes(gamma_max)


def refinement_unavailable(population: Population, synthetic: SyntheticMoments) -> str | None:
    """``Theory.refinement_unavailable`` without the sample sizes, on which it does not depend."""
    pop = _check_population(population)
    return _refinement_unavailable(pop, _check_synthetic(synthetic, pop))


def refined_prediction(
    population: Population, synthetic: SyntheticMoments, n0: int, n1: int, gammas
) -> RefinedPrediction:
    """``Theory(population, synthetic, n0, n1).refined_prediction(gammas)``, for a single call."""
    return Theory(population, synthetic, n0, n1).refined_prediction(gammas)


# ---------------------------------------------------------------------------------------------
# rates in n1


class RateCurve(NamedTuple):
    """The first-order predicted excess and parameter error along n1 at fixed kappa."""

    n1: np.ndarray
    n0: np.ndarray
    """round(kappa n1)."""
    gamma: np.ndarray
    """The gamma used at each n1 (NaN where 'star' does not exist)."""
    excess: np.ndarray
    """theory_excess at each n1."""
    param_error: np.ndarray
    """param_error_theory (root mean square) at each n1."""
    excess_slopes: np.ndarray
    """(K-1,) local log-log slopes d log excess / d log n1 between neighbouring grid points."""
    param_slopes: np.ndarray
    """(K-1,) the same for the parameter error."""
    excess_exponent: float | None
    """Asymptotic exponent of the excess in n1: 0 for a Theta(1) floor, -1 for d/N. Derived
    from the structure of the prediction at continuous sizes (fixed law, fixed gamma: the bias is
    constant in n1, the variance ~ 1/n1); None for data-dependent generators, for a population
    or generator given as a callable of n1 (the floor may then vanish with n1) and for 'total'."""
    param_exponent: float | None
    """0 for a floor, -1/2 otherwise (None as above)."""


def _as_factory(obj, cls, name):
    if isinstance(obj, cls):
        return lambda n1: obj
    if callable(obj):
        return obj
    raise ValueError(f"{name} must be a {cls.__name__} or a callable n1 -> {cls.__name__}, got {type(obj).__name__}")


class BiasLinearisation(NamedTuple):
    """The first-order bias term against the exact excess it approximates, per size (G,)."""

    gammas: np.ndarray
    exact: np.ndarray
    """mean over fits of R_bal(theta_bar_r(n~)) - R_bal(theta*), theta_bar_r the exact population
    limit with fit r's synthetic law (no linearisation)."""
    first_order: np.ndarray
    """mean over the same fits of b_r' M_r b_r / (2 N^2), the module docstring's bias term."""
    difference_se: np.ndarray
    """Monte Carlo standard error of mean_r (first_order_r - exact_r) (paired over fits)."""
    refits: int


def bias_linearisation(
    population: Population, generator: Generator, n0: int, n1: int, gammas, rng: np.random.Generator, refits: int = 200
) -> BiasLinearisation:
    """How far the first-order bias term is from the exact excess of the per-fit population limit.

    For each of ``refits`` fits of ``generator`` (on fresh samples of n0 majority and n1 minority
    points, as the study engine fits it), whose fitted synthetic law must be known
    (``FittedGenerator.law``), the fixed-law theory of that fit gives both numbers: the exact
    excess of theta_bar_r(n~) and the quadratic b_r' M_r b_r / (2 N^2). They agree for squared
    loss (the limit is then linear in psi_r and the excess quadratic); for a binary family
    their gap is the error the linearisation of the bias adds to ``predict``'s theory_excess.
    Measured (study 2, Gaussian fit, 200 fits): the quadratic exceeds the exact mean by 13%, 20%
    and 25% at gamma = 0.4, 1 and 2 (4.9e-4, 1.4e-3, 2.4e-3 with SE 0.5e-4 to 2.5e-4), the gap
    between predicted and simulated excess there (z = -7.3 at gamma = 2 with 2000 refits, R = 400).
    """
    pop = _check_population(population)
    if not isinstance(generator, Generator):
        raise ValueError(f"generator must be a simstudy Generator, got {type(generator).__name__}")
    n0, n1 = _check_sizes(n0, n1)
    gammas = _check_gammas(gammas)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    refits = _check_int(refits, "refits", 2)
    exact, first = np.empty((refits, gammas.size)), np.empty((refits, gammas.size))
    for r in range(refits):
        X1 = pop.process.law1.sample(n1, rng)
        X0 = pop.process.law0.sample(n0, rng)
        law = generator.fit(X1, X0, rng).law
        if law is None:
            raise ValueError(
                f"generator {generator.name!r} has no fitted law: the exact per-fit population limit needs one"
            )
        fixed = Theory(pop, synthetic_moments(pop, Oracle(law), n1, rng), n0, n1).predict(gammas)
        exact[r], first[r] = fixed.population_excess, fixed.bias_term
    gap = first - exact
    return BiasLinearisation(
        gammas, exact.mean(axis=0), first.mean(axis=0), gap.std(axis=0, ddof=1) / math.sqrt(refits), refits
    )


def predicted_slopes(
    population,
    generator,
    n1_grid,
    kappa: float,
    rng: np.random.Generator,
    gammas=(0.0, 1.0, "star"),
    refits: int = 200,
    pool: int = 20_000,
) -> dict:
    """Predicted log-log slopes of the excess and parameter error in n1 at n0 = round(kappa n1).

    ``population`` and ``generator`` are objects or callables of n1 (study 4's generator
    depends on n1). The model is the population's. ``gammas`` holds numbers, "star" (the
    bias-optimal closed form, recomputed at each n1) and/or "total" (the predicted total-risk
    optimum on [0, 4]). Returns {label: RateCurve}, labels being the numbers as given or the
    strings. Data-dependent generators are refitted (``synthetic_moments``) at every n1 with
    ``refits`` and ``pool`` from ``rng``.
    """
    pop_at = _as_factory(population, Population, "population")
    gen_at = _as_factory(generator, Generator, "generator")
    n1s = np.asarray(n1_grid)
    if (
        n1s.ndim != 1
        or n1s.size < 2
        or not np.issubdtype(n1s.dtype, np.integer)
        or np.any(np.diff(n1s) <= 0)
        or n1s[0] < 2
    ):
        raise ValueError(f"n1_grid must be an increasing 1-D sequence of at least 2 integers >= 2, got {n1_grid!r}")
    kappa = float(kappa)
    if not (np.isfinite(kappa) and kappa > 1):
        raise ValueError(f"kappa must be a finite number > 1, got {kappa!r}")
    labels = list(gammas)
    for lab in labels:
        if isinstance(lab, str):
            if lab not in ("star", "total"):
                raise ValueError(f"gammas entries must be numbers >= 0, 'star' or 'total', got {lab!r}")
        else:
            _check_gammas([lab])
    n0s = np.array([int(round(kappa * n)) for n in n1s])
    if np.any(n0s <= n1s):
        raise ValueError(
            f"kappa = {kappa} leaves n0 = round(kappa n1) <= n1 at n1 = {n1s[n0s <= n1s][0]}: n0 must exceed n1"
        )

    rows = {lab: [] for lab in labels}
    # the bias is constant in n1 only when neither the design nor a fixed law changes with n1
    constant = isinstance(population, Population) and isinstance(generator, Generator) and not generator.data_dependent
    structure = {lab: None for lab in labels}
    for n1, n0 in zip(n1s.tolist(), n0s.tolist()):
        pop = _check_population(pop_at(n1))
        theory = Theory(pop, synthetic_moments(pop, gen_at(n1), n1, rng, refits=refits, pool=pool), n0, n1)
        for lab in labels:
            if lab == "star":
                gamma = theory._bias_optimum()[0]
            elif lab == "total":
                gamma = theory._total_optimum(4.0)
            else:
                gamma = float(lab)
            if gamma is None:
                rows[lab].append((math.nan, math.nan, math.nan))
                continue
            fo = theory._first_order(np.array([np.rint(gamma * (n0 - n1))]))
            rows[lab].append((gamma, float(fo.bias[0] + fo.cross[0] + fo.variance[0]), math.sqrt(fo.param_sq[0])))
            # at continuous sizes, per unit of N, for the asymptotic exponent
            cont = theory._first_order(np.array([gamma * (n0 - n1)]))
            N = n0 + n1 + gamma * (n0 - n1)
            structure[lab] = (float(cont.bias[0]), float(cont.variance[0]) * N)

    out = {}
    logn = np.log(n1s.astype(np.float64))
    for lab in labels:
        gamma, excess, perr = (np.array(col) for col in zip(*rows[lab]))
        ex_exp = par_exp = None
        if constant and lab != "total" and structure[lab] is not None:
            floor, var_per_n = structure[lab]
            has_floor = floor > var_per_n / _FLOOR_HORIZON
            ex_exp, par_exp = (0.0, 0.0) if has_floor else (-1.0, -0.5)
        out[lab] = RateCurve(
            n1=n1s.copy(),
            n0=n0s,
            gamma=gamma,
            excess=excess,
            param_error=perr,
            excess_slopes=np.diff(np.log(excess)) / np.diff(logn),
            param_slopes=np.diff(np.log(perr)) / np.diff(logn),
            excess_exponent=ex_exp,
            param_exponent=par_exp,
        )
    return out


__all__ = [
    "BiasLinearisation",
    "OptimalSize",
    "Prediction",
    "RateCurve",
    "RefinedPrediction",
    "SyntheticMoments",
    "Theory",
    "bias_linearisation",
    "optimal_sizes",
    "predict",
    "predicted_slopes",
    "refined_prediction",
    "refinement_unavailable",
    "synthetic_moments",
]
