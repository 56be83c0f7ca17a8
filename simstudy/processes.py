"""The data-generating processes of THEORY.md section 6.

A ``Process`` is a pair of class laws (``simstudy.laws``: majority P0, minority P1) with their
labels; it samples exact class counts. Its population quantities at theta* for a model are
``simstudy.population.Population``'s.

Catalog (``PROCESSES``, ``make_process``):

======================  ==================================================================
name                    design
======================  ==================================================================
symmetric_mean_shift    study 1: labels -1/+1, X = -+mu + xi, mu = delta e1
gaussian_classes        studies 3-5: N(mu0, cov) vs N(mu1, cov), labels 0/1
tuned_logistic_mixture  study 2: X = T e1 + W, P(Y=1|X) = sigmoid(c X_1), alpha tuned so g = 0
mixture_minority        study 6(a): N(0, I) vs 1/2 N(2 e1 + 1.75 e2, I) + 1/2 N(2 e1 - 1.75 e2, I)
noisy_ring              study 6(b): a correlated two-component Gaussian vs a noisy ring
bent_heavy_tailed       the network study (AUTHORS_DESIGNS.md E): heavy-tailed mixed
                        marginals, the minority smoothly bent
======================  ==================================================================

Coordinates are 0-based in code: THEORY.md's e1 is index 0, e2 index 1.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.laws import ClassLaw, EmpiricalLaw, GaussianMixtureLaw, SymmetricNoiseLaw
from simstudy.options import check_options


@dataclass(frozen=True)
class Process:
    """Majority law ``law0`` (label labels[0]) and minority law ``law1`` (label labels[1]).

    ``info`` holds design constants worth reporting (e.g. the tuned alpha of study 2).

    Parameters
    ----------
    name : str
        The process's name (in tables and messages).
    law0 : simstudy.laws.ClassLaw
        The majority law P0.
    law1 : simstudy.laws.ClassLaw
        The minority law P1, of the same dimension.
    labels : pair of float, default (0.0, 1.0)
        (y0, y1), two distinct finite numbers; stored as a tuple of floats.
    info : mapping of str to float, default {}
        Design constants; stored as a read-only copy and left out of equality.

    Raises
    ------
    ValueError
        If a law is not a ClassLaw, the laws' dimensions differ, or ``labels`` is not two
        distinct finite numbers.
    """

    name: str
    law0: ClassLaw
    law1: ClassLaw
    labels: tuple[float, float] = (0.0, 1.0)
    info: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for attr in ("law0", "law1"):
            if not isinstance(getattr(self, attr), ClassLaw):
                raise ValueError(f"{attr} must be a ClassLaw, got {type(getattr(self, attr)).__name__}")
        if self.law0.dim != self.law1.dim:
            raise ValueError(f"law0 and law1 must share one dimension, got {self.law0.dim} and {self.law1.dim}")
        labels = tuple(float(v) for v in self.labels)
        if len(labels) != 2 or not all(np.isfinite(labels)) or labels[0] == labels[1]:
            raise ValueError(f"labels must be two distinct finite numbers (y0, y1), got {self.labels!r}")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "info", types.MappingProxyType(dict(self.info)))

    @property
    def dim(self) -> int:
        """The dimension d of X (that of both laws).

        Returns
        -------
        int
            ``law0.dim``.
        """
        return self.law0.dim

    def sample(self, n0: int, n1: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Exactly n0 majority rows (n0, d), then n1 minority rows (n1, d), from rng.

        Parameters
        ----------
        n0 : int
            Majority rows, >= 0.
        n1 : int
            Minority rows, >= 0.
        rng : numpy.random.Generator
            The source of randomness (the majority is drawn first).

        Returns
        -------
        X0 : ndarray of float64, shape (n0, d)
            Draws from law0.
        X1 : ndarray of float64, shape (n1, d)
            Draws from law1.

        Raises
        ------
        ValueError
            If a count is not an integer >= 0 or ``rng`` is not a ``numpy.random.Generator`` (the
            laws' checks).
        """
        return self.law0.sample(n0, rng), self.law1.sample(n1, rng)


# ---------------------------------------------------------------------------------------------
# the catalog


def _dimension(d, minimum: int = 1) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < minimum:
        raise ValueError(f"d must be an integer >= {minimum}, got {d!r}")
    return int(d)


def _finite(value, name: str, positive: bool = False) -> float:
    if isinstance(value, bool):  # float(True) would pass as 1.0
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or (positive and value <= 0):
        what = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def symmetric_mean_shift(d: int = 20, delta: float = 1.0, noise: str = "gaussian") -> Process:
    """Study 1: labels (-1, +1); majority X = -mu + xi, minority X = mu + xi, mu = delta e1.

    Both class risks under squared loss without intercept are (1 - mu'theta)^2 + |theta|^2,
    so theta* = mu / (1 + delta^2) and g = 0 (local symmetry) for every noise law.

    Parameters
    ----------
    d : int, default 20
        Dimension, an integer >= 1.
    delta : float, default 1.0
        The size of the mean shift, finite.
    noise : {"gaussian", "uniform_cube", "rademacher", "uniform_sphere"}, default "gaussian"
        The law of xi (``simstudy.laws.SymmetricNoiseLaw``).

    Returns
    -------
    Process
        Named "symmetric_mean_shift[<noise>]", with ``info`` {"delta": delta}.

    Raises
    ------
    ValueError
        If ``d`` is not an integer >= 1, ``delta`` is not finite or ``noise`` is unknown.
    """
    d = _dimension(d)
    delta = _finite(delta, "delta")
    mu = np.zeros(d)
    mu[0] = delta
    return Process(
        f"symmetric_mean_shift[{noise}]",
        SymmetricNoiseLaw(-mu, noise),
        SymmetricNoiseLaw(mu, noise),
        labels=(-1.0, 1.0),
        info={"delta": delta},
    )


def gaussian_classes(mu0=(0.0, 0.0), mu1=(1.0, 0.0), cov=None) -> Process:
    """Studies 3-5: P0 = N(mu0, cov), P1 = N(mu1, cov), labels 0/1; cov defaults to I.

    Parameters
    ----------
    mu0 : array_like of shape (d,), default (0.0, 0.0)
        Majority mean.
    mu1 : array_like of shape (d,), default (1.0, 0.0)
        Minority mean.
    cov : array_like of shape (d, d), optional
        The common covariance (default the identity); symmetric positive semi-definite.

    Returns
    -------
    Process
        Named "gaussian_classes".

    Raises
    ------
    ValueError
        If mu0 and mu1 are not 1-D arrays of one length >= 1, ``cov`` does not have shape
        (d, d), or the laws refuse the values (non-finite, not symmetric or not PSD).
    """
    mu0 = np.asarray(mu0, dtype=np.float64)
    mu1 = np.asarray(mu1, dtype=np.float64)
    if mu0.ndim != 1 or mu0.size == 0 or mu1.shape != mu0.shape:
        raise ValueError(f"mu0 and mu1 must be 1-D arrays of one length >= 1, got shapes {mu0.shape} and {mu1.shape}")
    d = mu0.size
    cov = np.eye(d) if cov is None else np.asarray(cov, dtype=np.float64)
    if cov.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {cov.shape}")
    return Process(
        "gaussian_classes",
        GaussianMixtureLaw(np.ones(1), mu0[None], cov[None]),
        GaussianMixtureLaw(np.ones(1), mu1[None], cov[None]),
    )


def tuned_alpha(a: float, b: float, c: float) -> float:
    """alpha = b s_b (1 - s_b) / (a s_a (1 - s_a) + b s_b (1 - s_b)), s_x = sigmoid(c x).

    THEORY.md section 6, study 2: with T = -a w.p. alpha, else b, this makes
    E[(sigmoid(cT) - Y) T | Y = k] = 0 for both classes, so theta = c e1 is stationary for each
    class risk (local symmetry).

    Parameters
    ----------
    a : float
        T's negative value is -a.
    b : float
        T's positive value.
    c : float
        The slope of P(Y = 1 | X) = sigmoid(c X_1).

    Returns
    -------
    float
        alpha.
    """
    sa, sb = expit(c * a), expit(c * b)
    wa, wb = a * sa * (1.0 - sa), b * sb * (1.0 - sb)
    return float(wb / (wa + wb))


def tuned_logistic_mixture(
    d: int = 20,
    a: float = 5.0,
    b: float = 1.0,
    c: float = 1.0,
    m: float = 2.5,
    shift_coords=(1, 2, 3),
) -> Process:
    """Study 2: X = T e1 + W with P(Y = 1 | X) = sigmoid(c X_1), sampled class by class.

    T = -a w.p. alpha (``tuned_alpha``), else b; W_1 = 0, W_j = N(0, 1) + s m on the 0-based
    ``shift_coords`` and N(0, 1) elsewhere, s = +-1 with probability 1/2, independent of T.
    Y depends on X only through T, so class k's law is the four-component Gaussian mixture over
    (t, s) with weights P(T = t | Y = k) / 2, P(T = t | Y = 1) proportional to
    P(T = t) sigmoid(c t), means t e1 + s m, and the singular covariance diag(0, 1, ..., 1).
    ``info`` reports alpha, the class prior P(Y = 1) and the imbalance P(Y = 0) / P(Y = 1).

    Parameters
    ----------
    d : int, default 20
        Dimension, an integer >= 2.
    a : float, default 5.0
        T's negative value is -a; a finite number > 0.
    b : float, default 1.0
        T's positive value, a finite number > 0.
    c : float, default 1.0
        The logistic slope, a finite number > 0.
    m : float, default 2.5
        The shift size on ``shift_coords``, finite.
    shift_coords : sequence of int, default (1, 2, 3)
        0-based coordinates in 1..d-1 that carry the shift s m.

    Returns
    -------
    Process
        Named "tuned_logistic_mixture", labels 0/1, ``info`` {"alpha", "prior1", "imbalance"}.

    Raises
    ------
    ValueError
        If ``d`` is not an integer >= 2, a, b or c is not a finite number > 0, m is not finite,
        or a shift coordinate lies outside 1..d-1.
    """
    d = _dimension(d, 2)
    a, b = _finite(a, "a", positive=True), _finite(b, "b", positive=True)
    c, m = _finite(c, "c", positive=True), _finite(m, "m")
    coords = tuple(int(j) for j in shift_coords)
    if any(not 1 <= j < d for j in coords):
        raise ValueError(
            f"shift_coords must be 0-based coordinates in 1..{d - 1} (coordinate 0 is T), got {shift_coords!r}"
        )
    alpha = tuned_alpha(a, b, c)
    t = np.array([-a, b])
    p_t = np.array([alpha, 1.0 - alpha])
    p_y1_t = expit(c * t)
    prior1 = float(p_t @ p_y1_t)
    shift = np.zeros(d)
    shift[list(coords)] = m
    cov = np.diag(np.r_[0.0, np.ones(d - 1)])
    means = np.array([ti * np.eye(d)[0] + s * shift for ti in t for s in (-1.0, 1.0)])
    covs = np.broadcast_to(cov, (4, d, d))

    def law(weight_t):
        return GaussianMixtureLaw(np.repeat(weight_t / weight_t.sum(), 2) / 2.0, means, covs)

    return Process(
        "tuned_logistic_mixture",
        law(p_t * (1.0 - p_y1_t)),
        law(p_t * p_y1_t),
        info={"alpha": alpha, "prior1": prior1, "imbalance": (1.0 - prior1) / prior1},
    )


def mixture_minority(d: int = 5, centre: float = 2.0, offset: float = 1.75) -> Process:
    """Study 6(a): majority N(0, I); minority the 50/50 mixture of N(centre e1 +- offset e2, I).

    Parameters
    ----------
    d : int, default 5
        Dimension, an integer >= 2.
    centre : float, default 2.0
        The minority components' coordinate along e1, finite.
    offset : float, default 1.75
        Their coordinates +-offset along e2, finite.

    Returns
    -------
    Process
        Named "mixture_minority", labels 0/1.

    Raises
    ------
    ValueError
        If ``d`` is not an integer >= 2 or ``centre`` or ``offset`` is not finite.
    """
    d = _dimension(d, 2)
    centre, offset = _finite(centre, "centre"), _finite(offset, "offset")
    e = np.eye(d)
    eye = np.broadcast_to(np.eye(d), (2, d, d))
    return Process(
        "mixture_minority",
        GaussianMixtureLaw(np.ones(1), np.zeros((1, d)), np.eye(d)[None]),
        GaussianMixtureLaw(
            np.full(2, 0.5),
            np.array([centre * e[0] + offset * e[1], centre * e[0] - offset * e[1]]),
            eye,
        ),
    )


def noisy_ring(
    d: int = 5,
    centre=(4.8, 0.0),
    radius: float = 2.2,
    radial_sd: float = 0.3,
    rho: float = 0.5,
    shift=(4.8, 0.0),
    shift_weight: float = 0.3,
    plane_sd: float = 0.0,
    off_plane_sd: float = 1.0,
    mc_size: int = 200_000,
    seed: int = 0,
) -> Process:
    """Study 6(b), a design no linear rule fits.

    Minority: in coordinates 1-2 the point centre + R (cos A, sin A) + plane_sd (E1, E2),
    A ~ Unif[0, 2 pi), R = radius + radial_sd N(0, 1) (Gaussian radial noise: a ring of width
    ~ 2 radial_sd), E1, E2 ~ N(0, 1) (in-plane noise, radial and tangential alike; drawn after
    the other coordinates, and only when plane_sd > 0); coordinates 3..d are off_plane_sd N(0, 1).
    The authors' study 6b (AUTHORS_DESIGNS.md B) is radial_sd = 0.12, plane_sd = 0.08,
    off_plane_sd = 0.08 and shift = (1.5, 0): a thin ring, nearly flat off its plane. Its
    moments come from an ``EmpiricalLaw`` of ``mc_size`` exact draws seeded by ``seed``;
    sampling is exact.
    Majority: the Gaussian mixture (1 - shift_weight) N(0, C) + shift_weight N(shift, C), with
    C the identity except corr(X_1, X_2) = rho. The shifted component sits by default at the
    ring's centre, inside the ring, so the minority surrounds part of the majority.

    Parameters
    ----------
    d : int, default 5
        Dimension, an integer >= 2.
    centre : pair of float, default (4.8, 0.0)
        The ring's centre in coordinates 1-2.
    radius : float, default 2.2
        The ring's mean radius, a finite number > 0.
    radial_sd : float, default 0.3
        SD of the radial noise, finite.
    rho : float, default 0.5
        corr(X_1, X_2) in the majority, in (-1, 1).
    shift : pair of float, default (4.8, 0.0)
        Coordinates 1-2 of the majority's shifted component (zero elsewhere).
    shift_weight : float, default 0.3
        The shifted component's weight, in [0, 1].
    plane_sd : float, default 0.0
        SD of the in-plane noise added to coordinates 1-2, >= 0.
    off_plane_sd : float, default 1.0
        SD of coordinates 3..d, > 0.
    mc_size : int, default 200_000
        Fixed draws behind the minority's moments (>= 2).
    seed : int, default 0
        Seed of those draws.

    Returns
    -------
    Process
        Named "noisy_ring", labels 0/1.

    Raises
    ------
    ValueError
        If ``d`` is not an integer >= 2, ``centre`` or ``shift`` is not a pair, ``radius`` is
        not a finite number > 0, radial_sd, rho, shift_weight, plane_sd or off_plane_sd is not
        finite or out of range, or ``mc_size`` is not an integer >= 2.
    """
    d = _dimension(d, 2)
    centre = np.asarray(centre, dtype=np.float64)
    shift2 = np.asarray(shift, dtype=np.float64)
    if centre.shape != (2,) or shift2.shape != (2,):
        raise ValueError(
            f"centre and shift must be pairs (coordinates 1-2), got shapes {centre.shape} and {shift2.shape}"
        )
    radius = _finite(radius, "radius", positive=True)
    radial_sd = _finite(radial_sd, "radial_sd")
    rho = _finite(rho, "rho")
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho!r}")
    shift_weight = _finite(shift_weight, "shift_weight")
    if not 0.0 <= shift_weight <= 1.0:
        raise ValueError(f"shift_weight must lie in [0, 1], got {shift_weight!r}")
    plane_sd = _finite(plane_sd, "plane_sd")
    if plane_sd < 0:
        raise ValueError(f"plane_sd must be >= 0, got {plane_sd!r}")
    off_plane_sd = _finite(off_plane_sd, "off_plane_sd", positive=True)

    def ring(n, rng):
        angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
        r = radius + radial_sd * rng.standard_normal(n)
        out = rng.standard_normal((n, d))
        out[:, 2:] *= off_plane_sd
        out[:, 0] = centre[0] + r * np.cos(angle)
        out[:, 1] = centre[1] + r * np.sin(angle)
        if plane_sd > 0:
            out[:, :2] += plane_sd * rng.standard_normal((n, 2))
        return out

    C = np.eye(d)
    C[0, 1] = C[1, 0] = rho
    shifted_mean = np.zeros(d)
    shifted_mean[:2] = shift2
    majority = GaussianMixtureLaw(
        np.array([1.0 - shift_weight, shift_weight]),
        np.array([np.zeros(d), shifted_mean]),
        np.array([C, C]),
    )
    return Process("noisy_ring", majority, EmpiricalLaw(sampler=ring, n=mc_size, seed=seed))


def _heavy_tailed_rows(n: int, rng: np.random.Generator, shifts, lognormal_mean: float, df: float, outlier):
    """The unbent rows of ``bent_heavy_tailed``: (t, gaussian, latent) blocks, drawn in that order.

    t: (n, 3) Student-t(df) + shifts[0]; gaussian: (n, 3) N(0, 1) entries, each multiplied by
    outlier[1] with probability outlier[0], + shifts[1]; latent: (n, 4) N(lognormal_mean, 1.1^2),
    the log-normal coordinates before exp.
    """
    probability, scale = outlier
    t = rng.standard_t(df, size=(n, 3)) + shifts[0]
    gaussian = rng.standard_normal((n, 3))
    gaussian *= np.where(rng.random((n, 3)) < probability, scale, 1.0)
    gaussian += shifts[1]
    latent = lognormal_mean + 1.10 * rng.standard_normal((n, 4))
    return t, gaussian, latent


def bend(t: np.ndarray, gaussian: np.ndarray, latent: np.ndarray) -> None:
    """The minority's smooth bend of ``bent_heavy_tailed``, in place and in the spec's order.

    With t1 = t[:, 0], gate = sigmoid(2.2 (|t1| - 0.65)), s = 0.70 + 0.30 sigmoid(gaussian[:, 2])
    and tail = tanh(0.9 t1) gate s:
    t[:, 1] += 1.35 tanh(0.8 t1) s; t[:, 2] += 0.75 tanh(t[:, 1] - 0.45 t1);
    gaussian[:, 0] += 1.45 tail; gaussian[:, 1] += 0.80 tanh(t[:, 1]); latent[:, 0] += 0.75 tail;
    latent[:, 1] += 0.55 tanh(gaussian[:, 0]) (each right-hand side with the updates before it).
    """
    t1 = t[:, 0]
    gate = expit(2.2 * (np.abs(t1) - 0.65))
    s = 0.70 + 0.30 * expit(gaussian[:, 2])
    tail = np.tanh(0.9 * t1) * gate * s
    t[:, 1] += 1.35 * np.tanh(0.8 * t1) * s
    t[:, 2] += 0.75 * np.tanh(t[:, 1] - 0.45 * t1)
    gaussian[:, 0] += 1.45 * tail
    gaussian[:, 1] += 0.80 * np.tanh(t[:, 1])
    latent[:, 0] += 0.75 * tail
    latent[:, 1] += 0.55 * np.tanh(gaussian[:, 0])


def bent_heavy_tailed(
    df: float = 2.2,
    t_shift: float = 0.12,
    gaussian_shift: float = 0.16,
    lognormal_shift: float = 0.10,
    outlier_probability: float = 0.10,
    outlier_scale: float = 6.0,
    bent: bool = True,
    mc_size: int = 100_000,
    seed: int = 0,
) -> Process:
    """The network study's process (AUTHORS_DESIGNS.md section E), d = 10, sampled class-wise exactly.

    Each class: coordinates 1-3 Student-t with ``df`` degrees of freedom; 4-6 N(0, 1), each entry
    multiplied by ``outlier_scale`` with probability ``outlier_probability``; 7-10 log-normal
    exp(N(m, 1.10^2)). The majority has m = 0 and no shifts; the minority adds ``t_shift`` to the
    t coordinates, ``gaussian_shift`` to the Gaussian ones (after the outlier scaling), has
    m = ``lognormal_shift``, and is then smoothly bent (``bend``, applied to the latent
    log-normal coordinates before exp) unless ``bent`` is false. Both laws are ``EmpiricalLaw``
    with the exact sampler; their moments come from ``mc_size`` draws seeded by ``seed`` and
    (seed, 1).

    Parameters
    ----------
    df : float, default 2.2
        Degrees of freedom of the t coordinates, > 0.
    t_shift, gaussian_shift, lognormal_shift : float, default 0.12, 0.16, 0.10
        The minority's shifts (finite).
    outlier_probability : float, default 0.10
        Probability that a Gaussian entry is scaled, in [0, 1].
    outlier_scale : float, default 6.0
        The outliers' scale factor, finite.
    bent : bool, default True
        Whether the minority is bent.
    mc_size : int, default 100_000
        Fixed draws behind each law's moments (>= 2).
    seed : int, default 0
        Seed of those draws.

    Returns
    -------
    Process
        Named "bent_heavy_tailed", labels 0/1.

    Raises
    ------
    ValueError
        If ``df`` is not a finite number > 0, a shift or the outlier scale is not finite,
        ``outlier_probability`` is outside [0, 1], or ``mc_size`` is not an integer >= 2.
    """
    df = _finite(df, "df", positive=True)
    shifts = tuple(_finite(v, name) for v, name in ((t_shift, "t_shift"), (gaussian_shift, "gaussian_shift")))
    m1 = _finite(lognormal_shift, "lognormal_shift")
    outlier = (_finite(outlier_probability, "outlier_probability"), _finite(outlier_scale, "outlier_scale"))
    if not 0.0 <= outlier[0] <= 1.0:
        raise ValueError(f"outlier_probability must lie in [0, 1], got {outlier_probability!r}")

    def majority(n, rng):
        t, gaussian, latent = _heavy_tailed_rows(n, rng, (0.0, 0.0), 0.0, df, outlier)
        return np.hstack([t, gaussian, np.exp(latent)])

    def minority(n, rng):
        t, gaussian, latent = _heavy_tailed_rows(n, rng, shifts, m1, df, outlier)
        if bent:
            bend(t, gaussian, latent)
        return np.hstack([t, gaussian, np.exp(latent)])

    law0 = EmpiricalLaw(sampler=majority, n=mc_size, seed=np.random.SeedSequence(seed))
    law1 = EmpiricalLaw(sampler=minority, n=mc_size, seed=np.random.SeedSequence(seed, spawn_key=(1,)))
    return Process("bent_heavy_tailed", law0, law1)


def local_g1(b: float) -> float:
    """g_phi's first coordinate in ``unequal_covariance``: g1(b) = 2 (5 b - (1 + b^2)) / (6 + b^2).

    Parameters
    ----------
    b : float
        The minority's mean on coordinate 1.

    Returns
    -------
    float
        g1(b); zero at b0 = (5 - sqrt 21) / 2.
    """
    return 2.0 * (5.0 * b - (1.0 + b * b)) / (6.0 + b * b)


def local_b(g1: float) -> float:
    """The b of ``unequal_covariance`` with g1(b) = ``g1``, on the branch through the null b0.

    g1(b) = c is (2 + c) b^2 - 10 b + (2 + 6 c) = 0; the root that is b0 = (5 - sqrt 21) / 2
    at c = 0 is b = (10 - sqrt(100 - 4 (2 + c)(2 + 6 c))) / (2 (2 + c)), real for c in about
    (-1.83, 0.86).

    Parameters
    ----------
    g1 : float
        The target c.

    Returns
    -------
    float
        b.

    Raises
    ------
    ValueError
        If no real b on that branch gives c.
    """
    c = _finite(g1, "g1")
    disc = 100.0 - 4.0 * (2.0 + c) * (2.0 + 6.0 * c)
    if c <= -2.0 or disc < 0:
        raise ValueError(f"no minority mean b gives g1 = {c!r}: the local alternative is too far from the null")
    return (10.0 - math.sqrt(disc)) / (2.0 * (2.0 + c))


def unequal_covariance(d: int = 5, b=None, h: float = 0.0, n1=None, kappa=None) -> Process:
    """The symmetry test's design (AUTHORS_DESIGNS.md section D): unequal class covariances.

    Coordinates of U0, U1 are i.i.d. Unif[-sqrt 3, sqrt 3] (mean 0, variance 1). Majority
    X0 = -e1 + D0 U0 with D0 = diag(2, 1, ..., 1); minority X1 = b e1 + U1. Labels are -1/2 and
    1/2: with the squared loss without intercept, l = (x' theta - (y - 1/2))^2 for labels 0/1.
    Then theta* = ((1 + b) / (2 (6 + b^2)), 0, ..., 0) and g_phi = (g1(b), 0, ..., 0),
    g1 = ``local_g1``, which vanishes at the null b0 = (5 - sqrt 21) / 2.

    Local alternatives: without ``b``, b solves g1(b) = h / sqrt(n_eff) (``local_b``) with
    n_eff = n0 n1 / (n0 + n1) and n0 = round(kappa n1) (simstudy's design.n0); h = 0 is the null
    whatever n1 and kappa.

    Parameters
    ----------
    d : int, default 5
        Dimension, an integer >= 1.
    b : float, optional
        The minority's mean on coordinate 1; default from ``h``.
    h : float, default 0.0
        The local alternative's size; only without ``b``.
    n1 : int, optional
        The minority's size, needed when h != 0.
    kappa : float, optional
        n0 / n1, needed when h != 0.

    Returns
    -------
    Process
        Named "unequal_covariance", labels (-1/2, 1/2), ``info`` {"b": b, "g1": g1(b)}.

    Raises
    ------
    ValueError
        If ``d`` is not an integer >= 1, both ``b`` and a nonzero ``h`` are given, h != 0
        without n1 and kappa (n1 >= 1, kappa > 0), or no b gives the local alternative.
    """
    d = _dimension(d)
    h = _finite(h, "h")
    if b is not None:
        if h != 0.0:
            raise ValueError(f"give the minority's mean b or the local alternative h, not both (b={b!r}, h={h!r})")
        b = _finite(b, "b")
    elif h == 0.0:
        b = (5.0 - math.sqrt(21.0)) / 2.0
    else:
        if n1 is None or kappa is None:
            raise ValueError("a local alternative h != 0 needs n1 and kappa (n_eff = n0 n1 / (n0 + n1))")
        n1 = _finite(n1, "n1", positive=True)
        n0 = round(_finite(kappa, "kappa", positive=True) * n1)
        try:
            b = local_b(h / math.sqrt(n0 * n1 / (n0 + n1)))
        except ValueError:
            raise ValueError(
                f"h = {h!r} is too far from the null at n1 = {n1:g}, n0 = {n0}: no minority mean b gives it"
            ) from None
    scale0 = np.ones(d)
    scale0[0] = 2.0
    mean0, mean1 = np.zeros(d), np.zeros(d)
    mean0[0], mean1[0] = -1.0, b
    return Process(
        "unequal_covariance",
        SymmetricNoiseLaw(mean0, "uniform_cube", scale0),
        SymmetricNoiseLaw(mean1, "uniform_cube"),
        labels=(-0.5, 0.5),
        info={"b": b, "g1": local_g1(b)},
    )


PROCESSES: dict[str, Callable[..., Process]] = {
    "symmetric_mean_shift": symmetric_mean_shift,
    "gaussian_classes": gaussian_classes,
    "tuned_logistic_mixture": tuned_logistic_mixture,
    "mixture_minority": mixture_minority,
    "noisy_ring": noisy_ring,
    "unequal_covariance": unequal_covariance,
    "bent_heavy_tailed": bent_heavy_tailed,
}
"""Constructors ``(**kwargs) -> Process`` by catalog name."""


def make_process(name: str, **kwargs) -> Process:
    """Build the catalog process ``name`` (see ``PROCESSES``).

    Parameters
    ----------
    name : str
        A key of ``PROCESSES``.
    **kwargs
        Options of that constructor.

    Returns
    -------
    Process
        ``PROCESSES[name](**kwargs)``.

    Raises
    ------
    ValueError
        If the name is unknown, the options do not fit the constructor's signature, or the
        constructor refuses their values.
    """
    return process_constructor(name, **kwargs)(**kwargs)


def process_constructor(name: str, **kwargs) -> Callable[..., Process]:
    """The constructor of catalog process ``name``, once ``kwargs`` are known to fit its
    signature (``make_process`` without building: a section that is never built is still
    checked).

    Raises
    ------
    ValueError
        If the name is unknown or the options do not fit the constructor's signature
        (``simstudy.options.UnknownOption`` for an option it does not take).
    """
    try:
        constructor = PROCESSES[name]
    except KeyError:
        raise ValueError(f"unknown process {name!r}; choose one of {sorted(PROCESSES)}") from None
    check_options(f"process {name!r}", constructor, **kwargs)
    return constructor


__all__ = [
    "PROCESSES",
    "Process",
    "bend",
    "bent_heavy_tailed",
    "gaussian_classes",
    "local_b",
    "local_g1",
    "make_process",
    "process_constructor",
    "mixture_minority",
    "noisy_ring",
    "symmetric_mean_shift",
    "tuned_alpha",
    "tuned_logistic_mixture",
    "unequal_covariance",
]
