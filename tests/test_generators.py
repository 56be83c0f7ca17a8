"""Tests of the generator catalog (simstudy.generators) against independent references.

References: the defining formulas of each synthetic law (THEORY.md sections 1 and 6) written out
here from scratch, the exact conditional moments of SMOTE given the minority sample, nearest
neighbours from scipy's KD-tree, and imbalanced-learn's own SMOTE. Monte Carlo comparisons use
|estimate - truth| / MCSE < Z with the MCSE estimated from the same draws.

What the prefix tests check: for the generators that draw from a fixed number of substreams
(GaussianFit, Smote, BootstrapJitter, FeatureJitter) sample(M, rng)[:m] equals sample(m, rng)
from the same rng state (to 1e-12: a BLAS product may round differently), which holds by
construction. Oracle and SemiOracle rows come from the class law's own sample (i.i.d. by the
ClassLaw contract), so for them only the law of the draws is checked. The imbalanced-learn
adapter shuffles its pool, so a prefix is a uniformly random subset of it: the test checks that
prefix means agree with the pool mean within the without-replacement standard error, on data
ordered so that an unshuffled ADASYN (per-point allocation) or KMeansSMOTE (per-cluster blocks)
pool fails that.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import cKDTree

import simstudy  # noqa: F401
from simstudy.fitting import GLM
from simstudy.generators import (
    GENERATORS,
    BootstrapJitter,
    FeatureJitter,
    GaussianFit,
    ImblearnGenerator,
    Oracle,
    SemiOracle,
    Smote,
    make_generator,
)
from simstudy.generators.classic import nearest_neighbours
from simstudy.laws import GaussianMixtureLaw, SymmetricNoiseLaw
from simstudy.population import Population
from simstudy.processes import gaussian_classes, symmetric_mean_shift

Z = 4.0
D = 3
N1, N0 = 40, 400
MU1 = np.array([1.0, -0.5, 0.25])
COV1 = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, -0.1], [0.0, -0.1, 2.0]])


def gaussian_law(mean, cov):
    return GaussianMixtureLaw(np.ones(1), np.asarray(mean)[None], np.asarray(cov)[None])


def rng_from(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


@pytest.fixture(scope="module")
def data():
    rng = rng_from(20240611)
    X1 = MU1 + rng.standard_normal((N1, D)) @ np.linalg.cholesky(COV1).T
    X0 = rng.standard_normal((N0, D))
    return X1, X0


def assert_moments(draws, mean, cov, z=Z):
    """Sample mean and second moment about the true mean agree with (mean, cov) within z MCSE."""
    x = draws - mean
    m = x.shape[0]
    t_mean = x.mean(axis=0) / (x.std(axis=0, ddof=1) / np.sqrt(m))
    prods = x[:, :, None] * x[:, None, :]
    se = prods.std(axis=0, ddof=1) / np.sqrt(m)
    t_cov = (prods.mean(axis=0) - cov) / se
    assert np.max(np.abs(t_mean)) < z, t_mean
    assert np.max(np.abs(t_cov)) < z, t_cov


def smote_moments(X1, k):
    """Exact mean and covariance of the SMOTE law given X1: x_i + u (x_j - x_i), i uniform,
    j uniform on the k nearest (KD-tree), u ~ U(0, 1): E u = 1/2, E u^2 = 1/3."""
    _, idx = cKDTree(X1).query(X1, k=k + 1)
    assert np.array_equal(idx[:, 0], np.arange(X1.shape[0]))
    base = np.repeat(X1, k, axis=0)
    diff = X1[idx[:, 1:].ravel()] - base
    mean = (base + diff / 2).mean(axis=0)
    second = (
        np.einsum("si,sj->ij", base, base)
        + (np.einsum("si,sj->ij", base, diff) + np.einsum("si,sj->ij", diff, base)) / 2
        + np.einsum("si,sj->ij", diff, diff) / 3
    ) / base.shape[0]
    return mean, second - np.outer(mean, mean)


def knn_segments(X1, k):
    """Ordered segments (i, j), j among the k nearest of i (KD-tree), as index arrays."""
    _, idx = cKDTree(X1).query(X1, k=k + 1)
    assert np.array_equal(idx[:, 0], np.arange(X1.shape[0]))
    return np.repeat(np.arange(X1.shape[0]), k), idx[:, 1:].ravel()


def segment_matches(points, X1, k, tol=1e-9):
    """(ok, u): ok[p, s] when point p is x_i + u (x_j - x_i) with u in [0, 1] for segment s."""
    i, j = knn_segments(X1, k)
    a, dvec = X1[i], X1[j] - X1[i]
    oks, us = [], []
    for chunk in np.array_split(points, max(1, len(points) // 2000)):
        rel = chunk[:, None, :] - a[None]
        u = np.einsum("msd,sd->ms", rel, dvec) / np.einsum("sd,sd->s", dvec, dvec)
        resid = np.linalg.norm(rel - u[..., None] * dvec[None], axis=-1)
        oks.append((resid < tol) & (u >= -tol) & (u <= 1 + tol))
        us.append(u)
    return np.concatenate(oks), np.concatenate(us)


def assert_on_knn_segments(points, X1, k):
    """Every point is x_i + u (x_j - x_i) with u in [0, 1] and j among the k nearest of i."""
    ok, _ = segment_matches(points, X1, k)
    assert ok.any(axis=1).all(), f"{np.sum(~ok.any(axis=1))} points lie on no kNN segment"


def assert_smote_sampling_law(points, X1, k, alpha=1e-4):
    """Given X1, SMOTE picks each ordered kNN segment with probability 1/(n1 k) and u ~ U(0, 1).

    A mutual pair (j among the neighbours of i and i among those of j) is the same unordered
    segment twice, so segments are counted unordered with probability multiplicity/(n1 k)
    (chi-square test), and u is tested (Kolmogorov-Smirnov) on points whose segment is not
    mutual, where u is identified.
    """
    n1 = X1.shape[0]
    i, j = knn_segments(X1, k)
    ok, u = segment_matches(points, X1, k)
    assert ok.any(axis=1).all()
    keys, pair, multiplicity = np.unique(
        np.minimum(i, j) * n1 + np.maximum(i, j), return_inverse=True, return_counts=True
    )
    first = np.argmax(ok, axis=1)
    observed = np.bincount(pair[first], minlength=keys.size)
    expected = multiplicity / (n1 * k) * len(points)
    assert stats.chisquare(observed, expected).pvalue > alpha
    unique = ok.sum(axis=1) == 1
    assert unique.sum() > len(points) / 4
    assert stats.kstest(u[unique, first[unique]], "uniform").pvalue > alpha


# --- laws of the classic generators ------------------------------------------------------


def test_oracle_draws_match_minority_moments(data):
    # a two-component mixture, so the check is not special to one Gaussian
    X1, X0 = data
    w, mus = np.array([0.3, 0.7]), np.array([[2.0, 0.0, 1.0], [-1.0, 0.5, 0.0]])
    covs = np.stack([COV1, 0.5 * np.eye(D)])
    mean = w @ mus
    cov = sum(wk * (Sk + np.outer(mk - mean, mk - mean)) for wk, mk, Sk in zip(w, mus, covs))
    law1 = GaussianMixtureLaw(w, mus, covs)
    fitted = Oracle(law1).fit(X1, X0, rng_from(1))
    assert fitted.law is law1
    assert_moments(fitted.sample(20_000, rng_from(2)), mean, cov)


@pytest.mark.parametrize("noise", ["gaussian", "uniform_cube"])
def test_semi_oracle_is_sample_mean_plus_true_noise(data, noise):
    # study 1: P1 = mu + xi; the synthetic law is x̄1 + xi with xi's own law (identity covariance)
    X1, X0 = data
    law1 = SymmetricNoiseLaw(MU1, noise)
    fitted = SemiOracle(law1).fit(X1, X0, rng_from(3))
    xbar = X1.sum(axis=0) / N1
    np.testing.assert_allclose(fitted.law.mean, xbar, rtol=0, atol=1e-14)
    draws = fitted.sample(20_000, rng_from(4))
    assert_moments(draws, xbar, np.eye(D))
    if noise == "uniform_cube":
        # fresh noise from the true noise law: bounded by sqrt(3) around x̄1, not Gaussian
        assert np.max(np.abs(draws - xbar)) <= np.sqrt(3.0)


def shrunk_covariance(X, s):
    n, d = X.shape
    c = X - X.sum(axis=0) / n
    S = sum(np.outer(r, r) for r in c) / (n - 1)
    return (1 - s) * S + s * np.trace(S) / d * np.eye(d)


@pytest.mark.parametrize("shrinkage", [0.0, 0.1, 1.0])
def test_gaussian_fit_matches_its_definition(data, shrinkage):
    X1, X0 = data
    fitted = GaussianFit(shrinkage).fit(X1, X0, rng_from(5))
    target = shrunk_covariance(X1, shrinkage)
    np.testing.assert_allclose(fitted.mean, X1.sum(axis=0) / N1, atol=1e-14)
    np.testing.assert_allclose(fitted.cov, target, atol=1e-13)
    assert_moments(fitted.sample(20_000, rng_from(6)), X1.sum(axis=0) / N1, target)


def test_gaussian_fit_singular_covariance_samples_in_the_span():
    # n1 = 3 points in d = 5 with no shrinkage: S has rank 2, draws stay in x̄ + span(S)
    X1 = rng_from(7).standard_normal((3, 5))
    draws = GaussianFit(0.0).fit(X1, None, rng_from(8)).sample(500, rng_from(9))
    centred = X1 - X1.mean(axis=0)
    _, sv, Vt = np.linalg.svd(centred)
    normal = Vt[2:]  # directions with no sample variance
    assert np.max(np.abs((draws - X1.mean(axis=0)) @ normal.T)) < 1e-10
    assert np.all(np.isfinite(draws))


def mixture_cov(X1, noise_var):
    c = X1 - X1.sum(axis=0) / X1.shape[0]
    return c.T @ c / X1.shape[0] + np.diag(noise_var)


def test_bootstrap_jitter_law(data):
    X1, X0 = data
    draws = BootstrapJitter(sd=0.7).fit(X1, X0, rng_from(10)).sample(20_000, rng_from(11))
    assert_moments(draws, X1.sum(axis=0) / N1, mixture_cov(X1, np.full(D, 0.49)))


def test_feature_jitter_law(data):
    X1, X0 = data
    sd = np.sqrt(((X1 - X1.mean(axis=0)) ** 2).sum(axis=0) / (N1 - 1))
    draws = FeatureJitter(scale=0.3).fit(X1, X0, rng_from(12)).sample(20_000, rng_from(13))
    assert_moments(draws, X1.sum(axis=0) / N1, mixture_cov(X1, (0.3 * sd) ** 2))


def law_mean_cov(law):
    """Mean and covariance of a ClassLaw from its exact squared-loss moments: with
    l = (y - z'theta)^2 and z = (1, x), the Hessian is 2 E[z z'] at any theta."""
    model = GLM("squared", intercept=True)
    second = np.asarray(law.moments(np.zeros(law.dim + 1), 0.0, model).hess) / 2
    mean = second[0, 1:]
    return mean, second[1:, 1:] - np.outer(mean, mean)


def test_exact_laws_match_their_definitions(data):
    X1, X0 = data
    xbar = X1.sum(axis=0) / N1
    sd = np.sqrt(((X1 - xbar) ** 2).sum(axis=0) / (N1 - 1))
    cases = [
        (SemiOracle(gaussian_law(MU1, COV1)), xbar, COV1),
        (SemiOracle(SymmetricNoiseLaw(MU1, "rademacher", 2.0)), xbar, 4.0 * np.eye(D)),
        (GaussianFit(0.1), xbar, shrunk_covariance(X1, 0.1)),
        (BootstrapJitter(sd=0.7), xbar, mixture_cov(X1, np.full(D, 0.49))),
        (FeatureJitter(scale=0.3), xbar, mixture_cov(X1, (0.3 * sd) ** 2)),
    ]
    for gen, mean, cov in cases:
        law = gen.fit(X1, X0, rng_from(14)).law
        got_mean, got_cov = law_mean_cov(law)
        np.testing.assert_allclose(got_mean, mean, atol=1e-10, err_msg=gen.name)
        np.testing.assert_allclose(got_cov, cov, atol=1e-10, err_msg=gen.name)


# --- SMOTE ----------------------------------------------------------------------------------


def test_nearest_neighbours_match_kd_tree(data):
    X1, _ = data
    _, idx = cKDTree(X1).query(X1, k=6)
    np.testing.assert_array_equal(nearest_neighbours(X1, 5, block=7), idx[:, 1:])


def test_nearest_neighbours_exclude_self_among_duplicates():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    nn = nearest_neighbours(X, 2)
    np.testing.assert_array_equal(nn[:2], [[1, 2], [0, 2]])
    assert all(i not in row for i, row in enumerate(nn))


@pytest.mark.parametrize("k", [1, 3])
def test_native_smote_points_lie_on_knn_segments(data, k):
    X1, X0 = data
    points = Smote(k).fit(X1, X0, rng_from(15)).sample(2000, rng_from(16))
    assert_on_knn_segments(points, X1, k)


def test_imblearn_smote_points_lie_on_knn_segments(data):
    X1, X0 = data
    points = ImblearnGenerator("SMOTE", k_neighbors=3).fit(X1, X0, None).sample(500, rng_from(17))
    assert_on_knn_segments(points, X1, 3)


@pytest.mark.parametrize("gen", [Smote(3), ImblearnGenerator("SMOTE", k_neighbors=3)], ids=["native", "imblearn"])
def test_smote_segment_and_step_laws(data, gen):
    X1, X0 = data
    assert_smote_sampling_law(gen.fit(X1, X0, None).sample(10_000, rng_from(34)), X1, 3)


def test_native_and_imblearn_smote_have_the_exact_smote_law(data):
    X1, X0 = data
    mean, cov = smote_moments(X1, 5)
    native = Smote(5).fit(X1, X0, rng_from(18)).sample(20_000, rng_from(19))
    theirs = ImblearnGenerator("SMOTE").fit(X1, X0, None).sample(20_000, rng_from(20))
    assert_moments(native, mean, cov)
    assert_moments(theirs, mean, cov)
    # and directly against each other: two-sample z on means and second moments
    for stat in (lambda x: x, lambda x: (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)):
        a, b = stat(native), stat(theirs)
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        assert np.max(np.abs(a.mean(axis=0) - b.mean(axis=0)) / se) < Z


# --- the imbalanced-learn adapter ----------------------------------------------------------

SAMPLERS = [
    ("SMOTE", {}),
    ("BorderlineSMOTE", {"kind": "borderline-2"}),
    ("ADASYN", {}),
    ("RandomOverSampler", {"shrinkage": 0.5}),
    ("SVMSMOTE", {}),
    ("KMeansSMOTE", {"kmeans_estimator": 2, "cluster_balance_threshold": 0.05}),
]


@pytest.mark.parametrize("sampler,kwargs", SAMPLERS, ids=[s for s, _ in SAMPLERS])
def test_adapter_returns_exact_counts(data, sampler, kwargs):
    X1, X0 = data
    fitted = ImblearnGenerator(sampler, **kwargs).fit(X1, X0, rng_from(21))
    for m in (0, 1, 7, 250):
        out = fitted.sample(m, rng_from(22, m))
        assert out.shape == (m, D)
        assert np.all(np.isfinite(out))


def test_adapter_raises_when_the_sampler_makes_nothing(data):
    # minority far from the majority: no minority point is "in danger" for BorderlineSMOTE
    X1, X0 = data
    fitted = ImblearnGenerator("BorderlineSMOTE").fit(X1 + 50.0, X0, None)
    with pytest.raises(RuntimeError, match="made no new minority points"):
        fitted.sample(10, rng_from(38))


def test_random_over_sampler_without_shrinkage_duplicates_minority_rows(data):
    X1, X0 = data
    out = ImblearnGenerator("RandomOverSampler").fit(X1, X0, None).sample(100, rng_from(23))
    assert all(np.any(np.all(X1 == row, axis=1)) for row in out)


@pytest.mark.parametrize("sampler,kwargs", [SAMPLERS[2], SAMPLERS[5]], ids=["ADASYN", "KMeansSMOTE"])
def test_adapter_pool_prefix_is_a_random_subset(data, sampler, kwargs):
    X1, X0 = data
    # minority rows sorted on x_1: an unshuffled per-point or per-block pool would put the
    # points made from the smallest x_1 first and its prefix mean would sit far below the pool's
    X1 = X1[np.argsort(X1[:, 0])]
    big_m = 2000
    pool = ImblearnGenerator(sampler, **kwargs).fit(X1, X0, None).sample(big_m, rng_from(24))
    for m in (100, 200, 500, 1000):
        se = pool.std(axis=0, ddof=1) * np.sqrt((1 / m) * (1 - m / big_m))
        assert np.max(np.abs(pool[:m].mean(axis=0) - pool.mean(axis=0)) / se) < Z, m


def test_adapter_reseeds_estimators_passed_in(data):
    from sklearn.cluster import KMeans

    X1, X0 = data
    gen = ImblearnGenerator(
        "KMeansSMOTE",
        kmeans_estimator=KMeans(n_clusters=3, n_init=1),
        cluster_balance_threshold=0.05,
    )
    fitted = gen.fit(X1, X0, None)
    first, again = fitted.sample(300, rng_from(25)), fitted.sample(300, rng_from(25))
    np.testing.assert_array_equal(first, again)


# --- pool contract, seeding ----------------------------------------------------------------

NATIVE = [GaussianFit(0.1), Smote(5), BootstrapJitter(1.0), FeatureJitter(0.1)]


@pytest.mark.parametrize("gen", NATIVE, ids=[g.name for g in NATIVE])
def test_prefix_of_pool_equals_smaller_draw(data, gen):
    X1, X0 = data
    fitted = gen.fit(X1, X0, rng_from(26))
    pool = fitted.sample(1000, rng_from(27))
    for m in (1, 10, 999):
        np.testing.assert_allclose(pool[:m], fitted.sample(m, rng_from(27)), rtol=0, atol=1e-12)


def all_generators():
    law1 = gaussian_law(MU1, COV1)
    return [Oracle(law1), SemiOracle(law1), *NATIVE] + [ImblearnGenerator(s, **kw) for s, kw in SAMPLERS]


@pytest.mark.parametrize("gen", all_generators(), ids=lambda g: g.name)
def test_same_seed_same_pool_and_empty_draw(data, gen):
    X1, X0 = data

    def pool(seed):
        rng = rng_from(seed)
        return gen.fit(X1, X0, rng).sample(300, rng)

    np.testing.assert_array_equal(pool(28), pool(28))
    assert not np.array_equal(pool(28), pool(29))
    # parameters only, so a pickled copy (e.g. sent to a worker) gives the same pool
    copy = pickle.loads(pickle.dumps(gen))
    np.testing.assert_array_equal(
        copy.fit(X1, X0, rng_from(28)).sample(300, rng_from(35)),
        gen.fit(X1, X0, rng_from(28)).sample(300, rng_from(35)),
    )
    empty = gen.fit(X1, X0, rng_from(30)).sample(0, rng_from(31))
    assert empty.shape == (0, D)


# --- registry ------------------------------------------------------------------------------


def test_registry_builds_each_generator_with_its_options():
    process = symmetric_mean_shift(d=D)
    assert make_generator("oracle", process) == Oracle(process.law1)
    assert make_generator("semi_oracle", process=process) == SemiOracle(process.law1)
    assert make_generator("gaussian_fit", shrinkage=0.3) == GaussianFit(0.3)
    assert make_generator("smote", k=7) == Smote(7)
    assert make_generator("jitter", sd=2.0) == BootstrapJitter(2.0)
    assert make_generator("feature_jitter", scale=0.5) == FeatureJitter(0.5)
    adasyn = make_generator("imblearn", sampler="ADASYN", n_neighbors=3)
    assert (adasyn.sampler, adasyn.sampler_kwargs) == ("ADASYN", {"n_neighbors": 3})
    assert set(GENERATORS) == {
        "oracle",
        "semi_oracle",
        "gaussian_fit",
        "smote",
        "jitter",
        "feature_jitter",
        "local_jitter",
        "imblearn",
        "mismatch",
    }


def test_registry_builds_the_mismatch_generator_lazily():
    from simstudy.generators.mismatch import MismatchGenerator

    population = Population(gaussian_classes(), GLM("squared"))
    gen = make_generator("mismatch", population=population, magnitude=0.2, angle_deg=90.0)
    assert isinstance(gen, MismatchGenerator)
    assert (gen.magnitude, gen.angle_deg) == (0.2, 90.0)
    X1, X0 = gaussian_classes().sample(50, 5, rng_from(36))[::-1]
    assert gen.fit(X1, X0, None).sample(4, rng_from(37)).shape == (4, 2)


# --- bad inputs ----------------------------------------------------------------------------


def _fit_sample(gen, X1, X0, m=5):
    return gen.fit(X1, X0, rng_from(32)).sample(m, rng_from(33))


BAD = [
    ("m", lambda X1, X0: _fit_sample(Smote(), X1, X0, m=-1)),
    ("m", lambda X1, X0: _fit_sample(GaussianFit(), X1, X0, m=2.5)),
    ("m", lambda X1, X0: _fit_sample(ImblearnGenerator(), X1, X0, m=-3)),
    ("rng", lambda X1, X0: Smote().fit(X1, X0, None).sample(5, 123)),
    ("k = 5", lambda X1, X0: Smote(5).fit(X1[:5], X0, None)),
    ("k_neighbors = 5", lambda X1, X0: ImblearnGenerator("SMOTE").fit(X1[:5], X0, None)),
    ("n_neighbors = 5", lambda X1, X0: ImblearnGenerator("ADASYN").fit(X1[:4], X0, None)),
    ("k must be", lambda X1, X0: Smote(0)),
    ("X0 has 2 columns", lambda X1, X0: Smote().fit(X1, X0[:, :2], None)),
    ("X0 has 2 columns", lambda X1, X0: ImblearnGenerator().fit(X1, X0[:, :2], None)),
    ("X1 has 2 columns", lambda X1, X0: Oracle(gaussian_law(MU1, COV1)).fit(X1[:, :2], None, None)),
    ("X1 must be a 2-D", lambda X1, X0: GaussianFit().fit(X1[:, 0], X0, None)),
    ("X1 contains NaN", lambda X1, X0: BootstrapJitter().fit(np.where(X1 > 2, np.nan, X1), X0, None)),
    ("X1 needs at least 2", lambda X1, X0: GaussianFit().fit(X1[:1], X0, None)),
    ("X0 .* required", lambda X1, X0: ImblearnGenerator().fit(X1, None, None)),
    ("shrinkage", lambda X1, X0: GaussianFit(1.5)),
    ("sd", lambda X1, X0: BootstrapJitter(-1.0)),
    ("sd", lambda X1, X0: BootstrapJitter("big")),
    ("law1 must be", lambda X1, X0: Oracle(MU1)),
    ("scale", lambda X1, X0: FeatureJitter(float("nan"))),
    ("sampler must be one of .*ADASYN.*SVMSMOTE", lambda X1, X0: ImblearnGenerator("SMOOTE")),
    ("random_state", lambda X1, X0: ImblearnGenerator("SMOTE", random_state=0)),
    ("takes no option 'n_neighbors'", lambda X1, X0: ImblearnGenerator("SMOTE", n_neighbors=3)),
    ("unknown generator 'smoot'", lambda X1, X0: make_generator("smoot")),
    ("process", lambda X1, X0: make_generator("oracle")),
    ("generator 'smote' takes no option 'kk'; it takes \\['k'\\]", lambda X1, X0: make_generator("smote", k=3, kk=3)),
    ("population", lambda X1, X0: make_generator("mismatch", magnitude=0.5, angle_deg=0.0)),
]


@pytest.mark.parametrize("match,call", BAD, ids=[f"{i}-{m}" for i, (m, _) in enumerate(BAD)])
def test_bad_inputs_raise_value_error(data, match, call):
    X1, X0 = data
    with pytest.raises(ValueError, match=match):
        call(X1, X0)
