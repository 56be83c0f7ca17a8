"""The Hydra app: ``python -m simstudy`` / ``simstudy`` runs one design cell per job.

A job is a pure function of its config: it validates the config (a bad value exits with status 2
and one line, writing nothing), builds the cell, computes the theory's predictions, runs the
replications, and writes into its output directory, atomically and in this order:

* ``config.yaml``: the resolved config of the job;
* ``replications.parquet``: one row per (replication, gamma);
* ``figure.png`` / ``figure.pdf``: the cell's curves with the theory overlay;
* ``summary.json``: the contract of README's "Job outputs", written last and listing the other
  files with their digests. A rerun skips the job only when the summary is readable, finished,
  for the same ``config_hash``, and every listed file is intact (``jobfiles.complete_summary``).

Two processes running the same job directory take turns (``jobfiles.job_lock``): the second
finds the job complete and skips it, and a finished job is never overwritten by a failure.
After a multirun, ``AggregateCallback`` combines exactly the cells of that sweep
(simstudy.aggregate) and exits non-zero if any cell failed or is missing, or if the
aggregation itself fails.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import OmegaConf

from simstudy import plotting
from simstudy.aggregate import PlannedCell, aggregate, failures
from simstudy.cell import BuiltCell
from simstudy.composition import CONFIG_PATH, compose, config_hash, expand_jobs, sweep_jobs
from simstudy.config import SELECTION_FIGURES, ConfigError, RunConfig, study_module, validate
from simstudy.engine import (
    auxiliary_seed,
    empirical_optimum,
    fit_replications,
    one_blas_thread,
    progress_printer,
    replication_rows,
    root_mean_square,
    run_cell,
    summarise_curve,
    verdict,
)
from simstudy.jobfiles import (
    SUMMARY,
    atomic_write_json,
    atomic_write_text,  # noqa: F401
    complete_summary,
    copy_figures,
    finish_job,
    job_lock,
    json_number,
    json_numbers,
    read_summary,
    versions,
    write_parquet,
)
from simstudy.resources import check_budget
from simstudy.theory import optimal_sizes, predict, refined_prediction, refinement_unavailable, synthetic_moments


def _scalar(value):
    """A config value as a table cell: scalars as they are, lists and mappings as JSON."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return json.dumps(value, sort_keys=True)


def cell_descriptor(run: RunConfig) -> dict:
    """The facts that tell one cell from another (for tables, panels and reports): the dgp and
    generator with their options, the sizes, the model, and every other setting that changes
    the numbers (seed, reps, gammas, ridge, theory refits), so that two cells never share a
    descriptor unless they share a config hash."""
    out = {
        "dgp": run.dgp["name"],
        "generator": run.generator["name"],
        "n1": run.design.n1,
        "n0": run.design.n0,
        "family": run.model.family,
        "intercept": run.model.intercept,
        "ridge": run.model.ridge,
        "seed": run.seed,
        "reps": run.design.reps,
        "gammas": _scalar(list(run.design.gammas)),
        "refits": run.theory_refits,
        "alpha": run.verdict_alpha,
    }
    for group, section in (("dgp", run.dgp), ("generator", run.generator)):
        for key, value in section.items():
            if key != "name":  # a plug-in's target under its group's key (simstudy.plugins)
                out.setdefault(f"{group}.{key}" if key.startswith("_") else key, _scalar(value))
    return out


def run_job(run: RunConfig, out_dir: Path, resolved_yaml: str) -> dict:
    """Everything one job does after validation; returns its summary."""
    start = time.perf_counter()
    built = BuiltCell(run)
    cell, design, population = built.cell, built.design, built.population
    cell_key = (*cell.data_key, *cell.generator_key)
    theory_rng = np.random.default_rng(auxiliary_seed(run.seed, cell_key, "theory_refits"))
    synthetic = synthetic_moments(
        population, built.generator, design.n1, theory_rng, refits=run.theory_refits, n0=design.n0
    )
    prediction = predict(population, synthetic, design.n0, design.n1, design.gammas)
    fine = np.linspace(0.0, max(design.gammas), 201)
    fine_prediction = predict(population, synthetic, design.n0, design.n1, fine)
    # the predicted optimum is searched over the range the simulation covers, so that a curve
    # still falling at the grid's end is compared edge to edge
    optimal = optimal_sizes(population, synthetic, design.n0, design.n1, gamma_max=max(design.gammas))
    # each generator fit's exact bias, from the fits above (no new draws); None for a fixed law
    refine_note = refinement_unavailable(population, synthetic)
    refined = None if refine_note else refined_prediction(population, synthetic, design.n0, design.n1, design.gammas)

    label = f"{run.study} {run.dgp['name']} / {run.generator['name']} n1={design.n1}"
    theta0 = np.asarray(prediction.theta_bar) if np.all(np.isfinite(prediction.theta_bar)) else None
    rows = run_cell(cell, population, theta0=theta0, progress=progress_printer(label), workers=run.workers)
    G = len(design.gammas)
    excess = rows["excess"].to_numpy().reshape(design.reps, G)
    error = rows["param_error"].to_numpy().reshape(design.reps, G)
    exc, err, rms = summarise_curve(excess), summarise_curve(error), root_mean_square(error)
    boot_rng = np.random.default_rng(auxiliary_seed(run.seed, cell_key, "bootstrap"))
    optimum = empirical_optimum(excess, design.gammas, boot_rng)

    def check(fits, gamma_star, tag):
        # a stream per verdict, so that one verdict does not depend on whether the other is made
        rng = np.random.default_rng(auxiliary_seed(run.seed, cell_key, tag))
        return verdict(excess, fits, gamma_star, design.gammas, rng, alpha=run.verdict_alpha)

    verdict_ = check(prediction.fit_excess, optimal.gamma_star_total, "verdict")
    # the refined curve is known on the grid only: its optimum is its grid argmin
    gamma_star_refined = None if refined is None else float(design.gammas[int(np.argmin(refined.theory_excess))])
    verdict_refined = None if refined is None else check(refined.fit_excess, gamma_star_refined, "verdict_refined")
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
        "theory_grid": {
            "gammas": json_numbers(fine),
            "theory_excess": json_numbers(fine_prediction.theory_excess),
            "population_excess": json_numbers(fine_prediction.population_excess),
        },
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
    paths = plotting.save(plotting.cell_figure(summary), out_dir / "figure")
    if run.figures_dir:
        copy_figures(paths, run.figures_dir, run.study)
    return finish_job(out_dir, summary, ["config.yaml", "replications.parquet", *(p.name for p in paths)])


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


def record_failure(out_dir: Path, run: RunConfig, err: Exception) -> str:
    """Write a failed summary (the cell is redone by the next run) and return the one-line
    message."""
    message = f"{type(err).__name__}: {err}"
    atomic_write_json(
        out_dir / SUMMARY,
        {
            "status": "failed",
            "error": message,
            "traceback": traceback.format_exc(),
            "study": run.study,
            "figure": run.figure,
            "cell": cell_descriptor(run),
            "config_hash": config_hash(run),
            "versions": versions(),
        },
    )
    return message


def task(cfg) -> dict | None:
    """The Hydra task function (see the module docstring)."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run = validate(cfg)
    except ConfigError as err:
        fail_config(err, out_dir)
    with job_lock(out_dir):
        previous = complete_summary(out_dir, config_hash(run))
        if previous is not None:
            print(f"[{run.study}] {out_dir}: already complete for this config, skipped", file=sys.stderr)
            return previous
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        try:
            with one_blas_thread():
                if run.figure in SELECTION_FIGURES:
                    return study_module(run.figure).run_selection_job(run, run.extra, out_dir, resolved)
                return run_job(run, out_dir, resolved)
        except ConfigError as err:
            fail_config(err, out_dir)
        except Exception as err:  # a failing cell is recorded, and the sweep goes on
            print(f"simstudy: cell failed: {record_failure(out_dir, run, err)}", file=sys.stderr)
            if hydra_cfg.mode != RunMode.MULTIRUN:
                raise SystemExit(1) from None
            return None


class ReplicationError(ValueError):
    """A job directory that cannot be replicated (missing or unreadable files)."""


def _job_files(job_dir: Path) -> tuple[RunConfig, dict]:
    for name in ("config.yaml", SUMMARY):
        if not (job_dir / name).is_file():
            raise ReplicationError(f"{job_dir}: no {name}; is it a finished simstudy job directory?")
    summary = read_summary(job_dir / SUMMARY)
    if summary is None or summary.get("status") != "ok":
        raise ReplicationError(f"{job_dir}: {SUMMARY} is unreadable or not a finished job; rerun the job")
    try:
        run = validate(OmegaConf.load(job_dir / "config.yaml"))
    except ConfigError as err:
        raise ReplicationError(f"{job_dir}: config.yaml does not validate ({err})") from None
    return run, summary


def _stored_rows(job_dir: Path, column: str, r: int):
    path = job_dir / "replications.parquet"
    try:
        stored = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ReplicationError(f"{path}: missing or unreadable ({type(err).__name__}); rerun the job") from None
    rows = stored[stored[column] == r].reset_index(drop=True)
    if rows.empty:
        raise ReplicationError(f"{path}: no rows with {column} = {r}")
    return rows.dropna(axis=1, how="all")


def regenerate_replication(job_dir, r: int):
    """Replication r of a finished job (split r of a real-data job), recomputed from its
    config.yaml (and the warm starts stored in summary.json) alone.

    Returns (regenerated rows, the rows stored in replications.parquet); they are equal to the
    bit when the machine and package versions match the job's. Raises ReplicationError for a
    job directory without its files and ValueError for r out of range."""
    job_dir = Path(job_dir)
    run, summary = _job_files(job_dir)
    if not 0 <= r < run.design.reps:
        raise ValueError(f"replication must be in [0, {run.design.reps}), got {r}")
    with one_blas_thread():  # as the job ran
        rows = _regenerated_rows(run, summary, r)
    return rows, _stored_rows(job_dir, "split" if run.figure == "real_data" else "replication", r)


def _regenerated_rows(run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
    """Replication r's rows (split r's for real data) recomputed from the job's config."""
    if run.figure == "vtss":
        study = study_module(run.figure)
        return study.vtss_replication(study.build_vtss_cell(run, run.extra), r)
    if run.figure == "real_data":
        study = study_module(run.figure)
        data, sel = run.extra["data"], run.extra["selection"]
        splits = [study.real_data_split(ds, data, sel, run, r) for ds in study.load_real_datasets(data)]
        return pd.concat(splits, ignore_index=True)
    built = BuiltCell(run)
    theta0 = None if summary.get("warm_start") is None else np.asarray(summary["warm_start"], dtype=float)
    return replication_rows(built.cell, built.population, [r], fit_replications(built.cell, [r], theta0))


def same_rows(regenerated, stored) -> bool:
    """The regenerated rows equal the stored ones to the bit (columns the stored table has only
    because other replications filled them are ignored; integer columns that the whole table
    stored as floats compare by value)."""
    regenerated = regenerated.dropna(axis=1, how="all")
    if set(regenerated.columns) != set(stored.columns) or len(regenerated) != len(stored):
        return False
    try:
        pd.testing.assert_frame_equal(
            regenerated, stored[list(regenerated.columns)], check_dtype=False, check_exact=True
        )
    except AssertionError:
        return False
    return True


def planned_cells(params, task_overrides, compose_job) -> list:
    """The PlannedCells of a sweep from its sweep-file ``params`` and command-line
    ``task_overrides``; ``compose_job(overrides)`` gives a job's composed config."""
    out = []
    for job in expand_jobs(params, list(task_overrides)).jobs:
        cfg = OmegaConf.to_container(compose_job(job), resolve=False)
        cfg.pop("hydra", None)
        run = validate(cfg)
        out.append(PlannedCell(tuple(job), config_hash(run), cell_descriptor(run)))
    return out


def aggregate_sweep(sweep_dir: Path, planned, figures_dir=None) -> int:
    """Aggregate a sweep and print one line; returns the number of cells not finished."""
    cells = aggregate(sweep_dir, figures_dir=figures_dir, planned=planned)
    n_failed = failures(cells)
    print(
        f"simstudy: aggregated {len(cells)} cells into {sweep_dir} ({n_failed} failed, missing or unreadable)",
        file=sys.stderr,
    )
    return n_failed


class AggregateCallback:
    """Hydra callback: after a multirun, aggregate exactly the cells of the sweep that ran, and
    exit non-zero if any of them failed or is missing, or if the aggregation fails."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        loader = GlobalHydra.instance().config_loader()
        try:
            planned = planned_cells(
                config.hydra.sweeper.params,
                config.hydra.overrides.task,
                lambda job: loader.load_sweep_config(config, list(job)),
            )
            n_failed = aggregate_sweep(sweep_dir, planned, config.get("figures_dir"))
        except Exception as err:  # Hydra would turn it into a warning and exit 0
            print(f"simstudy: aggregating {sweep_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        if n_failed:
            raise SystemExit(1)

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


RUN_FLAGS = {"-m", "--multirun", "-r", "--run"}


def _unparsable(overrides: list[str]) -> str | None:
    """The first override Hydra's grammar cannot read, as one line naming its key."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            key = override.split("=", 1)[0] if "=" in override else override
            return (
                f"{key}: cannot read the override {override!r} (a trailing comma, or a character "
                f"that needs quotes: write {key}='...')"
            )
    return None


def _one_line(err: Exception, overrides: list[str]) -> str:
    """Hydra's composition errors, cut to one line that names the override and what is allowed."""
    text = str(err)
    if isinstance(err, MissingConfigException) and "Available options in" in text:
        lines = text.splitlines()
        missing = lines[0].split("Could not find ")[-1].strip("'")
        group = missing.rsplit("/", 1)[0]
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
        options = [line.strip() for line in lines[start + 1 :] if line.startswith("\t")]
        end = next((i for i, line in enumerate(options) if "=" in line or ":" in line), len(options))
        return f"{group}={missing.rsplit('/', 1)[-1]}: unknown option; choose one of {options[:end]}"
    if isinstance(err, OverrideParseException):
        return _unparsable(overrides) or f"{text.splitlines()[0]} (see Hydra's override grammar)"
    cause = err.__cause__
    if cause is not None and "full_key:" in str(cause):
        key = str(cause).split("full_key:")[1].split()[0]
        return f"{key}: unknown key ({str(cause).splitlines()[0]}); add it with +{key}=... only if the group takes it"
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    culprit = _first_failing(overrides)
    return text if culprit is None or culprit.split("=")[0] in text else f"{culprit}: {text}"


def _first_failing(overrides: list[str]) -> str | None:
    """The first override that fails to compose on its own (to name it in an error)."""
    for override in overrides:
        try:
            compose([override], return_hydra_config=True)
        except Exception:  # noqa: BLE001 - any failure names the culprit
            return override
    return None


def _refuse(line: str) -> None:
    print(f"simstudy: config error: {line}", file=sys.stderr)
    raise SystemExit(2)


def preflight(argv: list[str]) -> None:
    """Compose, validate and build every job of the command before Hydra starts: bad input
    exits with status 2 and one line, and nothing is written."""
    flags = {a for a in argv if a.startswith("-")}
    if flags - RUN_FLAGS:
        return  # --help, --cfg, --info ...: Hydra's own business
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        planned = sweep_jobs(overrides, multirun=bool(flags & {"-m", "--multirun"}))
        configs = [compose(job) for job in planned.jobs]
    except ConfigError as err:
        _refuse(str(err))
    except Exception as err:  # Hydra's composition and override-grammar errors, whatever their type
        _refuse(_one_line(err, overrides))
    try:
        for cfg in configs:
            check_job(validate(cfg))
    except ConfigError as err:
        _refuse(str(err))
    for key, (swept, given) in planned.replaced.items():
        print(f"simstudy: {given} replaces the sweep file's {key}={swept}", file=sys.stderr)


def check_job(run: RunConfig) -> None:
    """Build what a job builds first, so that a bad value fails here, not inside the job."""
    check_budget(run)  # builds the process, which checks the dgp's options
    if run.figure not in SELECTION_FIGURES:  # validate checks the selection sections
        BuiltCell(run)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        preflight(argv)
        sys.argv = [sys.argv[0], *argv]
        hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")(task)()
    except KeyboardInterrupt:
        print(
            "simstudy: interrupted; finished cells are kept, and rerunning the same command resumes the rest",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
