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

Every selector of replication r gets the same ``random_state`` (``selectors.selector_seed``):
they validate on the same splits (common random numbers).

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
from simstudy.fourier import RandomFourierFeatures, median_lengthscale
from simstudy.jobfiles import json_numbers
from simstudy.laws import EmpiricalLaw
from simstudy.schema import ConfigError, RunConfig, as_plain, selection_config
from simstudy.selection import FeatureGLM, balanced_loss
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


class VTSSCell(NamedTuple):
    """Everything study 6 needs for one cell (``VTSSStudy.build``)."""

    run: RunConfig
    cell: Cell  # engine cell: process, generator, model (GLM or FeatureGLM), design, keys
    population: object  # Population of the raw linear model when scoring is exact, else None
    feature_map: RandomFourierFeatures | None
    lengthscale: float | None
    test: tuple | None  # (Z_test, y_test) of the fixed balanced test set, else None
    scoring: str  # "exact" or "test_set"


def feature_map(run: RunConfig, process) -> tuple[RandomFourierFeatures, float]:
    """The cell's fixed random Fourier map and its lengthscale (module docstring)."""
    spec = run.selection.feature_map
    # The stream's key says "features", the config section's name before it became
    # selection.feature_map, and asdict(spec) has the keys name, n_features, lengthscale and
    # pilot_per_class: keep both exactly as they are, or every published stream (and number) moves.
    rng = np.random.default_rng(
        np.random.SeedSequence(run.seed, spawn_key=stable_key({"features": asdict(spec), "dgp": run.dgp}))
    )
    ell = spec.lengthscale
    if ell == "median":
        P0, P1 = process.sample(spec.pilot_per_class, spec.pilot_per_class, rng)
        ell = median_lengthscale(np.vstack([P0, P1]))
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
    model = base if phi is None else FeatureGLM(base.family, base.intercept, base.ridge, feature_map=phi)
    test = None
    if scoring == "test_set":
        m = sel.test_per_class
        rng = np.random.default_rng(
            np.random.SeedSequence(run.seed, spawn_key=stable_key({"test_set": run.dgp, "per_class": m}))
        )
        T0, T1 = process.sample(m, m, rng)
        y0, y1 = process.labels
        test = (np.asarray(model.features(np.vstack([T0, T1]))), np.r_[np.full(m, y0), np.full(m, y1)])
    population = built.population if scoring == "exact" else None
    return VTSSCell(run, built.cell._replace(model=model), population, phi, ell, test, scoring)


def test_losses(vc: VTSSCell, thetas) -> np.ndarray:
    """L_bal at thetas (..., p): exact (population) or on the fixed test set."""
    thetas = np.asarray(thetas, dtype=np.float64)
    if vc.scoring == "exact":
        return np.asarray(vc.population.excess(thetas)) + vc.population.risk_star
    Z, y = vc.test
    flat = thetas.reshape(-1, thetas.shape[-1])
    return balanced_loss(vc.cell.model.family, Z @ flat.T, y).reshape(thetas.shape[:-1])


def vtss_replication(vc: VTSSCell, r: int) -> pd.DataFrame:
    """Replication r of study 6: the curve rows and one row per selector (module docstring)."""
    cell, design, sel = vc.cell, vc.cell.design, vc.run.selection
    X, y = draw_replication(cell, r)
    fit = fit_glm(X, y, prefix_weights(design), model=cell.model)
    curve_loss = test_losses(vc, fit.theta)
    rows = [
        {**facts("curve", gamma=g, n_tilde=int(n), converged=bool(c), separated=bool(s)), "test_loss": float(v)}
        for g, n, v, c, s in zip(design.gammas, design.n_tilde, curve_loss, fit.info.converged, fit.info.separated)
    ]
    real = design.n0 + design.n1
    X, y = X[:real], (y[:real] == cell.process.labels[1]).astype(np.int64)
    model_args = dict(
        family=cell.model.family.name,
        intercept=cell.model.intercept,
        ridge=cell.model.ridge,
        feature_map=vc.feature_map,
    )
    root = selector_seed(design.seed, cell.data_key, r)
    selectors = {
        **size_selectors(cell.generator, model_args, sel, root),
        **weight_selectors(model_args, sel, root, design.n0, design.n1),
    }
    for name, est in selectors.items():
        try:
            est.fit(X, y)
        except (ValueError, RuntimeError) as err:
            rows.append({**facts(name, error=error_text(err)), "test_loss": math.nan})
            continue
        rows.append({**selector_facts(name, est), "test_loss": float(test_losses(vc, est.theta_))})
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
    methods = {
        "no_augmentation": {"gamma": 0.0, "test_loss": mean_sd_mcse(values[:, zero])},
        "full_balancing": {"gamma": 1.0, "test_loss": mean_sd_mcse(full)},
        "oracle_best": {
            "gamma": float(gammas[best]),
            "gamma_ci": list(optimum.ci),
            "test_loss": mean_sd_mcse(values[:, best]),
        },
    }
    for name in ("vtss", *TG_METHODS, "reweighting", "cost_sensitive"):
        sub = rows[rows["method"] == name].sort_values("replication")
        loss = sub["test_loss"].to_numpy()
        entry = {
            "test_loss": mean_sd_mcse(loss),
            "minus_full_balancing": mean_sd_mcse(loss - full),
            "minus_oracle_best": mean_sd_mcse(loss - values[:, best]),
            "n_errors": int((sub["error"] != "").sum()),
            "n_separated": int(sub["separated"].sum()),
            "n_not_converged": int((~sub["converged"] & (sub["error"] == "")).sum()),
        }
        if name == "vtss" or name in TG_METHODS:
            entry["gamma"] = mean_sd_mcse(sub["gamma"])
            entry["n_tilde"] = mean_sd_mcse(sub["n_tilde"].where(sub["n_tilde"] >= 0))
        if name in TG_METHODS:
            entry["rules"] = next((r for r in sub["rules"] if r), "")
            entry["branches"] = {str(k): int(v) for k, v in sub["branch"].value_counts().items() if k}
            # the loss each branch leads to (issue 17: a branch is only as good as its decision)
            entry["branch_test_loss"] = {
                str(k): mean_sd_mcse(part["test_loss"]) for k, part in sub.groupby("branch") if k
            }
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
        return {}

    def draw(self, summary: dict) -> dict:
        return {"figure": plotting.vtss_figure(summary)}

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        return vtss_replication(build_vtss_cell(run), r)


STUDY = VTSSStudy()
