"""A census of bad or odd command lines, tried as a new user would (issue 13).

README's "Guarantees" promise that bad input exits with status 2 and exactly one line
``simstudy: config error: ...`` naming the key, before Hydra starts, writing nothing.
``CASES`` is a table of command lines that should all get that error: every config group and
key, sizes that cannot run, data files for ``study=real_data``, imbalanced-learn sampler
options, path-like study names, override-grammar mistakes, sweeps, unknown options and wrong
types.

Each case runs ``simstudy.app.preflight(argv)`` in-process (it decides exit 2 before Hydra
starts; nothing is launched: a case that passes the preflight is reported as *silently
accepted*, it would have run the job). ``python scripts/bad_input_census.py`` prints

    tried / clear error / unclear error / crash / silently accepted

and every case that is not a clear error. ``tests/test_bad_inputs.py`` runs the same table and
requires a clear error for each.

* clear error: SystemExit(2), exactly one stderr line, starting ``simstudy: config error:``,
  naming the case's key (or its last component), no traceback, nothing written;
* unclear error: exit 2 but the line is missing, not alone, or does not name the key (or
  something was written);
* crash: any other exception (a traceback for the user), or another exit status;
* silently accepted: the preflight returned normally.

Options: ``-k TEXT`` keeps the cases whose id contains TEXT; ``--stub-missing`` replaces a
module the preflight imports but that does not exist yet (e.g. ``simstudy.resources`` while
its fix is being written) by a no-op, to see what else the table finds; ``-v`` prints every
case's stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = "{data}"  # placeholder for the folder that write_data_files fills


@dataclass(frozen=True)
class Case:
    """One command line (without ``hydra.run.dir`` / ``hydra.sweep.dir``) and the key its error
    line must name."""

    id: str
    key: str  # alternatives separated by "|"
    argv: tuple[str, ...]
    topic: str


CASES: list[Case] = []


def _add(topic: str, key: str, *argv: str, id: str | None = None) -> None:
    case_id = id or " ".join(argv)
    if any(c.id == case_id for c in CASES):
        raise ValueError(f"duplicate case id {case_id!r}")
    CASES.append(Case(case_id, key, tuple(argv), topic))


# ------------------------------------------------------------------------------------------
# design.* (the default study, quickstart: n1 = 50, kappa 20)
for value in ("abc", "0", "1", "-5", "2.5", "1e308", "[10,20]", "{a: 1}", "null", "true", "''"):
    _add("design", "design.n1", f"design.n1={value}")
_add("size", "design.n1", "design.n1=100000000")  # issue 13: reached 5 GB in 19 s
_add("size", "design.n1", "design.n1=1000000000000")
for value in ("1e308", "1", "0.5", "-1", "nan", "inf", "abc", "[20]"):
    _add("design", "design.kappa", f"design.kappa={value}")
_add("design", "design.kappa", "design.kappa=1.0000001")  # n0 = round(kappa n1) = n1
for value in ("5", "abc", "0", "2.5", "[1000]"):
    _add("design", "design.n0", f"design.n0={value}")
_add("size", "design.n0", "design.n0=1000000000000")
for value in (
    "[]",
    "abc",
    "1.0",
    "[-1.0]",
    "[0.0,nan]",
    "[0.0,inf]",
    "[2.0,1.0]",
    "[1.0,1.0]",
    "[0.0,abc]",
    "{a: 1}",
    "[0.0,1e308]",
    "[[0.0,1.0]]",
):
    _add("design", "design.gammas", f"design.gammas={value}")
_add("size", "design.gammas", "design.gammas=[0.0,1.0,1000000000.0]")
for value in ("0", "1", "abc", "1e308", "[10]", "2.5"):
    _add("design", "design.reps", f"design.reps={value}")
_add("size", "design.reps", "design.reps=1000000000")  # issue 13: would run for weeks
for value in ("0", "1.5", "abc", "-1"):
    _add("design", "design.chunk", f"design.chunk={value}")
_add("unknown key", "design.bogus", "design.bogus=1")
_add("unknown key", "design.bogus", "+design.bogus=1")
_add("unknown key", "design.n2", "design.n2=100")  # a typo of n1
_add("wrong type", "design", "design=5")
_add("override grammar", "design.n1", "~design.n1")

# ------------------------------------------------------------------------------------------
# model.*
for value in ("cauchy", "[logistic]", "null", "1", "mypkg.NOPE", "numpy.pi", "simstudy.families"):
    _add("model", "model.family", f"model.family={value}")
for value in ("maybe", "2", "[true]"):
    _add("model", "model.intercept", f"model.intercept={value}")
for value in ("-1", "nan", "inf", "abc", "[0.1]"):
    _add("model", "model.ridge", f"model.ridge={value}")
_add("unknown key", "model.bogus", "model.bogus=1")
_add("unknown key", "model.bogus", "+model.bogus=1")
_add("unknown option", "model", "model=nope")
_add("model", "model", "study=ls_symmetric", "model=logistic")  # labels -1/+1 under a logistic fit

# ------------------------------------------------------------------------------------------
# dgp.* of every dgp in conf/dgp
# gaussian_classes (quickstart's)
_add("dgp", "mu1", "dgp.mu1=[1.0,0.0,0.0]")
_add("dgp", "mu0", "dgp.mu0=abc")
_add("dgp", "mu1", "dgp.mu1=[nan,0.0]")
_add("dgp", "mu1", "dgp.mu1=[1e308,0.0]")
_add("dgp", "mu1", "dgp.mu1={a: 1}")
_add("dgp", "cov", "dgp.cov=[[1.0]]")
_add("dgp", "cov", "dgp.cov=[[1.0,0.0],[0.0,-1.0]]")
_add("dgp", "cov", "dgp.cov=abc")
_add("unknown key", "dgp.bogus", "+dgp.bogus=1")
_add("unknown key", "dgp.bogus", "dgp.bogus=1")
_add("unknown option", "dgp", "dgp=nope")
_add("unknown option", "dgp.name", "dgp.name=nope")
# symmetric_mean_shift (study 1)
for option, value in (
    ("d", "0"),
    ("d", "abc"),
    ("d", "2.5"),
    ("delta", "nan"),
    ("delta", "abc"),
    ("noise", "cauchy"),
    ("noise", "[gaussian]"),
):
    _add("dgp", option, "study=ls_symmetric", f"dgp.{option}={value}")
_add("size", "d", "study=ls_symmetric", "dgp.d=1000000000000")
# tuned_logistic_mixture (study 2)
for option, value in (("d", "1"), ("a", "-1"), ("b", "0"), ("c", "abc"), ("m", "inf")):
    _add("dgp", option, "study=logit_symmetric", f"dgp.{option}={value}")
_add("dgp", "shift_coords", "study=logit_symmetric", "+dgp.shift_coords=[0]")
_add("dgp", "shift_coords", "study=logit_symmetric", "+dgp.shift_coords=[25]")
# mixture_minority (study 6a, a selection study)
for option, value in (("d", "1"), ("centre", "abc"), ("offset", "nan"), ("d", "abc")):
    _add("dgp", option, "study=vtss_linear", f"dgp.{option}={value}")
_add("unknown key", "dgp.bogus", "study=vtss_linear", "+dgp.bogus=1")
# noisy_ring (study 6b, a selection study)
for option, value in (
    ("rho", "1.5"),
    ("radius", "-1"),
    ("shift_weight", "2"),
    ("centre", "[1.0]"),
    ("mc_size", "0"),
    ("d", "1"),
    ("bogus", "1"),
):
    _add("dgp", f"dgp.{option}" if option == "bogus" else option, "study=vtss_ring", f"+dgp.{option}={value}")
# bent_heavy_tailed (the network study, AUTHORS_DESIGNS.md section E)
for option, value in (("df", "-1"), ("outlier_probability", "2"), ("mc_size", "abc")):
    _add("dgp", option, "study=mlp_nonsyn", f"dgp.{option}={value}")
# the network study's generators against the minority rows its fits see (n1 = 100: 80 in a
# fold of the 5-fold CV, 66 in the GQS's 3-fold cross-fitting; 720 rows of both classes in a fold)
for entry in (
    "{name: smote, k: 500}",
    "{name: local_jitter, k: 80}",
    "{name: imblearn, sampler: ADASYN, n_neighbors: 70}",
    "{name: imblearn, sampler: BorderlineSMOTE, m_neighbors: 720}",
):
    _add("sampler", "selection.generators[0]", "study=mlp_nonsyn", f"selection.generators=[{entry}]")
# unequal_covariance (the symmetry test's design, AUTHORS_DESIGNS.md section D)
SZ = "study=symmetry_test_size"
for option, value in (("d", "0"), ("h", "abc"), ("b", "abc"), ("h", "100")):
    _add("dgp", option, SZ, f"dgp.{option}={value}")
_add("dgp", "b|h", SZ, "dgp.b=0.5", "dgp.h=1", id="unequal_covariance with both b and h")

# ------------------------------------------------------------------------------------------
# generator.* of every generator in conf/generator (quickstart: n1 = 50)
_add("generator", "scale", "generator=feature_jitter", "generator.scale=-1")
_add("generator", "scale", "generator=feature_jitter", "generator.scale=abc")
_add("generator", "scale", "generator=feature_jitter", "generator.scale=nan")
_add("generator", "shrinkage", "generator=gaussian_fit", "generator.shrinkage=2")
_add("generator", "shrinkage", "generator=gaussian_fit", "generator.shrinkage=-0.5")
_add("generator", "shrinkage", "generator=gaussian_fit", "generator.shrinkage=abc")
_add("generator", "scale", "generator=local_jitter", "generator.scale=-1")
_add("generator", "k", "generator=local_jitter", "generator.k=0")
_add("generator", "sd", "generator=jitter", "generator.sd=-1")
_add("generator", "sd", "generator=jitter", "generator.sd=abc")
_add("generator", "sd", "generator=jitter", "generator.sd=inf")
for value in ("-1", "abc", "1e308", "[0.1,0.2]"):
    _add("generator", "magnitude", f"generator.magnitude={value}")
for value in ("181", "-10", "abc"):
    _add("generator", "angle_deg", f"generator.angle_deg={value}")
_add("generator", "angle_deg", "generator=mismatch_half_sd", "generator.angle_deg=720")
for value in ("0", "-1", "abc"):
    _add("generator", "cov_scale", f"generator.cov_scale={value}")
_add("unknown key", "generator.bogus", "generator=oracle", "+generator.bogus=1")
_add("unknown key", "generator.scale", "generator=semi_oracle", "+generator.scale=2")
# options of generators simstudy builds or fills itself
_add("unknown key", "generator.bogus", "generator=shifted", "+generator.bogus=1")
_add("unknown key", "generator.rte", "generator=shifted_consistent", "+generator.rte=inv_sqrt_log_n1")
_add("unknown key", "generator.law1", "generator=oracle", "+generator.law1=1")
_add("unknown key", "generator.population", "generator=mismatch", "+generator.population=1")
_add("generator", "shift", "generator=shifted", "generator.shift=[]")
_add("generator", "shift", "generator=shifted", "generator.shift=[1.0,2.0,3.0]")
_add("generator", "shift", "generator=shifted", "generator.shift=abc")
_add("generator", "rate", "generator=shifted", "generator.rate=fast")
_add("generator", "rate", "generator=shifted_consistent", "generator.rate=nope")
for value in ("0", "50", "abc", "2.5", "-1"):
    _add("generator", "generator.k", "generator=smote", f"generator.k={value}")
_add("unknown option", "generator", "generator=nope")
_add("unknown option", "generator.name", "generator.name=nope")
_add("unknown key", "generator.bogus", "generator.bogus=1")
# imbalanced-learn samplers: generator=imblearn generator.sampler=... +generator.<option>=...
_add("sampler", "sampler", "generator=imblearn", "generator.sampler=Nope")
_add("sampler", "sampler", "generator=imblearn", "generator.sampler=RandomUnderSampler")
_add("sampler", "sampler", "generator=imblearn", "generator.sampler=[SMOTE]")
for value in ("abc", "-1", "0", "1000", "2.5"):
    _add("sampler", "k_neighbors", "generator=imblearn", f"+generator.k_neighbors={value}")
_add("sampler", "n_neighbors", "generator=imblearn", "generator.sampler=ADASYN", "+generator.n_neighbors=abc")
_add("sampler", "n_neighbors", "generator=imblearn", "generator.sampler=ADASYN", "+generator.n_neighbors=1000")
_add("sampler", "kind", "generator=imblearn", "generator.sampler=BorderlineSMOTE", "+generator.kind=borderline-3")
_add("sampler", "m_neighbors", "generator=imblearn", "generator.sampler=BorderlineSMOTE", "+generator.m_neighbors=0")
_add("sampler", "random_state", "generator=imblearn", "+generator.random_state=1")
_add("unknown key", "generator.k", "generator=imblearn", "+generator.k=3")
_add("sampler", "sampling_strategy", "generator=imblearn", "+generator.sampling_strategy=0.5")
_add("sampler", "bogus", "generator=imblearn", "+generator.bogus=1")
_add("sampler", "out_step", "generator=imblearn", "generator.sampler=SVMSMOTE", "+generator.out_step=-1")
_add(
    "sampler",
    "cluster_balance_threshold",
    "generator=imblearn",
    "generator.sampler=KMeansSMOTE",
    "+generator.cluster_balance_threshold=abc",
)
_add("sampler", "shrinkage", "generator=imblearn", "generator.sampler=RandomOverSampler", "+generator.shrinkage=-1")

# ------------------------------------------------------------------------------------------
# study.*, seed, workers, theory.refits, figures_dir, root keys
_add("unknown option", "study", "study=nope")
for value in ("../../x", "../../../x", "/tmp/x", "a/b", ".hidden", "''", "..", "[a]"):
    _add("path name", "study.name", f"study.name={value}")
_add("study", "study.figure", "study.figure=pie")
for value in ("pie", "null", "[curve]", "Curve"):
    _add("study", "study.kind", f"study.kind={value}")
_add("study", "study.figure", "study.figure=vtss")  # a selection figure for a curve study
_add("study", "study.figure", "study=vtss_linear", "study.figure=curve")
_add("study", "study.kind", "study=vtss_linear", "study.kind=curve", id="a vtss preset as a curve study")
_add("study", "selection", "+selection.cv=5", id="a selection section for a curve study")
_add("study", "data", "study=vtss_linear", "+data.datasets=[nwtco]", id="a data section for a vtss study")
for value in ("nopkg.Study", "simstudy.processes.gaussian_classes", "math.pi"):
    _add("plug-in", "study._target_", f"+study._target_={value}")
_add("unknown key", "study.bogus", "study.bogus=1")
_add("unknown key", "study.bogus", "+study.bogus=1")
for value in ("-1", "1.5", "abc", "1e308", "[1,2]", "null", "{a: 1}"):
    _add("seed", "seed", f"seed={value}")
for value in ("0", "-1", "2.5", "many", "[1]"):
    _add("workers", "workers", f"workers={value}")
for value in ("0", "1", "abc", "1e308", "[10]"):
    _add("theory", "refits", f"theory.refits={value}")
_add("size", "refits", "theory.refits=1000000000")
_add("unknown key", "theory.bogus", "theory.bogus=1")
_add("wrong type", "theory", "theory=5")
for value in ("[a,b]", "123", "{a: 1}", "/proc/simstudy_nope", f"{DATA}/good.csv"):
    _add("figures_dir", "figures_dir", f"figures_dir={value}")
_add("unknown key", "bogus", "bogus=1")
_add("unknown key", "bogus", "+bogus=1")
_add("unknown key", "sede", "sede=1")  # a typo of seed

# ------------------------------------------------------------------------------------------
# selection.* for the VTSS studies
VL, VR, RD = "study=vtss_linear", "study=vtss_ring", "study=real_data"
for value in ("1", "abc", "[repeated,5]", "1000", "true"):
    _add("selection", "selection.cv", VL, f"selection.cv={value}")
for option, value in (
    ("test_size", "0"),
    ("test_size", "1.5"),
    ("alpha", "2"),
    ("alpha", "abc"),
    ("gqs_threshold", "-1"),
    ("scoring", "magic"),
    ("test_per_class", "1"),
    ("gammas", "[]"),
    ("gammas", "[1.0,0.5]"),
    ("gammas", "abc"),
    ("feature_map", "abc"),
):
    _add("selection", f"selection.{option}", VL, f"selection.{option}={value}")
_add("size", "test_per_class", "study=vtss_ring", "selection.test_per_class=1000000000000")
_add("size", "design.reps", VL, "design.reps=1000000000")
_add("size", "design.n1", VL, "design.n1=100000000")
_add("size", "design.n1", VL, "design.n1=100000000", "design.n0=2000000000")
_add("unknown key", "selection.bogus", VL, "selection.bogus=1")
_add("unknown key", "selection.bogus", VL, "+selection.bogus=1")
# the section's name before it became selection.feature_map (issue 15)
_add("unknown key", "selection.features", VR, "selection.features.n_features=50")
_add("unknown key", "selection.features", VL, "+selection.features={name: rff}")
_add("selection", "design.gammas", VL, "design.gammas=[0.5,2.0]")
_add("selection", "data", VL, "+data.datasets=[caravan]")
_add("selection", "name", VR, "selection.feature_map.name=nope")
_add("selection", "n_features", VR, "selection.feature_map.n_features=0")
_add("selection", "lengthscale", VR, "selection.feature_map.lengthscale=-1")
_add("selection", "pilot_per_class", VR, "selection.feature_map.pilot_per_class=1")
# an option alone does not switch a map on (vtss_linear has feature_map: null)
_add("selection", "selection.feature_map.name", "study=vtss_linear", "+selection.feature_map.refit=fold")
_add("selection", "selection.feature_map.name", "study=vtss_linear", "selection.feature_map={n_features: 5}")
_add("selection", "scoring", VR, "selection.scoring=exact")
_add("selection", "selection.cv", VR, "selection.cv=500")
_add("size", "n_features", VR, "selection.feature_map.n_features=1000000000")
# TG-VTSS's decision rules (issue 17) and the diagnostics study
for option, value in (
    ("symmetry_test", "exact"),
    ("gqs_rule", "sometimes"),
    ("n_boot", "5"),
    ("n_boot", "abc"),
    ("gqs_level", "0"),
    ("gqs_level", "1"),
):
    _add("selection", f"selection.{option}", VL, f"selection.{option}={value}")
_add("selection", "selection.n_boot", VL, "selection.symmetry_test=bootstrap", "selection.n_boot=0")
_add("selection", "selection.n_boot", VL, "selection.symmetry_test=tilted", "selection.n_boot=0")
_add("selection", "selection.feature_map", SZ, "+selection.feature_map={name: rff}", id="a symmetry test on features")
_add("size", "design.n0", "study=gqs_calibration", "design.n0=50", id="a GQS without a majority")
# every diagnostics preset has selection.gqs_folds (null), so a bad value is a bad value, not
# an unknown key
for study, value in (("gqs_calibration", "1"), ("gqs_ring", "abc"), ("symmetry_test_size", "1")):
    _add("selection", "selection.gqs_folds", f"study={study}", f"selection.gqs_folds={value}")
_add("size", "selection.gqs_folds", "study=gqs_calibration", "design.n1=20", "selection.gqs_folds=21")
# a diagnostics cell reports every reference and rule: choosing one would only change its hash
_add("selection", "selection.symmetry_test", SZ, "selection.symmetry_test=tilted")
_add("selection", "selection.gqs_rule", "study=gqs_calibration", "selection.gqs_rule=calibrated_pool")

# ------------------------------------------------------------------------------------------
# data.* for study=real_data (bundled datasets)
# the dgp and generator sections a real-data job never builds still refuse a typo
_add("unknown key", "dgp.bogus", "study=real_data", "+dgp.bogus=1")
_add("unknown key", "generator.bogus", "study=real_data", "+generator.bogus=1")
for value in ("[nope]", "[caravan,caravan]", "[]", "caravan"):
    _add("data", "data.datasets", RD, f"data.datasets={value}")
for value in ("[]", "[Nope]", "[SMOTE,SMOTE]", "{name: SMOTE}", "[RandomUnderSampler]"):
    _add("data", "data.generators", RD, f"data.generators={value}")
for entry in (
    "{name: SMOTE, k_neighbors: abc}",
    "{name: SMOTE, k_neighbors: -1}",
    "{name: SMOTE, bogus: 1}",
    "{name: ADASYN, n_neighbors: 0}",
    "{name: BorderlineSMOTE, kind: nope}",
    "{name: jitter, sd: -1}",
    "{name: SMOTE, k_neighbors: 100000}",
    "{name: SMOTE, random_state: 3}",
    "{k_neighbors: 3}",
):
    _add("sampler", "data.generators", RD, f"data.generators=[{entry}]")
for value in ("0", "1", "abc"):
    _add("data", "data.test_size", RD, f"data.test_size={value}")
_add("unknown key", "data.bogus", RD, "data.bogus=1")
_add("unknown key", "data.bogus", RD, "+data.bogus=1")
_add("data", "model.family", RD, "model=least_squares")
_add("data", "selection.feature_map", RD, "selection.feature_map={name: rff}")
_add("data", "data.positive", RD, "data.positive=1")
_add("data", "data.target", RD, "data.target=y")
_add("data", "design.gammas", RD, "design.gammas=[0.5,2.0]")
_add("sampler", "data.generators", RD, "data.generators=[{name: smote, k: 0}]")
_add("size", "design.reps", RD, "design.reps=1000000000")

# data files (write_data_files); data.datasets=null data.path=<file> data.target=<col>
USER = (RD, "data.datasets=null")


def _file(key: str, name: str, *extra: str, target: str = "y", id: str) -> None:
    _add("data file", key, *USER, f"data.path={DATA}/{name}", f"data.target={target}", *extra, id=id)


_file("data.path", "missing.csv", id="data file: missing file")
_file("data.path", "empty.csv", id="data file: empty file")
_file("data.path", "header_only.csv", id="data file: header only")
_file("data.target", "good.csv", target="label", id="data file: missing target column")
_file("data.target", "one_class.csv", id="data file: target with one class")
_file("data.target", "three_classes.csv", id="data file: target with three classes")
_file("data.target", "nan_target.csv", id="data file: NaN in target")
_file("data.positive", "good.csv", "data.positive=7", id="data file: positive not a value")
_file("data.positive", "good.csv", "data.positive=0", id="data file: positive is the majority")
_file("data.positive", "good.csv", "data.positive=[1]", id="data file: positive a list")
_file("data.positive", "tie.csv", id="data file: equal classes without positive")
_file("data.path", "folder.csv", id="data file: a directory")
_file("data.path", "junk.csv", id="data file: binary junk csv")
_file("data.path", "junk.parquet", id="data file: text as parquet")
_file("data.path", "good.txt", id="data file: unsupported extension")
_file("data.path", "only_target.csv", id="data file: no feature column")
_file("data.path|data.generators", "few_minority.csv", id="data file: three minority rows")
_file("data.path", "constant.csv", id="data file: constant columns")
_file("data.path", "all_nan.csv", id="data file: all-NaN columns")
_file("data.target", "good.csv", target="null", id="data file: target null")
_file("data.target", "good.csv", target="[y]", id="data file: target a list")
_file("data.sha256", "good.csv", "+data.sha256=deadbeef", id="data file: wrong sha256")
_file("data.generators", "few_minority_k.csv", id="data file: fewer minority rows than SMOTE's k")
_file("selection.cv", "good.csv", "selection.cv=100", id="data file: more folds than minority rows")
_file("data.test_size", "good.csv", "data.test_size=0.999", id="data file: test_size leaving no training rows")
# the feature table and several targets (outcomes.csv: id, a, b, y, y2 binary, y3 three values);
# tests/test_real_data_protocol.py validates more such cases in-process
_file("data.drop", "outcomes.csv", "data.drop=[nope]", id="data file: drop names no column")
_file("data.drop", "outcomes.csv", "data.drop=[y]", id="data file: the target dropped")
_file("data.features", "outcomes.csv", "data.features=[nope]", id="data file: features names no column")
_file("data.targets", "outcomes.csv", "data.targets=[y,y]", target="null", id="data file: a target twice")
_file("data.targets", "outcomes.csv", "data.targets=[y,y3]", target="null", id="data file: a target of three values")
_file("data.targets", "outcomes.csv", "data.targets=[y2]", id="data file: target and targets")
_file("data.imputation", "good.csv", "data.imputation=mode", id="data file: unknown imputation")
_file("data.bands", "good.csv", "data.bands=sd", id="data file: unknown bands")
# an infinite feature value is not missing data: refused, naming the column (it used to drop it)
_file("data.path", "inf.csv", id="data file: an infinite feature value")
_file("data.path", "bytes.csv", id="data file: binary bytes the C parser rejects")
_add("data", "data.drop", RD, "data.drop=[a]", id="drop without a file")
_add("sampler", "data.generators", RD, "data.generators=[{name: SMOTE, cap_neighbors: maybe}]")
_add(
    "data file",
    "data.datasets",
    RD,
    f"data.path={DATA}/good.csv",
    "data.target=y",
    id="data file: path with the default datasets",
)
_add(
    "data file",
    "data.path",
    *USER,
    "data.path=relative/nowhere.csv",
    "data.target=y",
    id="data file: missing relative path",
)

# ------------------------------------------------------------------------------------------
# override grammar
_add("override grammar", "design.n1", "design.n1=5,", id="trailing comma")
_add("override grammar", "study.name", "study.name=é", id="unquoted unicode")
_add("override grammar", "study.name", "study.name=naïve_study", id="unquoted unicode in a word")
_add("override grammar", "design.gammas", "design.gammas=[0.0,1.0", id="unbalanced [")
_add("override grammar", "design.gammas", "design.gammas=0.0,1.0]", id="unbalanced ]")
_add("override grammar", "design.n1", "design.n1={", id="unbalanced {")
_add("override grammar", "study.name", 'study.name="abc', id="unbalanced quote")
_add("override grammar", "design.n1", "design.n1==5", id="key==v")
_add("override grammar", "design.n1", "design.n1", id="key without =")
_add("override grammar", "n1", "design..n1=5", id="double dot in key")
_add("override grammar", "design.n1", "design.n1='5'", id="quoted number")
_add("override grammar", "design.n1", "design.n1=${oops}", id="interpolation to a missing key")
_add("override grammar", "design.n1", "design.n1=20,40", id="a sweep without -m")
_add("override grammar", "design.n1", "design.n1 = 20", id="spaces around =")

# ------------------------------------------------------------------------------------------
# sweeps (-m)
_add("sweep", "design.n1", "-m", "design.n1=range(5,5)", id="-m empty range(5,5)")
_add("sweep", "design.n1", "-m", "design.n1=range(10,0)", id="-m empty range(10,0)")
_add("sweep", "design.n1", "-m", "design.n1=choice()", id="-m empty choice()")
_add("sweep", "design.n1", "-m", "design.n1=20,40", "design.n1=30", id="-m key swept and fixed")
_add("sweep", "design.n1", "-m", "design.n1=20", "design.n1=40", id="-m key given twice")
_add("sweep", "design.n1", "design.n1=20", "design.n1=40", id="key given twice")
_add("sweep", "design.n1", "-m", "design.n1=20,abc", id="-m a bad value in one cell")
_add("sweep", "design.n1", "-m", "design.n1=20,40,", id="-m trailing comma")
_add("sweep", "design.n1", "-m", "design.n1=range(abc)", id="-m range of a word")
_add("sweep", "generator", "-m", "generator=oracle,nope", id="-m unknown option in a sweep")
_add("sweep", "sweep", "-m", "sweep=nope", id="-m unknown sweep")
_add("sweep", "design.n1", "-m", "sweep=asym_biased", "design.n1=abc", id="-m bad value replacing the sweep file's")
_add("sweep", "study.name", "-m", "study.name=../../x", "seed=0,1", id="-m path-like study name")
_add("sweep", "design.reps", "-m", "design.reps=20,1000000000", id="-m huge reps in one cell")

# ------------------------------------------------------------------------------------------
# launchers and flags
_add("unknown option", "hydra/launcher", "hydra/launcher=nope")
_add("unknown option", "hydra/launcher", "-m", "hydra/launcher=nope", "seed=0,1", id="-m hydra/launcher=nope")
_add("unknown option", "sweep", "sweep=nope")


# ------------------------------------------------------------------------------------------
# data files


def write_data_files(folder: Path) -> Path:
    """The files of the data-file cases, in ``folder`` (created); returns it."""
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(13)

    def table(name: str, y, columns=("a", "b"), values=None) -> None:
        n = len(y)
        values = rng.standard_normal((n, len(columns))) if values is None else values
        lines = [",".join([*columns, "y"])]
        lines += [",".join([*(f"{v:.6g}" for v in row), str(label)]) for row, label in zip(values, y)]
        (folder / name).write_text("\n".join(lines) + "\n")

    good = [0] * 260 + [1] * 40
    table("good.csv", good)
    (folder / "good.txt").write_text((folder / "good.csv").read_text())
    table("one_class.csv", [0] * 300)
    table("three_classes.csv", [0] * 200 + [1] * 60 + [2] * 40)
    table("nan_target.csv", [0] * 260 + [1] * 35 + [""] * 5)
    table("tie.csv", [0] * 150 + [1] * 150)
    table("few_minority.csv", [0] * 297 + [1] * 3)
    table("few_minority_k.csv", [0] * 292 + [1] * 8)
    table("constant.csv", good, values=np.ones((300, 2)))
    outcomes = ["id,a,b,y,y2,y3"] + [
        f"{i},{a:.6g},{b:.6g},{y},{int(i % 6 == 0)},{i % 3}"
        for i, (a, b, y) in enumerate(zip(*rng.standard_normal((2, 300)), good))
    ]
    (folder / "outcomes.csv").write_text("\n".join(outcomes) + "\n")
    table("all_nan.csv", good, values=np.full((300, 2), np.nan))
    (folder / "only_target.csv").write_text("y\n" + "\n".join(str(v) for v in good) + "\n")
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text("a,b,y\n")
    (folder / "folder.csv").mkdir(exist_ok=True)
    (folder / "junk.csv").write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8)))
    (folder / "junk.parquet").write_text("this is not a parquet file\n")
    (folder / "bytes.csv").write_bytes(bytes(range(256)) * 4)
    with_inf = rng.standard_normal((300, 2))
    with_inf[17, 1] = np.inf
    table("inf.csv", good, values=with_inf)
    return folder


# ------------------------------------------------------------------------------------------
# running and classifying


@dataclass
class Result:
    code: int | None  # SystemExit's code; None when the preflight returned or raised
    stderr: str
    error: str | None  # another exception, with its traceback
    written: list[str]  # what appeared in the work folder
    seconds: float


def argv_of(case: Case, data_dir: Path, work_dir: Path) -> list[str]:
    """The case's command line with its files and the job folders under ``work_dir``."""
    argv = [a.replace(DATA, str(data_dir)) for a in case.argv]
    return [*argv, f"hydra.run.dir={work_dir / 'run'}", f"hydra.sweep.dir={work_dir / 'sweep'}"]


@contextlib.contextmanager
def _captured_fd2():
    """Everything written to file descriptor 2 (e.g. by a logging handler that kept the
    original sys.stderr), as a list that receives the text on exit."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            out.append(sink.read().decode(errors="replace"))


def run_preflight(case: Case, data_dir: Path, work_dir: Path) -> Result:
    """``simstudy.app.preflight`` on the case, in ``work_dir`` (created, must start empty), with
    warnings as errors (as the test suite has them)."""
    from simstudy.app import preflight

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = argv_of(case, data_dir, work_dir)
    err, out = io.StringIO(), io.StringIO()
    code, error = None, None
    cwd = os.getcwd()
    start = time.perf_counter()
    os.chdir(work_dir)
    try:
        with (
            _captured_fd2() as fd2,
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(out),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("error")
            try:
                preflight(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException as exc:  # noqa: BLE001  (a crash is what the census counts)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                error = "".join(traceback.format_exception(exc))
    finally:
        os.chdir(cwd)
    written = sorted(str(p.relative_to(work_dir)) for p in work_dir.rglob("*"))
    return Result(code, err.getvalue() + "".join(fd2) + out.getvalue(), error, written, time.perf_counter() - start)


def names_key(line: str, key: str) -> bool:
    """The line names the key (or one of the "|"-separated alternatives) or its last component."""
    return any(k in line or k.replace("/", ".").split(".")[-1] in line for k in key.split("|"))


def names_key_up_front(line: str, key: str) -> bool:
    """The key the line starts with (``config error: <key>=...`` or ``<key>: ...``) is the case's
    key or ends with its last component; False when the key shows only inside a dumped value
    (``dgp={..., 'mu0': 'abc', ...}: ...``)."""
    head = line.split("config error:", 1)[-1].strip()
    head = re.split(r"[=: ]", head, maxsplit=1)[0]
    return any(head == k or head.endswith(k.replace("/", ".").split(".")[-1]) for k in key.split("|"))


def classify(case: Case, result: Result) -> tuple[str, str]:
    """(category, why) of a case's result: "clear", "unclear", "crash" or "accepted"."""
    if result.error is not None:
        last = result.error.strip().splitlines()[-1]
        return "crash", last
    if "Traceback" in result.stderr:
        return "crash", "a traceback on stderr"
    if result.code is None:
        return "accepted", "the preflight returned: the job would run"
    if result.code != 2:
        return "crash", f"exit status {result.code}"
    lines = result.stderr.strip().splitlines()
    problems = []
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    if not lines or not lines[-1].startswith("simstudy: config error:"):
        problems.append("no 'simstudy: config error:' line")
    elif not names_key(lines[-1], case.key):
        problems.append(f"the line does not name {case.key!r}")
    if result.written:
        problems.append(f"wrote {result.written[:3]}")
    return ("unclear", "; ".join(problems)) if problems else ("clear", "")


def stub_missing_modules() -> list[str]:
    """Install no-op stand-ins for modules the preflight imports that do not exist yet."""
    import types

    stubbed = []
    try:
        import simstudy.resources  # noqa: F401
    except ModuleNotFoundError:
        stub = types.ModuleType("simstudy.resources")
        stub.check_budget = lambda run: None
        sys.modules["simstudy.resources"] = stub
        stubbed.append("simstudy.resources (check_budget: no-op)")
    return stubbed


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the cases whose id contains this text")
    parser.add_argument(
        "--stub-missing",
        action="store_true",
        help="no-op stand-ins for modules the preflight imports that do not exist yet",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's stderr")
    opts = parser.parse_args(args)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    stubbed = stub_missing_modules() if opts.stub_missing else []
    cases = [c for c in CASES if opts.k in c.id]
    counts = {"clear": 0, "unclear": 0, "crash": 0, "accepted": 0}
    bad: list[tuple[Case, str, str]] = []
    weak: list[tuple[Case, str]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simstudy-census-") as tmp:
        data_dir = write_data_files(Path(tmp) / "data")
        for i, case in enumerate(cases):
            result = run_preflight(case, data_dir, Path(tmp) / f"work{i}")
            category, why = classify(case, result)
            counts[category] += 1
            if category != "clear":
                bad.append((case, category, why))
            elif not names_key_up_front(result.stderr.strip(), case.key):
                weak.append((case, result.stderr.strip()))
            if opts.verbose:
                print(
                    f"[{category}] {case.id} ({result.seconds:.2f} s): {why}\n    "
                    + "\n    ".join((result.stderr.strip() or "(no stderr)").splitlines()[-3:])
                )
    elapsed = time.perf_counter() - start
    if stubbed:
        print(f"stubbed (not yet in the tree): {', '.join(stubbed)}")
    print(
        f"tried {len(cases)} / clear error {counts['clear']} / unclear error {counts['unclear']} / "
        f"crash {counts['crash']} / silently accepted {counts['accepted']}  ({elapsed:.1f} s)"
    )
    for category in ("crash", "accepted", "unclear"):
        group = [(c, why) for c, cat, why in bad if cat == category]
        if group:
            print(f"\n{category} ({len(group)}):")
            for case, why in group:
                print(f"  [{case.topic}] {case.id}: {why}")
    if weak:
        print(f"\nclear, but the key shows only inside a dumped value ({len(weak)}; not counted as failures):")
        for case, line in weak:
            print(f"  [{case.topic}] {case.id}: {line[:140]}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
