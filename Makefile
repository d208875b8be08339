# Ping's front door. `make help` lists every target.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The artifact `make run` serves: PING_MODEL_DIR when set, else the bundled iris model,
# which is the only one make trains; `pingctl package` makes any other.
DEFAULT_MODEL_DIR := models/iris
PING_MODEL_DIR ?=
MODEL_DIR ?= $(or $(PING_MODEL_DIR),$(DEFAULT_MODEL_DIR))
PYTEST_ARGS ?=

# The venv is a real file target: it is rebuilt when the project or its locks change.
VENV_STAMP := $(VENV)/.installed

##@ Help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Service

$(VENV_STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create the virtualenv from the lockfiles.

# Retrained when the code that writes it changes, so its format is always the current one.
$(DEFAULT_MODEL_DIR)/metadata.json: training/train.py src/ping/artifact.py src/ping/package.py | $(VENV_STAMP)
	$(PY) -m training.train --output-dir $(DEFAULT_MODEL_DIR)

.PHONY: train
train: $(VENV_STAMP) ## Train the iris model into MODEL_DIR (always retrains).
	$(PY) -m training.train --output-dir $(MODEL_DIR)

.PHONY: run
run: $(VENV_STAMP) $(if $(filter $(DEFAULT_MODEL_DIR),$(patsubst %/,%,$(MODEL_DIR))),$(DEFAULT_MODEL_DIR)/metadata.json) ## Serve MODEL_DIR (default: PING_MODEL_DIR, else models/iris, trained if missing) on 127.0.0.1:9696.
	@test -f $(MODEL_DIR)/metadata.json || { \
	  echo "make run: no artifact in $(MODEL_DIR) ($(MODEL_DIR)/metadata.json not found)." >&2; \
	  echo "Package a fitted estimator there: $(VENV)/bin/pingctl package MODEL_FILE --output $(MODEL_DIR)" >&2; \
	  exit 2; }
	@$(PY) -m compileall -q src  # as pip does an installed package; see make/bench.mk
	PING_MODEL_DIR=$(MODEL_DIR) $(PY) -m ping

.PHONY: lock
lock: $(VENV_STAMP) ## Re-resolve requirements*.lock from pyproject.toml.
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes -o requirements.lock -q
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements-dev.lock -q

##@ Quality

.PHONY: test
test: $(VENV_STAMP) ## Run the whole test suite (cluster tests only when KUBECONFIG is set).
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(VENV_STAMP) image-lint ## Lint: ruff, mypy, hadolint.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

include $(sort $(wildcard make/*.mk))
