# apiclab: `make demo` runs the main job, `make test` the whole suite (lint, types, tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit unit-native bench soak fuzz clean agent timeline-png native

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,campaign]'
	touch $(STAMP)

demo: $(STAMP) native
	$(BIN)/apiclab reproduce

# The model's hot modules compiled with mypyc (apiclab/native.py; needs a C compiler and Python's
# headers): about twice as fast. Without them apiclab runs the same modules as Python.
NATIVE_SOURCES := $(shell sed -n 's/^    "\(apiclab\.[a-z0-9_.]*\)",$$/\1/p' apiclab/native.py | tr . / | sed 's/$$/.py/')
native: build/native/manifest.json
build/native/manifest.json: $(STAMP) apiclab/native.py apiclab/native_build.py $(NATIVE_SOURCES)
	APICLAB_NATIVE=0 $(BIN)/python -m apiclab.native_build || echo "apiclab: no native build, the model runs as Python"

lint: $(STAMP)
	$(BIN)/ruff check apiclab tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) native
	$(BIN)/pytest

test: lint typecheck unit unit-native

# The suite once more on the compiled model, which `apiclab` runs when `make native` could build it
# (the first run, `unit`, is on the Python model: tests/conftest.py)
unit-native: $(STAMP) native
	@if [ -f build/native/manifest.json ]; then \
	  APICLAB_NATIVE=1 $(BIN)/pytest --ignore=tests/test_native.py; \
	else echo "no native build here: the suite ran on the Python model only"; fi

# Every parser with >= 10,000 generated inputs (tests/fuzz); prints inputs/crashes/hangs per parser.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/run.py --examples 10000

bench: $(STAMP)
	$(BIN)/python bench/reboot_cycles.py
	$(BIN)/python bench/kvm_run.py
	$(BIN)/python bench/kvm_storm.py
	$(BIN)/python bench/explore_exhaustive.py
	$(BIN)/python bench/diagnose_trace.py
	$(BIN)/python bench/conform_speed.py

# >= 10,000 real-KVM runs in one process, fds and RSS sampled every 500 (about 10 min here)
soak: $(STAMP)
	$(BIN)/python bench/kvm_soak.py

# Rebuild the agent ROM from agent.S (needs binutils); the committed agent.bin must then be committed
# with it (tests/guest/agent checks that a rebuild gives the same bytes).
agent: $(STAMP)
	$(BIN)/python -m apiclab.guest.agent.build

clean:
	rm -rf $(VENV) build *.egg-info

# The README's picture: the demo's timeline, rendered by headless Chromium (Debian: chromium).
timeline-png: $(STAMP)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/apiclab reproduce --timeline "$$tmp/seed.html" >/dev/null && \
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync \
	  --user-data-dir="$$tmp/profile" --hide-scrollbars --window-size=1400,1020 \
	  --screenshot="$$tmp/seed.png" "file://$$tmp/seed.html" 2>/dev/null && \
	mv "$$tmp/seed.png" docs/timeline.png
