"""The Hydra app: ``python -m simstudy`` / ``simstudy`` runs one design cell per job.

A job is a pure function of its config: it validates the config (a bad value exits with status 2
and one line, writing nothing), builds the cell, computes the theory's predictions, runs the
replications, and writes into its output directory, atomically and in this order:

* ``config.yaml``: the resolved config of the job;
* ``replications.parquet``: one row per (replication, gamma);
* ``summary.json``: the contract of README's "Job outputs" (written last: its presence with the
  same ``config_hash`` means the job is complete, and a rerun skips it);
* ``figure.png`` / ``figure.pdf``: the cell's curves with the theory overlay.

After a multirun, ``AggregateCallback`` combines the sweep (simstudy.aggregate) and exits non-zero
if any cell failed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

import simstudy
from simstudy.config import SELECTION_FIGURES, ConfigError, RunConfig, validate
from simstudy.jobfiles import (atomic_write_json, atomic_write_text, json_number, json_numbers,
                               write_parquet)

CONFIG_PATH = str(Path(__file__).resolve().parent.parent / "conf")
VERSIONED = ("numpy", "scipy", "jax", "jaxlib", "pandas", "pyarrow", "scikit-learn",
             "imbalanced-learn", "hydra-core", "omegaconf")


def versions() -> dict:
    out = {"python": platform.python_version(), "simstudy": simstudy.__version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_hash(run: RunConfig) -> str:
    return hashlib.sha256(json.dumps(run.identity(), sort_keys=True, default=str).encode()).hexdigest()



def cell_descriptor(run: RunConfig) -> dict:
    """The scalar facts that tell one cell of a sweep from another (for tables and panels)."""
    out = {"dgp": run.dgp["name"], "generator": run.generator["name"], "n1": run.design.n1,
           "n0": run.design.n0, "family": run.model.family}
    for section in (run.dgp, run.generator):
        for key, value in section.items():
            if key != "name" and isinstance(value, (int, float, str, bool)):
                out[key] = value
            elif key != "name" and isinstance(value, list):
                out[key] = json.dumps(value)
    return out


def run_job(run: RunConfig, out_dir: Path, resolved_yaml: str) -> dict:
    """Everything one job does after validation; returns its summary."""
    from simstudy.config import BuiltCell
    from simstudy.engine import (empirical_optimum, progress_printer, root_mean_square, run_cell,
                                 summarise_curve, verdict)
    from simstudy.theory import (optimal_sizes, predict, refined_prediction, refinement_unavailable,
                                 synthetic_moments)

    start = time.perf_counter()
    built = BuiltCell(run)
    cell, design, population = built.cell, built.design, built.population
    theory_rng = np.random.default_rng(
        np.random.SeedSequence(run.seed, spawn_key=(*cell.data_key, *cell.generator_key, 1)))
    synthetic = synthetic_moments(population, built.generator, design.n1, theory_rng,
                                  refits=run.theory_refits, n0=design.n0)
    prediction = predict(population, synthetic, design.n0, design.n1, design.gammas)
    fine = np.linspace(0.0, max(design.gammas), 201)
    fine_prediction = predict(population, synthetic, design.n0, design.n1, fine)
    # the predicted optimum is searched over the range the simulation covers, so that a curve
    # still falling at the grid's end is compared edge to edge
    optimal = optimal_sizes(population, synthetic, design.n0, design.n1, gamma_max=max(design.gammas))
    # each generator fit's exact bias, from the fits above (no new draws); None for a fixed law
    refine_note = refinement_unavailable(population, synthetic)
    refined = None if refine_note else refined_prediction(population, synthetic, design.n0, design.n1,
                                                          design.gammas)

    label = f"{run.study} {run.dgp['name']} / {run.generator['name']} n1={design.n1}"
    theta0 = np.asarray(prediction.theta_bar) if np.all(np.isfinite(prediction.theta_bar)) else None
    rows = run_cell(cell, population, theta0=theta0, progress=progress_printer(label),
                    workers=run.workers)
    G = len(design.gammas)
    excess = rows["excess"].to_numpy().reshape(design.reps, G)
    error = rows["param_error"].to_numpy().reshape(design.reps, G)
    exc, err, rms = summarise_curve(excess), summarise_curve(error), root_mean_square(error)
    boot_rng = np.random.default_rng(np.random.SeedSequence(run.seed, spawn_key=(*cell.data_key, *cell.generator_key, 2)))
    optimum = empirical_optimum(excess, design.gammas, boot_rng)

    def check(fits, gamma_star, tag):
        # a stream per verdict, so that one verdict does not depend on whether the other is made
        rng = np.random.default_rng(np.random.SeedSequence(
            run.seed, spawn_key=(*cell.data_key, *cell.generator_key, tag)))
        return verdict(excess, fits, gamma_star, design.gammas, rng)

    verdict_ = check(prediction.fit_excess, optimal.gamma_star_total, 3)
    # the refined curve is known on the grid only: its optimum is its grid argmin
    gamma_star_refined = None if refined is None else float(design.gammas[int(np.argmin(refined.theory_excess))])
    verdict_refined = None if refined is None else check(refined.fit_excess, gamma_star_refined, 4)
    failed = ~rows["converged"].to_numpy() | rows["nonfinite"].to_numpy()
    summary = {
        "status": "ok",
        "study": run.study,
        "figure": run.figure,
        "dgp": run.dgp["name"],
        "generator": run.generator["name"],
        "model": f"{run.model.family}{' + intercept' if run.model.intercept else ''}",
        "cell": cell_descriptor(run),
        "n0": design.n0,
        "n1": design.n1,
        "reps": design.reps,
        "seed": run.seed,
        "config_hash": config_hash(run),
        "data_key": list(cell.data_key),
        "generator_key": list(cell.generator_key),
        "regime": population.regime,
        "g_norm": float(np.linalg.norm(population.g)),
        "theta_star": json_numbers(population.theta_star),
        "gammas": list(design.gammas),
        "n_tilde": [int(n) for n in design.n_tilde],
        "excess_mean": json_numbers(exc.mean),
        "excess_mcse": json_numbers(exc.mcse),
        "excess_quantiles": {str(q): json_numbers(v) for q, v in zip((0.1, 0.5, 0.9), exc.quantiles)},
        "param_error_mean": json_numbers(err.mean),
        "param_error_mcse": json_numbers(err.mcse),
        "param_error_rms": json_numbers(rms.value),
        "param_error_rms_mcse": json_numbers(rms.mcse),
        "param_error_quantiles": {str(q): json_numbers(v) for q, v in zip((0.1, 0.5, 0.9), err.quantiles)},
        "population_excess": json_numbers(prediction.population_excess),
        "theory_excess": json_numbers(prediction.theory_excess),
        "theory_excess_se": json_numbers(prediction.theory_excess_se),
        "theory_bias": json_numbers(prediction.bias_term),
        "theory_cross": json_numbers(prediction.cross_term),
        "theory_variance": json_numbers(prediction.variance_term),
        "param_error_theory": json_numbers(prediction.param_error_theory),
        "theory_grid": {"gammas": json_numbers(fine), "theory_excess": json_numbers(fine_prediction.theory_excess),
                        "population_excess": json_numbers(fine_prediction.population_excess)},
        "theory_excess_refined": None if refined is None else json_numbers(refined.theory_excess),
        "theory_excess_refined_se": None if refined is None else json_numbers(refined.theory_excess_se),
        "theory_bias_exact": None if refined is None else json_numbers(refined.exact_bias),
        "theory_refined_note": refine_note or refined.method,
        "gamma_star_theory_refined": gamma_star_refined,
        "alignment_c": json_number(optimal.alignment_c),
        "mismatch_norm": json_number(optimal.mismatch_norm),
        "mismatch_angle_deg": json_number(optimal.mismatch_angle_deg),
        "gamma_star_theory": json_number(optimal.gamma_star_bias),
        "gamma_star_theory_reason": optimal.reason,
        "gamma_star_theory_per_point": json_number(optimal.gamma_star_bias_per_point),
        "gamma_star_theory_total": json_number(optimal.gamma_star_total),
        "gamma_star_population": json_number(optimal.gamma_star_population),
        "recommendation": optimal.recommendation,
        "gamma_star_empirical": optimum.gamma,
        "gamma_star_empirical_ci": list(optimum.ci),
        "n_failed_fits": int(failed.sum()),
        "n_nonconverged_fits": int((~rows["converged"].to_numpy()).sum()),
        "n_separated_fits": int(rows["separated"].to_numpy().sum()),
        "n_nonfinite_fits": int(rows["nonfinite"].to_numpy().sum()),
        "psi_refits": int(synthetic.refits),
        "warm_start": None if theta0 is None else [json_numbers(t) for t in theta0],
        "verdict": verdict_,
        "verdict_refined": verdict_refined,
        "versions": versions(),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    write_parquet(rows, out_dir / "replications.parquet")
    atomic_write_json(out_dir / "summary.json", summary)
    from simstudy import plotting

    paths = plotting.save(plotting.cell_figure(summary), out_dir / "figure")
    if run.figures_dir:
        Path(run.figures_dir).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copyfile(path, Path(run.figures_dir) / f"{run.study}{path.suffix}")
    return summary


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def fail_config(err: ConfigError, out_dir: Path | None) -> None:
    """One line on stderr, nothing left behind, exit status 2."""
    print(f"simstudy: config error: {err}", file=sys.stderr)
    if out_dir is not None:
        _remove_if_empty(out_dir)
        if out_dir.parent.is_dir() and [p.name for p in out_dir.parent.iterdir()] == ["multirun.yaml"]:
            (out_dir.parent / "multirun.yaml").unlink()
            _remove_if_empty(out_dir.parent)
    raise SystemExit(2)


def task(cfg) -> dict | None:
    """The Hydra task function (see the module docstring)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run = validate(cfg)
    except ConfigError as err:
        fail_config(err, out_dir)
    summary_path = out_dir / "summary.json"
    if summary_path.exists():
        previous = json.loads(summary_path.read_text())
        if previous.get("status") == "ok" and previous.get("config_hash") == config_hash(run):
            print(f"[{run.study}] {out_dir}: already complete for this config, skipped", file=sys.stderr)
            return previous
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    from simstudy.engine import one_blas_thread

    try:
        with one_blas_thread():
            if run.figure in SELECTION_FIGURES:
                from simstudy.selection_study import run_selection_job

                return run_selection_job(run, run.extra, out_dir, resolved)
            return run_job(run, out_dir, resolved)
    except ConfigError as err:
        fail_config(err, out_dir)
    except Exception as err:  # a failing cell is recorded, and the sweep goes on
        message = f"{type(err).__name__}: {err}"
        atomic_write_json(summary_path, {
            "status": "failed", "error": message, "traceback": traceback.format_exc(),
            "study": run.study, "figure": run.figure, "cell": cell_descriptor(run),
            "config_hash": config_hash(run), "versions": versions(),
        })
        print(f"simstudy: cell failed: {message}", file=sys.stderr)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise SystemExit(1)
        return None


def regenerate_replication(job_dir, r: int):
    """Replication r of a finished job, recomputed from its config.yaml and warm starts alone.

    Returns (regenerated rows, the rows stored in replications.parquet); they are equal to the
    bit when the machine and package versions match the job's."""
    import pandas as pd
    from omegaconf import OmegaConf

    from simstudy.config import BuiltCell
    from simstudy.engine import fit_replications, one_blas_thread, replication_rows

    job_dir = Path(job_dir)
    run = validate(OmegaConf.load(job_dir / "config.yaml"))
    summary = json.loads((job_dir / "summary.json").read_text())
    if not 0 <= r < run.design.reps:
        raise ValueError(f"replication must be in [0, {run.design.reps}), got {r}")
    built = BuiltCell(run)
    theta0 = None if summary.get("warm_start") is None else np.asarray(summary["warm_start"], dtype=float)
    with one_blas_thread():  # as the job ran
        rows = replication_rows(built.cell, built.population, [r], fit_replications(built.cell, [r], theta0))
    stored = pd.read_parquet(job_dir / "replications.parquet")
    return rows, stored[stored["replication"] == r].reset_index(drop=True)


class AggregateCallback:
    """Hydra callback: after a multirun, aggregate the sweep and fail if any cell failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        from simstudy.aggregate import aggregate, failures

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        cells = aggregate(sweep_dir, figures_dir=config.get("figures_dir"))
        n_failed = failures(cells)
        print(f"simstudy: aggregated {len(cells)} cells into {sweep_dir} ({n_failed} failed)",
              file=sys.stderr)
        if n_failed:
            raise SystemExit(1)

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


RUN_FLAGS = {"-m", "--multirun", "-r", "--run"}


def _one_line(err: Exception) -> str:
    """Hydra's composition errors, cut to one line that names the override and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(err)
    if isinstance(err, MissingConfigException) and "Available options in" in text:
        lines = text.splitlines()
        missing = lines[0].split("Could not find ")[-1].strip("'")
        group = missing.rsplit("/", 1)[0]
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
        options = [line.strip() for line in lines[start + 1:] if line.startswith("\t")]
        end = next((i for i, line in enumerate(options) if "=" in line or ":" in line), len(options))
        return f"{group}={missing.rsplit('/', 1)[-1]}: unknown option; choose one of {options[:end]}"
    if isinstance(err, OverrideParseException):
        return f"{text.splitlines()[0]} (see Hydra's override grammar)"
    cause = err.__cause__
    if cause is not None and "full_key:" in str(cause):
        key = str(cause).split("full_key:")[1].split()[0]
        return f"{key}: unknown key ({str(cause).splitlines()[0]}); add it with +{key}=... only if the group takes it"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _sweep_cells(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of every job the command would launch (Hydra's basic sweeper rules:
    the sweep file's hydra.sweeper.params, then the command line, expanded as a product)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not multirun:
        return [overrides]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        base = compose("config", overrides=[o for o in overrides if "," not in o],
                       return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


def preflight(argv: list[str]) -> None:
    """Compose, validate and build every job of the command before Hydra starts: bad input
    exits with status 2 and one line, and nothing is written."""
    from hydra import compose, initialize_config_dir

    from simstudy.config import BuiltCell

    flags = {a for a in argv if a.startswith("-")}
    if flags - RUN_FLAGS:
        return  # --help, --cfg, --info ...: Hydra's own business
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        for job in _sweep_cells(overrides, multirun=bool(flags & {"-m", "--multirun"})):
            with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
                cfg = compose("config", overrides=[o for o in job if not o.startswith("hydra")])
            run = validate(cfg)
            if run.figure not in SELECTION_FIGURES:  # selection studies are checked by validate
                BuiltCell(run)
    except ConfigError as err:
        print(f"simstudy: config error: {err}", file=sys.stderr)
        raise SystemExit(2)
    except Exception as err:  # Hydra's composition and override-grammar errors
        if type(err).__module__.split(".")[0] not in ("hydra", "omegaconf"):
            raise
        print(f"simstudy: config error: {_one_line(err)}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    preflight(argv)
    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")(task)()


if __name__ == "__main__":
    main()
