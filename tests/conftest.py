"""Strict numerics for every test: float64 JAX, no silent dtype promotion, warnings are errors
(pyproject's filterwarnings), matplotlib headless.

Property tests (hypothesis) draw the same examples on every run, in CI or not, so that the
suite passes or fails the same way each time. Exploration is opt-in: ``make test-explore``, or
``SIMSTUDY_HYPOTHESIS=explore`` (new examples each run; ``SIMSTUDY_HYPOTHESIS_EXAMPLES`` of
them per test, 200 by default). A failure found that way prints the blob that replays it
(``@reproduce_failure``).
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# the suite's tolerances are CPU float64 ones: it runs there with or without a GPU
os.environ["JAX_PLATFORMS"] = "cpu"
# every session starts with an empty compile cache of its own (simstudy.compile_cache), which its
# command-line subprocesses inherit: the suite neither reads nor fills the user's cache
os.environ["SIMSTUDY_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="simstudy-compile-cache-")
atexit.register(shutil.rmtree, os.environ["SIMSTUDY_COMPILE_CACHE"], ignore_errors=True)

# optax imports absl.logging, whose handler keeps the sys.stderr of the moment it is imported:
# imported inside a test, that is the test's capture stream, closed when the test ends, and a
# later in-process Hydra run that logs through it dies with "I/O operation on closed file".
# Imported here, it keeps the session's stream.
import jax  # noqa: E402
import optax  # noqa: E402,F401

import simstudy  # noqa: E402,F401  (enables float64)

jax.config.update("jax_numpy_dtype_promotion", "strict")

from hypothesis import settings  # noqa: E402

settings.register_profile("derandomized", derandomize=True, max_examples=25, print_blob=True)
settings.register_profile(
    "explore",
    derandomize=False,
    print_blob=True,
    max_examples=int(os.environ.get("SIMSTUDY_HYPOTHESIS_EXAMPLES", "200")),
)
settings.load_profile(os.environ.get("SIMSTUDY_HYPOTHESIS", "derandomized"))
