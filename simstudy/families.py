"""GLM families: the per-observation loss as a function of the linear predictor.

Every family exposes three functions of ``(eta, y)`` with ``eta = z' theta``:

* ``loss(eta, y)``      -- l(theta; z, y)
* ``score(eta, y)``     -- d l / d eta, so that grad_theta l = score * z
* ``curvature(eta, y)`` -- d^2 l / d eta^2 (the Newton working weight), so that
  hess_theta l = curvature * z z'

All three are elementwise jax.numpy functions, so they broadcast, vmap and differentiate.
The losses are those of THEORY.md section 1: squared loss (y - eta)^2 and the negative
Bernoulli log-likelihood under the logit and probit links. ``probability(eta)`` (numpy) is the
model's P(y = 1 | x), for predictions and metrics.

A family is everything simstudy needs to know about a loss: adding one is one ``Family`` here,
or, from a user's own package, a module-level Family named by its dotted path
(``model.family=mypkg.CLOGLOG``; ``get_family``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from jax.scipy.stats import norm
from scipy.special import expit, ndtr

import simstudy  # noqa: F401  (float64 before any array)

Elementwise = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class Family:
    """A GLM loss: name, the three elementwise functions, and whether labels are 0/1.

    Two families are equal, and hash alike, exactly when all five fields are: the functions
    compare by identity. A Family is a static argument of jitted functions and an lru_cache
    key, so equality must imply the same loss: a family that only shares a built-in's name
    gets its own compiled code, while each built-in (one object) is compiled once.

    Parameters
    ----------
    name : str
        The family's name (``"squared"``, ``"logistic"`` and ``"probit"`` for the built-ins).
    loss : callable
        ``loss(eta, y) -> ndarray``, the per-observation loss l as an elementwise jax.numpy
        function of the linear predictor ``eta`` and the label ``y`` (broadcast together).
    score : callable
        ``score(eta, y) -> ndarray``, d l / d eta, elementwise.
    curvature : callable
        ``curvature(eta, y) -> ndarray``, d^2 l / d eta^2 (the Newton working weight),
        elementwise.
    binary : bool
        True when y must be 0/1 and a linear rule can separate the sample.
    probability : callable
        ``probability(eta) -> ndarray``, the model's P(y = 1 | x) at linear predictors ``eta``
        (a numpy function): the inverse link of a binary family.
    """

    name: str
    loss: Elementwise
    score: Elementwise
    curvature: Elementwise
    binary: bool
    """True when y must be 0/1 and a linear rule can separate the sample."""
    probability: Callable[[np.ndarray], np.ndarray]
    """P(y = 1 | x) from eta (numpy)."""


def _squared_loss(eta, y):
    return (y - eta) ** 2


def _squared_score(eta, y):
    return -2.0 * (y - eta)


def _squared_curvature(eta, y):
    return jnp.full_like(eta + y, 2.0)


def _logistic_loss(eta, y):
    # log(1 + e^eta) - y eta = log1p(e^-|eta|) + max(eta, 0) - y eta: finite for any eta; the
    # three logistic functions share e^-|eta| so a fused evaluation computes it once
    return jnp.log1p(jnp.exp(-jnp.abs(eta))) + jnp.maximum(eta, 0.0) - y * eta


def _logistic_score(eta, y):
    e = jnp.exp(-jnp.abs(eta))
    return jnp.where(eta >= 0, 1.0, e) / (1.0 + e) - y


def _logistic_curvature(eta, y):
    # p (1 - p) = e^-|eta| / (1 + e^-|eta|)^2, exact in the tails
    e = jnp.exp(-jnp.abs(eta))
    return e / (1.0 + e) ** 2 + 0.0 * y


def _mills(t):
    """Inverse Mills ratio phi(t) / Phi(t), computed in log space."""
    return jnp.exp(norm.logpdf(t) - log_ndtr(t))


def _probit_loss(eta, y):
    return -(y * log_ndtr(eta) + (1.0 - y) * log_ndtr(-eta))


def _probit_score(eta, y):
    return -y * _mills(eta) + (1.0 - y) * _mills(-eta)


def _probit_curvature(eta, y):
    # d^2/deta^2 [-log Phi(eta)] = m(eta) (eta + m(eta)),  m = phi/Phi; mirror for y = 0
    m1 = _mills(eta)
    m0 = _mills(-eta)
    return y * m1 * (eta + m1) + (1.0 - y) * m0 * (m0 - eta)


def _clipped(eta):
    """A linear probability model's P(y = 1 | x): eta clipped to [0, 1] (squared loss on 0/1 labels)."""
    return np.clip(eta, 0.0, 1.0)


SQUARED = Family("squared", _squared_loss, _squared_score, _squared_curvature, binary=False, probability=_clipped)
LOGISTIC = Family("logistic", _logistic_loss, _logistic_score, _logistic_curvature, binary=True, probability=expit)
PROBIT = Family("probit", _probit_loss, _probit_score, _probit_curvature, binary=True, probability=ndtr)

FAMILIES = {f.name: f for f in (SQUARED, LOGISTIC, PROBIT)}


def get_family(name: str | Family) -> Family:
    """Look a family up by name; a Family passes through.

    Parameters
    ----------
    name : str or Family
        A key of ``FAMILIES`` (``"squared"``, ``"logistic"`` or ``"probit"``), the dotted path
        of a module-level Family in a user's package (``"mypkg.CLOGLOG"``), or a Family.

    Returns
    -------
    Family
        The family of that name, or ``name`` itself when it is a Family.

    Raises
    ------
    ValueError
        If ``name`` names no built-in family and no importable Family.
    """
    if isinstance(name, Family):
        return name
    if isinstance(name, str) and name in FAMILIES:
        return FAMILIES[name]
    allowed = f"choose one of {sorted(FAMILIES)} or the dotted path of a simstudy.families.Family"
    module, _, attribute = name.rpartition(".") if isinstance(name, str) else ("", "", "")
    try:
        family = getattr(importlib.import_module(module), attribute) if module else None
    except (ImportError, AttributeError):
        family = None
    if not isinstance(family, Family):
        raise ValueError(f"unknown family {name!r}; {allowed}")
    return family
