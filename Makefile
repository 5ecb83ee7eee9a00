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

test: $(BIN)/rampup
	$(BIN)/python -m pytest -n 2 --dist loadfile --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: $(BIN)/rampup
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/mypy

bench: $(BIN)/rampup
	bench/run
