# Gatekeeper — the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-fast test-browser demo dev bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install Gatekeeper with its dev tools

lint: $(STAMP)  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint  ## lint, then the whole test suite against the real Temporal dev server
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## the test suite without lint or the browser test
	$(BIN)/python -m pytest -m 'not browser'

demo: $(STAMP)  ## run one sample release end to end on an embedded Temporal server
	$(BIN)/gatekeeper demo

dev: $(STAMP)  ## embedded Temporal server (UI on :8233) plus a worker; Ctrl-C stops both
	$(BIN)/gatekeeper dev

bench: $(STAMP)  ## measure throughput, latency and memory; writes bench-results.json
	$(BIN)/python -m workers.bench

clean:  ## remove the venv, caches and local server data
	rm -rf $(VENV) .gatekeeper .mypy_cache .ruff_cache .pytest_cache
