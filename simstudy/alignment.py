"""The theory's map of mismatch alignment (THEORY.md sections 2-3 and study 5), computed for a
whole grid of generators at once.

A mismatch-controlled generator (``simstudy.generators.mismatch``) with magnitude r and angle
phi to g gives a fixed synthetic law with mismatch psi (r, phi), synthetic Hessian H~ and score
covariance Sigma~ at theta*. For a fixed law the first-order predicted excess at n~ = gamma
(n0 - n1) synthetic points is (THEORY.md section 3)

    E(gamma) = (1/2) b' M b / N^2 + tr(M Sigma_w) / (2 N),

    N = n0 + n1 + n~,  H_w = (n0 H0 + n1 H1 + n~ H~) / N,  M = H_w^{-1} H H_w^{-1},
    b = (n0 - n1 - n~) g + n~ psi,  Sigma_w = (n0 Sigma0 + n1 Sigma1 + n~ Sigma~) / N,

the same expression ``simstudy.theory`` evaluates cell by cell (there by a simultaneous
diagonalisation; here by batched p x p inverses over every (cell, gamma) pair), so the map's
curves equal ``theory.predict``'s to rounding. Per cell the map reports

* the **total-risk optimum** gamma*_total: the argmin of E over [0, gamma_max] (a grid of
  ``points`` sizes, refined by the parabola through the best point and its neighbours);
* the **bias-only optimum** of THEORY.md, n~* = (n0 - n1) <g, g - psi>_M / ||g - psi||_M^2 at its
  fixed point in M (``theory.OptimalSize.gamma_star_bias``), NaN where no positive size reduces
  the bias (aligned psi = c g with c >= 1, where the bias keeps its sign at every size);
* the **gain** from tuning the size, E(1) - E(gamma*_total) >= 0, the excess saved against full
  balancing, and its share of E(1);
* the **floor**, the bias term left at the bias-optimal size: zero for aligned mismatch
  (c < 1), positive otherwise (THEORY.md's "orthogonal" floor), a Theta(1) excess no size or
  sample size removes;
* the **alignment** c = <psi, g> / ||g||^2, the Euclidean angle of psi to g and its angle in the
  M-geometry at full balancing (M = H_w^{-1} H H_w^{-1} at n~ = n0 - n1; M = H^{-1} when
  H~ = H1). The two angles differ when H is not isotropic: a psi Euclidean-orthogonal to g has
  a component along g in the M inner product, which is the one the bias sees, so it moves
  gamma* off the orthogonal formula ||g||_M^2 / (||g||_M^2 + ||psi||_M^2).

Cells a mean shift cannot reach (large anti-aligned targets, ``MismatchGenerator`` raises) are
NaN with ``reachable`` False.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.population import Population

GAMMA_POINTS = 601
"""Grid points on [0, gamma_max] for the total-risk optimum before its parabolic refinement."""
FIXED_POINT_STEPS = 200
FIXED_POINT_TOL = 1e-12
CHUNK_ELEMENTS = 4_000_000
"""(cell, gamma) pairs are processed in chunks so that the (cells, gammas, p, p) arrays stay
near 32 MB whatever p."""


class SyntheticLaws(NamedTuple):
    """The synthetic class of each cell at theta*: psi (C, p), H~ (C, p, p), Sigma~ (C, p, p),
    and whether a mean shift reaches the cell (C,)."""

    psi: np.ndarray
    H_tilde: np.ndarray
    Sigma_tilde: np.ndarray
    reachable: np.ndarray


def mismatch_laws(population: Population, magnitudes, angles_deg, cov_scale=1.0, direction=None) -> SyntheticLaws:
    """The synthetic moments of the mismatch generator at every (magnitude, angle) pair.

    Parameters
    ----------
    population : Population
        theta*, g, the class laws and the model.
    magnitudes, angles_deg : array_like of shape (C,)
        r >= 0 and phi in [0, 180] of each cell.
    cov_scale : float or None
        The generator's covariance scale (``MismatchGenerator``).
    direction : array_like of shape (p,), optional
        The generator's orthogonal reference (default: its own choice).

    Returns
    -------
    SyntheticLaws
        NaN rows where no mean shift reaches the cell.
    """
    C, p = len(magnitudes), population.p
    psi, H, S = np.full((C, p), np.nan), np.full((C, p, p), np.nan), np.full((C, p, p), np.nan)
    reachable = np.zeros(C, dtype=bool)
    for i, (r, phi) in enumerate(zip(magnitudes, angles_deg)):
        try:
            gen = MismatchGenerator(
                population, magnitude=float(r), angle_deg=float(phi), cov_scale=cov_scale, direction=direction
            )
        except ValueError:  # a target no mean shift reaches
            continue
        psi[i], H[i], S[i], reachable[i] = gen.psi, gen.moments.hess, gen.moments.score_cov, True
    return SyntheticLaws(psi, H, S, reachable)


class FirstOrder(NamedTuple):
    """The first-order terms of every (cell, gamma): bias, variance and their sum, (C, K)."""

    bias: np.ndarray
    variance: np.ndarray
    excess: np.ndarray


def first_order(population: Population, laws: SyntheticLaws, n0: int, n1: int, gammas) -> FirstOrder:
    """E(gamma) of the module docstring for every cell (rows) and gamma (columns).

    Parameters
    ----------
    population : Population
    laws : SyntheticLaws
        C cells.
    n0, n1 : int
        The class sizes.
    gammas : array_like of shape (K,) or (C, K)
        Synthetic multipliers >= 0: the same for every cell, or one row per cell.

    Returns
    -------
    FirstOrder
        Arrays of shape (C, K), NaN for unreachable cells.
    """
    pop = population
    C, p = laws.psi.shape
    gammas = np.broadcast_to(np.asarray(gammas, dtype=np.float64), (C, np.shape(gammas)[-1]))
    G = n0 - n1
    real_H = n0 * pop.H0 + n1 * pop.H1
    real_S = n0 * pop.Sigma0 + n1 * pop.Sigma1
    step = max(1, CHUNK_ELEMENTS // (gammas.shape[1] * p * p))
    parts = []
    for lo in range(0, C, step):
        cells = slice(lo, lo + step)
        nt = gammas[cells] * G
        N = n0 + n1 + nt
        Hw = (real_H + nt[..., None, None] * laws.H_tilde[cells, None]) / N[..., None, None]
        Hw_inv = np.linalg.inv(np.where(np.isfinite(Hw), Hw, np.eye(p)))
        M = Hw_inv @ pop.H @ Hw_inv
        b = (G - nt)[..., None] * pop.g + nt[..., None] * laws.psi[cells, None]
        bias = 0.5 * np.einsum("cki,ckij,ckj->ck", b, M, b) / N**2
        Sw = (real_S + nt[..., None, None] * laws.Sigma_tilde[cells, None]) / N[..., None, None]
        variance = 0.5 * np.einsum("ckij,ckji->ck", M, Sw) / N
        unreachable = ~laws.reachable[cells, None]
        parts.append((np.where(unreachable, np.nan, bias), np.where(unreachable, np.nan, variance)))
    bias, variance = (np.concatenate(x) for x in zip(*parts))
    return FirstOrder(bias, variance, bias + variance)


def grid_argmin(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the argmin of ``values`` over ``grid``, refined by the parabola through the
    best grid point and its two neighbours (the grid point itself at an end)."""
    i = np.nanargmin(np.where(np.isnan(values), np.inf, values), axis=1)
    inner = (i > 0) & (i < grid.size - 1)
    j = np.clip(i, 1, grid.size - 2)
    rows = np.arange(values.shape[0])
    f0, f1, f2 = values[rows, j - 1], values[rows, j], values[rows, j + 1]
    h = grid[1] - grid[0]
    curvature = f0 - 2.0 * f1 + f2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 0, 0.5 * h * (f0 - f2) / curvature, 0.0)
    return np.where(inner, grid[j] + np.clip(shift, -h, h), grid[i])


def total_optimum(
    population: Population, laws: SyntheticLaws, n0: int, n1: int, gamma_max: float, points: int = GAMMA_POINTS
) -> np.ndarray:
    """Per cell, the argmin over [0, gamma_max] of the first-order predicted excess E (a grid of
    ``points`` sizes refined by ``grid_argmin``); NaN where no mean shift reaches the cell."""
    grid = np.linspace(0.0, gamma_max, points)
    total = first_order(population, laws, n0, n1, grid).excess
    return np.where(laws.reachable, grid_argmin(grid, total), np.nan)


def bias_optimum(population: Population, laws: SyntheticLaws, n0: int, n1: int) -> np.ndarray:
    """THEORY.md's bias-optimal gamma* = <g, d>_M / ||d||_M^2, d = g - psi, at its fixed point
    in M (M at n~ = gamma* (n0 - n1)), per cell; NaN where no positive size reduces the bias
    (<g, d>_M <= 0: aligned psi = c g with c >= 1) or no finite size minimises it."""
    pop = population
    G = n0 - n1
    real = n0 * pop.H0 + n1 * pop.H1
    d = pop.g - laws.psi
    gamma = np.ones(len(d))
    done = ~laws.reachable
    for _ in range(FIXED_POINT_STEPS):
        nt = gamma * G
        Hw = (real + nt[:, None, None] * laws.H_tilde) / (n0 + n1 + nt)[:, None, None]
        Hw_inv = np.linalg.inv(np.where(done[:, None, None], np.eye(pop.p), Hw))
        M = Hw_inv @ pop.H @ Hw_inv
        num = np.einsum("i,cij,cj->c", pop.g, M, d)
        den = np.einsum("ci,cij,cj->c", d, M, d)
        hopeless = (num <= 0.0) | (den <= 1e-14 * np.abs(num))
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where(done | hopeless, np.nan, num / den)
        settled = np.abs(new - gamma) <= FIXED_POINT_TOL * np.maximum(1.0, new)
        gamma = np.where(done, gamma, new)
        done = done | hopeless | settled
        if done.all():
            break
    return np.where(laws.reachable, gamma, np.nan)


def m_angle_deg(population: Population, laws: SyntheticLaws, n0: int, n1: int) -> np.ndarray:
    """The angle (degrees) between psi and g in the M inner product at full balancing."""
    pop = population
    G = n0 - n1
    Hw = (n0 * pop.H0 + n1 * pop.H1 + G * np.nan_to_num(laws.H_tilde)) / (n0 + n1 + G)
    Hw_inv = np.linalg.inv(np.where(laws.reachable[:, None, None], Hw, np.eye(pop.p)))
    M = Hw_inv @ pop.H @ Hw_inv
    psi = np.nan_to_num(laws.psi)
    pg = np.einsum("ci,cij,j->c", psi, M, pop.g)
    pp = np.einsum("ci,cij,cj->c", psi, M, psi)
    gg = np.einsum("i,cij,j->c", pop.g, M, pop.g)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.clip(pg / np.sqrt(pp * gg), -1.0, 1.0)
    # a psi at rounding level (r = 0) has no direction
    return np.where(laws.reachable & (pp > 1e-20 * gg), np.degrees(np.arccos(cos)), np.nan)


class AlignmentMap(NamedTuple):
    """The theory's map over a (magnitude, angle) grid: every field but the grids is (R, A)."""

    magnitudes: np.ndarray  # (R,)
    angles_deg: np.ndarray  # (A,)
    g_norm: float
    reachable: np.ndarray
    alignment_c: np.ndarray
    angle_m_deg: np.ndarray
    gamma_star_bias: np.ndarray
    gamma_star_total: np.ndarray
    excess_full: np.ndarray
    excess_star: np.ndarray
    gain: np.ndarray
    relative_gain: np.ndarray
    floor: np.ndarray


def alignment_map(
    population: Population,
    n0: int,
    n1: int,
    magnitudes,
    angles_deg,
    *,
    cov_scale=1.0,
    direction=None,
    gamma_max: float = 6.0,
    points: int = GAMMA_POINTS,
) -> AlignmentMap:
    """The map of the module docstring over every (magnitude, angle) pair.

    Parameters
    ----------
    population : Population
        A local-asymmetry population (g != 0).
    n0, n1 : int
        The class sizes.
    magnitudes : array_like of shape (R,)
        r >= 0.
    angles_deg : array_like of shape (A,)
        phi in [0, 180].
    cov_scale, direction
        The mismatch generator's options.
    gamma_max : float
        The total-risk optimum is searched on [0, gamma_max].
    points : int
        Grid points on [0, gamma_max] before the parabolic refinement.

    Returns
    -------
    AlignmentMap
    """
    if population.regime != "asymmetry":
        raise ValueError("the alignment map needs local asymmetry (g != 0): angles are measured to g")
    if not (isinstance(n0, int) and isinstance(n1, int) and n0 > n1 >= 1):
        raise ValueError(f"need integers n0 > n1 >= 1, got n0={n0!r}, n1={n1!r}")
    if not (math.isfinite(gamma_max) and gamma_max > 1.0):
        raise ValueError(f"gamma_max must be a finite number > 1 (full balancing inside), got {gamma_max!r}")
    r = np.asarray(magnitudes, dtype=np.float64)
    a = np.asarray(angles_deg, dtype=np.float64)
    rr, aa = (x.ravel() for x in np.meshgrid(r, a, indexing="ij"))
    laws = mismatch_laws(population, rr, aa, cov_scale=cov_scale, direction=direction)
    gamma_total = total_optimum(population, laws, n0, n1, gamma_max, points)
    excess_full = first_order(population, laws, n0, n1, [1.0]).excess[:, 0]
    excess_star = first_order(population, laws, n0, n1, np.nan_to_num(gamma_total)[:, None]).excess[:, 0]
    gamma_bias = bias_optimum(population, laws, n0, n1)
    floor = first_order(population, laws, n0, n1, np.nan_to_num(gamma_bias)[:, None]).bias[:, 0]
    floor = np.where(np.isfinite(gamma_bias), floor, np.nan)
    g = population.g
    c = laws.psi @ g / (g @ g)
    gain = excess_full - excess_star
    shape = (r.size, a.size)
    return AlignmentMap(
        magnitudes=r,
        angles_deg=a,
        g_norm=float(np.linalg.norm(g)),
        reachable=laws.reachable.reshape(shape),
        alignment_c=c.reshape(shape),
        angle_m_deg=m_angle_deg(population, laws, n0, n1).reshape(shape),
        gamma_star_bias=gamma_bias.reshape(shape),
        gamma_star_total=gamma_total.reshape(shape),
        excess_full=excess_full.reshape(shape),
        excess_star=excess_star.reshape(shape),
        gain=gain.reshape(shape),
        relative_gain=(gain / excess_full).reshape(shape),
        floor=floor.reshape(shape),
    )
