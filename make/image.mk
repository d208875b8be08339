##@ Image

IMAGE ?= ping
TAG ?= v001
# Extra `docker build` flags, e.g. a mirror: --build-arg PIP_INDEX_URL=https://mirror/simple.
# Offline machines get theirs from scripts/docker-standin.sh.
DOCKER_BUILD_FLAGS ?=
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE ?= $(shell git remote get-url origin 2>/dev/null || echo unknown)
# The model's created_at is the last commit that changed what it is made from, so the
# trainer layer stays cached until training/ or the lockfile change.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct -- training src/ping/artifact.py src/ping/package.py requirements.lock 2>/dev/null)

.PHONY: image
image: ## Build the image $(IMAGE):$(TAG); MODEL_DIR=models/NAME bakes that artifact instead of iris.
	docker build $(DOCKER_BUILD_FLAGS) \
	  $(if $(filter-out $(DEFAULT_MODEL_DIR),$(patsubst %/,%,$(MODEL_DIR))),--build-arg MODEL_DIR=$(MODEL_DIR)) \
	  --build-arg VERSION=$(IMAGE_VERSION) \
	  --build-arg REVISION=$(IMAGE_REVISION) \
	  --build-arg SOURCE=$(IMAGE_SOURCE) \
	  $(if $(SOURCE_DATE_EPOCH),--build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)) \
	  -t $(IMAGE):$(TAG) .

# A model as an OCI image (model.Dockerfile), for the chart's model.source oci. Its base is the
# one Ping's image uses (see model.Dockerfile for why not scratch).
MODEL_IMAGE ?= ping-model
MODEL_TAG ?= v1
PYTHON_IMAGE := $(shell sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
meta = $(shell python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' $(MODEL_DIR)/metadata.json $(1) 2>/dev/null)

.PHONY: model-image
model-image: ## Build the model image MODEL_IMAGE:MODEL_TAG from the artifact directory MODEL_DIR.
	@test -f $(MODEL_DIR)/metadata.json || { echo "model-image: $(MODEL_DIR)/metadata.json not found; train or package a model into MODEL_DIR first" >&2; exit 2; }
	docker build $(DOCKER_BUILD_FLAGS) --file model.Dockerfile \
	  --build-arg BASE_IMAGE=$(PYTHON_IMAGE) \
	  --build-arg MODEL_NAME=$(call meta,name) --build-arg MODEL_VERSION=$(call meta,version) \
	  -t $(MODEL_IMAGE):$(MODEL_TAG) $(MODEL_DIR)

# The image test's model image holds a forest, not the baked logreg, so that serving it proves
# the model came from the model image.
IMAGE_TEST_MODEL_DIR := .cache/image-test/iris-forest
IMAGE_TEST_MODEL_IMAGE := ping-model-test:forest

.PHONY: image-test
# $(HELM) comes from make/chart.mk: the pod's constraints are read from the rendered chart.
image-test: image $(VENV_STAMP) $(HELM) ## Build the image and a model image, then run them under the rendered chart's pod constraints.
	$(PY) -m training.train --estimator forest --output-dir $(IMAGE_TEST_MODEL_DIR)
	$(MAKE) --no-print-directory model-image MODEL_DIR=$(IMAGE_TEST_MODEL_DIR) \
	  MODEL_IMAGE=$(firstword $(subst :, ,$(IMAGE_TEST_MODEL_IMAGE))) MODEL_TAG=$(lastword $(subst :, ,$(IMAGE_TEST_MODEL_IMAGE)))
	PING_IMAGE=$(IMAGE):$(TAG) PING_MODEL_IMAGE=$(IMAGE_TEST_MODEL_IMAGE) \
	  PING_MODEL_IMAGE_SOURCE=$(IMAGE_TEST_MODEL_DIR) PING_IMAGE_REQUIRED=1 \
	  $(PY) -m pytest -m image tests/image $(PYTEST_ARGS)

.PHONY: image-lint
image-lint: $(VENV_STAMP) ## Lint the Dockerfile with hadolint.
	$(VENV)/bin/hadolint Dockerfile model.Dockerfile
