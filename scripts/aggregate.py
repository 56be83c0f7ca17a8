"""Aggregate a sweep directory: python scripts/aggregate.py multirun/<study> [--figures-dir figures]

Combines the cells of the sweep last run into the directory (its multirun.yaml) into
cells/curves tables (parquet, CSV), draws the study's figure and writes report.md; with --all,
every job summary found below the directory instead. Exits 1 when any cell failed, is missing
or is unreadable, and 2 when the directory holds no sweep."""

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from simstudy.app import aggregate_sweep, planned_cells
from simstudy.composition import compose
from simstudy.config import ConfigError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("sweep_dir")
    parser.add_argument("--figures-dir", default=None, help="also copy the figure here")
    parser.add_argument(
        "--all", action="store_true", help="every summary below the directory, not only the last sweep's cells"
    )
    args = parser.parse_args()
    sweep_dir = Path(args.sweep_dir)
    planned = None
    try:
        if not args.all:
            sweep = OmegaConf.load(sweep_dir / "multirun.yaml")
            hydra_overrides = list(sweep.hydra.overrides.hydra)  # e.g. a user's hydra.searchpath
            planned = planned_cells(
                sweep.hydra.sweeper.params, sweep.hydra.overrides.task, lambda job: compose([*hydra_overrides, *job])
            )
        return 1 if aggregate_sweep(sweep_dir, planned, args.figures_dir) else 0
    except (OSError, ValueError) as err:  # no sweep there, an unreadable multirun.yaml, a config error
        kind = "config error" if isinstance(err, ConfigError) else type(err).__name__
        print(f"aggregate: {sweep_dir}: {kind}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
