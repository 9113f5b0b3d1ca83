# Every target creates .venv when it is missing, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python

.PHONY: setup demo test test-serial test-fast bench dev lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/sidforge demo

# mypy (20 s on a fresh clone) type-checks beside the first tests; `make test` fails when either fails.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy & mypy=$$!; $(BIN)/pytest -q -n 2 --dist loadfile; tests=$$?; wait $$mypy && exit $$tests

test-serial: lint
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow"

bench: setup
	$(BIN)/python -m benchmarks.ingest

dev: setup
	$(BIN)/sidforge dev

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf data .dagster
