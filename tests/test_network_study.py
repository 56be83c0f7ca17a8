"""The network study (study.kind: network, AUTHORS_DESIGNS.md E) end to end on a tiny cell.

Independent references used here:

* the raw ERM network of a replication is retrained from the documented streams (data
  SeedSequence(seed, spawn_key=(*data_key, r)), initial weights from the selectors' root) by a
  plain optax loop, one Python step per epoch, and scored on the fixed test set;
* the summary's means and Monte Carlo SEs are recomputed from the rows table;
* one replication regenerates alone, bit for bit (``app.regenerate_replication``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simstudy  # noqa: F401
from simstudy import network as nw
from simstudy.app import regenerate_replication, same_rows
from simstudy.config import ConfigError
from simstudy.schema import selection_config
from simstudy.selection import stratified_splits
from simstudy.studies import network as ns
from simstudy.studies.job import run_job
from simstudy.studies.selectors import selector_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_network import plain_optax  # noqa: E402
from test_selection_study import compose_job  # noqa: E402

TINY = [
    "study=mlp_nonsyn",
    "design.n0=160",
    "design.n1=40",
    "design.reps=2",
    "selection.gammas=[0.0,0.5,1.0,1.5,2.0]",
    "selection.cv=3",
    "selection.test_per_class=300",
    "selection.network.hidden=[8,4]",
    "selection.network.epochs=15",
    "selection.network.learning_rate=0.01",
    "selection.cost_ratios=[1.0,4.0]",
]


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory):
    run, yaml = compose_job(TINY)
    out = tmp_path_factory.mktemp("mlp_nonsyn")
    summary = run_job(run, out, yaml)
    return run, out, summary


def test_job_writes_the_contract_and_the_summary_reads_the_rows(tiny_job):
    run, out, summary = tiny_job
    for name in ("config.yaml", "replications.parquet", "summary.json", "figure.png", "figure.pdf", "table.md"):
        assert (out / name).is_file(), name
    stored = json.loads((out / "summary.json").read_text())
    assert stored["status"] == "ok" and stored["kind"] == "network"
    rows = pd.read_parquet(out / "replications.parquet")
    labels = ["smote", "local_jitter", "adasyn"]
    expected = ["raw", "reweighting", "cost_sensitive"] + [f"{m}[{g}]" for g in labels for m in ("vtss", "tg_vtss")]
    assert stored["method_order"] == expected and set(stored["methods"]) == set(expected)
    assert len(rows) == 2 * len(expected) and (rows["error"] == "").all()
    raw = rows[rows["method"] == "raw"].sort_values("replication")["test_loss"].to_numpy()
    for g in labels:
        sub = rows[(rows["method"] == "tg_vtss") & (rows["generator"] == g)].sort_values("replication")
        entry = stored["methods"][f"tg_vtss[{g}]"]
        np.testing.assert_allclose(entry["test_loss"]["mean"], sub["test_loss"].mean())
        np.testing.assert_allclose(entry["test_loss"]["mcse"], sub["test_loss"].std(ddof=1) / np.sqrt(2))
        np.testing.assert_allclose(entry["minus_raw"]["mean"], (sub["test_loss"].to_numpy() - raw).mean())
        assert sum(entry["branches"].values()) == 2
        assert set(sub["branch"]) <= {"symmetry", "low_gqs", "high_gqs", "diagnostics_failed"}
        # n~ = round(gamma (n0 - n1)) and gamma on the candidate grids
        np.testing.assert_array_equal(sub["n_tilde"], np.rint(sub["gamma"] * 120).astype(int))
    vtss = rows[rows["method"] == "vtss"]
    assert set(vtss["gamma"]) <= {0.0, 0.5, 1.0, 1.5, 2.0}
    # SMOTE interpolates between minority points: never outside the positive coordinates' support
    assert (vtss[vtss["generator"] == "smote"]["share_outside"] == 0).all()
    assert set(rows.loc[rows["method"] == "cost_sensitive", "cost_ratio"]) <= {1.0, 4.0}
    table = (out / "table.md").read_text()
    assert "| raw |" in table and "| smote |" in table


def test_raw_network_equals_a_plain_optax_retraining(tiny_job):
    run, out, _ = tiny_job
    nc = ns.build_network_cell(run)
    r = 1
    n0, n1 = run.design.n0, run.design.n1
    data = np.random.default_rng(np.random.SeedSequence(run.seed, spawn_key=(*nc.data_key, r)))
    X = np.vstack(nc.process.sample(n0, n1, data))
    y = np.r_[np.zeros(n0), np.ones(n1)]
    root = selector_seed(run.seed, nc.data_key, r)
    init_rng = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 0)))
    params0 = nw.init_params(run.selection.network, 10, init_rng)
    mean, sd = X.mean(0), X.std(0)
    params = plain_optax(run.selection.network, params0, (X - mean) / sd, y, np.ones(len(y)))
    T, ty = nc.test
    eta = nw.logits([(W.astype(float), b.astype(float)) for W, b in params], (T - mean) / sd)
    expected = nw.balanced_log_loss(eta, ty)
    rows = pd.read_parquet(out / "replications.parquet")
    got = rows[(rows["method"] == "raw") & (rows["replication"] == r)]["test_loss"].item()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_one_replication_regenerates_bit_for_bit(tiny_job):
    _, out, _ = tiny_job
    regenerated, stored = regenerate_replication(out, 1)
    assert same_rows(regenerated, stored)


def test_preset_defaults_are_the_design():
    run, _ = compose_job(["study=mlp_nonsyn"])
    sel = run.selection
    assert (run.kind, run.design.n0, run.design.n1, sel.cv, sel.test_per_class) == ("network", 800, 100, 5, 5000)
    assert sel.network == nw.MLPSpec((64, 32), 120, 2e-3, 1e-3)
    assert sel.cost_ratios == (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
    assert [ns.generator_label(g) for g in sel.generators] == ["smote", "local_jitter", "adasyn"]
    assert (sel.gqs_folds, sel.gqs_threshold) == (3, 10.0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("selection.cost_ratios=[0.0,1.0]", "selection.cost_ratios"),
        ("selection.network.epochs=0", "selection.network.epochs"),
        ("selection.network.hidden=[]", "selection.network.hidden"),
        ("+selection.network.dropout=0.1", "selection.network.dropout"),
        ("selection.generators=[{name:gan}]", "selection.generators[0]"),
        ("selection.generators=[{name:smote,k:0}]", "selection.generators[0]"),
        ("selection.generators=[{name:smote},{name:smote,k:3}]", "selection.generators"),
        ("selection.gqs_folds=1", "selection.gqs_folds"),
        ("selection.scoring=exact", "selection.scoring"),
        ("+selection.colour=red", "selection.colour"),
        ("model=least_squares", "model.family"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        compose_job(["study=mlp_nonsyn", override])
    assert info.value.key == key


def test_geometry_of_a_pool_against_hand_computations():
    rng = np.random.default_rng(0)
    raw = np.column_stack([rng.normal(size=400), np.exp(rng.normal(size=400))])
    scaler = ns.Scaler.fit(raw)
    Z = scaler(raw)
    Z1 = Z[:100]
    same = ns.geometry(Z1, Z1, Z, scaler)
    assert same == {"share_outside": 0.0, "mean_shift": 0.0, "cov_distortion": 0.0}
    # shift coordinate 0 by half the minority SD, push every 4th point below 0 in the raw scale
    pool = Z1.copy()
    pool[:, 0] += 0.5 * Z1[:, 0].std(ddof=1)
    pool[::4, 1] = (-1.0 - scaler.mean[1]) / scaler.sd[1]
    shape = ns.geometry(pool, Z1, Z, scaler)
    assert shape["share_outside"] == 0.25
    shift1 = (pool[:, 1].mean() - Z1[:, 1].mean()) / Z1[:, 1].std(ddof=1)
    np.testing.assert_allclose(shape["mean_shift"], np.sqrt((0.5**2 + shift1**2) / 2), rtol=1e-12)
    C1, Cs = np.cov(Z1.T), np.cov(pool.T)
    np.testing.assert_allclose(shape["cov_distortion"], np.sqrt(((Cs - C1) ** 2).sum() / (C1**2).sum()), rtol=1e-12)


@pytest.mark.parametrize(
    "generator, fits",
    [
        # design E: n1 = 100, selection.cv = 5 (80 minority rows per fold), gqs_folds = 3 (66)
        ("{name:smote,k:500}", "66 minority rows, set by selection.gqs_folds"),
        ("{name:smote,k:66}", "66 minority rows"),
        ("{name:local_jitter,k:80}", "66 minority rows"),
        ("{name:imblearn,sampler:ADASYN,n_neighbors:70}", "66 minority rows"),
        ("{name:imblearn,sampler:SMOTE,k_neighbors:66}", "66 minority rows"),
        # among the rows of both classes: 640 + 80 in a fold of the 5-fold CV
        ("{name:imblearn,sampler:BorderlineSMOTE,m_neighbors:720}", "as few as 720 (set by selection.cv)"),
        ("{name:imblearn,sampler:SVMSMOTE,m_neighbors:720}", "as few as 720"),
    ],
)
def test_a_neighbour_count_too_large_for_the_fits_is_refused_up_front(generator, fits):
    # it used to pass validation and fail the job after its first trainings ("X1 has 80 rows")
    with pytest.raises(ConfigError) as info:
        compose_job(["study=mlp_nonsyn", f"selection.generators=[{{name:jitter}},{generator}]"])
    assert info.value.key == "selection.generators[1]" and fits in str(info.value)


def test_neighbour_counts_that_fit_every_fit_are_accepted():
    generators = (
        "[{name:smote,k:65},{name:local_jitter,k:65},{name:imblearn,sampler:ADASYN,n_neighbors:65},"
        "{name:imblearn,sampler:BorderlineSMOTE,m_neighbors:719},"
        "{name:imblearn,sampler:SVMSMOTE,k_neighbors:500,cap_neighbors:true}]"
    )
    run, _ = compose_job(["study=mlp_nonsyn", f"selection.generators={generators}"])
    assert len(run.selection.generators) == 5
    # with the holdout and 100 GQS folds the fewest minority rows are the holdout's 80
    holdout = ["study=mlp_nonsyn", "selection.cv=holdout", "selection.gqs_folds=100"]
    compose_job([*holdout, "selection.generators=[{name:smote,k:79}]"])
    with pytest.raises(ConfigError, match="set by selection.cv"):
        compose_job([*holdout, "selection.generators=[{name:smote,k:80}]"])


@pytest.mark.parametrize(
    "cv, n0, n1, gqs_folds", [(5, 800, 100, 3), (3, 161, 40, 7), ("holdout", 97, 13, 2), (("repeated", 4, 2), 50, 9, 9)]
)
def test_fewest_fit_rows_are_those_of_the_splits(cv, n0, n1, gqs_folds):
    # reference: the splits the study draws (selection.stratified_splits) and the GQS's folds
    # (np.array_split of the minority, as diagnostics._gqs cuts them)
    sel = selection_config({"cv": list(cv) if isinstance(cv, tuple) else cv, "test_size": 0.3})
    y = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    fits = [(n1, n0 + n1)]
    for split in stratified_splits(y, sel.cv, sel.test_size, 1):
        fits.append((int(y[split.train].sum()), split.train.size))
    for held in np.array_split(np.arange(n1), gqs_folds):
        fits.append((n1 - held.size, n0 + n1 - held.size))
    fewest = ns.fewest_fit_rows(sel, n0, n1, gqs_folds)
    assert fewest["minority"][0] == min(f[0] for f in fits)
    assert fewest["all"][0] == min(f[1] for f in fits)
