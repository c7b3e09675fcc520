# `make test` from a fresh clone: create ./venv (the one Pulumi uses), install the pinned
# dependencies, then run every check: pytest (mocks + real containers), ruff, mypy, shellcheck.
VENV ?= venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHELL_SCRIPTS = $(shell find components tests benchmarks policy -name '*.sh' 2>/dev/null) .ci/run

.PHONY: test unit lint venv policy-venv clean

test: lint $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not real"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/shellcheck -x $(SHELL_SCRIPTS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

# The policy pack's own environment, for `pulumi preview --policy-pack policy`.
policy-venv:
	$(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install -q -r policy/requirements.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cache
