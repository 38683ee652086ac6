# `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The app backend's own dependency set (requirements-app.txt), in a venv of its own.
APP_VENV := .venv-app
APP_INSTALLED := $(APP_VENV)/.installed

.PHONY: venv test test-fast test-app lint demo bench bench-normalizer clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

$(APP_INSTALLED): requirements.txt requirements-dev.txt requirements-app.txt
	$(PYTHON) -m venv $(APP_VENV)
	$(APP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(APP_VENV)/bin/python -m pip install --quiet -r requirements-dev.txt -c requirements-app.txt
	touch $(APP_INSTALLED)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Parallel workers (pytest-xdist) on one shared emulator; each test has its own project.
TEST_WORKERS ?= 3
PYTEST_ARGS := -n $(TEST_WORKERS) --dist worksteal

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests that take under a second each, for use while editing (make test is the suite).
test-fast: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not slow"

# The whole suite again, with the exact versions installed in the app's backend.
test-app: $(APP_INSTALLED)
	$(APP_VENV)/bin/python -m pytest $(PYTEST_ARGS) -p no:cacheprovider

demo: venv
	$(BIN)/python -m tools.demo

bench: venv
	$(BIN)/python -m tools.bench_normalizer
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

bench-normalizer: venv
	$(BIN)/python -m tools.bench_normalizer

clean:
	rm -rf $(VENV) $(APP_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
