"""``study.kind: vtss``: study 6 of THEORY.md section 6, VTSS end to end in one simulated cell.

The study compares the ways section 5 offers to choose the synthetic size on one loss, the
**balanced log-loss** (the family's loss; for the logistic family the log-loss)

    L_bal(theta) = (1/2) E_{P0} l(theta; X, 0) + (1/2) E_{P1} l(theta; X, 1)

(R_bal of section 1), estimated as exactly as the design allows. Replication r draws the real
data (n0 majority, n1 minority rows) from ``engine.replication_streams(seed, data_key,
generator_key, r)`` (keys from ``engine.stable_key`` of the cell's config, so every number
regenerates from config + r) and computes

* the **curve**: one generator fit and ONE pool of max n~ synthetic rows; the fit for each gamma
  of ``design.gammas`` uses real rows plus the first n~ = round(gamma (n0 - n1)) pool rows
  (``engine.prefix_weights``, one batched ``fit_glm`` call);
* **VTSS** and **TG-VTSS** (``simstudy.selection``) fitted on the replication's real rows, their
  gamma_hat and test loss;
* the baselines of section 5: no augmentation (gamma = 0) and full balancing (gamma = 1) read
  off the curve, inverse-frequency **reweighting**, **cost-sensitive** weights tuned on the same
  validation splits as VTSS, and, after all replications, the **oracle-best** size
  gamma_oracle = argmin_gamma of the mean curve (with a bootstrap CI over replications;
  its mean loss is optimistic, being chosen on the replications it is reported on).

Where the theory's bias-optimal size is exact -- exact scoring and a generator whose law is
fixed given n1 (``data_dependent`` False, e.g. study 4's ``ConsistentShift``) -- the study also
runs the **theory** arm: gamma* = ``Theory.optimal_sizes(...).gamma_star_bias`` for the cell's
sizes (search range the curve's grid), fitted in each replication on the real rows plus the
first round(gamma* (n0 - n1)) rows of the curve's pool. With exact scoring every row also has
its **parameter error** ||theta_hat - theta*||; the summary gives each method's mean, MCSE and
empirical 2.5% / 97.5% band of the test loss and of the parameter error, and for each TG-VTSS
how many replications' candidate grids stop below gamma* (``grid_excludes_gamma_star``).

Every selector of replication r gets the same ``random_state`` (``selectors.selector_seed``):
they validate on the same splits (common random numbers), so a TG-VTSS whose diagnostics choose
VTSS's wide grid reads VTSS's validation instead of fitting it again
(``selection.SharedValidations``: the same numbers, bit for bit).

The test loss is **exact** where the design allows it (``scoring: exact``, the default for a
linear model on Gaussian-mixture classes): L_bal(theta) = ``Population.risk_bal(theta)`` by
quadrature. Otherwise (a feature map, or a class law known only through a sample, as the noisy
ring) it is the balanced loss on ONE fixed balanced test set of ``test_per_class`` rows per
class, drawn from the stream with spawn key stable_key({"test_set": dgp, "per_class": m}) and
shared by all replications, so differences between methods carry no test-set noise beyond that
common draw.

Study 6(b) fits logistic regression on D random Fourier features (``fourier``) while the
generator works in the raw space (``selection.FeatureGLM``). The map is fixed for the cell: its
lengthscale ell is the median pairwise distance of a pilot sample of ``pilot_per_class`` rows
per class (the median heuristic), unless a number is given; pilot, W and b come from the stream
keyed stable_key({"features": options, "dgp": dgp}), options being ``selection.feature_map``
(the key keeps its old name "features" so that published streams do not move).
With ``selection.feature_map.refit: fold`` (the authors' 6b, AUTHORS_DESIGNS.md B) there is no
cell map: replication r draws its own on its real training rows from the stream
``auxiliary_seed(seed, (*data_key, r), "feature_map")`` for its curve, the selectors draw theirs
on each validation split's fitting rows and on all training rows (``selection``, "Feature
maps"), and each fit is scored through its own map on the raw test rows.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, replace
from typing import NamedTuple

import numpy as np
import pandas as pd

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import plotting
from simstudy.cell import BuiltCell
from simstudy.engine import (
    QUANTILES,
    Cell,
    auxiliary_seed,
    draw_replication,
    empirical_optimum,
    prefix_weights,
    stable_key,
    summarise_curve,
)
from simstudy.fitting import fit_glm
from simstudy.fourier import LENGTHSCALE_RULES, RandomFourierFeatures, RandomFourierSpec
from simstudy.jobfiles import json_numbers
from simstudy.laws import EmpiricalLaw
from simstudy.schema import ConfigError, RunConfig, as_plain, selection_config
from simstudy.selection import FeatureGLM, SharedValidations, balanced_loss
from simstudy.studies.selectors import (
    TG_METHODS,
    error_text,
    facts,
    mean_sd_mcse,
    model_label,
    selector_facts,
    selector_seed,
    size_selectors,
    weight_selectors,
)
from simstudy.theory import Theory, synthetic_moments

BAND = (0.025, 0.975)
"""The empirical band of a method's test loss and parameter error over replications."""


class VTSSCell(NamedTuple):
    """Everything study 6 needs for one cell (``VTSSStudy.build``)."""

    run: RunConfig
    cell: Cell  # engine cell: process, generator, model (GLM or FeatureGLM), design, keys
    population: object  # Population of the raw linear model when scoring is exact, else None
    feature_map: RandomFourierFeatures | RandomFourierSpec | None  # a spec: refitted per replication
    lengthscale: float | None
    test: tuple | None  # (Z_test, y_test) of the fixed balanced test set (raw rows with a spec), else None
    scoring: str  # "exact" or "test_set"
    gamma_star: float | None  # the theory's bias-optimal gamma* where it is exact, else None


def feature_map(run: RunConfig, process) -> tuple[RandomFourierFeatures | RandomFourierSpec, float | None]:
    """The cell's fixed random Fourier map and its lengthscale, or with ``refit: fold`` the
    spec every replication and fold draws its own map from (module docstring)."""
    spec = run.selection.feature_map
    if spec.refit == "fold":
        return RandomFourierSpec(spec.n_features, spec.lengthscale), None
    # The stream's key says "features", the config section's name before it became
    # selection.feature_map, and asdict(spec) had the keys name, n_features, lengthscale and
    # pilot_per_class before refit was added: keep both exactly so, or every published stream
    # (and number) moves.
    options = {k: v for k, v in asdict(spec).items() if k != "refit"}
    rng = np.random.default_rng(
        np.random.SeedSequence(run.seed, spawn_key=stable_key({"features": options, "dgp": run.dgp}))
    )
    ell = spec.lengthscale
    if ell in LENGTHSCALE_RULES:
        P0, P1 = process.sample(spec.pilot_per_class, spec.pilot_per_class, rng)
        ell = RandomFourierSpec(spec.n_features, ell).lengthscale_of(np.vstack([P0, P1]))
    return RandomFourierFeatures.draw(process.dim, spec.n_features, ell, rng), float(ell)


def build_vtss_cell(run: RunConfig) -> VTSSCell:
    """Process, generator, model, design, keys, feature map and scorer of a study-6 cell.

    The engine cell is ``BuiltCell``'s (same data and generator keys as every other study),
    with its model replaced by the ``FeatureGLM`` on the cell's map when there is one.
    """
    sel = run.selection
    built = BuiltCell(run)
    process = built.process
    phi, ell = (None, None) if sel.feature_map is None else feature_map(run, process)
    exact_possible = phi is None and not any(isinstance(law, EmpiricalLaw) for law in (process.law0, process.law1))
    scoring = sel.scoring if sel.scoring != "auto" else ("exact" if exact_possible else "test_set")
    if scoring == "exact" and not exact_possible:
        raise ConfigError(
            "selection.scoring",
            "exact",
            f"dgp {run.dgp['name']!r} has a class law known only through a sample; use test_set",
        )
    base = built.model
    fixed = isinstance(phi, RandomFourierFeatures)
    model = FeatureGLM(base.family, base.intercept, base.ridge, feature_map=phi) if fixed else base
    test = None
    if scoring == "test_set":
        m = sel.test_per_class
        rng = np.random.default_rng(
            np.random.SeedSequence(run.seed, spawn_key=stable_key({"test_set": run.dgp, "per_class": m}))
        )
        T0, T1 = process.sample(m, m, rng)
        y0, y1 = process.labels
        rows = np.vstack([T0, T1])
        # with a map refitted per replication the rows stay raw (test_losses maps them)
        test = (
            rows if isinstance(phi, RandomFourierSpec) else np.asarray(model.features(rows)),
            np.r_[np.full(m, y0), np.full(m, y1)],
        )
    population = built.population if scoring == "exact" else None
    gamma_star = None
    if population is not None and not built.generator.data_dependent:
        design = built.design
        synthetic = synthetic_moments(
            population,
            built.generator,
            design.n1,
            np.random.default_rng(
                auxiliary_seed(run.seed, (*built.cell.data_key, *built.cell.generator_key), "theory_refits")
            ),
            n0=design.n0,
        )
        theory = Theory(population, synthetic, design.n0, design.n1)
        gamma_star = theory.optimal_sizes(gamma_max=max(design.gammas)).gamma_star_bias
    return VTSSCell(run, built.cell._replace(model=model), population, phi, ell, test, scoring, gamma_star)


def test_losses(vc: VTSSCell, thetas, model=None) -> np.ndarray:
    """L_bal at thetas (..., p): exact (population) or on the fixed test set; ``model`` is the
    fit's GLM when its map was drawn for the replication (``refit: fold``)."""
    thetas = np.asarray(thetas, dtype=np.float64)
    if vc.scoring == "exact":
        return np.asarray(vc.population.excess(thetas)) + vc.population.risk_star
    Z, y = vc.test
    if isinstance(vc.feature_map, RandomFourierSpec):
        Z = model.features(Z)
    flat = thetas.reshape(-1, thetas.shape[-1])
    return balanced_loss(vc.cell.model.family, Z @ flat.T, y).reshape(thetas.shape[:-1])


def parameter_errors(vc: VTSSCell, thetas) -> np.ndarray:
    """||theta - theta*|| at thetas (..., p) when the scoring is exact, else NaN."""
    thetas = np.asarray(thetas, dtype=np.float64)
    if vc.population is None:
        return np.full(thetas.shape[:-1], math.nan)
    return np.linalg.norm(thetas - vc.population.theta_star, axis=-1)


def _theory_row(vc: VTSSCell, X, y) -> dict:
    """The fit at the theory's gamma* on the replication's real rows and pool prefix."""
    design = vc.cell.design
    n_star = int(np.rint(vc.gamma_star * (design.n0 - design.n1)))
    if n_star > int(design.n_tilde.max()):
        error = (
            f"gamma* = {vc.gamma_star:.3f} lies beyond the curve's largest gamma {max(design.gammas)} "
            "(its pool): extend design.gammas past it"
        )
        return {**facts("theory", gamma=vc.gamma_star, error=error), "test_loss": math.nan, "param_error": math.nan}
    real = design.n0 + design.n1
    weights = np.r_[np.ones(real), np.arange(len(y) - real) < n_star].astype(np.float64)
    fit = fit_glm(X, y, weights[None], model=vc.cell.model)
    theta = fit.theta[0]
    return {
        **facts(
            "theory",
            gamma=vc.gamma_star,
            n_tilde=n_star,
            converged=bool(fit.info.converged[0]),
            separated=bool(fit.info.separated[0]),
        ),
        "test_loss": float(test_losses(vc, theta)),
        "param_error": float(parameter_errors(vc, theta)),
    }


def vtss_replication(vc: VTSSCell, r: int) -> pd.DataFrame:
    """Replication r of study 6: the curve rows and one row per selector (module docstring)."""
    cell, design, sel = vc.cell, vc.cell.design, vc.run.selection
    X, y = draw_replication(cell, r)
    model = cell.model
    if isinstance(vc.feature_map, RandomFourierSpec):
        # the authors' 6b: a map drawn and sized on the replication's real training rows
        rng = np.random.default_rng(auxiliary_seed(design.seed, (*cell.data_key, r), "feature_map"))
        phi = vc.feature_map.fit(X[: design.n0 + design.n1], rng)
        model = FeatureGLM(model.family, model.intercept, model.ridge, feature_map=phi)
    fit = fit_glm(X, y, prefix_weights(design), model=model)
    curve_loss = test_losses(vc, fit.theta, model)
    curve_error = parameter_errors(vc, fit.theta)
    rows = [
        {
            **facts("curve", gamma=g, n_tilde=int(n), converged=bool(c), separated=bool(s)),
            "test_loss": float(v),
            "param_error": float(e),
        }
        for g, n, v, e, c, s in zip(
            design.gammas, design.n_tilde, curve_loss, curve_error, fit.info.converged, fit.info.separated
        )
    ]
    if vc.gamma_star is not None:
        rows.append(_theory_row(vc, X, y))
    real = design.n0 + design.n1
    X, y = X[:real], (y[:real] == cell.process.labels[1]).astype(np.int64)
    model_args = dict(
        family=cell.model.family.name,
        intercept=cell.model.intercept,
        ridge=cell.model.ridge,
        feature_map=vc.feature_map,
    )
    root = selector_seed(design.seed, cell.data_key, r)
    sizes = size_selectors(cell.generator, model_args, sel, root)
    selectors = {**sizes, **weight_selectors(model_args, sel, root, design.n0, design.n1)}
    shared = SharedValidations()
    for name, est in selectors.items():
        try:
            if name in sizes:
                est.fit(X, y, shared=shared)
            else:
                est.fit(X, y)
        except (ValueError, RuntimeError) as err:
            rows.append({**facts(name, error=error_text(err)), "test_loss": math.nan, "param_error": math.nan})
            continue
        rows.append(
            {
                **selector_facts(name, est),
                "test_loss": float(test_losses(vc, est.theta_, est.model_)),
                "param_error": float(parameter_errors(vc, est.theta_)),
            }
        )
    frame = pd.DataFrame(rows)
    frame.insert(0, "replication", r)
    return frame


def summarise_vtss(vc: VTSSCell, rows: pd.DataFrame) -> dict:
    """The numbers of study 6's summary.json (without the job's metadata)."""
    design = vc.cell.design
    gammas = np.asarray(design.gammas)
    curve = rows[rows["method"] == "curve"]
    values = curve["test_loss"].to_numpy().reshape(design.reps, len(gammas))
    summary = summarise_curve(values)
    sd = values.std(axis=0, ddof=1)
    boot_rng = np.random.default_rng(
        auxiliary_seed(design.seed, (*vc.cell.data_key, *vc.cell.generator_key), "bootstrap")
    )
    optimum = empirical_optimum(values, gammas, boot_rng)
    best = int(np.argmin(values.mean(axis=0)))
    zero, one = int(np.flatnonzero(gammas == 0.0)[0]), int(np.flatnonzero(gammas == 1.0)[0])
    full = values[:, one]
    errors = curve["param_error"].to_numpy().reshape(design.reps, len(gammas))
    methods = {
        "no_augmentation": {"gamma": 0.0, **_spread(values[:, zero], errors[:, zero])},
        "full_balancing": {"gamma": 1.0, **_spread(full, errors[:, one])},
        "oracle_best": {
            "gamma": float(gammas[best]),
            "gamma_ci": list(optimum.ci),
            **_spread(values[:, best], errors[:, best]),
        },
    }
    names = ("vtss", *TG_METHODS, "reweighting", "cost_sensitive")
    for name in names + (("theory",) if vc.gamma_star is not None else ()):
        sub = rows[rows["method"] == name].sort_values("replication")
        loss = sub["test_loss"].to_numpy()
        entry = {
            **_spread(loss, sub["param_error"].to_numpy()),
            "minus_full_balancing": mean_sd_mcse(loss - full),
            "minus_oracle_best": mean_sd_mcse(loss - values[:, best]),
            "n_errors": int((sub["error"] != "").sum()),
            "n_separated": int(sub["separated"].sum()),
            "n_not_converged": int((~sub["converged"] & (sub["error"] == "")).sum()),
        }
        if name == "theory":
            entry["gamma"] = vc.gamma_star
        elif name == "vtss" or name in TG_METHODS:
            entry["gamma"] = mean_sd_mcse(sub["gamma"])
            entry["n_tilde"] = mean_sd_mcse(sub["n_tilde"].where(sub["n_tilde"] >= 0))
        if name in TG_METHODS:
            entry["rules"] = next((r for r in sub["rules"] if r), "")
            entry["branches"] = {str(k): int(v) for k, v in sub["branch"].value_counts().items() if k}
            # the loss each branch leads to (issue 17: a branch is only as good as its decision)
            entry["branch_test_loss"] = {
                str(k): mean_sd_mcse(part["test_loss"]) for k, part in sub.groupby("branch") if k
            }
            if vc.gamma_star is not None:
                # AUTHORS_DESIGNS.md A: the candidate grid can stop below the bias-optimal size
                entry["grid_excludes_gamma_star"] = int((sub["candidate_max"] < vc.gamma_star).sum())
        if name == "cost_sensitive":
            entry["weight"] = mean_sd_mcse(sub["weight"])
        methods[name] = entry
    for name in ("no_augmentation", "oracle_best"):
        column = values[:, zero if name == "no_augmentation" else best]
        methods[name]["minus_full_balancing"] = mean_sd_mcse(column - full)
    return {
        "gammas": [float(g) for g in gammas],
        "n_tilde": [int(n) for n in design.n_tilde],
        "scoring": vc.scoring,
        "test_per_class": vc.run.selection.test_per_class if vc.scoring == "test_set" else None,
        "risk_star": None if vc.population is None else float(vc.population.risk_star),
        "gamma_star": vc.gamma_star,
        "curve_mean": json_numbers(summary.mean),
        "curve_sd": json_numbers(sd),
        "curve_mcse": json_numbers(summary.mcse),
        "curve_quantiles": {str(q): json_numbers(v) for q, v in zip(QUANTILES, summary.quantiles)},
        "oracle_best_gamma": float(gammas[best]),
        "oracle_best_gamma_ci": list(optimum.ci),
        "methods": methods,
        "n_curve_separated": int(curve["separated"].sum()),
        "n_curve_not_converged": int((~curve["converged"]).sum()),
    }


def _spread(loss, param_error) -> dict:
    """A method's test loss and parameter error over replications: mean, SD, MCSE, and the
    empirical 2.5% / 97.5% band of each (AUTHORS_DESIGNS.md A's bands)."""
    out = {}
    for key, values in (("test_loss", loss), ("param_error", param_error)):
        values = np.asarray(values, dtype=float)
        finite = values[np.isfinite(values)]
        out[key] = mean_sd_mcse(values)
        out[f"{key}_band"] = json_numbers(np.quantile(finite, BAND)) if finite.size else [None, None]
    return out


def check_grid_ends(run: RunConfig) -> None:
    """No augmentation and full balancing are read off the curve: design.gammas must hold 0 and 1."""
    gammas = run.design.gammas
    if 0.0 not in gammas or 1.0 not in gammas:
        raise ConfigError(
            "design.gammas",
            list(gammas),
            "must contain 0 and 1 (no augmentation and full balancing are read off the curve)",
        )


class VTSSStudy:
    """Study 6 (module docstring); implements ``Study``."""

    kind = "vtss"
    figures = ("vtss",)
    unit = "replication"
    row_tables = ("parquet",)

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        if "data" in sections:
            raise ConfigError("data", sections["data"], "only the real_data study (study.kind=real_data) reads data")
        sel = selection_config(sections.get("selection"))
        check_grid_ends(run)
        if sel.scoring == "exact" and sel.feature_map is not None:
            raise ConfigError(
                "selection.scoring",
                "exact",
                "the exact risk needs the raw linear model; use test_set with selection.feature_map",
            )
        if sel.folds > run.design.n1:
            raise ConfigError("selection.cv", sel.cv, f"needs K <= design.n1 = {run.design.n1}")
        if sel.gqs_folds is not None and sel.gqs_folds > run.design.n1:
            raise ConfigError("selection.gqs_folds", sel.gqs_folds, f"needs K <= design.n1 = {run.design.n1}")
        return replace(run, selection=sel)

    def build(self, run: RunConfig) -> VTSSCell:
        return build_vtss_cell(run)

    def label(self, built: VTSSCell) -> tuple[str, str]:
        run = built.run
        return f"{run.study} {run.dgp['name']} / {run.generator['name']}", "replications"

    def run(self, built: VTSSCell, progress) -> pd.DataFrame:
        reps, frames = built.cell.design.reps, []
        start = time.perf_counter()
        for r in range(reps):
            frames.append(vtss_replication(built, r))
            progress(r + 1, reps, time.perf_counter() - start)
        return pd.concat(frames, ignore_index=True)

    def summarise(self, built: VTSSCell, rows: pd.DataFrame) -> dict:
        run, d = built.run, built.run.design
        failed = rows[rows["error"] != ""]
        if len(failed):
            # kept with their errors (section 7), but a user must not read the means unaware
            first = failed.iloc[0]
            print(
                f"simstudy: {len(failed)} selector fits of {rows['method'].ne('curve').sum()} failed and were "
                f"recorded with their errors (n_errors per method in summary.json), e.g. {first['method']} in "
                f"replication {first['replication']}: {first['error']}",
                file=sys.stderr,
            )
        return {
            "selection": as_plain(run.selection),
            "dgp": run.dgp["name"],
            "generator": run.generator["name"],
            "model": model_label(run),
            "n0": d.n0,
            "n1": d.n1,
            "reps": d.reps,
            "data_key": list(built.cell.data_key),
            "generator_key": list(built.cell.generator_key),
            "lengthscale": built.lengthscale,
            "feature_map": as_plain(run.selection.feature_map),
            **summarise_vtss(built, rows),
        }

    def documents(self, summary: dict) -> dict[str, str]:
        return {"table.md": table_text(summary)}

    def draw(self, summary: dict) -> dict:
        return {"figure": plotting.vtss_figure(summary)}

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        return vtss_replication(build_vtss_cell(run), r)

    def sweep(self, summaries: list[dict]):
        """A sweep over n1 with exact scoring (AUTHORS_DESIGNS.md A): the figure of
        ``plotting.vtss_sweep_figure`` and a table per n1 (``sweep_report``)."""
        done = [s for s in summaries if s.get("status", "ok") == "ok" and s.get("risk_star") is not None]
        if len({s["n1"] for s in done}) < 2:
            return None, ""
        return plotting.vtss_sweep_figure(done), sweep_report(done)


TABLE_METHODS = (
    "no_augmentation",
    "full_balancing",
    "oracle_best",
    "theory",
    "vtss",
    *TG_METHODS,
    "reweighting",
    "cost_sensitive",
)
"""table.md's rows, in order (a method the summary lacks is left out)."""


def table_text(summary: dict) -> str:
    """table.md: per method the chosen gamma, the test loss and its difference with full
    balancing (paired, over the same replications), each mean ± MCSE, failed fits, and each
    TG-VTSS's branch counts with its rules."""
    methods = summary["methods"]
    lines = [
        f"{summary['study']}: {summary['dgp']}, {summary['generator']}, {summary['model']}, n0 = {summary['n0']}, "
        f"n1 = {summary['n1']}, R = {summary['reps']}; test loss {summary['scoring']}",
        "",
        "| method | γ | test loss | minus full balancing | errors | branches (symmetry / low_gqs / high_gqs) |",
        "|---|---|---|---|---|---|",
    ]
    for name in (m for m in TABLE_METHODS if m in methods):
        entry = methods[name]
        gamma = entry.get("gamma")
        gamma_text = _mean_mcse(gamma) if isinstance(gamma, dict) else ("—" if gamma is None else f"{gamma:.3g}")
        minus = "—" if name == "full_balancing" else _mean_mcse(entry.get("minus_full_balancing"))
        branches = entry.get("branches")
        counts = "—"
        if branches is not None:
            counts = " / ".join(str(branches.get(b, 0)) for b in ("symmetry", "low_gqs", "high_gqs"))
            counts += f" ({entry['rules']})"
        label = plotting.METHOD_LABELS.get(name, "theory's γ*")
        lines.append(
            f"| {label} | {gamma_text} | {_mean_mcse(entry['test_loss'])} | {minus} | "
            f"{entry.get('n_errors', 0)} | {counts} |"
        )
    return "\n".join(lines) + "\n"


def _mean_mcse(entry: dict | None, shift: float = 0.0) -> str:
    """mean ± MCSE to 3 significant digits (excess risks span four decades over a sweep)."""
    value = None if entry is None else entry["mean"]
    if value is None:
        return "—"
    return f"{value - shift:.3g} ± {entry['mcse'] or 0.0:.2g}"


def sweep_report(summaries: list[dict]) -> str:
    """Markdown: per n1, each arm's exact excess risk and parameter error (mean ± MCSE), the
    theory's gamma*, and per TG-VTSS variant its branch shares and how many replications'
    candidate grids stop below gamma*."""
    cells = sorted(summaries, key=lambda s: s["n1"])
    arms = [m for m in plotting.SWEEP_METHODS if any(m in s["methods"] for s in cells)]
    head = " | ".join(plotting.METHOD_LABELS.get(m, "theory's γ*") for m in arms)
    lines = ["Excess balanced risk (mean ± MCSE over replications):", "", f"| n1 | n0 | R | γ* | {head} |"]
    lines.append("|" + "---|" * (4 + len(arms)))
    for s in cells:
        star = "—" if s.get("gamma_star") is None else f"{s['gamma_star']:.2f}"
        values = " | ".join(_mean_mcse(s["methods"].get(m, {}).get("test_loss"), s["risk_star"]) for m in arms)
        lines.append(f"| {s['n1']} | {s['n0']} | {s['reps']} | {star} | {values} |")
    lines += ["", "Parameter error ‖θ̂ − θ*‖ (mean ± MCSE):", "", f"| n1 | {head} |", "|" + "---|" * (1 + len(arms))]
    for s in cells:
        lines.append(
            f"| {s['n1']} | " + " | ".join(_mean_mcse(s["methods"].get(m, {}).get("param_error")) for m in arms) + " |"
        )
    variants = [m for m in arms if m in TG_METHODS]
    lines += [
        "",
        "TG-VTSS branches (replications per branch) and grids that stop below γ*:",
        "",
        "| n1 | variant | rules | symmetry | low_gqs | high_gqs | grid max < γ* | mean γ̂ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in cells:
        for m in (v for v in variants if v in s["methods"]):
            e = s["methods"][m]
            branches = e["branches"]
            lines.append(
                f"| {s['n1']} | {plotting.METHOD_LABELS[m]} | {e['rules']} | {branches.get('symmetry', 0)} | "
                f"{branches.get('low_gqs', 0)} | {branches.get('high_gqs', 0)} | "
                f"{e.get('grid_excludes_gamma_star', '—')} of {s['reps']} | {_mean_mcse(e['gamma'])} |"
            )
    return "\n".join(lines) + "\n"


STUDY = VTSSStudy()
