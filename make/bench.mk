# The performance bench: Ping against a bare uvicorn app, one core each for server and wrk.
# Included by the top Makefile, which provides PY, VENV_STAMP and MODEL_DIR.

BENCH_FOREST_DIR ?= models/bench-forest
BENCH_ARGS ?=
# apt-get needs root; elsewhere sudo asks for it.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

##@ Performance

.PHONY: bench
bench: $(VENV_STAMP) ## Benchmark Ping vs a thin ASGI app on 1 core, wrk on the other (~5 min; installs wrk).
	@command -v wrk >/dev/null || { echo "bench: installing wrk with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(PY) bench/bench.py --logreg-dir $(MODEL_DIR) --forest-dir $(BENCH_FOREST_DIR) $(BENCH_ARGS)
