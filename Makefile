# Two commands set everything up on a fresh machine: `make up` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENMAAS_HOME ?= $(CURDIR)/data

.PHONY: install up test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build of exactly this version is on local disk
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: install  ## start the platform on http://127.0.0.1:8000 (two workers) with the demo project
	$(BIN)/openmaas db upgrade
	$(BIN)/openmaas admin bootstrap
	$(BIN)/openmaas demo load
	@echo "starting two workers and the API server on http://127.0.0.1:8000 (Ctrl+C stops all)"
	@trap 'kill 0' EXIT INT TERM; \
	$(BIN)/openmaas worker & \
	$(BIN)/openmaas worker & \
	$(BIN)/openmaas server --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint  ## lint, then every test that needs no external server
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
