"""Regenerate one replication of a finished job from its config alone and compare it with the
stored rows: python scripts/replicate.py <job output dir> <replication index>

Works for every kind of job (a curve cell, study 6, and study 7, where the index is the split).
Prints the regenerated rows and exits 0 when they equal the job's replications.parquet rows
bit for bit, 1 otherwise, and 2 when the directory is not a finished job or the index is out of
range."""

import argparse
import sys

import pandas as pd

from simstudy.app import regenerate_replication, same_rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job_dir", help="a finished job's output directory (config.yaml, summary.json, rows)")
    parser.add_argument("replication", type=int, help="the replication (the split, for study 7) to regenerate")
    args = parser.parse_args()
    try:
        rows, stored = regenerate_replication(args.job_dir, args.replication)
    except ValueError as err:
        print(f"replicate: {err}", file=sys.stderr)
        return 2
    with pd.option_context("display.max_columns", 12, "display.width", 160):
        print(rows)
    same = same_rows(rows, stored)
    print(f"identical to the stored rows: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
