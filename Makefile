# isoflop: the two commands are `make study` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0: on a machine without CUDA this resolves to the CPU build; see docs/getting-started.md for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= config.yaml
CORES ?= all
MLFLOW_PORT ?= 5000
STAMP := $(VENV)/.isoflop-installed
# Markers (pyproject.toml): slow (long end-to-end checks), faults (fault injection), server (a PostgreSQL-backed
# MLflow server the tests start), cluster (a one-node SLURM cluster the tests start), scale (curation at
# scale), gpu (CUDA). `make test` runs none of them; CI=true (as CI sets it) runs slow, faults and scale in
# parallel, then server and cluster one test at a time (each starts services of its own); gpu tests skip
# themselves without CUDA.
ifeq ($(CI),true)
PYTEST_MARKERS ?= not gpu and not server and not cluster
SERVICE_MARKERS ?= server or cluster
else
PYTEST_MARKERS ?= not slow and not faults and not server and not cluster and not scale and not gpu
SERVICE_MARKERS ?=
endif

.PHONY: setup study test test-all lint docs mlflow-ui bench clean-study gpu-check

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

study: setup
	$(BIN)/isoflop study --config $(CONFIG) --cores $(CORES)

test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile -m "$(PYTEST_MARKERS)"
ifneq ($(SERVICE_MARKERS),)
	$(BIN)/python -m pytest -p no:xdist -m "$(SERVICE_MARKERS)"
endif

test-all: setup
	$(MAKE) test CI=true

# the smoke study on the GPU (bfloat16, compiled) against the CPU, within a stated tolerance; skips without CUDA
gpu-check: setup
	$(BIN)/python scripts/checks/gpu_check.py

# ruff (rules in pyproject.toml), mypy on src/ (lenient; settings in pyproject.toml), the import contracts
# (pyproject.toml's [tool.importlinter]) and Snakemake's own lint of the workflow. `ruff format` is configured
# but not yet applied to the tree.
lint: setup
	$(BIN)/ruff check .
	PYTHONPATH=$(CURDIR)/src $(BIN)/mypy
	PYTHONPATH=$(CURDIR)/src $(BIN)/lint-imports --no-cache
	$(BIN)/snakemake --lint --configfile $(CONFIG)

# the documentation site (docs/, mkdocs.yml) into build/site/; strict: a broken link or a missing page fails.
# The config, CLI and API reference pages are generated as it builds (docs/gen_reference.py).
docs: setup
	PYTHONPATH=$(CURDIR)/src $(BIN)/mkdocs build --strict

# one uvicorn worker, no GenAI job runner, artifacts served from the study's folder (see isoflop.track.ui_command)
mlflow-ui: setup
	$(BIN)/isoflop mlflow-ui --config $(CONFIG) --port $(MLFLOW_PORT)

bench: setup
	$(BIN)/python bench/bench_fit.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_dedup.py
