# Two-command quick start: `make run` (set up + the default study) and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export JAX_PLATFORMS ?= cpu
export MPLBACKEND ?= Agg

.PHONY: run test lint format test-explore test-slow figures bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the default study: writes its summary and figure under outputs/ and figures/
	$(BIN)/python -m simstudy

test: lint  ## lint, then the default (fast) test suite; property tests draw the same examples every run
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff: lint and format check (config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## ruff: apply the fixes and the format that `make lint` checks
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-explore: $(STAMP)  ## the fast suite with fresh hypothesis examples each run (EXAMPLES per property)
	SIMSTUDY_HYPOTHESIS=explore SIMSTUDY_HYPOTHESIS_EXAMPLES=$(or $(EXAMPLES),200) $(BIN)/python -m pytest

test-slow: $(STAMP)  ## the opt-in slow studies and real multirun sweeps
	$(BIN)/python -m pytest -m slow

test-slurm: $(STAMP)  ## sweeps on a local one-node Slurm cluster (as root; installs slurm-wlm and munge, else skips)
	$(BIN)/python -m pytest -m slurm

figures: $(STAMP)  ## every figure of THEORY.md section 6 (R = 100) and of AUTHORS_DESIGNS.md D and E (about 3 hours on 2 cores)
	$(BIN)/python scripts/make_figures.py

bench: $(STAMP)  ## the benchmarks in benchmarks/
	$(BIN)/python benchmarks/bench_fitting.py
	$(BIN)/python benchmarks/bench_study.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_breakdown.py
	$(BIN)/python benchmarks/bench_symmetry.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
