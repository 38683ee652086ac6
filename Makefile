# `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: venv test lint demo bench bench-normalizer clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m tools.demo

bench: venv
	$(BIN)/python -m tools.bench_normalizer
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

bench-normalizer: venv
	$(BIN)/python -m tools.bench_normalizer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
