"""``study.kind: diagnostics``: the error rates of THEORY.md section 4's two decisions in one
simulated cell (AUTHORS_DESIGNS.md section D, and issue 17's calibrated versions).

``study.figure`` says which decision the cell measures:

* ``symmetry``: the local-symmetry Wald test. Replication r draws n0 majority and n1 minority
  rows (``engine.replication_streams``, so every number regenerates from config + r) and
  records T, its chi2_p p-value and, with ``selection.n_boot`` > 0, the studentised, the
  tilted and the scale-corrected double tilted bootstrap p-values
  (``diagnostics.wald_symmetry_test``; resamples from the streams keyed (data key, r,
  ``STREAM_TAGS["symmetry_bootstrap"]``) and (..., ``"symmetry_tilted"``), the double one's
  first level being the tilted one's resamples, with its scale factor ``boot_scale``).
  The chi2 statistics of a chunk of replications are one batched call. The summary holds each
  reference's rejection rate at ``selection.alpha`` with its Monte Carlo SE
  sqrt(rate (1 - rate) / R) (``reject_chi2``, ``reject_bootstrap``, ``reject_tilted``,
  ``reject_tilted_double``), the median of the double's scale factors (``boot_scale_median``),
  the count of replications whose tilt stopped short of the null (``tilt_partial``), T's
  quantiles beside chi2_p's (the Q-Q plot), and the population's prediction: g_phi =
  grad R0 - grad R1 at theta*, V from the class moments at theta* (module docstring of
  simstudy.diagnostics) and the first-order power P(chi2_p(lambda) > chi2_p(1 - alpha)),
  lambda = g_phi' V^{-1} g_phi (the size alpha under the null).
* ``gqs``: the generator quality score of the cell's generator (``diagnostics.diagnose``, K =
  ``selection.gqs_folds`` folds, default min(5, n1), its fits and draws from the replication's
  fit stream), called biased by the authors' rule (GQS > ``selection.gqs_threshold``) and by the
  calibrated rule (p-value under an exact generator <= ``selection.gqs_level``) and by the
  pool-calibrated rule (the same with the minority's score covariance from the synthetic pools,
  ``GQSResult.pool_p_value``): the false-alarm rate for an exact generator
  (``generator=oracle``), the detection rate for a biased one.

A sweep of either draws one figure from its cells' summaries (``sweep``): rejection rates
against n1 by dimension with the band [0.035, 0.065] and Q-Q panels, power against the local
alternative h beside the prediction, or the GQS decisions' rates by generator and n1.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import chi2, ncx2

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import plotting
from simstudy.cell import BuiltCell
from simstudy.diagnostics import (
    ClassScoreStats,
    bootstrap_p_value,
    diagnose,
    wald_covariance,
    wald_symmetry_test,
)
from simstudy.engine import auxiliary_seed, replication_streams
from simstudy.fitting import GLM
from simstudy.jobfiles import json_numbers
from simstudy.schema import (
    GQS_RULES,
    SELECTION_DEFAULTS,
    SYMMETRY_TESTS,
    ConfigError,
    RunConfig,
    as_plain,
    selection_config,
)
from simstudy.selection import FeatureGLM
from simstudy.studies.selectors import generator_label, model_label
from simstudy.studies.vtss import feature_map

QQ_PROBABILITIES = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""Where the Q-Q plot compares T's empirical quantiles with chi2_p's."""


def size_band(alpha: float) -> tuple[float, float]:
    """The rejection rates a calibrated test at level alpha should stay within: alpha +- 30%
    ([0.035, 0.065] at 0.05, issue 17's requirement)."""
    return 0.7 * alpha, 1.3 * alpha


class DiagnosticsCell(NamedTuple):
    """A built cell: the run, its objects, what it measures ("symmetry" or "gqs") and the
    model of the diagnostics (``built.model``, or a ``FeatureGLM`` on ``selection.feature_map``)."""

    run: RunConfig
    built: BuiltCell
    measure: str
    model: GLM


def _rate(flags) -> dict:
    """Rate of True among finite flags with its binomial Monte Carlo SE."""
    flags = np.asarray(flags, dtype=bool)
    n = len(flags)
    rate = float(flags.mean()) if n else float("nan")
    return {"rate": rate, "mcse": float(np.sqrt(rate * (1 - rate) / n)) if n else float("nan"), "n": n}


def population_prediction(built: BuiltCell, alpha: float) -> dict:
    """g_phi, V and the first-order power of the chi2 test at the population (module docstring)."""
    pop, (n0, n1) = built.population, (built.run.design.n0, built.run.design.n1)
    m0, m1 = pop.moments(pop.theta_star)
    p = len(pop.theta_star)
    s0, s1 = (
        ClassScoreStats(np.asarray(m.grad), np.asarray(m.hess), np.asarray(m.score_cov), n)
        for m, n in ((m0, n0), (m1, n1))
    )
    g, V = wald_covariance(s0, s1, (s0.hessian + s1.hessian) / 2)
    null = pop.regime == "symmetry"
    noncentrality = 0.0 if null else float(g @ np.linalg.solve(V, g))
    critical = chi2.ppf(1 - alpha, p)
    return {
        "null": null,
        "g_phi": json_numbers(g),
        "V": json_numbers(V),
        "noncentrality": noncentrality,
        "power": alpha if null else float(ncx2.sf(critical, p, noncentrality)),
    }


def symmetry_rows(dc: DiagnosticsCell, reps) -> pd.DataFrame:
    """The Wald test of replications ``reps``: T, its chi2 p-value and the three bootstraps'."""
    run, built = dc.run, dc.built
    d, sel = run.design, run.selection
    X0s, X1s = [], []
    for r in reps:
        X0, X1 = built.process.sample(d.n0, d.n1, _data_stream(dc, r))
        X0s.append(X0)
        X1s.append(X1)
    X0s, X1s = np.stack(X0s), np.stack(X1s)
    wald = wald_symmetry_test(X0s, X1s, built.model, built.process.labels)
    p_boot, p_tilted, p_double, share, scale = (np.full(len(reps), np.nan) for _ in range(5))
    if sel.n_boot:
        for i, r in enumerate(reps):

            def test(reference, tag):
                rng = np.random.default_rng(auxiliary_seed(run.seed, (*built.cell.data_key, r), tag))
                return wald_symmetry_test(
                    X0s[i], X1s[i], built.model, built.process.labels, reference=reference, rng=rng, n_boot=sel.n_boot
                )

            p_boot[i] = test("bootstrap", "symmetry_bootstrap").p_value
            # "tilted_double"'s first level is the tilted bootstrap itself: one run gives both
            double = test("tilted_double", "symmetry_tilted")
            p_tilted[i] = bootstrap_p_value(double.boot_statistics, double.statistic)
            p_double[i], share[i], scale[i] = double.p_value, double.tilt_share, double.boot_scale
    return pd.DataFrame(
        {
            "replication": list(reps),
            "statistic": np.asarray(wald.statistic, dtype=float),
            "p_chi2": np.asarray(wald.p_value, dtype=float),
            "p_bootstrap": p_boot,
            "p_tilted": p_tilted,
            "p_tilted_double": p_double,
            "tilt_share": share,
            "boot_scale": scale,
            "pilot_converged": np.asarray(wald.pilot_info.converged, dtype=bool),
            "pilot_separated": np.asarray(wald.pilot_info.separated, dtype=bool),
        }
    )


def gqs_rows(dc: DiagnosticsCell, reps) -> pd.DataFrame:
    """The GQS of replications ``reps`` and both rules' decisions."""
    run, built = dc.run, dc.built
    d, sel = run.design, run.selection
    rows = []
    for r in reps:
        streams = replication_streams(run.seed, built.cell.data_key, built.cell.generator_key, r)
        X0, X1 = built.process.sample(d.n0, d.n1, streams.data)
        labels = built.process.labels
        folds = min(5, d.n1) if sel.gqs_folds is None else sel.gqs_folds
        diag = diagnose(X0, X1, built.generator, dc.model, streams.fit, n_folds=folds, labels=labels)
        g = diag.gqs
        rows.append(
            {
                "replication": r,
                "gqs": g.gqs,
                "p_gqs": g.p_value,
                "p_gqs_pool": g.pool_p_value,
                "threshold_calibrated": g.threshold(sel.gqs_level),
                "threshold_pool": g.threshold(sel.gqs_level, null="pool"),
                "null_mean": float(g.null_weights.sum()),
                "pool_null_mean": float(g.pool_null_weights.sum()),
                "biased_threshold": g.gqs > sel.gqs_threshold,
                "biased_calibrated": g.p_value <= sel.gqs_level,
                "biased_pool": g.pool_p_value <= sel.gqs_level,
                "wald_p_chi2": float(diag.wald.p_value),
                "pilot_converged": bool(diag.wald.pilot_info.converged),
                "pilot_separated": bool(diag.wald.pilot_info.separated),
            }
        )
    return pd.DataFrame(rows)


def _data_stream(dc: DiagnosticsCell, r: int) -> np.random.Generator:
    built = dc.built
    return replication_streams(dc.run.seed, built.cell.data_key, built.cell.generator_key, r).data


BOOTSTRAP_INDICES = 250_000_000
"""Most bootstrap row indices one test draws (n_boot (n0 + n1), 8 bytes each: 2 GB)."""


def _check_sizes(run: RunConfig, measure: str, sel) -> None:
    d = run.design
    if measure == "gqs" and d.n0 <= d.n1:
        raise ConfigError("design.n0", d.n0, f"the GQS needs a majority: n0 > n1 = {d.n1}")
    if measure == "symmetry" and sel.n_boot * (d.n0 + d.n1) > BOOTSTRAP_INDICES:
        raise ConfigError(
            "selection.n_boot",
            sel.n_boot,
            f"n_boot (n0 + n1) = {sel.n_boot * (d.n0 + d.n1):.3g} row indices per test exceed "
            f"{BOOTSTRAP_INDICES:.3g} (2 GB)",
        )


class DiagnosticsStudy:
    """Error rates of the symmetry test or the GQS (module docstring); implements ``Study``."""

    kind = "diagnostics"
    figures = ("symmetry", "gqs")
    unit = "replication"
    row_tables = ("parquet",)

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        if "data" in sections:
            raise ConfigError("data", sections["data"], "only the real_data study (study.kind=real_data) reads data")
        sel = selection_config(sections.get("selection"))
        _check_sizes(run, run.figure, sel)
        # a cell reports every reference and every rule: these keys would only change its hash
        for key, everything in (("symmetry_test", SYMMETRY_TESTS), ("gqs_rule", GQS_RULES)):
            if getattr(sel, key) != SELECTION_DEFAULTS[key]:
                raise ConfigError(
                    f"selection.{key}",
                    getattr(sel, key),
                    f"a diagnostics study reports all of {', '.join(everything)}; leave it at "
                    f"{SELECTION_DEFAULTS[key]}",
                )
        if sel.feature_map is not None and run.figure == "symmetry":
            raise ConfigError(
                "selection.feature_map",
                as_plain(sel.feature_map),
                "only the GQS (study.figure=gqs) takes a feature map",
            )
        if sel.gqs_folds is not None and sel.gqs_folds > run.design.n1:
            raise ConfigError("selection.gqs_folds", sel.gqs_folds, f"needs K <= design.n1 = {run.design.n1}")
        return replace(run, selection=sel)

    def build(self, run: RunConfig) -> DiagnosticsCell:
        built = BuiltCell(run)
        model = built.model
        p, d = model.n_params(built.process.dim), run.design
        if min(d.n0, d.n1) <= p:
            # fewer rows than coefficients leave a class's score covariance singular: V has no inverse
            raise ConfigError("design.n1", d.n1, f"the Wald test needs more rows per class than its {p} coefficients")
        if run.selection.feature_map is not None:
            phi, _ = feature_map(run, built.process)
            model = FeatureGLM(model.family, model.intercept, model.ridge, feature_map=phi)
        return DiagnosticsCell(run, built, run.figure, model)

    def label(self, built: DiagnosticsCell) -> tuple[str, str]:
        run = built.run
        what = "symmetry test" if built.measure == "symmetry" else f"GQS of {run.generator['name']}"
        return f"{run.study} {run.dgp['name']} n1={run.design.n1} {what}", "replications"

    def run(self, built: DiagnosticsCell, progress) -> pd.DataFrame:
        d = built.run.design
        rows = symmetry_rows if built.measure == "symmetry" else gqs_rows
        frames, start = [], time.perf_counter()
        for first in range(0, d.reps, d.chunk):
            reps = range(first, min(first + d.chunk, d.reps))
            frames.append(rows(built, reps))
            progress(reps[-1] + 1, d.reps, time.perf_counter() - start)
        return pd.concat(frames, ignore_index=True)

    def summarise(self, built: DiagnosticsCell, rows: pd.DataFrame) -> dict:
        run, d, sel = built.run, built.run.design, built.run.selection
        out = {
            "selection": as_plain(sel),
            "dgp": run.dgp["name"],
            "dgp_info": {k: float(v) for k, v in built.built.process.info.items()},
            "generator": run.generator["name"],
            "generator_label": generator_label(run.generator),
            "model": model_label(run),
            "n0": d.n0,
            "n1": d.n1,
            "reps": d.reps,
            "measure": built.measure,
        }
        if built.measure == "gqs":
            out.update(
                gqs_mean=float(rows["gqs"].mean()),
                gqs_mcse=float(rows["gqs"].std(ddof=1) / np.sqrt(len(rows))),
                null_mean=float(rows["null_mean"].mean()),
                threshold_calibrated_mean=float(rows["threshold_calibrated"].mean()),
                biased_threshold=_rate(rows["biased_threshold"]),
                pool_null_mean=float(rows["pool_null_mean"].mean()),
                threshold_pool_mean=float(rows["threshold_pool"].mean()),
                biased_calibrated=_rate(rows["biased_calibrated"]),
                biased_pool=_rate(rows["biased_pool"]),
                pilot_failures=int((~rows["pilot_converged"]).sum()),
                pilot_separated=int(rows["pilot_separated"].sum()),
            )
            return out
        p = len(built.built.population.theta_star)
        T = rows["statistic"].to_numpy()
        out.update(
            df=p,
            alpha=sel.alpha,
            n_boot=sel.n_boot,
            reject_chi2=_rate(rows["p_chi2"] <= sel.alpha),
            reject_bootstrap=_rate(rows["p_bootstrap"].dropna() <= sel.alpha) if sel.n_boot else None,
            reject_tilted=_rate(rows["p_tilted"].dropna() <= sel.alpha) if sel.n_boot else None,
            reject_tilted_double=_rate(rows["p_tilted_double"].dropna() <= sel.alpha) if sel.n_boot else None,
            boot_scale_median=float(rows["boot_scale"].median()) if sel.n_boot else None,
            # replications whose tilted law could not impose the null fully (null_tilt)
            tilt_partial=int((rows["tilt_share"].dropna() < 1).sum()) if sel.n_boot else None,
            pilot_failures=int((~rows["pilot_converged"]).sum()),
            pilot_separated=int(rows["pilot_separated"].sum()),
            qq={
                "probabilities": json_numbers(QQ_PROBABILITIES),
                "statistic": json_numbers(np.quantile(T, QQ_PROBABILITIES)),
                "chi2": json_numbers(chi2.ppf(QQ_PROBABILITIES, p)),
            },
            population=population_prediction(built.built, sel.alpha),
        )
        return out

    def documents(self, summary: dict) -> dict[str, str]:
        return {}

    def draw(self, summary: dict) -> dict:
        return {"figure": plotting.diagnostics_cell_figure(summary)}

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        built = self.build(run)
        rows = symmetry_rows if built.measure == "symmetry" else gqs_rows
        return rows(built, [r])

    def sweep(self, summaries: list[dict]):
        """The sweep's figure and report section, from its finished cells' summaries."""
        done = [s for s in summaries if s.get("status", "ok") == "ok"]
        if not done:
            return None, ""
        return plotting.diagnostics_sweep_figure(done), sweep_report(done)


def _pct(entry) -> str:
    if not entry:
        return "—"
    return f"{entry['rate']:.3f} ± {entry['mcse']:.3f}"


def _threshold(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def sweep_report(summaries: list[dict]) -> str:
    """Markdown: one row per cell with its rates and their Monte Carlo SEs."""
    if summaries[0]["measure"] == "gqs":
        lines = [
            "| generator | dgp | n1 | n0 | R | mean GQS | exact-generator mean | calibrated threshold | "
            "pool-calibrated threshold | biased (GQS > threshold) | biased (calibrated) | biased (pool-calibrated) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in summaries:
            lines.append(
                f"| {s.get('generator_label', s['generator'])} | {s['dgp']} | {s['n1']} | {s['n0']} | {s['reps']} | "
                f"{s['gqs_mean']:.2f} ± {s['gqs_mcse']:.2f} | {s['null_mean']:.2f} | "
                f"{s['threshold_calibrated_mean']:.2f} | {_threshold(s.get('threshold_pool_mean'))} | "
                f"{_pct(s['biased_threshold'])} | {_pct(s['biased_calibrated'])} | {_pct(s.get('biased_pool'))} |"
            )
        return "\n".join(lines) + "\n"
    lines = [
        "| dgp | p | n1 | n0 | h | alpha | B | R | predicted | chi2 | bootstrap | tilted | double tilted | "
        "bootstrap in alpha ± 30% | tilted in alpha ± 30% | double tilted in alpha ± 30% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        low, high = size_band(s["alpha"])

        def inside(entry):
            if not entry or not s["population"]["null"]:
                return "—"  # the band is a size requirement, not a power one
            return "yes" if low <= entry["rate"] <= high else "**no**"

        boot, tilted, double = s.get("reject_bootstrap"), s.get("reject_tilted"), s.get("reject_tilted_double")
        lines.append(
            f"| {s['dgp']} | {s['df']} | {s['n1']} | {s['n0']} | {s.get('cell', {}).get('h', 0)} | {s['alpha']} | "
            f"{s['n_boot']} | {s['reps']} | {s['population']['power']:.3f} | {_pct(s['reject_chi2'])} | "
            f"{_pct(boot)} | {_pct(tilted)} | {_pct(double)} | {inside(boot)} | {inside(tilted)} | {inside(double)} |"
        )
    return "\n".join(lines) + "\n"


STUDY = DiagnosticsStudy()
