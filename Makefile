# Quick start: `make demo`, then `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: a CPU build comes from local disk here; an existing (e.g. CUDA) build is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plexloc demo --out demo_out

# `slow` tests (the network's few-minute CPU accuracy bar) run here and in CI; test-fast skips them.
# Test files are spread over one pytest-xdist worker per core (at most TEST_WORKERS), one torch thread each
# (tests/conftest.py); TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n auto --maxprocesses $(TEST_WORKERS) --dist loadfile)

test: $(STAMP)
	PLEXLOC_SLOW=1 $(BIN)/python -m pytest $(XDIST)

test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST)

bench: $(STAMP)
	$(BIN)/python bench/simulate.py --device cpu

clean:
	rm -rf $(VENV) demo_out
