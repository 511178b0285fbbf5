# Set-up is part of every target: the first run creates .venv and installs the project into it.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.mscm-installed
PYTEST_ARGS ?=

.PHONY: install install-py312 test test-py312 lint tune clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev,onnx]'
	touch $(STAMP)

# The test suite (CI runs exactly this through .ci/run): every module on TEST_WORKERS processes (pytest-xdist;
# a module stays on one, with its fixtures), then the `exclusive` tests alone, since they stop every Ray on
# the machine. Both parts run even if the first fails; the exit code is the first failure's.
TEST_WORKERS ?= 2
test: $(STAMP)
	rc=0; \
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not exclusive" $(PYTEST_ARGS) || rc=$$?; \
	$(VENV)/bin/python -m pytest -m exclusive $(PYTEST_ARGS) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

# Python 3.12 keeps working: the package installs, imports and passes the focused `portable` tests (config,
# a model forward pass, evaluation, a CLI error); CI runs this too.
# PY312 defaults to pyenv's 3.12; pip downloads torch's cp312 wheel from PyPI (only cp311 lies on disk).
PY312 ?= $(shell for c in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python 2>/dev/null) $$(command -v python3.12); do $$c -c '' 2>/dev/null && echo $$c && break; done)
VENV312 := .venv-py312
STAMP312 := $(VENV312)/.mscm-installed

$(STAMP312): pyproject.toml
	test -n "$(PY312)" || { echo "make test-py312: no Python 3.12 found (set PY312=/path/to/python3.12)" >&2; exit 2; }
	test -x $(VENV312)/bin/python || $(PY312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install -q --upgrade pip
	$(VENV312)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP312)

# The 3.12 venv alone: .ci/run builds it beside the 3.11 one (pip uses one core; CI has two).
install-py312: $(STAMP312)

test-py312: $(STAMP312)
	$(VENV312)/bin/python -c "import sys, mscm, mscm.train.engine, mscm.tune.tuner; print('mscm imports on', sys.version.split()[0])"
	$(VENV312)/bin/python -m pytest -m portable $(PYTEST_ARGS)

# Lint and format check (ruff, configured in pyproject.toml); .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The main job on its embedded defaults.
tune: $(STAMP)
	$(VENV)/bin/python jobs/tune_mimb.py

clean-runs:
	rm -rf mlruns ray_results
