"""The typed schema of a job's config: the error a bad value raises, the validated run config,
and its hash.

The lowest layer of simstudy's config: ``simstudy.config`` validates a composed config into a
``RunConfig`` (re-exporting these names, so ``simstudy.config.ConfigError`` is this class), and
the modules that build and run studies import them from here, below the validators that load
them by study kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.errors import InstantiationException


class ConfigError(ValueError):
    """A bad config value: ``key``, ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


@dataclass(frozen=True)
class DesignConfig:
    n1: int
    n0: int
    gammas: tuple[float, ...]
    reps: int
    chunk: int


@dataclass(frozen=True)
class ModelConfig:
    family: str
    intercept: bool
    ridge: float


@dataclass(frozen=True)
class RunConfig:
    """A validated job config. ``dgp`` and ``generator`` keep their options as plain dicts."""

    study: str
    figure: str
    seed: int
    dgp: dict
    generator: dict
    model: ModelConfig
    design: DesignConfig
    theory_refits: int
    verdict_alpha: float = 0.05
    """Family-wise error rate of the verdict (``simstudy.engine.verdict``)."""
    figures_dir: str | None = None
    workers: int | None = None
    """Replications fitted at once (threads); None: ``simstudy.engine.default_workers()``."""
    extra: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """Everything that determines the job's numbers (not where its outputs go, nor how many
        threads compute them)."""
        out = asdict(self)
        out.pop("figures_dir")
        out.pop("workers")
        return out


def config_hash(run: RunConfig) -> str:
    """SHA-256 of everything that determines a job's numbers (``RunConfig.identity``)."""
    return hashlib.sha256(json.dumps(run.identity(), sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def bad_value(key: str, value):
    """Turn what building from a validated config raises for a bad value (ValueError,
    TypeError, overflow, a numerical RuntimeWarning, a size that exhausts memory, a plug-in
    target that cannot be imported or instantiated) into a ConfigError naming ``key``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # an overflow is a bad value, not a warning
            yield
    except ConfigError:
        raise
    except (ValueError, TypeError, ArithmeticError, MemoryError, RuntimeWarning) as err:
        raise ConfigError(key, value, str(err) or type(err).__name__) from None
    except (ImportError, InstantiationException) as err:  # a plug-in's _target_ (simstudy.plugins)
        raise ConfigError(key, value, (str(err).strip() or type(err).__name__).splitlines()[0]) from None
