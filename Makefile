# The two commands of the README: `make serve` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test bench lint

$(BIN)/rampup: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,test]'
	touch $@

serve: $(BIN)/rampup
	$(BIN)/rampup serve

# COVERAGE=1 (as CI runs it) adds the coverage report and its floor; tracing every line doubles the suite's CPU.
COVERAGE_ARGS := $(if $(COVERAGE),--cov --cov-report=term:skip-covered,)

test: $(BIN)/rampup
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(COVERAGE_ARGS) $(PYTEST_ARGS)

lint: $(BIN)/rampup
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/mypy

bench: $(BIN)/rampup
	bench/run
