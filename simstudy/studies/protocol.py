"""The protocol every kind of study implements; ``simstudy.studies.job.run_job`` runs any of
them the same way and writes the job's files in the contract's order."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from simstudy.schema import RunConfig


class Study(Protocol):
    """One kind of study (``study.kind``).

    Attributes
    ----------
    kind : str
        Its ``study.kind``.
    figures : tuple of str
        The ``study.figure`` values it accepts, the default first (the figure a sweep of it
        draws, ``simstudy.aggregate``).
    unit : str
        The column of its rows table that numbers the Monte Carlo units ("replication" or
        "split"): ``replicate`` recomputes one unit.
    row_tables : tuple of str
        The formats its rows table is written in ("parquet", and "csv" where people open it in
        a spreadsheet).
    """

    kind: str
    figures: tuple[str, ...]
    unit: str
    row_tables: tuple[str, ...]

    def validate(self, run: RunConfig, sections: dict) -> RunConfig:
        """Check the sections only this kind reads (``selection``, ``data``: raw mappings, absent
        when not given) and the run against them; return the run with them typed. Raises
        ConfigError (simstudy.schema) naming the key."""

    def build(self, run: RunConfig) -> Any:
        """The cell's objects: everything a job builds before its first replication (the
        preflight builds them too, so that a bad value fails before any job starts)."""

    def label(self, built: Any) -> tuple[str, str]:
        """(progress label, unit name) for the progress line on stderr."""

    def run(self, built: Any, progress) -> pd.DataFrame:
        """Every replication of the cell: the tidy rows table."""

    def summarise(self, built: Any, rows: pd.DataFrame) -> dict:
        """The numbers of summary.json (the job layer adds the run's metadata)."""

    def documents(self, summary: dict) -> dict[str, str]:
        """Text files beside the figures (name -> text), e.g. real data's table.md."""

    def draw(self, summary: dict) -> dict[str, Any]:
        """The job's figures: file stem -> matplotlib Figure; ``figure`` is the main one."""

    def replicate(self, run: RunConfig, summary: dict, r: int) -> pd.DataFrame:
        """Unit r's rows recomputed from the config and the finished job's summary alone."""
