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

.PHONY: image-test
# $(HELM) comes from make/chart.mk: the pod's constraints are read from the rendered chart.
image-test: image $(VENV_STAMP) $(HELM) ## Build the image, then run it under the rendered chart's pod constraints.
	PING_IMAGE=$(IMAGE):$(TAG) PING_IMAGE_REQUIRED=1 $(PY) -m pytest -m image tests/image $(PYTEST_ARGS)

.PHONY: image-lint
image-lint: $(VENV_STAMP) ## Lint the Dockerfile with hadolint.
	$(VENV)/bin/hadolint Dockerfile
