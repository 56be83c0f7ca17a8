"""Study 6b as the authors ran it (AUTHORS_DESIGNS.md B): the thin ring's new parameters, the
RFF bandwidth g = 1 / (d Var X), and feature maps refitted on every fold and replication.

Independent references used here:

* the bandwidth against scikit-learn's ``rbf_kernel`` with gamma = 1 / (d Var X) (its
  gamma="scale") and the random features' inner products against that kernel (Monte Carlo);
* the ring's rows recomputed from the same rng draws with the design's formulas;
* a spec that always returns one fixed map against the selectors given that map directly (the
  per-fold path must then reproduce the fixed-map path exactly);
* the per-replication curve against ``fit_glm`` on a map drawn from the documented stream.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sklearn.metrics.pairwise import rbf_kernel

import simstudy  # noqa: F401
from simstudy import selection
from simstudy.app import CONFIG_PATH
from simstudy.config import ConfigError, validate
from simstudy.engine import auxiliary_seed, draw_replication, prefix_weights
from simstudy.fitting import fit_glm
from simstudy.fourier import RandomFourierFeatures, RandomFourierSpec, variance_lengthscale
from simstudy.processes import noisy_ring
from simstudy.selection import (
    CostSensitiveClassifier,
    FeatureGLM,
    ReweightedClassifier,
    TGVTSSClassifier,
    VTSSClassifier,
    balanced_loss,
)
from simstudy.studies.vtss import build_vtss_cell, vtss_replication


def test_variance_lengthscale_is_sklearns_scale_bandwidth():
    X = np.random.default_rng(0).normal(size=(60, 4)) * [1.0, 2.0, 0.5, 3.0]
    ell = variance_lengthscale(X)
    gamma = 1.0 / (X.shape[1] * X.var())
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(np.exp(-sq / (2 * ell**2)), rbf_kernel(X, gamma=gamma), rtol=1e-12)
    # the features' inner products approximate that kernel (entries of a mean of D terms,
    # each bounded by 2 / D in size: |error| < 5 / sqrt(D) is a generous Monte Carlo bound)
    D = 20_000
    phi = RandomFourierSpec(D, "variance").fit(X, np.random.default_rng(1))
    assert np.abs(phi(X) @ phi(X).T - rbf_kernel(X, gamma=gamma)).max() < 5 / math.sqrt(D)


def test_spec_draws_the_documented_map():
    X = np.random.default_rng(2).normal(size=(50, 3))
    for rule, ell in (("variance", variance_lengthscale(X)), (0.7, 0.7)):
        got = RandomFourierSpec(8, rule).fit(X, np.random.default_rng(3))
        want = RandomFourierFeatures.draw(3, 8, ell, np.random.default_rng(3))
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.b, want.b)


@pytest.mark.parametrize("args", [(0, "variance"), (5, "mean"), (5, -1.0), (5, True), (True, 1.0)])
def test_spec_refuses_bad_parameters(args):
    with pytest.raises(ValueError):
        RandomFourierSpec(*args)
    with pytest.raises(ValueError, match="Var"):
        variance_lengthscale(np.ones((4, 2)))


def test_thin_ring_rows_follow_the_design_formulas():
    process = noisy_ring(radial_sd=0.12, plane_sd=0.08, off_plane_sd=0.08, shift=(1.5, 0.0), mc_size=10)
    got = process.law1.sample(300, np.random.default_rng(4))
    rng = np.random.default_rng(4)  # the same draws, in the documented order
    angle = rng.uniform(0.0, 2 * math.pi, size=300)
    radius = 2.2 + 0.12 * rng.standard_normal(300)
    rest = rng.standard_normal((300, 5))
    plane = 0.08 * rng.standard_normal((300, 2))
    want = np.column_stack(
        [4.8 + radius * np.cos(angle) + plane[:, 0], radius * np.sin(angle) + plane[:, 1], 0.08 * rest[:, 2:]]
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the majority's shifted component moved to (1.5, 0)
    np.testing.assert_array_equal(process.law0.means[1], [1.5, 0.0, 0.0, 0.0, 0.0])


def test_default_ring_draws_are_unchanged():
    got = noisy_ring(mc_size=10).law1.sample(200, np.random.default_rng(5))
    rng = np.random.default_rng(5)  # the formula before plane_sd and off_plane_sd existed
    angle = rng.uniform(0.0, 2 * math.pi, size=200)
    radius = 2.2 + 0.3 * rng.standard_normal(200)
    want = rng.standard_normal((200, 5))
    want[:, 0] = 4.8 + radius * np.cos(angle)
    want[:, 1] = radius * np.sin(angle)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs", [{"plane_sd": -0.1}, {"off_plane_sd": 0.0}, {"plane_sd": math.nan}])
def test_ring_refuses_bad_noise(kwargs):
    with pytest.raises(ValueError):
        noisy_ring(mc_size=10, **kwargs)


class FixedSpec:
    """A spec that returns one fixed map and records the rows it was fitted on."""

    def __init__(self, phi):
        self.phi, self.seen = phi, []

    def fit(self, X, rng):
        self.seen.append(np.asarray(X).copy())
        return self.phi


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(6)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(30, 2)) + [1.5, 0.0]])
    return X, np.r_[np.zeros(300), np.ones(30)].astype(np.int64)


@pytest.mark.parametrize("cls", [VTSSClassifier, TGVTSSClassifier, CostSensitiveClassifier])
def test_per_fold_path_reproduces_the_fixed_map(cls, sample):
    X, y = sample
    phi = RandomFourierFeatures.draw(2, 12, 1.0, np.random.default_rng(7))
    options = dict(cv=3, random_state=8, ridge=0.5) | (
        {} if cls is CostSensitiveClassifier else {"gammas": [0, 0.5, 1]}
    )
    fixed = cls(feature_map=phi, **options).fit(X, y)
    spec = FixedSpec(phi)
    refitted = cls(feature_map=spec, **options).fit(X, y)
    np.testing.assert_allclose(
        refitted.cv_results_["split_validation_loss"], fixed.cv_results_["split_validation_loss"], rtol=1e-9
    )
    np.testing.assert_allclose(refitted.theta_, fixed.theta_, rtol=1e-9, atol=1e-12)
    # one fit per validation split on its fitting rows, then on all rows (twice for TG-VTSS:
    # its diagnostics use the final fit's map)
    splits = selection.stratified_splits(y, 3, 0.2, selection._root_seed(8))
    fitted_on = [X[s.train] for s in splits] + [X] * (2 if cls is TGVTSSClassifier else 1)
    seen = spec.seen if cls is not TGVTSSClassifier else spec.seen[1:] + spec.seen[:1]
    assert len(seen) == len(fitted_on)
    for got, want in zip(seen, fitted_on, strict=True):
        np.testing.assert_array_equal(got, want)


def test_refitted_maps_are_drawn_per_split_and_for_the_final_fit(sample):
    X, y = sample
    spec = RandomFourierSpec(10, "variance")
    est = VTSSClassifier(feature_map=spec, cv=2, gammas=[0, 1], random_state=9).fit(X, y)
    want = spec.fit(X, selection._stream(selection._root_seed(9), 5))
    np.testing.assert_array_equal(est.model_.feature_map.W, want.W)
    rew = ReweightedClassifier(feature_map=spec, random_state=9).fit(X, y)
    np.testing.assert_array_equal(rew.model_.feature_map.W, want.W)
    with pytest.raises(ValueError, match="callable map"):
        VTSSClassifier(feature_map=type("Bad", (), {"fit": lambda self, X, rng: 3})(), cv=2).fit(X, y)


def _run(*extra):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "study=vtss_ring_authors",
                "design.n1=40",
                "design.n0=400",
                "design.reps=2",
                "design.gammas=[0.0,1.0]",
                "selection.gammas=[0.0,1.0]",
                "selection.cv=2",
                "selection.gqs_folds=2",
                "selection.n_boot=19",
                "selection.test_per_class=300",
                "selection.feature_map.n_features=12",
                "+dgp.mc_size=5000",
                *extra,
            ],
        )
    return validate(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.slow  # a whole replication of every selector: about 15 s alone, mostly compilation
def test_the_curve_uses_a_map_drawn_for_the_replication():
    vc = build_vtss_cell(_run())
    assert isinstance(vc.feature_map, RandomFourierSpec) and vc.lengthscale is None
    rows = vtss_replication(vc, 1)
    cell, design = vc.cell, vc.cell.design
    X, y = draw_replication(cell, 1)
    rng = np.random.default_rng(auxiliary_seed(design.seed, (*cell.data_key, 1), "feature_map"))
    phi = RandomFourierSpec(12, "variance").fit(X[: design.n0 + design.n1], rng)
    model = FeatureGLM("logistic", intercept=True, ridge=0.5, feature_map=phi)
    theta = fit_glm(X, y, prefix_weights(design), model=model).theta
    test_rows, test_y = vc.test
    want = balanced_loss("logistic", model.features(test_rows) @ theta.T, test_y)
    np.testing.assert_allclose(rows.loc[rows["method"] == "curve", "test_loss"], want, rtol=1e-9)
    assert rows["error"].eq("").all(), rows.loc[rows["error"] != "", "error"].tolist()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("selection.feature_map.refit=always", "selection.feature_map.refit"),
        ("selection.feature_map.lengthscale=mean", "selection.feature_map.lengthscale"),
        ("selection.gqs_folds=1", "selection.gqs_folds"),
        ("dgp.plane_sd=-1", "dgp"),
    ],
)
def test_bad_settings_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_vtss_cell(_run(override))
