"""Strict numerics for every test: float64 JAX, no silent dtype promotion, warnings are errors
(pyproject's filterwarnings), matplotlib headless."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

import simstudy  # noqa: E402,F401  (enables float64)

jax.config.update("jax_numpy_dtype_promotion", "strict")
