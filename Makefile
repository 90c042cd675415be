# eventrec: the two commands of the README, and the steps they are made of.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
EVENTREC := $(VENV)/bin/eventrec
PYTHON ?= python3

.PHONY: setup system-deps services services-down topics lint test test-unit test-integration demo demo-down bench

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/bootstrap-system.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@echo "compiling the hybrid's loops once (numba's cache; a few seconds)"
	$(PY) -c 'from eventrec.serving.state import warm_compiled; warm_compiled()'
	@touch $@

services: setup
	$(EVENTREC) services up

services-down: setup
	$(EVENTREC) services down

topics: services
	$(EVENTREC) topics create

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: setup lint
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

test-integration: setup
	$(PY) -m pytest tests/integration

demo: setup
	@bash scripts/demo.sh

demo-down: setup
	@bash scripts/demo-down.sh

bench: setup
	@bash scripts/bootstrap-system.sh --bench
	$(PY) -m pip install -q -e '.[dev,bench]'
	@for bench in benchmarks/*.py; do echo "== $$bench"; $(PY) $$bench || exit 1; done
