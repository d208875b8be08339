"""The serving process's start-up: what it does before its heavy imports, and once its
model is loaded.

Start-up is import-bound (numpy, scipy, scikit-learn, FastAPI, skops: ~1,400 modules),
so the levers here are about imports and the garbage collector. The first ones were
measured by switching each off alone (iris model, ``python -m ping`` pinned to one core,
medians of 5 starts); the later ones by counting instructions from interpreter start to
a loaded model (callgrind, PYTHONHASHSEED=0; ~3,550 million before them, for the iris
pipeline), because this VM's timings move by ±40 % with the hour:

- scipy.stats, optimize, integrate, interpolate and spatial load on first use
  (ping.lazy_scipy): scipy.stats alone 0.19 s and 15 MB, the other four ~1,000 million;
  and so do scipy.linalg, sparse.linalg and sparse.csgraph, 260-320 million (9 %) more.
- The collector is paused from here until the model is loaded. While the heap grows to
  ~250,000 tracked objects, CPython runs full collections that find almost nothing
  (~7,000 objects, ~1 MB, which stay with the frozen heap): 0.03-0.1 s.
- numpy's ``f2py`` and ``testing`` load on first use. scipy imports every numpy
  submodule (``from numpy import *`` in scipy._lib.array_api_compat), and those two,
  unused while serving, cost 5 MB.
- pandas and rich are kept out of scikit-learn, which imports them whenever they are
  installed (``import_sklearn_without_extras``).
- scikit-learn's estimator packages bind their names on first use (ping.lazy_sklearn), so
  a model imports the modules that define its classes, not every estimator of their
  packages: ~5-6 % of a start, 6-10 MB.
- FastAPI's OpenAPI models are built by the first /openapi.json, not on import, and
  pydantic.v1 is not imported at all: ~166 and ~75 million.
"""

import gc
import importlib.util
import sys

from ping import lazy_scipy, lazy_sklearn

# numpy submodules nothing on the serving path uses; anything that does use one
# (an attribute access) loads it then, as importing it would have.
DEFERRED_MODULES = ("numpy.f2py", "numpy.testing")
# Optional packages scikit-learn imports when installed, and serving never uses.
OPTIONAL_EXTRAS = ("pandas", "rich")

_paused_gc = False


def prepare() -> None:
    """Run before the serving process's first heavy import."""
    global _paused_gc
    if gc.isenabled():
        gc.disable()
        _paused_gc = True
    for name in DEFERRED_MODULES:
        defer(name)
    lazy_scipy.defer()
    import_sklearn_without_extras()
    lazy_sklearn.defer()
    import_fastapi_with_lazy_openapi_models()
    # FastAPI imports pydantic.v1 only to refuse v1 models (~75 million instructions, 2 %
    # of a start); Ping has none, and with pydantic.v1 unimportable FastAPI skips the check.
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]


def settle() -> None:
    """Run once the model is loaded: freeze the heap, then resume collection if
    ``prepare`` paused it.

    What exists now (imports, the model) lives as long as the process. Freezing it keeps
    the collector from rescanning those objects in every full collection: that pause was
    most of p99 (bench, logreg at 32 connections: 62 ms -> 17 ms). No gc.collect() first:
    it would free ~1 MB for ~0.1 s of start-up (iris model, measured).
    """
    gc.freeze()
    resume()


def resume() -> None:
    """Turn the collector back on if ``prepare`` turned it off (idempotent)."""
    global _paused_gc
    if _paused_gc:
        _paused_gc = False
        gc.enable()


def defer(name: str) -> None:
    """Register module ``name`` to execute on its first attribute access (importlib's
    LazyLoader), unless it is imported already. Its parent package is imported now."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    # As the import system does, so that ``parent.child`` finds it without a getattr
    # hook (numpy's would import it again, and loop).
    setattr(sys.modules[parent], child, module)


def import_sklearn_without_extras() -> None:
    """Import scikit-learn without the optional packages it imports whenever they are
    installed (``OPTIONAL_EXTRAS``), though serving never uses them:

    - pandas (sklearn.utils.fixes): scikit-learn finds a DataFrame through ``sys.modules``
      and needs nothing more. ~0.2-0.4 s and ~30 MB; ping.inputs imports pandas when an
      artifact needs a DataFrame.
    - rich (sklearn.callback, 1.9+), for the progress bars of a fit: ~95 million
      instructions (callgrind), 2.7 % of a start. The image has no rich; a dev install has.
    """
    if "sklearn" in sys.modules:
        return
    blocked = [name for name in OPTIONAL_EXTRAS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` fails here
    try:
        import sklearn.utils.fixes

        if importlib.util.find_spec("sklearn.callback") is not None:
            import sklearn.callback  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def import_fastapi_with_lazy_openapi_models() -> None:
    """Import FastAPI with its OpenAPI document models built on first use.

    FastAPI defines ~40 pydantic models for the OpenAPI document and builds their
    validators on import: ~166 million instructions (callgrind), 4.7 % of a start. They are
    used only when /openapi.json is first asked for, which builds them then. pydantic's
    ``defer_build`` does this per model; its default for every model is switched on for
    this one import only. Without that default (another pydantic), FastAPI imports as is.
    """
    if "fastapi" in sys.modules:
        return
    try:
        from pydantic._internal._config import config_defaults
    except ImportError:
        config_defaults = {}
    lazy = config_defaults.get("defer_build") is False
    if lazy:
        config_defaults["defer_build"] = True
    try:
        import fastapi  # noqa: F401
    finally:
        if lazy:
            config_defaults["defer_build"] = False
