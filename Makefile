# Two entry points for a fresh machine (see README.md):
#   make leaderboard   set up .venv and run the full benchmark grid, then write tables and plots
#   make test          set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# The benchmark data folder; CI and developer machines have it at ../shared/data.
export EAGER_BENCH_DATA ?= $(abspath ../shared/data)

.PHONY: setup test test-alternate leaderboard reproduce

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

leaderboard: setup
	$(VENV)/bin/eager-bench run --all --profile cpu

reproduce: setup
	$(VENV)/bin/eager-bench reproduce --check

# The test suite as a different CPU would compute it: one instruction-set level lower for torch, MKL, oneDNN and
# numpy, 2 torch threads (see `eager-bench kernels --alternate-env`). Both `make test` and this must pass.
test-alternate: setup
	env $$($(VENV)/bin/eager-bench kernels --alternate-env) $(PY) -m pytest -q
