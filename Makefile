# apiclab: `make demo` runs the main job, `make test` the whole suite (lint, types, tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean agent fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/apiclab reproduce

lint: $(STAMP)
	$(BIN)/ruff check apiclab tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# Every parser with >= 10,000 generated inputs (tests/fuzz); prints inputs/crashes/hangs per parser.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/run.py --examples 10000

bench: $(STAMP)
	$(BIN)/python bench/reboot_cycles.py
	$(BIN)/python bench/kvm_run.py

clean:
	rm -rf $(VENV) build *.egg-info
