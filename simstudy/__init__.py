"""simstudy: simulation studies for synthetic minority augmentation in imbalanced classification.

Importing the package switches JAX to float64 before any array exists; every other module
imports from here, so this is the one place where precision is set.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
