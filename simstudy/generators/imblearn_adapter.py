"""Any imbalanced-learn over-sampler as a generator (THEORY.md sections 6.7 and 5).

``ImblearnGenerator("SMOTE", k_neighbors=5)`` wraps the over-sampler of that name from
``imblearn.over_sampling``. The "fit" keeps the real data of both classes (labels 0 and 1);
every ``sample(m, rng)`` call runs ``fit_resample`` afresh, so any randomness inside the
sampler's own fitting (KMeansSMOTE's clustering, SVMSMOTE's SVM) is redrawn per call.

Count and order rule. imbalanced-learn returns the original rows followed by the new minority
rows; the adapter keeps the new rows only and returns them in uniformly random order, then
truncated to exactly m rows. The permutation matters for samplers whose output is not i.i.d.
(ADASYN allocates a fixed number of points per minority point, BorderlineSMOTE "borderline-2",
SVMSMOTE and KMeansSMOTE emit blocks), so that a prefix of a pool is a uniformly random subset of
it; for SMOTE, BorderlineSMOTE "borderline-1" and RandomOverSampler the rows are i.i.d. given the
data anyway. Some samplers miss the requested count n:

* KMeansSMOTE rounds each cluster's share up, so it returns n or a few more;
* ADASYN gives minority point i rint(r_i n) points, a total that misses n by up to n1/2 either
  way and is zero for small n; it is therefore asked for n + ceil(n1/2), which always yields at
  least n;
* SVMSMOTE returns only a Beta(10, 10) fraction of n when all or none of its support vectors
  are "in danger", and BorderlineSMOTE returns nothing when no minority point is.

A short first run is topped up by further independent runs (each with its own seed from the
rng) asking for max(missing, n1) points; a top-up run that returns nothing raises RuntimeError.
The rows of all runs are shuffled together and the surplus beyond m is dropped.

Seeding: the sampler's ``random_state`` (and that of any estimator passed in the keyword
arguments, e.g. ``kmeans_estimator``) is an integer drawn from the rng given to ``sample``, so
the same rng state gives the same pool.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.generators.base import FittedGenerator, Generator, check_pair, substreams
from simstudy.options import UnknownOption


def available_samplers() -> dict[str, type]:
    """The over-samplers that imbalanced-learn exports, by class name.

    Imports imbalanced-learn on first use.

    Returns
    -------
    dict of str to type
        Every class in ``imblearn.over_sampling.__all__`` that subclasses ``BaseOverSampler``.
    """
    # imbalanced-learn and scikit-learn take a second to import: loaded when a sampler is named
    import imblearn.over_sampling
    from imblearn.over_sampling.base import BaseOverSampler

    found = {}
    for attr in imblearn.over_sampling.__all__:
        obj = getattr(imblearn.over_sampling, attr)
        if inspect.isclass(obj) and issubclass(obj, BaseOverSampler):
            found[attr] = obj
    return found


# arguments the adapter sets itself on every call
_RESERVED = ("sampling_strategy", "random_state")
# neighbour counts that imbalanced-learn searches among the minority points (with the point)
_MINORITY_NEIGHBOUR_ARGS = ("k_neighbors", "n_neighbors")


class ImblearnGenerator(Generator):
    """An imbalanced-learn over-sampler by class name, plus its keyword arguments.

    The arguments are checked at construction against the sampler's own constraints (a bad
    value raises ValueError). Needs both classes: ``fit`` requires X0. See the module docstring
    for the exact count, order and seeding rules.

    Parameters
    ----------
    sampler : str, default "SMOTE"
        The class name of an over-sampler in ``imblearn.over_sampling`` (``available_samplers``).
    cap_neighbors : bool, default False
        Lower the sampler's integer ``k_neighbors`` / ``n_neighbors`` k (given or default) to
        n1 - 1 when a fit has n1 <= k minority points, i.e. use k' = min(k, n1 - 1) (the
        authors' k = min(10, n1 - 1) is ``k_neighbors=10, cap_neighbors=True``); n1 is the
        count of the fit, so every fold of a selector gets the largest k it can use.
    **sampler_kwargs
        Its keyword arguments, except ``sampling_strategy`` and ``random_state``, which the
        adapter sets on every call.

    Attributes
    ----------
    sampler : str
        The sampler's class name.
    sampler_kwargs : dict
        A copy of its keyword arguments.
    cap_neighbors : bool
        As given.
    name : str
        "imblearn_<sampler>".
    data_dependent : bool
        True.

    Raises
    ------
    ValueError
        If ``sampler`` is not an over-sampler of imbalanced-learn, a keyword argument is reserved
        or not accepted by the sampler, or a value breaks the sampler's own constraints.
    """

    data_dependent = True

    def __init__(self, sampler: str = "SMOTE", *, cap_neighbors: bool = False, **sampler_kwargs):
        samplers = available_samplers()
        if sampler not in samplers:
            raise ValueError(
                f"sampler must be one of imblearn.over_sampling's over-samplers {sorted(samplers)}, got {sampler!r}"
            )
        for key in _RESERVED:
            if key in sampler_kwargs:
                raise ValueError(
                    f"{key!r} is set by the adapter (count and seed come from sample(m, rng)); "
                    f"remove it from the keyword arguments of {sampler}"
                )
        cls = samplers[sampler]
        accepted = inspect.signature(cls).parameters
        unknown = sorted(set(sampler_kwargs) - set(accepted))
        if unknown:
            # by name, so that a config error names generator.<option> alone
            allowed = sorted(set(accepted) - set(_RESERVED))
            raise UnknownOption(f"imbalanced-learn's {sampler}", unknown[0], sampler_kwargs[unknown[0]], allowed)
        # imbalanced-learn checks its argument values only inside fit_resample; checking them
        # here refuses k_neighbors="abc" or -1 when the generator is made (InvalidParameterError,
        # a ValueError naming the argument), not on every draw of a running job
        cls(**sampler_kwargs)._validate_params()
        if not isinstance(cap_neighbors, bool):
            raise ValueError(f"cap_neighbors must be true or false, got {cap_neighbors!r}")
        self.sampler = sampler
        self.sampler_kwargs = dict(sampler_kwargs)
        self.cap_neighbors = cap_neighbors
        self.name = f"imblearn_{sampler}"

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.sampler_kwargs.items())
        cap = ", cap_neighbors=True" if self.cap_neighbors else ""
        return f"ImblearnGenerator({self.sampler!r}{args}{cap})"

    def fit(self, X1, X0, rng) -> FittedGenerator:
        """Keep the real data of both classes, after checking the neighbour counts against n1.

        Parameters
        ----------
        X1 : array_like of shape (n1, d)
            The real minority points (labelled 1).
        X0 : array_like of shape (n0, d)
            The real majority points (labelled 0); required.
        rng : numpy.random.Generator
            Unused: the sampler's randomness comes from ``sample``'s rng.

        Returns
        -------
        FittedImblearn
            The sampler on the stored data.

        Raises
        ------
        ValueError
            If X1 or X0 is invalid or missing, or X1 has fewer than k + 1 rows for the sampler's
            integer ``k_neighbors`` or ``n_neighbors`` k (given or default; with
            ``cap_neighbors``, fewer than 2 rows).
        """
        X1, X0 = check_pair(X1, X0, min_n1=1, require_X0=True)
        kwargs = dict(self.sampler_kwargs)
        for key in _MINORITY_NEIGHBOUR_ARGS:
            k = kwargs.get(key, _default(self.sampler, key))
            if not isinstance(k, (int, np.integer)):
                continue
            if self.cap_neighbors:
                if X1.shape[0] < 2:
                    raise ValueError(
                        f"{self.sampler} with cap_neighbors needs at least 2 minority points, but X1 has 1 row"
                    )
                k = kwargs[key] = min(k, X1.shape[0] - 1)
            if X1.shape[0] < k + 1:
                raise ValueError(
                    f"{self.sampler} with {key} = {k} needs at least {k + 1} minority points, "
                    f"but X1 has {X1.shape[0]} rows"
                )
        return FittedImblearn(self.sampler, kwargs, X1, X0)


def _default(sampler: str, key: str):
    param = inspect.signature(available_samplers()[sampler]).parameters.get(key)
    return None if param is None else param.default


class FittedImblearn(FittedGenerator):
    """The stored real data of both classes; each ``sample`` call runs the sampler afresh.

    It runs once, or more when a run falls short (module docstring); ``sample`` raises
    RuntimeError when a top-up run makes no new minority points or the sampler appends rows not
    labelled minority. Its law given the fit is not known (``law`` is None).

    Parameters
    ----------
    sampler : str
        The over-sampler's class name.
    sampler_kwargs : dict
        Its keyword arguments.
    X1 : ndarray of shape (n1, d)
        The minority points.
    X0 : ndarray of shape (n0, d)
        The majority points.

    Attributes
    ----------
    sampler, sampler_kwargs
        The constructor arguments.
    X : ndarray of shape (n0 + n1, d)
        X0 stacked above X1.
    y : ndarray of int, shape (n0 + n1,)
        Their labels, 0 then 1.
    n1 : int
        Number of minority points.
    dim : int
        d.
    """

    def __init__(self, sampler: str, sampler_kwargs: dict, X1: np.ndarray, X0: np.ndarray):
        self.sampler = sampler
        self.sampler_kwargs = sampler_kwargs
        self.X = np.vstack([X0, X1])
        self.y = np.concatenate([np.zeros(X0.shape[0], dtype=int), np.ones(X1.shape[0], dtype=int)])
        self.n1 = X1.shape[0]
        self.dim = X1.shape[1]

    def _sample(self, m, rng):
        seed_rng, perm_rng = substreams(rng, 2)
        pieces, have = [], 0
        while have < m:
            # a top-up asks for at least n1 points: SVMSMOTE's Beta fraction of a request for
            # one or two points is often zero, of n1 points practically never
            request = m if not pieces else max(m - have, self.n1)
            new = self._run(request, int(seed_rng.integers(0, 2**32)))
            if new.shape[0] == 0 and pieces:
                raise RuntimeError(
                    f"{self.sampler} made no new minority points on this data (e.g. no minority "
                    f"point is in danger); choose another sampler"
                )
            pieces.append(new)
            have += new.shape[0]
        pool = np.concatenate(pieces)
        return pool[perm_rng.permutation(pool.shape[0])[:m]]

    def _run(self, n: int, seed: int) -> np.ndarray:
        """One fit_resample asking for n new minority points; returns the new rows only."""
        requested = n + math.ceil(self.n1 / 2) if self.sampler == "ADASYN" else n
        kwargs = {key: _reseeded(value, seed) for key, value in self.sampler_kwargs.items()}
        sampler = available_samplers()[self.sampler](
            sampling_strategy={1: self.n1 + requested}, random_state=seed, **kwargs
        )
        X_res, y_res = sampler.fit_resample(self.X, self.y)
        n_real = self.X.shape[0]
        if np.any(y_res[n_real:] != 1):
            raise RuntimeError(f"{self.sampler} appended rows that are not labelled minority")
        return np.asarray(X_res[n_real:], dtype=np.float64)


def _reseeded(value, seed: int):
    """A copy of a scikit-learn estimator with random_state = seed; other values unchanged."""
    from sklearn.base import BaseEstimator, clone  # as in available_samplers

    if isinstance(value, BaseEstimator) and "random_state" in value.get_params(deep=False):
        return clone(value).set_params(random_state=seed)
    return value
