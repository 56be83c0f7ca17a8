"""The objects of one cell, built from its validated config: process, model, population,
generator, design and the engine's Cell with its stream keys (THEORY.md section 6)."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.engine import Cell, Design, stable_key
from simstudy.fitting import GLM
from simstudy.generators import make_generator
from simstudy.generators.classic import Oracle
from simstudy.population import Population
from simstudy.processes import make_process
from simstudy.schema import ConfigError, RunConfig, bad_value


class BuiltCell:
    """The objects of one cell: process, model, population, generator and engine Cell."""

    def __init__(self, run: RunConfig):
        self.run = run
        options = {k: v for k, v in run.dgp.items() if k != "name"}
        with bad_value("dgp", run.dgp):
            self.process = make_process(run.dgp["name"], **options)
        self.model = GLM(run.model.family, run.model.intercept, run.model.ridge)
        # an overflow here comes from the dgp's values as often as from the model
        with bad_value("dgp and model", {"dgp": run.dgp, "model": asdict(run.model)}):
            self.population = Population(self.process, self.model)
        with bad_value("generator", run.generator):
            self.generator = self._generator()
        d = run.design
        self.design = Design(d.n0, d.n1, d.gammas, d.reps, run.seed, d.chunk)
        data_identity = {"dgp": run.dgp, "n0": d.n0, "n1": d.n1}
        self.cell = Cell(
            self.process, self.generator, self.model, self.design,
            data_key=stable_key(data_identity), generator_key=stable_key(run.generator),
        )

    def _generator(self):
        spec = dict(self.run.generator)
        name = spec.pop("name")
        if name == "shifted":
            factor = 1.0
            if spec.get("rate", "constant") == "inv_sqrt_log_n1":
                factor = 1.0 / math.sqrt(math.log(self.run.design.n1))
            shift = np.asarray(spec["shift"], dtype=float) * factor
            if shift.shape != (self.process.dim,):
                raise ConfigError("generator.shift", spec["shift"],
                                  f"must have {self.process.dim} entries (the dgp's dimension)")
            return Oracle(self.process.law1.shifted(shift))
        if name == "mismatch":
            spec["population"] = self.population
        return make_generator(name, self.process, **spec)
