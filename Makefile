# `make test` from a fresh clone: create ./venv (the one Pulumi uses), install the pinned
# dependencies, then run every check: pytest (mocks + real containers), ruff, mypy, shellcheck.
VENV ?= venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHELL_SCRIPTS = $(shell find components tests benchmarks policy toolchain -name '*.sh' 2>/dev/null) .ci/run

.PHONY: test go-test unit lint venv policy-venv clean tools e2e e2e-env e2e-down

test: lint go-test $(STAMP)
	$(BIN)/python -m pytest

# The Go programs made here (toolchain/): the stand-in provider plugins' tests, vet for all.
GO_MODULES = toolchain/pulumi-resource-command toolchain/pulumi-resource-docker \
	toolchain/internet-standin
go-test:
	for module in $(GO_MODULES); do (cd $$module && GOFLAGS=-mod=readonly go vet ./... && GOFLAGS=-mod=readonly go test -count=1 ./...) || exit 1; done

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

# The real end-to-end run: build the tools (cached by version in /var/cache/kubeadm-cluster),
# then drive the dev stack with the real Pulumi engine. KEEP=1 leaves the cluster up.
tools:
	toolchain/build.sh

e2e: tools $(STAMP)
	$(BIN)/python -m pytest tests/e2e $(if $(filter 1,$(KEEP)),--deselect tests/e2e/test_dev_stack.py::test_destroy_leaves_nothing_behind --deselect tests/e2e/test_machines_stack.py::test_destroy_resets_every_machine)

# eval "$$(make -s e2e-env)": the e2e's tools, backend and kubeconfig in this shell.
e2e-env:
	@$(PYTHON) -m tests.e2e.project env

e2e-down: $(STAMP)
	$(BIN)/python -m tests.e2e.project down

# The policy pack's own environment, for `pulumi preview --policy-pack policy`.
policy-venv:
	$(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install -q -r policy/requirements.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cache
