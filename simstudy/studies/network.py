"""``study.kind: network``: synthetic against non-synthetic corrections with a neural network
(AUTHORS_DESIGNS.md section E), every training of a replication in a few calls of one jitted,
vmapped program (``simstudy.network``).

One replication r of the cell:

1. Real data: n0 majority and n1 minority rows from SeedSequence(seed, spawn_key=(*data_key, r))
   (the data stream of ``engine.replication_streams``; data_key = stable_key of the dgp and the
   sizes). Every other draw of the replication comes from children of
   root = ``selectors.selector_seed(seed, data_key, r)``: the initial weights (key 0), the
   validation splits (1), the fold pools of generator g (2, g, fold, 0 for the fit / 1 for the
   draw), the final pools (3, g, 0 / 1) and the GQS of generator g (4, g).
2. One set of initial weights (``network.init_params``) shared by every training of the
   replication (the design's "same initial weights for every method").
3. The networks are trained on standardised rows: the scaler (column mean and SD, ddof 0) is
   fitted on the real rows of the fitting part -- all training rows for a final fit, the fold's
   fitting rows inside the validation -- and the generators work in that standardised space.
4. Methods: **raw** ERM (unit weights); **reweighting**, inverse-frequency weights n / (2 n_k)
   (mean one); **cost-sensitive**, minority-to-majority cost ratio c from
   ``selection.cost_ratios`` tuned by the validation; for each generator of
   ``selection.generators``, **VTSS** over the grid ``selection.gammas`` and **TG-VTSS**
   (THEORY.md section 5, the candidate rule ``selection.theory_guided_grid`` with the GQS
   threshold rule). An augmented
   training set of n real and m synthetic rows gives every row the weight n / (n + m), so the
   total weight is n whatever m (with the loss normalised by the sum of weights this is the
   same fit as unit weights).
5. TG-VTSS's diagnostics (THEORY.md section 4) run on the reweighting network's last hidden
   layer (the balanced pilot: its weights are the pilot's 1/(2 n_k) up to a constant), that
   feature map fixed (``network.HiddenLayer``, units constant on the training rows dropped),
   plus an intercept when ``model.intercept``: ``diagnostics.wald_symmetry_test`` (chi2
   reference) and, when symmetry is rejected at ``selection.alpha``, ``diagnostics.diagnose`` with
   ``selection.gqs_folds`` folds, through ``selection.FeatureGLM`` (logistic, ridge
   ``model.ridge`` in simstudy's convention (lambda / 2) ||theta||^2). If the diagnostics fail
   (a singular Hessian or Wald covariance), the error is recorded and TG-VTSS uses the wide grid.
6. Validation: ``selection.cv`` stratified folds (``selection.stratified_splits``); candidate
   sizes n~ = round(gamma (n0 - n1)) are rescaled to each fold, one pool per (generator, fold),
   candidates take nested prefixes; the score is the balanced log-loss on the fold's held-out
   real rows; ties go to the smallest candidate. Identical trainings (the same fold, generator
   and size for VTSS and TG-VTSS) are trained once.
7. Final fits on all training rows (fresh pools from the generator fitted on all of them), and
   the balanced test log-loss on ONE fixed balanced test set of ``selection.test_per_class``
   rows per class drawn from the stream stable_key({"test_set": dgp, "per_class": m}) and shared
   by all replications.
8. Geometry of each generator's final pool of n0 - n1 points against the real minority (both
   standardised): the share of synthetic points outside the support of the positive
   coordinates (columns positive on every real training row: the log-normal ones here) -- a
   coordinate <= 0 in the raw scale --; the standardised mean shift
   sqrt(mean_j ((mean_syn_j - mean_min_j) / sd_min_j)^2); the covariance distortion
   ||C_syn - C_min||_F / ||C_min||_F.

The trainings of a stage (the two full-data networks; all validation trainings; all final
trainings) are one list, sorted by their number of rows (a candidate's rows beyond its prefix
have weight 0 and are dropped, which changes nothing) and trained in chunks of up to
``network.CHUNK`` networks, each padded with zero-weight rows to ``fitting.padded_size``
sizes, so a study
compiles a handful of shapes once and reuses them in every replication.

Config keys of this kind (all under ``selection``; conf/study/mlp_nonsyn.yaml documents them):
the keys of ``schema.SELECTION_DEFAULTS`` (``feature_map`` must be null and ``scoring``
``auto`` or ``test_set``; the Wald test's chi2 reference and the GQS threshold rule) and
``network`` (hidden, epochs, learning_rate, weight_decay),
``cost_ratios``, ``generators`` (a list of generator sections, each a catalog ``name`` and its
options) and ``gqs_folds``. ``generator``, ``design.gammas`` are not read (the generators are
``selection.generators``, the candidates ``selection.gammas``). Validation fits each generator
once on placeholder rows as few as the fewest minority rows a replication fits it on (a
``selection.cv`` fold's training part or all but one GQS fold), so an option that cannot work
at those sizes (SMOTE's ``k`` or imbalanced-learn's ``k_neighbors`` / ``n_neighbors`` at least
that many, or an ``m_neighbors`` at least the rows of both classes) is a ``ConfigError`` naming
``selection.generators[i]`` before any job starts.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import simstudy  # noqa: F401  (float64 before any array)
from simstudy import network as nw
from simstudy.cell import make_dgp
from simstudy.diagnostics import diagnose, wald_symmetry_test
from simstudy.engine import stable_key
from simstudy.generators import GENERATORS, make_generator
from simstudy.generators.imblearn_adapter import available_samplers
from simstudy.schema import (
    ConfigError,
    RunConfig,
    SelectionConfig,
    as_plain,
    bad_value,
    grid,
    integer,
    known_keys,
    number,
    selection_config,
)
from simstudy.selection import DEFAULT_GAMMAS, FeatureGLM, stratified_splits, theory_guided_grid
from simstudy.studies.selectors import error_text, mean_sd_mcse, selector_seed

# spawn keys below a replication's root (module docstring)
_INIT, _SPLITS, _FOLD_POOL, _FINAL_POOL, _GQS = 0, 1, 2, 3, 4

NETWORK_DEFAULTS = {"hidden": [64, 32], "epochs": 120, "learning_rate": 2e-3, "weight_decay": 1e-3}
EXTRA_DEFAULTS = {
    "network": None,
    "cost_ratios": [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    "generators": [
        {"name": "smote", "k": 3},
        {"name": "local_jitter", "scale": 0.08, "k": 3},
        {"name": "imblearn", "sampler": "ADASYN", "n_neighbors": 3},
    ],
    "gqs_folds": 3,
}
"""The keys this kind adds to ``selection`` and their defaults (design E)."""


@dataclass(frozen=True, kw_only=True)
class NetworkSelection(SelectionConfig):
    """``selection`` for the network study: the shared keys plus ``network`` (the MLP),
    ``cost_ratios``, ``generators`` (generator sections) and ``gqs_folds`` (keyword-only, so
    they may follow SelectionConfig's defaulted fields)."""

    network: nw.MLPSpec
    cost_ratios: tuple[float, ...]
    generators: tuple[dict, ...]
    gqs_folds: int


def _network_spec(section) -> nw.MLPSpec:
    spec = known_keys(section, NETWORK_DEFAULTS, "selection.network")
    hidden = spec["hidden"]
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise ConfigError("selection.network.hidden", hidden, "must be a non-empty list of integers >= 1")
    return nw.MLPSpec(
        tuple(integer(h, "selection.network.hidden", 1) for h in hidden),
        integer(spec["epochs"], "selection.network.epochs", 1),
        number(spec["learning_rate"], "selection.network.learning_rate", low=0.0, low_open=True),
        number(spec["weight_decay"], "selection.network.weight_decay", low=0.0),
    )


def generator_label(section: dict) -> str:
    """A generator section's name in tables: the catalog name, or imblearn's sampler."""
    return section.get("sampler", "SMOTE").lower() if section["name"] == "imblearn" else section["name"]


def _generators(value) -> tuple[dict, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError("selection.generators", value, "must be a non-empty list of generator sections")
    out = []
    for i, section in enumerate(value):
        key = f"selection.generators[{i}]"
        if not isinstance(section, dict) or section.get("name") not in GENERATORS:
            raise ConfigError(key, section, f"must be a mapping with a name in {sorted(GENERATORS)}")
        options = {k: v for k, v in section.items() if k != "name"}
        with bad_value(key, section):  # a bad option fails here, not in a running job
            make_generator(section["name"], None, **options)
        out.append(dict(section))
    labels = [generator_label(s) for s in out]
    if len(set(labels)) != len(labels):
        raise ConfigError("selection.generators", list(value), f"names repeat: {labels}")
    return tuple(out)


def fewest_fit_rows(sel: SelectionConfig, n0: int, n1: int, gqs_folds: int) -> dict[str, tuple[int, str]]:
    """The fewest rows a generator is fitted on in a replication, and which fit has them.

    A generator is fitted on all n0 + n1 training rows (the final pool), on the training part
    of each validation split of ``selection.cv`` (both classes cut; the sizes of stratified
    splits depend only on the class counts, so ``stratified_splits`` of label vectors of
    those counts gives them, as ``real_data._fewest_fit_minority`` does), and on all
    majority rows with all but one of the GQS's ``selection.gqs_folds`` folds of the minority
    (``diagnostics.diagnose``: ``np.array_split``, the largest held-out fold ceil(n1 / folds)
    rows long).

    Parameters
    ----------
    sel : SelectionConfig
        The checked shared keys (``cv``, ``test_size``); K <= n1.
    n0, n1 : int
        The design's majority and minority rows.
    gqs_folds : int
        The GQS's folds, in [2, n1].

    Returns
    -------
    dict
        ``"minority"``: (fewest minority rows, the config key that sets them), ``"all"``: the
        same for the rows of both classes.
    """
    y = np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]
    fits = [  # (minority rows, all rows, key)
        (n1, n0 + n1, "design.n1"),
        *(
            (int(y[split.train].sum()), split.train.size, "selection.cv")
            for split in stratified_splits(y, sel.cv, sel.test_size, 0)
        ),
        (n1 - math.ceil(n1 / gqs_folds), n0 + n1 - math.ceil(n1 / gqs_folds), "selection.gqs_folds"),
    ]
    minority = min(fits, key=lambda fit: fit[0])
    every = min(fits, key=lambda fit: fit[1])
    return {"minority": (minority[0], minority[2]), "all": (every[1], every[2])}


def _majority_neighbours(section: dict) -> int | None:
    """The neighbour count an imbalanced-learn sampler takes among the rows of both classes
    (``m_neighbors`` of BorderlineSMOTE and SVMSMOTE, given or default), else None."""
    if section["name"] != "imblearn":
        return None
    sampler = available_samplers().get(section.get("sampler", "SMOTE"))
    param = None if sampler is None else inspect.signature(sampler).parameters.get("m_neighbors")
    m = section.get("m_neighbors", None if param is None else param.default)
    return m if isinstance(m, (int, np.integer)) and not isinstance(m, bool) else None


def _check_generator_sizes(generators, sel: SelectionConfig, n0: int, n1: int, gqs_folds: int) -> None:
    """Refuse a generator that cannot work at the sizes of a replication's fits
    (``fewest_fit_rows``), naming its ``selection.generators[i]``: it would otherwise fail the
    job after the first trainings.

    Each generator is fitted once on placeholder rows with the fewest minority rows, so that its
    own size rule decides (SMOTE's and local jitter's ``k``, imbalanced-learn's ``k_neighbors``
    / ``n_neighbors``), as the real-data study does (``real_data._check_table``). An
    imbalanced-learn ``m_neighbors`` is checked against the fewest rows of both classes here,
    as the sampler only looks for those neighbours when it draws."""
    fewest = fewest_fit_rows(sel, n0, n1, gqs_folds)
    rows1, where1 = fewest["minority"]
    rows, where = fewest["all"]
    rng = np.random.default_rng(0)
    X1, X0 = rng.standard_normal((rows1, 2)), rng.standard_normal((rows1 + 1, 2))
    for i, section in enumerate(generators):
        key = f"selection.generators[{i}]"
        generator = make_generator(section["name"], None, **{k: v for k, v in section.items() if k != "name"})
        try:
            generator.fit(X1, X0, rng)
        except ValueError as err:
            raise ConfigError(
                key,
                section,
                f"{err} (design.n1 = {n1}: a replication fits each generator on as few as {rows1} "
                f"minority rows, set by {where1})",
            ) from None
        m = _majority_neighbours(section)
        if m is not None and m + 1 > rows:
            raise ConfigError(
                key,
                section,
                f"m_neighbors = {m} needs at least {m + 1} rows of both classes, but a replication fits "
                f"each generator on as few as {rows} (set by {where})",
            )


def network_selection(section, n0: int, n1: int) -> NetworkSelection:
    """The ``selection`` section of a network study, checked (module docstring), down to the
    generators' options against the minority rows they are fitted on
    (``_check_generator_sizes``)."""
    raw = dict(section or {})
    extra = known_keys({k: raw.pop(k) for k in list(raw) if k in EXTRA_DEFAULTS}, EXTRA_DEFAULTS, "selection")
    base = selection_config(raw)
    if base.feature_map is not None:
        raise ConfigError("selection.feature_map", as_plain(base.feature_map), "must be null: the network is the model")
    if base.scoring == "exact":
        raise ConfigError("selection.scoring", "exact", "the network study scores on a test set: use auto or test_set")
    if base.folds > n1:
        raise ConfigError("selection.cv", base.cv, f"needs K <= design.n1 = {n1}")
    for key, rule in (("symmetry_test", "chi2"), ("gqs_rule", "threshold")):
        # design E's rules; the other references are not wired into this kind
        if getattr(base, key, rule) != rule:
            raise ConfigError(f"selection.{key}", getattr(base, key), f"the network study uses {rule}")
    ratios = grid(extra["cost_ratios"], "selection.cost_ratios")
    if ratios[0] <= 0:
        raise ConfigError("selection.cost_ratios", list(ratios), "must be numbers > 0")
    network = _network_spec(extra["network"])
    generators = _generators(extra["generators"])
    gqs_folds = integer(extra["gqs_folds"], "selection.gqs_folds", 2, n1)
    _check_generator_sizes(generators, base, n0, n1, gqs_folds)
    return NetworkSelection(
        **{f.name: getattr(base, f.name) for f in fields(SelectionConfig) if f.name != "gqs_folds"},
        network=network,
        cost_ratios=ratios,
        generators=generators,
        gqs_folds=gqs_folds,
    )


class NetworkCell(NamedTuple):
    """Everything one cell needs (``NetworkStudy.build``)."""

    run: RunConfig
    process: object
    generators: dict  # label -> unfitted Generator
    data_key: tuple[int, ...]
    test: tuple[np.ndarray, np.ndarray]  # raw test rows, labels 0/1
    wide: np.ndarray  # VTSS's grid and TG-VTSS's wide branch


def build_network_cell(run: RunConfig) -> NetworkCell:
    """The process, generators, keys and fixed balanced test set of a cell."""
    sel, d = run.selection, run.design
    process = make_dgp(run.dgp)
    generators = {
        generator_label(g): make_generator(g["name"], process, **{k: v for k, v in g.items() if k != "name"})
        for g in sel.generators
    }
    m = sel.test_per_class
    rng = np.random.default_rng(
        np.random.SeedSequence(run.seed, spawn_key=stable_key({"test_set": run.dgp, "per_class": m}))
    )
    T0, T1 = process.sample(m, m, rng)
    test = (np.vstack([T0, T1]), np.r_[np.zeros(m), np.ones(m)])
    wide = DEFAULT_GAMMAS if sel.gammas is None else np.asarray(sel.gammas)
    data_key = stable_key({"dgp": run.dgp, "n0": d.n0, "n1": d.n1})
    return NetworkCell(run, process, generators, data_key, test, wide)


# --------------------------------------------------------------------------------------------
# one replication


def _child(root: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + key)


def _rng(root, *key: int) -> np.random.Generator:
    return np.random.default_rng(_child(root, *key))


class Scaler(NamedTuple):
    """Column standardisation (x - mean) / sd, sd of a constant column taken as 1."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, X) -> Scaler:
        sd = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(sd > 0, sd, 1.0))

    def __call__(self, X) -> np.ndarray:
        return (X - self.mean) / self.sd


def augmented(Z, y, pool, m: int):
    """Real rows plus the first m pool rows, every row weighing n / (n + m) (module docstring)."""
    n = len(y)
    return np.vstack([Z, pool[:m]]), np.r_[y, np.ones(m)], np.full(n + m, n / (n + m))


def tg_candidates(sel: NetworkSelection, wide, wald, diag) -> tuple[str, np.ndarray]:
    """TG-VTSS's branch and candidates (``selection.theory_guided_grid``, THEORY.md section 5);
    "diagnostics_failed" and the wide grid when the diagnostics raised."""
    if wald is None or (diag is None and not wald.p_value > sel.alpha):
        return "diagnostics_failed", np.asarray(wide)
    gamma_tg = None if diag is None else diag.target.gamma
    return theory_guided_grid(
        float(wald.p_value),
        sel.alpha,
        None if diag is None else diag.gqs,
        gamma_tg,
        wide,
        gqs_threshold=sel.gqs_threshold,
    )


def geometry(pool, Z1, Z_real, scaler: Scaler) -> dict:
    """Share outside the positive coordinates' support, standardised mean shift and covariance
    distortion of a synthetic pool against the real minority (module docstring, item 8)."""
    positive = np.all(Z_real * scaler.sd + scaler.mean > 0, axis=0)
    raw = pool * scaler.sd + scaler.mean
    outside = float(np.mean(np.any(raw[:, positive] <= 0, axis=1))) if positive.any() else math.nan
    sd1 = Z1.std(axis=0, ddof=1)
    shift = float(np.sqrt(np.mean(((pool.mean(axis=0) - Z1.mean(axis=0)) / sd1) ** 2)))
    C1, Cs = np.cov(Z1, rowvar=False), np.cov(pool, rowvar=False)
    return {
        "share_outside": outside,
        "mean_shift": shift,
        "cov_distortion": float(np.linalg.norm(Cs - C1) / np.linalg.norm(C1)),
    }


def row(method: str, generator: str = "", **values) -> dict:
    """One method's facts in a tidy row; NaN / -1 / "" where they do not apply."""
    out = {
        "method": method,
        "generator": generator,
        "gamma": math.nan,
        "n_tilde": -1,
        "cost_ratio": math.nan,
        "branch": "",
        "gqs": math.nan,
        "gamma_tg": math.nan,
        "wald_p_value": math.nan,
        "n_units": -1,
        "n_candidates": -1,
        "train_loss": math.nan,
        "test_loss": math.nan,
        "share_outside": math.nan,
        "mean_shift": math.nan,
        "cov_distortion": math.nan,
        "error": "",
    }
    out.update(values)
    return out


def _diagnostics(nc: NetworkCell, Z, y, pilot, root):
    """The Wald test and, per generator, ``diagnose`` on the pilot's hidden layer (item 5);
    returns (n_units, wald or None, {label: (diag or None, error text)})."""
    run, sel = nc.run, nc.run.selection
    phi = nw.HiddenLayer.of(pilot, Z)
    model = FeatureGLM("logistic", run.model.intercept, run.model.ridge, feature_map=phi)
    Z0, Z1 = Z[y == 0], Z[y == 1]
    try:
        wald = wald_symmetry_test(Z0, Z1, model)
    except ValueError as err:
        return len(phi.units), None, {label: (None, error_text(err)) for label in nc.generators}
    out = {}
    for g, (label, generator) in enumerate(nc.generators.items()):
        if wald.p_value > sel.alpha:  # symmetry not rejected: no GQS (theory_guided_grid)
            out[label] = (None, "")
            continue
        try:
            out[label] = (diagnose(Z0, Z1, generator, model, _rng(root, _GQS, g), n_folds=sel.gqs_folds), "")
        except ValueError as err:
            out[label] = (None, error_text(err))
    return len(phi.units), wald, out


def network_replication(nc: NetworkCell, r: int) -> pd.DataFrame:
    """Replication r of the network study: one row per method (module docstring)."""
    run, sel, design = nc.run, nc.run.selection, nc.run.design
    spec = sel.network
    n0, n1 = design.n0, design.n1
    data = np.random.default_rng(np.random.SeedSequence(run.seed, spawn_key=(*nc.data_key, r)))
    X0, X1 = nc.process.sample(n0, n1, data)
    X, y = np.vstack([X0, X1]), np.r_[np.zeros(n0), np.ones(n1)]
    root = selector_seed(run.seed, nc.data_key, r)
    params0 = nw.init_params(spec, X.shape[1], _rng(root, _INIT))
    scaler = Scaler.fit(X)
    Z = scaler(X)
    test_X, test_y = scaler(nc.test[0]), nc.test[1]
    gap = n0 - n1

    # stage 1: raw ERM and the reweighting network, the balanced pilot of the diagnostics
    first = nw.Trainings()
    first.add("raw", Z, y, np.ones(len(y)))
    first.add("reweighting", Z, y, np.where(y == 1, len(y) / (2 * n1), len(y) / (2 * n0)))
    (raw, pilot), first_loss = first.run(spec, params0)
    n_units, wald, diags = _diagnostics(nc, Z, y, pilot, root)

    # stage 2: every validation training
    splits = stratified_splits(y.astype(np.int64), sel.cv, sel.test_size, _child(root, _SPLITS))
    branches = {}
    for label, (diag, _) in diags.items():
        branches[label] = tg_candidates(sel, nc.wide, wald, diag)
    cv = nw.Trainings()
    held = []  # per split: (scaled held-out rows, labels)
    cost_ids = np.empty((len(splits), len(sel.cost_ratios)), dtype=np.int64)
    size_ids = {label: [] for label in nc.generators}  # per split: {fold size: training}
    for s, split in enumerate(splits):
        fold_scaler = Scaler.fit(X[split.train])
        Zt, yt = fold_scaler(X[split.train]), y[split.train]
        held.append((fold_scaler(X[split.validation]), y[split.validation]))
        for c, ratio in enumerate(sel.cost_ratios):
            # ratio 1 is the real rows with unit weights: the same training as any size 0
            key = ("real", s) if ratio == 1.0 else ("cost", s, ratio)
            cost_ids[s, c] = cv.add(key, Zt, yt, np.where(yt == 1, ratio, 1.0))
        gap_split = int((yt == 0).sum() - (yt == 1).sum())
        for g, (label, generator) in enumerate(nc.generators.items()):
            gammas = np.union1d(nc.wide, branches[label][1])
            sizes = np.unique(np.rint(np.rint(gammas * gap) * gap_split / gap).astype(np.int64))
            pool = np.empty((0, Z.shape[1]))
            if sizes.max() > 0:
                fitted = generator.fit(Zt[yt == 1], Zt[yt == 0], _rng(root, _FOLD_POOL, g, s, 0))
                pool = fitted.sample(int(sizes.max()), _rng(root, _FOLD_POOL, g, s, 1))
            size_ids[label].append(
                {
                    int(m): cv.add((label, s, int(m)) if m else ("real", s), *augmented(Zt, yt, pool, int(m)))
                    for m in sizes
                }
            )
    cv_params, _ = cv.run(spec, params0)
    val = np.empty(len(cv_params))
    for s, (Zv, yv) in enumerate(held):
        ids = sorted({i for key, i in cv.index.items() if key[1] == s})  # every key holds its split second
        val[ids] = nw.balanced_log_loss(nw.stacked_logits([cv_params[i] for i in ids], Zv), yv)

    def mean_loss(label, gamma) -> float:
        # candidate gamma's mean validation loss over the splits, at each split's rescaled size
        losses = []
        for s, split in enumerate(splits):
            yt = y[split.train]
            gap_split = int((yt == 0).sum() - (yt == 1).sum())
            losses.append(val[size_ids[label][s][int(np.rint(np.rint(gamma * gap) * gap_split / gap))]])
        return float(np.mean(losses))

    def choose(label, gammas) -> float:
        means = np.array([mean_loss(label, g) for g in gammas])
        return float(gammas[int(np.argmin(np.where(np.isfinite(means), means, np.inf)))])

    ratio_hat = float(sel.cost_ratios[int(np.argmin(val[cost_ids].mean(axis=0)))])
    chosen = {label: (choose(label, nc.wide), choose(label, branches[label][1])) for label in nc.generators}

    # stage 3: the final fits on all training rows
    final = nw.Trainings()
    cost_id = final.add("cost", Z, y, np.where(y == 1, ratio_hat, 1.0))
    final_ids, pools = {}, {}
    for g, (label, generator) in enumerate(nc.generators.items()):
        sizes = [int(np.rint(gamma * gap)) for gamma in chosen[label]]
        fitted = generator.fit(Z[y == 1], Z[y == 0], _rng(root, _FINAL_POOL, g, 0))
        pools[label] = fitted.sample(max(*sizes, gap), _rng(root, _FINAL_POOL, g, 1))
        final_ids[label] = [final.add((label, m), *augmented(Z, y, pools[label], m)) for m in sizes]
    final_params, final_loss = final.run(spec, params0)
    test_loss = nw.balanced_log_loss(nw.stacked_logits([raw, pilot, *final_params], test_X), test_y)

    rows = [
        row("raw", train_loss=first_loss[0], test_loss=test_loss[0]),
        row("reweighting", train_loss=first_loss[1], test_loss=test_loss[1]),
        row(
            "cost_sensitive",
            cost_ratio=ratio_hat,
            n_candidates=len(sel.cost_ratios),
            train_loss=final_loss[cost_id],
            test_loss=test_loss[2 + cost_id],
        ),
    ]
    for label in nc.generators:
        shape = geometry(pools[label][:gap], Z[y == 1], Z, scaler)
        diag, error = diags[label]
        branch, candidates = branches[label]
        tg = dict(
            branch=branch,
            gqs=math.nan if diag is None else float(diag.gqs.gqs),
            gamma_tg=math.nan if diag is None or diag.target.gamma is None else float(diag.target.gamma),
            wald_p_value=math.nan if wald is None else float(wald.p_value),
            n_units=n_units,
            n_candidates=len(candidates),
            error=error,
        )
        for method, gamma, i, extra in (
            ("vtss", chosen[label][0], final_ids[label][0], {"n_candidates": len(nc.wide)}),
            ("tg_vtss", chosen[label][1], final_ids[label][1], tg),
        ):
            rows.append(
                row(
                    method,
                    label,
                    gamma=gamma,
                    n_tilde=int(np.rint(gamma * gap)),
                    train_loss=final_loss[i],
                    test_loss=test_loss[2 + i],
                    **shape,
                    **extra,
                )
            )
    frame = pd.DataFrame(rows)
    frame.insert(0, "replication", r)
    return frame


# --------------------------------------------------------------------------------------------
# summary, documents, figure


def method_names(rows: pd.DataFrame) -> list[str]:
    """The methods in table order: raw, reweighting, cost_sensitive, then vtss[g] and tg_vtss[g]."""
    names = []
    for method, generator in rows[["method", "generator"]].drop_duplicates().itertuples(index=False):
        names.append(f"{method}[{generator}]" if generator else method)
    return names


def summarise_network(nc: NetworkCell, rows: pd.DataFrame) -> dict:
    """The numbers of summary.json (without the job's metadata)."""
    rows = rows.sort_values("replication", kind="stable")
    name = np.where(rows["generator"] != "", rows["method"] + "[" + rows["generator"] + "]", rows["method"])
    raw = rows.loc[rows["method"] == "raw", "test_loss"].to_numpy()
    methods = {}
    for method in method_names(rows):
        sub = rows[name == method]
        loss = sub["test_loss"].to_numpy()
        entry = {"test_loss": mean_sd_mcse(loss), "minus_raw": mean_sd_mcse(loss - raw)}
        if sub["method"].iloc[0] in ("vtss", "tg_vtss"):
            entry["gamma"] = mean_sd_mcse(sub["gamma"])
            entry["n_tilde"] = mean_sd_mcse(sub["n_tilde"])
        if sub["method"].iloc[0] == "tg_vtss":
            counts = sub["branch"].value_counts()
            entry["branches"] = {str(k): int(v) for k, v in counts.items()}
            entry["branch_shares"] = {str(k): float(v / len(sub)) for k, v in counts.items()}
            entry["gqs"] = mean_sd_mcse(sub["gqs"])
            entry["gamma_tg"] = mean_sd_mcse(sub["gamma_tg"])
            entry["n_diagnostics_errors"] = int((sub["error"] != "").sum())
        if method == "cost_sensitive":
            entry["cost_ratio"] = mean_sd_mcse(sub["cost_ratio"])
        methods[method] = entry
    geometry_rows = rows[rows["method"] == "vtss"]
    generators = {
        label: {key: mean_sd_mcse(sub[key]) for key in ("share_outside", "mean_shift", "cov_distortion")}
        for label, sub in geometry_rows.groupby("generator", sort=False)
    }
    tg = rows[rows["method"] == "tg_vtss"]
    return {
        "method_order": list(methods),
        "generator_order": list(generators),  # summary.json sorts its keys; tables and figure keep this order
        "methods": methods,
        "generators": generators,
        "wald_p_value": mean_sd_mcse(tg.drop_duplicates("replication")["wald_p_value"]),
        "hidden_units_kept": mean_sd_mcse(tg.drop_duplicates("replication")["n_units"]),
        "test_per_class": nc.run.selection.test_per_class,
        "candidate_gammas": [float(g) for g in nc.wide],
    }


def _ci(entry: dict) -> str:
    mean, mcse = entry["mean"], entry["mcse"]
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" if mcse is None else f"{mean:.4f} [{mean - 1.96 * mcse:.4f}, {mean + 1.96 * mcse:.4f}]"


def _num(entry: dict, digits: int = 3) -> str:
    return "n/a" if entry["mean"] is None else f"{entry['mean']:.{digits}f}"


def table_text(summary: dict) -> str:
    """table.md: the test losses with 95% CIs, then per generator the TG-VTSS branches, mean GQS,
    chosen sizes and the geometry of the synthetic points."""
    methods = summary["methods"]
    lines = [
        f"# {summary['study']}: balanced test log-loss per method (R = {summary['reps']})",
        "",
        "Mean over replications with a 95% CI (mean +- 1.96 Monte Carlo SE); the difference with raw ERM "
        "is paired by replication.",
        "",
        "| method | balanced test log-loss | minus raw |",
        "|---|---|---|",
    ]
    for name in summary["method_order"]:
        entry = methods[name]
        lines.append(f"| {name} | {_ci(entry['test_loss'])} | {_ci(entry['minus_raw'])} |")
    lines += [
        "",
        f"Cost-sensitive: mean chosen ratio {_num(methods['cost_sensitive']['cost_ratio'], 2)}. "
        f"Wald test on the pilot's hidden layer: mean p-value {_num(summary['wald_p_value'])}, "
        f"mean units kept {_num(summary['hidden_units_kept'], 1)}.",
        "",
        "| generator | TG branches (share) | mean GQS | mean gamma TG-VTSS | mean gamma VTSS | "
        "share outside support | std. mean shift | cov. distortion |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in summary["generator_order"]:
        shape = summary["generators"][label]
        tg, vt = methods[f"tg_vtss[{label}]"], methods[f"vtss[{label}]"]
        shares = ", ".join(f"{k} {v:.2f}" for k, v in sorted(tg["branch_shares"].items()))
        lines.append(
            f"| {label} | {shares} | {_num(tg['gqs'], 2)} | {_num(tg['gamma'], 2)} | {_num(vt['gamma'], 2)} | "
            f"{_num(shape['share_outside'])} | {_num(shape['mean_shift'])} | {_num(shape['cov_distortion'])} |"
        )
    return "\n".join(lines) + "\n"


def network_figure(summary: dict):
    """Balanced test log-loss per method, mean with a 95% CI (1.96 Monte Carlo SE)."""
    methods = summary["methods"]
    names = summary["method_order"]
    means = np.array([methods[n]["test_loss"]["mean"] for n in names], dtype=float)
    half = np.array([1.96 * (methods[n]["test_loss"]["mcse"] or math.nan) for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(names) + 1.4))
    pos = np.arange(len(names))[::-1]
    ax.errorbar(means, pos, xerr=half, fmt="o", color="k", capsize=3)
    ax.axvline(means[names.index("raw")], color="0.6", lw=0.8, ls="--")
    ax.set_yticks(pos, names)
    ax.set_xlabel("balanced test log-loss (mean, 95% CI)")
    ax.set_title(f"{summary['study']}: MLP, R = {summary['reps']}", fontsize=10)
    fig.tight_layout()
    return fig


class NetworkStudy:
    """The network study (module docstring); implements ``Study``."""

    kind = "network"
    figures = ("network",)
    unit = "replication"
    row_tables = ("parquet",)

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        if "data" in sections:
            raise ConfigError("data", sections["data"], "only the real_data study (study.kind=real_data) reads data")
        if run.model.family != "logistic":
            raise ConfigError("model.family", run.model.family, "must be logistic (the network's loss)")
        return replace(run, selection=network_selection(sections.get("selection"), run.design.n0, run.design.n1))

    def build(self, run: RunConfig) -> NetworkCell:
        return build_network_cell(run)

    def label(self, built: NetworkCell) -> tuple[str, str]:
        return f"{built.run.study} {built.run.dgp['name']}", "replications"

    def run(self, built: NetworkCell, progress) -> pd.DataFrame:
        reps, frames = built.run.design.reps, []
        start = time.perf_counter()
        for r in range(reps):
            frames.append(network_replication(built, r))
            progress(r + 1, reps, time.perf_counter() - start)
        return pd.concat(frames, ignore_index=True)

    def summarise(self, built: NetworkCell, rows: pd.DataFrame) -> dict:
        run, d = built.run, built.run.design
        return {
            "selection": as_plain(run.selection),
            "dgp": run.dgp["name"],
            "n0": d.n0,
            "n1": d.n1,
            "reps": d.reps,
            "data_key": list(built.data_key),
            **summarise_network(built, rows),
        }

    def documents(self, summary: dict) -> dict[str, str]:
        return {"table.md": table_text(summary)}

    def draw(self, summary: dict) -> dict:
        return {"figure": network_figure(summary)}

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        return network_replication(build_network_cell(run), r)


STUDY = NetworkStudy()
