"""Study 6(b) (``study=vtss_ring``): seconds per replication and per selector, with the size
selectors' validations shared (``selection.SharedValidations``, what the study runs) and, in
the same process and interleaved with it, with every selector validating on its own (the
study before the sharing).

Run: ``.venv/bin/python benchmarks/bench_selection.py`` (``--reps`` replications per variant
and round, ``--rounds`` rounds, ``--study`` another study-6 preset). The first replication is
run once beforehand, so that compilation is not timed. Both variants must give the same rows,
bit for bit: the script checks it and says so. As in a job, numpy's BLAS runs on one thread.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from unittest import mock

import numpy as np
from hydra import compose, initialize_config_dir

import simstudy  # noqa: F401
from simstudy.app import CONFIG_PATH
from simstudy.config import validate
from simstudy.engine import one_blas_thread
from simstudy.selection import CostSensitiveClassifier, ReweightedClassifier, SharedValidations, VTSSClassifier
from simstudy.studies.vtss import build_vtss_cell, vtss_replication

VARIANTS = ("shared", "separate")


def separate_validations():
    """Every selector validates on its own, as before ``SharedValidations``."""
    return mock.patch.object(SharedValidations, "curve", lambda self, est, X, y, gammas, validate: validate())


def timed_fits(seconds: dict):
    """Patches that add each selector's fit time to ``seconds`` under its class (and variant)."""
    patches = []
    for cls in (VTSSClassifier, CostSensitiveClassifier, ReweightedClassifier):
        fit = cls.fit

        def timed(self, *args, fit=fit, **kwargs):
            start = time.perf_counter()
            try:
                return fit(self, *args, **kwargs)
            finally:
                label = type(self).__name__
                if hasattr(self, "variant"):
                    label += f"[{self.variant}, {self.symmetry_test}/{self.gqs_rule}]"
                seconds[label] += time.perf_counter() - start

        patches.append(mock.patch.object(cls, "fit", timed))
    return patches


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="vtss_ring")
    parser.add_argument("--reps", type=int, default=2, help="replications per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=[f"study={args.study}"])
    vc = build_vtss_cell(validate(cfg))
    totals = {v: [] for v in VARIANTS}
    parts = {v: defaultdict(float) for v in VARIANTS}
    rows = {}
    with one_blas_thread():
        vtss_replication(vc, 0)
        for round_ in range(args.rounds):
            for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                patches = timed_fits(parts[variant])
                if variant == "separate":
                    patches.append(separate_validations())
                for patch in patches:
                    patch.start()
                try:
                    for r in range(1, 1 + args.reps):
                        start = time.perf_counter()
                        rows[variant, r] = vtss_replication(vc, r)
                        totals[variant].append(time.perf_counter() - start)
                finally:
                    for patch in patches:
                        patch.stop()
    n = args.reps * args.rounds
    for variant in VARIANTS:
        seconds = np.array(totals[variant])
        print(
            f"{variant}: {seconds.mean():.1f} s per replication (min {seconds.min():.1f}, max {seconds.max():.1f}, "
            f"{n} replications)"
        )
        for label, total in sorted(parts[variant].items(), key=lambda item: -item[1]):
            print(f"    {label}: {total / n:.1f} s")
    ratio = np.mean(totals["separate"]) / np.mean(totals["shared"])
    same = all(rows["shared", r].equals(rows["separate", r]) for r in range(1, 1 + args.reps))
    print(f"separate / shared: {ratio:.2f}x; rows bit-identical: {same}")


if __name__ == "__main__":
    main()
