# xformers_lab: every target that runs Python creates and fills .venv itself on first use.
# `make help` lists the targets; variables below can be set on the command line.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# A wheel index for torch, e.g. https://download.pytorch.org/whl/cpu to avoid CUDA wheels.
TORCH_INDEX ?=
# Extra arguments: Hydra overrides for `train`, pytest options for `test`, script options for `bench`.
ARGS ?=

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FAST_MARKERS := not slow and not distributed and not slurm

.PHONY: help install train test test-fast lint format bench slurm-up slurm-down clean clean-all

help: ## List targets and what they do
	@echo "usage: make TARGET [ARGS='...'] [PYTHON=python3] [TORCH_INDEX=URL]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z_-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: with it already present, pip never picks a CUDA build for lightning & co.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -e ".[dev,slurm]"
	touch $@

install: $(STAMP) ## Create .venv and install the package editable with dev and slurm extras

train: $(STAMP) ## Train: make train ARGS="model=gpt experiment=shakespeare_char_cpu"
	$(BIN)/python -m xformers_lab.train $(ARGS)

# The slurm tests need the local Slurm: started first. Exit 3 means "cannot install or start it
# here" (not root): the slurm tests are then skipped; any other failure stops `make test`.
test: $(STAMP) ## Run the whole test suite (starts the local Slurm first, see slurm-up)
	@scripts/slurm-local.sh start || { rc=$$?; [ $$rc -eq 3 ] || exit $$rc; \
		echo "make test: no local Slurm, the slurm tests will be skipped"; }
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP) ## Run the tests not marked slow, distributed or slurm
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" $(ARGS)

lint: $(STAMP) ## Check lint and formatting (ruff), changing nothing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Sort imports and format the code in place (ruff)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## Run every benchmarks/*.py script (each prints its own figures)
	@scripts=(benchmarks/*.py); \
	if [ ! -e "$${scripts[0]}" ]; then echo "no benchmarks/*.py scripts yet"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		echo "== $$script"; $(BIN)/python "$$script" $(ARGS); \
	done

slurm-up: ## Install (root, apt) and start a single-node Slurm on this machine
	scripts/slurm-local.sh start

slurm-down: ## Stop the local Slurm daemons
	scripts/slurm-local.sh stop

clean: ## Remove run outputs (outputs/, multirun/, lightning_logs/), build files and caches
	rm -rf outputs multirun lightning_logs dist build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

clean-all: clean ## clean, and remove .venv as well
	rm -rf $(VENV)
