# The performance bench: Ping against a bare uvicorn app, one core each for server and wrk.
# Included by the top Makefile, which provides PY and VENV_STAMP. The bench trains its own
# models (the iris pipeline and a forest) into its own folders, leaving models/iris alone.

BENCH_LOGREG_DIR ?= models/bench-logreg
BENCH_FOREST_DIR ?= models/bench-forest
BENCH_ARGS ?=
# apt-get needs root; elsewhere sudo asks for it.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

##@ Performance

# Both servers start from bytecode, as an installed package and the image do: under
# PYTHONDONTWRITEBYTECODE (set here and in CI) each start would compile the sources again,
# ~250 million instructions, 7 % of Ping's start.
.PHONY: bench
bench: $(VENV_STAMP) ## Benchmark Ping vs a thin ASGI app on 1 core, wrk on the other (~7 min; installs wrk).
	@command -v wrk >/dev/null || { echo "bench: installing wrk with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m compileall -q src bench
	$(PY) bench/bench.py --logreg-dir $(BENCH_LOGREG_DIR) --forest-dir $(BENCH_FOREST_DIR) $(BENCH_ARGS)
