# Set-up is part of every target: the first run creates .venv and installs the project into it.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.mscm-installed
PYTEST_ARGS ?=

.PHONY: install test lint tune clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The test suite (CI runs exactly this through .ci/run).
test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Lint and format check (ruff, configured in pyproject.toml); .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The main job on its embedded defaults.
tune: $(STAMP)
	$(VENV)/bin/python jobs/tune_mimb.py

clean-runs:
	rm -rf mlruns ray_results
