"""``python -m simstudy.explore``: the theory's mismatch-alignment map of a design, in seconds.

Composes the usual groups (dgp, model, design, generator; conf/explore.yaml, study 5's design by
default) plus an ``explore`` section, and maps the mismatch generator over a dense (magnitude r,
angle phi) grid with ``simstudy.alignment.alignment_map``: the bias-only and total-risk gamma*,
the gain of tuning the size over full balancing, the alignment c, the floor, and the angle in
the M-geometry beside the Euclidean one. No data are drawn. With ``explore.directions.count`` >
0 (more than 2 model parameters) it also draws that many mismatch directions orthogonal to g
(uniform on that sphere, a SeedSequence stream keyed by the config) and reports, per angle, how
far gamma* moves when only the direction changes. ``explore.overlay`` names a sweep directory of
the same design (e.g. ``multirun/alignment_dense``): its cells' empirical argmins and CIs are
drawn on the map, and the cells whose CI misses the predicted gamma* are marked.

Writes into the run directory (atomically, summary.json last, as a job does): config.yaml,
map.parquet (one row per (r, phi)), directions.parquet (when drawn), figure.png / figure.pdf, and
a copy of the figure as ``figures_dir/<study>_explore.{png,pdf}`` when ``figures_dir`` is set.
A bad value exits with status 2 and one line naming the key, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from simstudy import compile_cache, plotting
from simstudy.alignment import AlignmentMap, alignment_map, mismatch_laws, total_optimum
from simstudy.app import RUN_FLAGS, fail_config, one_line, refuse
from simstudy.cell import BuiltCell
from simstudy.composition import CONFIG_PATH, compose
from simstudy.config import validate
from simstudy.engine import stable_key
from simstudy.generators.mismatch import MismatchGenerator
from simstudy.jobfiles import JobOutputs, atomic_write_text, copy_figures, versions, write_parquet
from simstudy.schema import ConfigError, RunConfig, bad_value, config_hash, grid, integer, known_keys, number, plain
from simstudy.studies.job import cell_descriptor

EXPLORE_DEFAULTS = {"magnitudes": None, "angles": None, "gamma_max": 6.0, "directions": None, "overlay": None}
RANGE_DEFAULTS = {"start": 0.0, "stop": 0.5, "num": 40}
DIRECTION_DEFAULTS = {"count": 0, "magnitude": 0.2, "angles": [0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0]}
MAP_FIELDS = (
    "alignment_c",
    "angle_m_deg",
    "gamma_star_bias",
    "gamma_star_total",
    "excess_full",
    "excess_star",
    "gain",
    "relative_gain",
    "floor",
)


def validate_explore(section) -> dict:
    """The ``explore`` section with defaults filled in; a bad value is a ConfigError naming it."""
    ex = known_keys(section, EXPLORE_DEFAULTS, "explore")
    mags = known_keys(ex["magnitudes"], RANGE_DEFAULTS, "explore.magnitudes")
    start = number(mags["start"], "explore.magnitudes.start", low=0.0)
    stop = number(mags["stop"], "explore.magnitudes.stop", low=start, low_open=True)
    # three points at least: the contours of two rows or columns are empty
    num = integer(mags["num"], "explore.magnitudes.num", 3, 10_000)
    angles = known_keys(ex["angles"], {"num": 72}, "explore.angles")
    directions = known_keys(ex["directions"], DIRECTION_DEFAULTS, "explore.directions")
    overlay = ex["overlay"]
    if overlay is not None and not (isinstance(overlay, str) and (Path(overlay) / "cells.parquet").is_file()):
        raise ConfigError("explore.overlay", overlay, "must be null or a sweep directory with cells.parquet")
    direction_angles = grid(directions["angles"], "explore.directions.angles")
    if direction_angles[-1] > 180.0:
        raise ConfigError("explore.directions.angles", list(direction_angles), "must lie in [0, 180]")
    return {
        "magnitudes": {"start": start, "stop": stop, "num": num},
        "angles": {"num": integer(angles["num"], "explore.angles.num", 3, 10_000)},
        "gamma_max": number(ex["gamma_max"], "explore.gamma_max", low=1.0, low_open=True),
        "directions": {
            "count": integer(directions["count"], "explore.directions.count", 0, 10_000),
            "magnitude": number(directions["magnitude"], "explore.directions.magnitude", low=0.0, low_open=True),
            "angles": list(direction_angles),
        },
        "overlay": overlay,
    }


def check_generator(run: RunConfig) -> dict:
    """The mismatch generator's own options (cov_scale, direction): the explorer sweeps its
    magnitude and angle, so the generator must be ``mismatch``."""
    if run.generator["name"] != "mismatch" or run.kind != "curve":
        raise ConfigError(
            "generator", run.generator["name"], "the explorer maps the mismatch generator: use generator=mismatch"
        )
    return {"cov_scale": run.generator.get("cov_scale", 1.0), "direction": run.generator.get("direction")}


def map_table(m: AlignmentMap) -> pd.DataFrame:
    """The map as a tidy table: one row per (magnitude, angle), psi's coordinates along g and
    across it (r cos phi, r sin phi) beside every field of the map."""
    r, a = np.meshgrid(m.magnitudes, m.angles_deg, indexing="ij")
    frame = pd.DataFrame(
        {
            "magnitude": r.ravel(),
            "angle_deg": a.ravel(),
            "psi_along_g": (r * np.cos(np.radians(a))).ravel(),
            "psi_across_g": (r * np.sin(np.radians(a))).ravel(),
            "reachable": m.reachable.ravel(),
        }
    )
    for name in MAP_FIELDS:
        frame[name] = getattr(m, name).ravel()
    return frame


def direction_spread(built: BuiltCell, options: dict, ex: dict, seed: int) -> pd.DataFrame:
    """gamma*_total over ``count`` random mismatch directions orthogonal to g (uniform on that
    sphere), at each angle of ``explore.directions.angles`` and r = its ``magnitude``: one row
    per (direction, angle)."""
    directions, pop, d = ex["directions"], built.population, built.run.design
    u = pop.g / np.linalg.norm(pop.g)
    key = stable_key({"explore_directions": directions, "dgp": built.run.dgp, "model": str(built.run.model)})
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    angles = np.asarray(directions["angles"], dtype=float)
    rows = []
    for k in range(directions["count"]):
        v = rng.standard_normal(pop.p)
        v -= (v @ u) * u
        laws = mismatch_laws(
            pop, np.full(angles.size, directions["magnitude"]), angles, cov_scale=options["cov_scale"], direction=v
        )
        best = total_optimum(pop, laws, d.n0, d.n1, ex["gamma_max"])
        rows += [{"direction": k, "angle_deg": phi, "gamma_star_total": gamma} for phi, gamma in zip(angles, best)]
    return pd.DataFrame(rows)


REGIMES = (
    ("aligned (phi <= 45)", 0.0, 45.0),
    ("oblique (45 < phi < 135)", 45.0, 135.0),
    ("anti-aligned (phi >= 135)", 135.0, 180.0),
)


def overlay_agreement(cells: pd.DataFrame) -> list[dict]:
    """Per regime of the mismatch angle, of a sweep's finished cells: how many there are, in how
    many the empirical argmin's 95% CI holds the predicted total-risk gamma* itself, in how many
    it holds the grid point nearest to it (the verdict's rule: the argmin lives on the grid),
    and how many verdicts agree."""
    ok = cells[cells["status"] == "ok"]
    angle = ok["cell.angle_deg"].to_numpy(float)
    pred = ok["gamma_star_theory_total"].to_numpy(float)
    inside = (ok["gamma_star_empirical_ci_low"] <= pred) & (pred <= ok["gamma_star_empirical_ci_high"])
    rows = []
    for name, low, high in REGIMES:
        sel = (angle >= low) & (angle <= high) if low == 0.0 or high == 180.0 else (angle > low) & (angle < high)
        rows.append(
            {
                "regime": name,
                "cells": int(sel.sum()),
                "prediction_in_ci": int(inside[sel].sum()),
                "nearest_grid_point_in_ci": int(ok["gamma_star_in_ci"][sel].astype(bool).sum()),
                "verdict_agree": int((ok["verdict"][sel] == "agree").sum()),
                "verdict_undetermined": int((ok["verdict"][sel] == "undetermined").sum()),
            }
        )
    return rows


def overlay_markdown(study: str, rows: list[dict]) -> str:
    """``overlay_agreement`` as a markdown table."""
    lines = [
        f"## {study}: the Monte Carlo cells on the theory's map",
        "",
        "| regime | cells | predicted γ* in the empirical 95% CI | nearest grid point in the CI | verdict agrees "
        "| verdict undetermined |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = max(r["cells"], 1)
        lines.append(
            f"| {r['regime']} | {r['cells']} | {r['prediction_in_ci']} ({r['prediction_in_ci'] / n:.0%}) | "
            f"{r['nearest_grid_point_in_ci']} ({r['nearest_grid_point_in_ci'] / n:.0%}) | "
            f"{r['verdict_agree']} ({r['verdict_agree'] / n:.0%}) | {r['verdict_undetermined']} |"
        )
    return "\n".join(lines) + "\n"


OVERLAY_COLUMNS = (
    "cell.magnitude",
    "cell.angle_deg",
    "gamma_star_theory_total",
    "gamma_star_empirical",
    "gamma_star_empirical_ci_low",
    "gamma_star_empirical_ci_high",
    "gamma_star_in_ci",
    "verdict",
)
SWEPT = ("magnitude", "angle_deg", "seed", "reps", "gammas", "refits", "alpha")
"""Cell descriptors an overlay's cells may differ in from the map's design."""


def read_overlay(path: str, run: RunConfig) -> pd.DataFrame:
    """A sweep's cell table to draw on the map of ``run``'s design: its cells must be mismatch
    cells of that same design (dgp and its options, sizes, model, covariance scale), differing
    only in what a sweep varies (``SWEPT``); a ConfigError naming ``explore.overlay`` otherwise."""
    cells = pd.read_parquet(Path(path) / "cells.parquet")
    missing = [c for c in OVERLAY_COLUMNS if c not in cells]
    if missing:
        raise ConfigError("explore.overlay", path, f"its cells.parquet lacks {missing}: not a finished mismatch sweep")
    ours = cell_descriptor(run)
    ok = cells[cells["status"] == "ok"]
    for key, value in ours.items():
        column = f"cell.{key}"
        if key in SWEPT or column not in ok:
            continue
        other = {v for v in ok[column] if not (isinstance(v, float) and np.isnan(v))}
        if other and other != {value}:
            raise ConfigError(
                "explore.overlay",
                path,
                f"its cells are of another design: {key} = {sorted(map(str, other))}, here {value}",
            )
    return cells


def build(run: RunConfig) -> BuiltCell:
    """The cell the map is drawn for, with the generator's own options checked: a bad value, a
    symmetric design (angles are measured to g) or a generator other than mismatch is a
    ConfigError."""
    options = check_generator(run)
    built = BuiltCell(run)
    if built.population.regime != "asymmetry":
        raise ConfigError("dgp", run.dgp, "the alignment map needs local asymmetry (g != 0): angles are measured to g")
    with bad_value("generator", run.generator):  # e.g. a direction parallel to g, for every cell
        MismatchGenerator(built.population, magnitude=0.0, angle_deg=0.0, **options)
    return built


def checked(cfg) -> tuple[BuiltCell, dict, pd.DataFrame | None]:
    """A composed explorer config, checked: the cell (``build``), the ``explore`` section and the
    overlay's cell table (None without one); a bad value is a ConfigError naming its key."""
    config = plain(cfg)
    ex = validate_explore(config.pop("explore", None))
    built = build(validate(config))
    if ex["directions"]["count"] and built.population.p <= 2:
        raise ConfigError(
            "explore.directions.count",
            ex["directions"]["count"],
            f"random directions orthogonal to g need a model of more than 2 parameters (this one has "
            f"{built.population.p}, whose only such directions are one line): give the design more "
            f"features (gaussian_classes: longer dgp.mu0 and dgp.mu1), or set 0",
        )
    return built, ex, read_overlay(ex["overlay"], built.run) if ex["overlay"] else None


def explore(built: BuiltCell, ex: dict, overlay, out_dir: Path, resolved_yaml: str) -> dict:
    """Compute the map (and the direction spread), write the run's files, return the summary."""
    start = time.perf_counter()
    run = built.run
    options = check_generator(run)
    mags = np.linspace(ex["magnitudes"]["start"], ex["magnitudes"]["stop"], ex["magnitudes"]["num"])
    angles = np.linspace(0.0, 180.0, ex["angles"]["num"])
    d = run.design
    m = alignment_map(built.population, d.n0, d.n1, mags, angles, gamma_max=ex["gamma_max"], **options)
    map_seconds = time.perf_counter() - start
    table = map_table(m)
    spread = direction_spread(built, options, ex, run.seed) if ex["directions"]["count"] else None
    summary = {
        "status": "ok",
        "study": run.study,
        "kind": "explore",
        # the map's identity: the cell's and the explore section's (never a cell's own hash)
        "config_hash": hashlib.sha256(f"{config_hash(run)} {json.dumps(ex, sort_keys=True)}".encode()).hexdigest(),
        "explore": ex,
        "dgp": run.dgp,
        "generator": run.generator,
        "model": f"{run.model.family}{' + intercept' if run.model.intercept else ''}",
        "n0": d.n0,
        "n1": d.n1,
        "g_norm": m.g_norm,
        "cells": int(table.shape[0]),
        "unreachable": int((~table["reachable"]).sum()),
        "map_seconds": map_seconds,
    }
    at_edge = int((table["gamma_star_total"] >= ex["gamma_max"] - 1e-9).sum())
    summary["at_gamma_max"] = at_edge
    if at_edge:
        print(
            f"simstudy.explore: {at_edge} cells have their total-risk optimum at explore.gamma_max = "
            f"{ex['gamma_max']:g}, the end of the search: raise it to see where they lie",
            file=sys.stderr,
        )
    files = JobOutputs(out_dir)
    files.add("config.yaml", "map.parquet")
    atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    write_parquet(table, out_dir / "map.parquet")
    if spread is not None:
        files.add("directions.parquet")
        write_parquet(spread, out_dir / "directions.parquet")
    if overlay is not None:
        summary["overlay"] = overlay_agreement(overlay)
        files.add("overlay.md")
        atomic_write_text(out_dir / "overlay.md", overlay_markdown(run.study, summary["overlay"]))
    files.add("figure.png", "figure.pdf")
    paths = plotting.save(plotting.alignment_map_figure(table, summary, overlay, spread), out_dir / "figure")
    if run.figures_dir:
        copy_figures(paths, run.figures_dir, f"{run.study}_explore")
    summary["versions"] = versions()
    summary["seconds"] = time.perf_counter() - start
    return files.finish(summary)


def _task(cfg) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        built, ex, overlay = checked(cfg)
    except ConfigError as err:
        fail_config(err, out_dir)  # one line, exit 2, the (empty) run directory removed
    summary = explore(built, ex, overlay, out_dir, OmegaConf.to_yaml(cfg, resolve=True))
    print(
        f"simstudy.explore: {summary['cells']} cells mapped in {summary['map_seconds']:.1f} s "
        f"({summary['seconds']:.1f} s with the figure) into {out_dir}",
        file=sys.stderr,
    )


def preflight(argv: list[str]) -> None:
    """Compose and check the command before Hydra starts, so that an override Hydra cannot
    apply (an unknown key or option) exits 2 with one line and leaves no run directory."""
    if RUN_FLAGS & {"-m", "--multirun"} & set(argv):
        refuse("-m: the explorer maps its whole grid in one run; give the grid with explore.* (no -m)")
    if any(a.startswith("-") for a in argv):
        return  # --help, --cfg ...: Hydra's own business
    try:
        checked(compose(argv, config_name="explore"))
    except ConfigError as err:
        refuse(str(err))
    except Exception as err:  # Hydra's composition and override-grammar errors, whatever their type
        refuse(one_line(err, argv))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        preflight(argv)
        compile_cache.enable()  # after the preflight: a refused command writes nothing
        sys.argv = [sys.argv[0], *argv]
        hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="explore")(_task)()
    except KeyboardInterrupt:
        print("simstudy.explore: interrupted; rerun the same command (it redoes the map)", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
