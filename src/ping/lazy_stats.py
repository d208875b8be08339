"""``scipy.stats``, loaded on its first real use rather than when scikit-learn is imported.

scikit-learn imports scipy.stats with its core (sklearn.utils.fixes) and imports four
names from it in modules every linear model pulls in, yet predicting with a pipeline or a
forest never calls it. It is the largest import of the server: 15 MB of peak RSS (iris,
154 -> 139 MB) and 0.19 s of start-up (0.85 -> 0.66 s). A stand-in module takes its place in
``sys.modules`` until something really uses it:

- the names scikit-learn imports at load time (``STAND_INS``) are callables that load
  scipy.stats on their first call or attribute access, then act as the real ones;
- any other attribute of the module, or any import of a submodule (``scipy.stats.x``),
  loads scipy.stats first and then gives the real thing.

The self-check predicts the artifact's sample at start-up, so a model whose predict needs
scipy.stats (QuantileTransformer's normal output, say) loads it then, before it is ready.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

NAME = "scipy.stats"
# What scikit-learn imports from scipy.stats at module level (1.5-1.9): gmean in
# sklearn._loss.link, rankdata in metrics and model_selection, chi2 in covariance,
# spearmanr in isotonic. Any other name loads scipy.stats at once: slower, never wrong.
STAND_INS = ("gmean", "rankdata", "chi2", "spearmanr")


class _StandIn:
    """One of scipy.stats' functions or distributions, until scipy.stats is loaded."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(load(), self._name)(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(load(), self._name), attribute)

    def __repr__(self) -> str:
        return f"<scipy.stats.{self._name}, not loaded yet>"


class _Deferred(ModuleType):
    """What ``sys.modules["scipy.stats"]`` holds until the real module is loaded."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(), name)  # only for what the stand-in does not have itself


class _SubmoduleFinder(importlib.abc.MetaPathFinder):
    """Loads scipy.stats before any of its submodules is imported, and hands out the
    submodule that loading it imported already, so no module is ever executed twice."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(NAME + ".") or not is_deferred():
            return None
        load()
        if fullname in sys.modules:
            return importlib.util.spec_from_loader(fullname, _Imported())
        return None  # the path finders find it under the real package


class _Imported(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return sys.modules[spec.name]

    def exec_module(self, module: ModuleType) -> None:
        pass


_finder = _SubmoduleFinder()


def defer() -> None:
    """Put the stand-in in place, unless scipy.stats is imported already. Imports scipy."""
    if NAME in sys.modules:
        return
    spec = importlib.util.find_spec(NAME)  # imports scipy, not scipy.stats
    if spec is None:
        return
    module = _Deferred(NAME, "scipy.stats, loaded on first use (ping.lazy_stats)")
    # What finding the module told already, so that introspection (inspect.getmodule
    # asks every module for __file__) does not load it.
    module.__path__ = list(spec.submodule_search_locations or [])
    module.__spec__, module.__file__, module.__loader__ = spec, spec.origin, spec.loader
    for name in STAND_INS:
        setattr(module, name, _StandIn(name))
    sys.meta_path.insert(0, _finder)
    sys.modules[NAME] = module
    sys.modules["scipy"].stats = module  # type: ignore[attr-defined]


def is_deferred() -> bool:
    """True while the stand-in holds scipy.stats' place."""
    return isinstance(sys.modules.get(NAME), _Deferred)


def load() -> ModuleType:
    """The real scipy.stats, imported now if the stand-in still holds its place."""
    stand_in = sys.modules.get(NAME)
    if isinstance(stand_in, _Deferred):
        sys.modules.pop(NAME, None)
    # Threads racing here meet in the import system's lock for scipy.stats: one imports,
    # the others wait for it. The finder stays installed, inert once this is done.
    module = importlib.import_module(NAME)
    sys.modules["scipy"].stats = module  # type: ignore[attr-defined]
    return module
