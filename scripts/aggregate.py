"""Aggregate a sweep directory: python scripts/aggregate.py multirun/<study> [--figures-dir figures]

Combines every job's summary.json below the directory into cells/curves tables (parquet, CSV),
draws the study's figure and writes report.md. Exits 1 when any cell failed."""

import argparse
import sys

from simstudy.aggregate import aggregate, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--figures-dir", default=None, help="also copy the figure here")
    parser.add_argument("--kind", default=None, help="figure kind (default: the study's)")
    args = parser.parse_args()
    try:
        cells = aggregate(args.sweep_dir, figures_dir=args.figures_dir, kind=args.kind)
    except FileNotFoundError as err:
        print(f"aggregate: {err}", file=sys.stderr)
        return 2
    n_failed = failures(cells)
    print(f"aggregated {len(cells)} cells into {args.sweep_dir} ({n_failed} failed)")
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
