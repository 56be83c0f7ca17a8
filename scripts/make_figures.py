"""Regenerate every figure of THEORY.md section 6 into figures/ (PNG and PDF) at the paper's
scale (R = 100), plus figures/REPORT.md listing every cell's verdict.

python scripts/make_figures.py [--only asym_biased ...] [--launcher local_joblib] [--reps 100]

Each sweep runs as a Hydra multirun into multirun/<study>/ (resumable: rerunning skips finished
cells) and is aggregated into figures/<study>.{png,pdf}. The alignment sweeps of EXPLORED are
then drawn on the theory's map by the explorer (figures/<study>_explore.{png,pdf}), and its
table of agreement by regime joins REPORT.md. The diagnostics studies (the symmetry test's size
and power, the GQS decision) run at the R of SCALE, below the authors' 5000 / 2000 because of
the bootstrap's cost; their rates tables join REPORT.md.

It writes into the checkout it belongs to (multirun/, outputs/ and figures/ beside scripts/),
whatever the working directory. REPORT.md is rebuilt from the sweeps and jobs found there,
so with --only it also lists the other studies run earlier in that checkout."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from simstudy.studies import study_of
from simstudy.studies.diagnostics import sweep_report

SWEEPS = (
    "asym_biased",
    "asym_consistent",
    "asym_consistent_vtss",
    "alignment_map",
    "alignment_dense",
    "alignment_logistic",
    "ls_symmetric",
    "logit_symmetric",
    "symmetry_test_size",
    "symmetry_test_power",
    "gqs_calibration",
    "gqs_ring",
)
EXPLORED = {"alignment_dense": [], "alignment_logistic": ["explore.magnitudes.stop=0.3", "explore.angles.num=37"]}
"""Sweeps drawn on the explorer's map, with the explorer's options for their design (a logistic
map costs about 20 ms a cell, so it gets a coarser grid)."""
SELECTION_STUDIES = ("vtss_linear", "vtss_ring", "vtss_ring_authors", "real_data", "real_data_authors", "mlp_nonsyn")
DIAGNOSTIC_CELLS = ("symmetry_test_ls", "symmetry_test_logit")
"""Single cells of study.kind diagnostics, run into outputs/<study>/figures (a fixed folder,
so a rerun resumes) and tabled in REPORT.md."""
SCALE = {
    # the paper's R = 100 where a preset's default is smaller to keep a single run short
    "vtss_ring": ["design.reps=100"],
    "vtss_ring_authors": ["design.reps=100"],
    # the authors' real-data protocol on all four datasets runs for a day or more on 2 cores
    # (one caravan split about 11 min): make figures runs the two quick ones at R = 20;
    # `python -m simstudy study=real_data_authors` runs the whole design
    "real_data_authors": ["design.reps=20", "data.datasets=[nwtco,default]"],
    "mlp_nonsyn": ["design.reps=100"],
    # the bootstrap's cost: R below the authors' 5000 / 2000 (MCSE 0.0069 / 0.0126 at a rate
    # of 0.05); design.reps=5000 (2000) on the command line runs their scale
    "symmetry_test_size": ["design.reps=1000"],
    "symmetry_test_power": ["design.reps=300"],
    "symmetry_test_logit": ["design.reps=500"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, metavar="STUDY", help="a subset of the studies")
    parser.add_argument("--launcher", default="basic", help="hydra/launcher preset")
    parser.add_argument("--reps", type=int, default=None, help="override design.reps")
    parser.add_argument("--report-only", action="store_true", help="only rebuild figures/REPORT.md")
    args = parser.parse_args()
    known = SWEEPS + SELECTION_STUDIES + DIAGNOSTIC_CELLS
    unknown = [name for name in args.only or () if name not in known]
    if unknown:
        print(f"make_figures: --only {unknown[0]}: not one of {', '.join(known)}", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    (root / "figures").mkdir(exist_ok=True)
    status = 0  # the worst exit status of the commands run (1 for a failed cell, 2 for bad input)
    for name in [] if args.report_only else args.only or known:
        multirun = name in SWEEPS
        cmd = [sys.executable, "-m", "simstudy"] + (["-m", f"sweep={name}"] if multirun else [f"study={name}"])
        cmd += [f"hydra/launcher={args.launcher}", "figures_dir=figures"]
        if name in DIAGNOSTIC_CELLS:
            cmd.append(f"hydra.run.dir=outputs/{name}/figures")
        if args.reps is not None:
            cmd.append(f"design.reps={args.reps}")
        else:
            cmd += SCALE.get(name, [])
        print("+", " ".join(cmd), flush=True)
        status = max(status, _exit_status(subprocess.call(cmd, cwd=root)))
        if name in EXPLORED:
            explore = [sys.executable, "-m", "simstudy.explore", f"study={name}", "figures_dir=figures"]
            explore += [f"explore.overlay=multirun/{name}", f"hydra.run.dir=outputs/explore/{name}/figures"]
            explore += EXPLORED[name]
            print("+", " ".join(explore), flush=True)
            status = max(status, _exit_status(subprocess.call(explore, cwd=root)))
    reports = sorted((root / "multirun").glob("*/report.md"))
    text = "# Verdicts of every study cell\n\n" + "\n".join(
        r.read_text().replace("\n## ", "\n### ").replace("# Sweep report", f"## {r.parent.name}") for r in reports
    )
    cells = [
        json.loads(p.read_text())
        for name in DIAGNOSTIC_CELLS
        for p in (root / "outputs" / name).glob("figures/summary.json")
    ]
    cells = [s for s in cells if s.get("status") == "ok"]
    if cells:
        text += "\n# Single diagnostics cells (study.kind diagnostics)\n\n"
        for measure in ("symmetry", "gqs"):
            mine = [s for s in cells if s["measure"] == measure]
            text += f"## {', '.join(s['study'] for s in mine)}\n\n" + sweep_report(mine) + "\n" if mine else ""
    selection = [(name, newest_summary(root / "outputs" / name)) for name in SELECTION_STUDIES]
    selection = [(name, s) for name, s in selection if s is not None]
    if selection:
        text += "\n# Selection studies (single jobs: the newest finished run of each)\n\n"
        for name, summary in selection:
            table = study_of(summary["kind"]).documents(summary).get("table.md", "")
            text += f"## {name}\n\n" + table.replace("\n# ", "\n### ").replace("\n## ", "\n### ") + "\n"
    overlays = sorted((root / "outputs" / "explore").glob("*/figures/overlay.md"))
    if overlays:
        text += "\n# The alignment sweeps on the theory's map (simstudy.explore)\n\n"
        text += (
            "Per regime of the mismatch angle: the cells whose empirical argmin's 95% bootstrap CI holds the "
            "predicted total-risk γ* itself, the grid point nearest to it (the argmin lives on the simulated "
            "grid, so this is the verdict's rule), and the cells whose verdict agrees.\n\n"
        )
        text += "\n".join(o.read_text().replace("## ", "### ", 1) for o in overlays)
    (root / "figures" / "REPORT.md").write_text(text)
    return status


def _exit_status(code: int) -> int:
    """A command's exit status as this script reports it: a command killed by a signal
    (a negative code from subprocess, e.g. -9 from the out-of-memory killer) counts as 1."""
    return code if code >= 0 else 1


def newest_summary(folder: Path) -> dict | None:
    """The summary.json of the newest finished job below ``folder`` (the run directories are
    named by their start time), None when there is none."""
    for path in sorted(folder.glob("*/summary.json"), reverse=True):
        summary = json.loads(path.read_text())
        if summary.get("status") == "ok":
            return summary
    return None


if __name__ == "__main__":
    sys.exit(main())
