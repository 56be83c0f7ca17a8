"""The theory of a cell as one object (``simstudy.theory.Theory``).

A curve cell builds one ``Theory`` and asks it for two predicted curves, the optimal sizes and
the refined curve: its expensive terms (the first-order terms' diagonalisations, the pooled
population risk, the per-fit risks of the refinement) must be built once, and reusing them must
not change a bit against a ``Theory`` built for each call alone, which is what the module-level
functions do. That those give the numbers recorded before the object existed is
tests/test_reference_numbers.py's check (fixed laws); the refined curve of a data-dependent
generator is pinned here against the functions.
"""

from __future__ import annotations

import numpy as np
import pytest

from simstudy import theory
from simstudy.composition import compose
from simstudy.config import validate
from simstudy.studies.curve import FINE_POINTS, CurveCell

SMALL = ["design.reps=3", "design.gammas=[0.0,0.5,1.0,2.0]", "theory.refits=4", "figures_dir=null", "workers=1"]
CELLS = {
    "fixed law": ["study=quickstart"],
    "data-dependent, pool": ["study=logit_symmetric", "generator=smote"],
    "data-dependent, refined": ["study=logit_symmetric", "generator=gaussian_fit"],
}


_BUILT: dict[str, CurveCell] = {}


def _cell(name: str, fresh: bool = False) -> CurveCell:
    """The cell ``name``; built once per module unless ``fresh`` (its theory is cached on it, and
    each build costs seconds of quadrature)."""
    if fresh or name not in _BUILT:
        _BUILT[name] = CurveCell(validate(compose([*CELLS[name], *SMALL])))
    return _BUILT[name]


def _count_constructions(monkeypatch, cls) -> list:
    built = []
    init = cls.__init__

    def counted(self, *args, **kwargs):
        built.append(cls.__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", counted)
    return built


def _assert_identical(got, want, name: str) -> None:
    """Named tuples field by field, arrays bit for bit (NaN where NaN)."""
    assert type(got) is type(want), name
    for field, a, b in zip(want._fields, got, want):
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape, f"{name}.{field}"
            assert a.tobytes() == b.tobytes(), f"{name}.{field}"
        else:
            assert a == b or (a != a and b != b), f"{name}.{field}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", CELLS)
def test_a_curve_cell_builds_its_theory_terms_once(monkeypatch, name):
    first_order = _count_constructions(monkeypatch, theory._FirstOrderTerms)
    pooled = _count_constructions(monkeypatch, theory._PooledRisk)
    fit_risks = _count_constructions(monkeypatch, theory._FitRisks)
    result = _cell(name, fresh=True).theory
    assert len(first_order) == 1
    assert len(pooled) == 1
    # only the refinement of a binary family solves the fits' own limits
    assert len(fit_risks) == (name == "data-dependent, refined")
    assert (result["refined"] is None) == (name != "data-dependent, refined")


@pytest.mark.parametrize("name", CELLS)
def test_theory_methods_equal_one_call_functions_bit_for_bit(name):
    cell = _cell(name)
    result = cell.theory
    design, population, synthetic = cell.built.design, cell.built.population, result["synthetic"]
    n0, n1, gammas = design.n0, design.n1, design.gammas
    fine = np.linspace(0.0, max(gammas), FINE_POINTS)
    _assert_identical(result["prediction"], theory.predict(population, synthetic, n0, n1, gammas), "prediction")
    _assert_identical(result["fine_prediction"], theory.predict(population, synthetic, n0, n1, fine), "fine")
    _assert_identical(
        result["optimal"], theory.optimal_sizes(population, synthetic, n0, n1, gamma_max=max(gammas)), "optimal"
    )
    assert result["refine_note"] == theory.refinement_unavailable(population, synthetic)
    if result["refined"] is not None:
        _assert_identical(
            result["refined"], theory.refined_prediction(population, synthetic, n0, n1, gammas), "refined"
        )

    # the calls in another order on one object: no call depends on what was computed before it
    reused = theory.Theory(population, synthetic, n0, n1)
    if result["refined"] is not None:
        _assert_identical(reused.refined_prediction(gammas), result["refined"], "refined, first")
    _assert_identical(reused.optimal_sizes(gamma_max=max(gammas)), result["optimal"], "optimal, before the curves")
    _assert_identical(reused.predict(fine), result["fine_prediction"], "fine, before the grid")
    _assert_identical(reused.predict(gammas), result["prediction"], "prediction, last")


def test_theory_checks_its_inputs_at_construction():
    cell = _cell("data-dependent, pool")
    population, synthetic, design = cell.built.population, cell.theory["synthetic"], cell.built.design
    with pytest.raises(ValueError, match="n1="):
        theory.Theory(population, synthetic, design.n0, design.n1 + 1)
    with pytest.raises(ValueError, match="n0"):
        theory.Theory(population, synthetic, design.n1, design.n1)
    with pytest.raises(ValueError, match="SyntheticMoments"):
        theory.Theory(population, None, design.n0, design.n1)
    with pytest.raises(ValueError, match="gammas"):
        theory.Theory(population, synthetic, design.n0, design.n1).predict([-1.0])
    with pytest.raises(ValueError, match="no fitted law"):
        theory.Theory(population, synthetic, design.n0, design.n1).refined_prediction([1.0])
