"""``study.kind: curve``: theory against simulation in one design cell (THEORY.md section 6,
studies 1-5).

A job builds the cell (``simstudy.cell.BuiltCell``), computes the theory's synthetic moments,
the population limit the fits start from (``Theory.warm_start``) and the predictions (the
first-order expected excess on the grid and on a fine grid, the optimal sizes, and the refined
curve where each generator fit's exact bias is known), runs the R replications (each the G
nested fits of one design), and summarises the curves with their Monte Carlo errors, the
empirical optimum with its bootstrap CI, and the calibrated verdicts of the theory against the
simulation (``engine.verdict``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from simstudy import plotting
from simstudy.cell import BuiltCell
from simstudy.engine import (
    QUANTILES,
    auxiliary_seed,
    empirical_optimum,
    fit_replications,
    replication_rows,
    root_mean_square,
    run_cell,
    summarise_curve,
    verdict,
)
from simstudy.jobfiles import json_number, json_numbers
from simstudy.schema import ConfigError, RunConfig
from simstudy.theory import Theory, synthetic_moments

FINE_POINTS = 201
"""Points of the fine grid on [0, max gamma] that the figure draws the predicted curve on."""


class CurveCell:
    """A curve cell's objects (``BuiltCell``) and, computed on first use, its theory."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.built = BuiltCell(run)
        self.key = (*self.built.cell.data_key, *self.built.cell.generator_key)

    def rng(self, tag: str) -> np.random.Generator:
        """The cell's auxiliary stream ``tag`` (``engine.STREAM_TAGS``)."""
        return np.random.default_rng(auxiliary_seed(self.run.seed, self.key, tag))

    @cached_property
    def theory(self) -> dict:
        """The theory of the cell (module docstring), computed once: the synthetic moments, the
        fits' warm start and the predictions."""
        built, design = self.built, self.built.design
        synthetic = synthetic_moments(
            built.population,
            built.generator,
            design.n1,
            self.rng("theory_refits"),
            refits=self.run.theory_refits,
            n0=design.n0,
        )
        theory = Theory(built.population, synthetic, design.n0, design.n1)
        fine = np.linspace(0.0, max(design.gammas), FINE_POINTS)
        refine_note = theory.refinement_unavailable()
        return {
            "synthetic": synthetic,
            "warm_start": theory.warm_start(design.gammas),
            "prediction": theory.predict(design.gammas),
            "fine": fine,
            "fine_prediction": theory.predict(fine),
            # the predicted optimum is searched over the range the simulation covers, so that a
            # curve still falling at the grid's end is compared edge to edge
            "optimal": theory.optimal_sizes(gamma_max=max(design.gammas)),
            # each generator fit's exact bias, from the fits above (no new draws); None for a fixed law
            "refine_note": refine_note,
            "refined": None if refine_note else theory.refined_prediction(design.gammas),
        }

    @property
    def warm_start(self):
        """The replications' starting point: the theory's population limit theta_bar(n~) per
        gamma (``Theory.warm_start``), or None where it is not finite."""
        theta_bar = np.asarray(self.theory["warm_start"])
        return theta_bar if np.all(np.isfinite(theta_bar)) else None


def _quantiles(summary) -> dict:
    return {str(q): json_numbers(v) for q, v in zip(QUANTILES, summary.quantiles)}


class CurveStudy:
    """Theory against simulation in one cell (module docstring); implements ``Study``."""

    kind = "curve"
    figures = ("curve", "rates", "alignment")
    unit = "replication"
    row_tables = ("parquet",)

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        if sections:
            key = next(iter(sections))
            raise ConfigError(
                key,
                sections[key],
                "a curve study reads no such section (selection: the vtss, real_data, diagnostics and network "
                "kinds; data: real_data)",
            )
        return run

    def build(self, run: RunConfig) -> CurveCell:
        return CurveCell(run)

    def label(self, built: CurveCell) -> tuple[str, str]:
        run = built.run
        return f"{run.study} {run.dgp['name']} / {run.generator['name']} n1={run.design.n1}", "replications"

    def run(self, built: CurveCell, progress) -> pd.DataFrame:
        b = built.built
        return run_cell(b.cell, b.population, theta0=built.warm_start, progress=progress, workers=built.run.workers)

    def summarise(self, built: CurveCell, rows: pd.DataFrame) -> dict:
        run, b, design = built.run, built.built, built.built.design
        population, theory = b.population, built.theory
        prediction, optimal, refined = theory["prediction"], theory["optimal"], theory["refined"]
        G = len(design.gammas)
        excess = rows["excess"].to_numpy().reshape(design.reps, G)
        error = rows["param_error"].to_numpy().reshape(design.reps, G)
        exc, err, rms = summarise_curve(excess), summarise_curve(error), root_mean_square(error)
        optimum = empirical_optimum(excess, design.gammas, built.rng("bootstrap"))

        def check(fits, gamma_star, tag):
            # a stream per verdict, so that one verdict does not depend on whether the other is made
            return verdict(excess, fits, gamma_star, design.gammas, built.rng(tag), alpha=run.verdict_alpha)

        verdict_ = check(prediction.fit_excess, optimal.gamma_star_total, "verdict")
        # the refined curve is known on the grid only: its optimum is its grid argmin
        gamma_star_refined = None if refined is None else float(design.gammas[int(np.argmin(refined.theory_excess))])
        verdict_refined = None if refined is None else check(refined.fit_excess, gamma_star_refined, "verdict_refined")
        failed = ~rows["converged"].to_numpy() | rows["nonfinite"].to_numpy()
        theta0 = built.warm_start
        return {
            "dgp": run.dgp["name"],
            "generator": run.generator["name"],
            "model": f"{run.model.family}{' + intercept' if run.model.intercept else ''}",
            "n0": design.n0,
            "n1": design.n1,
            "reps": design.reps,
            "data_key": list(b.cell.data_key),
            "generator_key": list(b.cell.generator_key),
            "regime": population.regime,
            "g_norm": float(np.linalg.norm(population.g)),
            "theta_star": json_numbers(population.theta_star),
            "gammas": list(design.gammas),
            "n_tilde": [int(n) for n in design.n_tilde],
            "excess_mean": json_numbers(exc.mean),
            "excess_mcse": json_numbers(exc.mcse),
            "excess_quantiles": _quantiles(exc),
            "param_error_mean": json_numbers(err.mean),
            "param_error_mcse": json_numbers(err.mcse),
            "param_error_rms": json_numbers(rms.value),
            "param_error_rms_mcse": json_numbers(rms.mcse),
            "param_error_quantiles": _quantiles(err),
            "population_excess": json_numbers(prediction.population_excess),
            "theory_excess": json_numbers(prediction.theory_excess),
            "theory_excess_se": json_numbers(prediction.theory_excess_se),
            "theory_bias": json_numbers(prediction.bias_term),
            "theory_cross": json_numbers(prediction.cross_term),
            "theory_variance": json_numbers(prediction.variance_term),
            "param_error_theory": json_numbers(prediction.param_error_theory),
            "theory_grid": {
                "gammas": json_numbers(theory["fine"]),
                "theory_excess": json_numbers(theory["fine_prediction"].theory_excess),
                "population_excess": json_numbers(theory["fine_prediction"].population_excess),
            },
            "theory_excess_refined": None if refined is None else json_numbers(refined.theory_excess),
            "theory_excess_refined_se": None if refined is None else json_numbers(refined.theory_excess_se),
            "theory_bias_exact": None if refined is None else json_numbers(refined.exact_bias),
            "theory_refined_note": theory["refine_note"] or refined.method,
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
            "psi_refits": int(theory["synthetic"].refits),
            "warm_start": None if theta0 is None else [json_numbers(t) for t in theta0],
            "verdict": verdict_,
            "verdict_refined": verdict_refined,
        }

    def documents(self, summary: dict) -> dict[str, str]:
        return {}

    def draw(self, summary: dict) -> dict:
        return {"figure": plotting.cell_figure(summary)}

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        built = BuiltCell(run)
        theta0 = None if summary.get("warm_start") is None else np.asarray(summary["warm_start"], dtype=float)
        return replication_rows(built.cell, built.population, [r], fit_replications(built.cell, [r], theta0))


STUDY = CurveStudy()
