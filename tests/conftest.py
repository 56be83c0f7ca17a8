"""Strict numerics for every test: float64 JAX, no silent dtype promotion, warnings are errors
(pyproject's filterwarnings), matplotlib headless."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

import simstudy  # noqa: E402,F401  (enables float64)

jax.config.update("jax_numpy_dtype_promotion", "strict")

from hypothesis import settings  # noqa: E402

# CI draws the same examples on every run, so that a red build is reproducible
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
