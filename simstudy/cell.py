"""The objects of one cell, built from its validated config: process, model, population,
generator, design and the engine's Cell with its stream keys (THEORY.md section 6)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

import simstudy  # noqa: F401  (float64 before any array)
from simstudy.engine import Cell, Design, stable_key
from simstudy.fitting import GLM
from simstudy.generators import make_generator
from simstudy.generators.classic import ConsistentShift, Oracle
from simstudy.plugins import build_generator, build_process, is_plugin
from simstudy.population import Population
from simstudy.processes import make_process
from simstudy.schema import ConfigError, RunConfig, bad_value


def make_dgp(section: dict):
    """The process of a validated ``dgp`` section: by its catalog name, or from its
    ``_target_`` (simstudy.plugins); a bad option is a ConfigError naming the key."""
    if is_plugin(section):
        return build_process(section)
    with bad_value("dgp", section):
        return make_process(section["name"], **{k: v for k, v in section.items() if k != "name"})


class BuiltCell:
    """The objects of one cell: process, model, population, generator and engine Cell."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.process = make_dgp(run.dgp)
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
            self.process,
            self.generator,
            self.model,
            self.design,
            data_key=stable_key(data_identity),
            generator_key=stable_key(run.generator),
        )

    def _generator(self):
        if is_plugin(self.run.generator):  # a user's _target_ (simstudy.plugins)
            d = self.run.design
            return build_generator(
                self.run.generator, process=self.process, population=self.population, n0=d.n0, n1=d.n1
            )
        spec = dict(self.run.generator)
        name = spec.pop("name")
        if name == "shifted":
            shift = np.asarray(spec["shift"], dtype=float)
            if shift.shape != (self.process.dim,):
                raise ConfigError(
                    "generator.shift", spec["shift"], f"must have {self.process.dim} entries (the dgp's dimension)"
                )
            if spec.get("rate", "constant") == "inv_sqrt_log_n1":
                # its accuracy follows the minority rows it is fitted on (a selector's folds)
                return ConsistentShift(self.process.law1, shift)
            return Oracle(self.process.law1.shifted(shift))
        if name == "mismatch":
            spec["population"] = self.population
        return make_generator(name, self.process, **spec)
