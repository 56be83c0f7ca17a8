"""Record every curve study's numbers at small R, bit for bit, before a refactor.

For each curve study preset (``PRESETS``) one job runs as ``python -m simstudy`` runs it
(``simstudy.studies.job.run_job``) with the small design of ``SMALL``: 3 replications, a 4-point gamma
grid, 4 theory refits. Recorded, as exact hex floats (``float.hex``): the replications'
excess and theta columns, the population theta*, and the theory's ``theory_excess``,
``population_excess``, refined excess and 201-point theory grid. A refactor that only moves
code keeps them identical; ``tests/test_reference_numbers.py`` compares the current code's
values with the recording exactly.

    JAX_PLATFORMS=cpu .venv/bin/python scripts/record_reference_numbers.py

rewrites ``tests/data/reference_numbers.json``: do it only when a change of numbers is meant.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from simstudy.composition import compose
from simstudy.config import validate
from simstudy.studies.job import run_job

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference_numbers.json"

PRESETS = ("quickstart", "ls_symmetric", "logit_symmetric", "asym_biased", "asym_consistent", "alignment_map")
"""The curve studies of conf/study (one theory-against-simulation cell each)."""
SMALL = ("design.reps=3", "design.gammas=[0.0,0.5,1.0,2.0]", "theory.refits=4", "figures_dir=null", "workers=1")
"""Small R, few sizes, no figure copy outside the job folder; ``workers`` does not change numbers."""
SUMMARY_KEYS = ("theta_star", "population_excess", "theory_excess", "theory_excess_refined")
GRID_KEYS = ("theory_excess", "population_excess")


def _hex(values) -> list | None:
    """Floats as exact hex strings (None stays None: a missing or non-finite summary number)."""
    if values is None:
        return None
    return [None if v is None else float(v).hex() for v in values]


def cell_numbers(preset: str, out_dir: Path) -> dict:
    """One preset's job at the small design, its numbers as hex strings by name."""
    run = validate(compose([f"study={preset}", *SMALL]))
    summary = run_job(run, out_dir, "reference: numbers\n")
    rows = pd.read_parquet(out_dir / "replications.parquet")
    numbers = {key: _hex(summary[key]) for key in SUMMARY_KEYS}
    numbers.update({f"theory_grid.{key}": _hex(summary["theory_grid"][key]) for key in GRID_KEYS})
    thetas = sorted(c for c in rows.columns if c == "excess" or c.startswith("theta_"))
    numbers.update({f"replications.{c}": _hex(rows[c].tolist()) for c in thetas})
    return numbers


def reference_numbers() -> dict:
    """{preset: {name: [hex float, ...]}} for every preset in PRESETS."""
    with tempfile.TemporaryDirectory() as tmp:
        return {preset: cell_numbers(preset, Path(tmp) / preset) for preset in PRESETS}


def main() -> None:
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(reference_numbers(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
