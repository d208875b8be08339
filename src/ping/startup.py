"""The serving process's start-up: what it does before its heavy imports, and once its
model is loaded.

Start-up is import-bound (numpy, scipy, scikit-learn, FastAPI, skops: ~1,600 modules),
so the levers here are about imports and the garbage collector. Each was measured by
switching it off alone (iris model, ``python -m ping`` pinned to one core, medians of 5
starts; all on: 0.66 s to the first answer, peak RSS 139 MB):

- scipy.stats, optimize, integrate, interpolate and spatial load on first use
  (ping.lazy_scipy): scipy.stats alone 0.19 s and 15 MB, the other four ~0.2 s.
- The collector is paused from here until the model is loaded. While the heap grows to
  ~250,000 tracked objects, CPython runs full collections that find almost nothing
  (~7,000 objects, ~1 MB, which stay with the frozen heap): 0.03-0.1 s.
- numpy's ``f2py`` and ``testing`` load on first use. scipy imports every numpy
  submodule (``from numpy import *`` in scipy._lib.array_api_compat), and those two,
  unused while serving, cost 5 MB.
- pandas is kept out of scikit-learn, which imports it whenever it is installed
  (~0.2-0.4 s, ~30 MB); ping.inputs imports it when an artifact needs a DataFrame.
"""

import gc
import importlib.util
import sys

from ping import lazy_scipy

# numpy submodules nothing on the serving path uses; anything that does use one
# (an attribute access) loads it then, as importing it would have.
DEFERRED_MODULES = ("numpy.f2py", "numpy.testing")

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
    import_sklearn_without_pandas()


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


def import_sklearn_without_pandas() -> None:
    """Import scikit-learn without letting it import pandas, which it does whenever
    pandas is installed (sklearn.utils.fixes), though it only needs pandas for a
    DataFrame and finds that through ``sys.modules``. pandas costs the server ~0.2-0.4 s
    of start-up and ~30 MB; ping.inputs imports it when an artifact needs a DataFrame.
    """
    if "pandas" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` fails here
    try:
        import sklearn.utils.fixes  # noqa: F401
    finally:
        del sys.modules["pandas"]
