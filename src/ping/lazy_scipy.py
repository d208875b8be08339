"""scipy subpackages that scikit-learn imports but serving never calls, loaded on first use.

scikit-learn imports scipy.stats with its core (sklearn.utils.fixes), and scipy.optimize,
scipy.integrate, scipy.interpolate and scipy.spatial with the modules that every model
pulls in (linear models, metrics, and, through skops, sklearn.cluster), for fitting,
scoring and a few transformers. Predicting with a pipeline or a forest calls none of them.
Measured with the iris pipeline:

- scipy.stats alone: 15 MB of peak RSS (154 -> 139 MB) and 0.19 s of start-up (0.85 -> 0.66 s;
  ``python -m ping`` pinned to one core, medians of 5 starts);
- the other four together: ~1,000 million of the ~4,560 million instructions from interpreter
  start to a loaded, self-checked model (callgrind). Each of them imports scipy.optimize,
  so deferring only some of them saves nothing.

scipy.linalg, scipy.sparse.linalg and scipy.sparse.csgraph, which scikit-learn's core
imports for solvers and graph routines, wait too. That pays only with scikit-learn's
packages deferred (ping.lazy_sklearn), since most estimator packages import one of them
whole, and with skops's import of sklearn.covariance._graph_lasso skipped
(artifact.skops_io): then 260-320 million instructions fewer (-9 %), with the bench's
models.

A stand-in module takes each one's place in ``sys.modules`` until something uses it:

- the names scikit-learn imports from it at module level (``DEFERRED``) are stand-ins that
  load the subpackage on their first call or attribute access, then act as the real ones;
  a class stays a class for ``isinstance``, ``issubclass`` and subclassing, but it cannot
  be caught, so no exception class is a stand-in;
- any other attribute, or an import of a submodule (``scipy.stats.x``), loads the subpackage
  first and then gives the real thing, so a name missing from the table costs time, never
  correctness. The exception is a submodule in ``ALONE``: it imports nothing but numpy, and
  runs without its package (the BLAS and LAPACK for Cython, which trees call, are two).

The self-check predicts the artifact's sample at start-up, so a model whose predict needs one
(QuantileTransformer's normal output needs scipy.stats, an isotonic calibrator
scipy.interpolate) loads it then, before it is ready.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# Each deferred subpackage, with the names scikit-learn 1.5-1.9 imports from it at module
# level (``from scipy.x import name``); ``import scipy.x`` and ``from scipy import x`` need none.
# scipy.spatial.distance is deferred on its own: scikit-learn imports names from it too.
DEFERRED: dict[str, tuple[str, ...]] = {
    "scipy.stats": ("gmean", "rankdata", "chi2", "spearmanr"),
    "scipy.optimize": ("minimize", "minimize_scalar", "linear_sum_assignment", "linprog", "root"),
    "scipy.integrate": ("trapezoid",),
    "scipy.interpolate": ("BSpline",),
    "scipy.spatial": (),
    "scipy.spatial.distance": ("cdist", "pdist", "squareform"),
    # Not LinAlgError: a stand-in cannot be caught. A module importing it loads scipy.linalg.
    "scipy.linalg": (
        "cho_solve",
        "cholesky",
        "eigh",
        "norm",
        "pinv",
        "pinvh",
        "qr",
        "solve",
        "solve_triangular",
        "svd",
    ),
    "scipy.sparse.linalg": ("LinearOperator", "cg", "eigsh", "lobpcg", "lsqr", "svds"),
    "scipy.sparse.csgraph": ("connected_components", "laplacian", "shortest_path"),
}
# Modules that run without their package, from scipy 1.14: each imports only numpy.
# - What every linear model imports from inside scipy.optimize (sklearn.utils.optimize, or
#   sklearn.utils.fixes before scikit-learn 1.7). Before 1.14, _linesearch imported
#   scipy.optimize._minpack2, through the package.
# - The BLAS and LAPACK that scikit-learn's Cython modules call (sklearn.utils._cython_blas,
#   the trees, the SGD losses skops imports): checked in 1.14.1's and 1.17's wheels.
ALONE = (
    "scipy.optimize._linesearch",
    "scipy.optimize._dcsrch",
    "scipy.linalg.cython_blas",
    "scipy.linalg.cython_lapack",
)
ALONE_SINCE = (1, 14)


class _StandIn:
    """A name imported from a deferred subpackage, until the subpackage is loaded."""

    def __init__(self, package: str, name: str) -> None:
        self._package = package
        self._name = name
        self._value: Any = None  # the real one, once looked up: a call then costs ~0.2 us more

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        if attribute in ("_package", "_name", "_value"):  # one made without __init__ (copy)
            raise AttributeError(attribute)
        return getattr(self._real(), attribute)

    # A copy, or a pickle, is of the real one.
    def __copy__(self) -> Any:
        return self._real()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self._real()

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _real_name, (self._package, self._name)

    # A class stays a class for what is done with it, but catching it: ``isinstance`` and
    # ``issubclass`` (looked up on the stand-in's type), and a class statement's bases.
    def __instancecheck__(self, instance: Any) -> bool:
        return isinstance(instance, self._real())

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, self._real())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (self._real(),)

    def _real(self) -> Any:
        if self._value is None:
            self._value = getattr(load(self._package), self._name)
        return self._value

    def __repr__(self) -> str:
        if self._value is not None:
            return repr(self._value)
        return f"<{self._package}.{self._name}, not loaded yet>"


def _real_name(package: str, name: str) -> Any:
    """What a pickled stand-in is loaded as: the real one."""
    return getattr(load(package), name)


class _Deferred(ModuleType):
    """What ``sys.modules`` holds for a deferred subpackage until it is loaded."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(self.__name__), name)  # only for what it does not have itself


class _SubmoduleFinder(importlib.abc.MetaPathFinder):
    """Loads a deferred subpackage before any of its submodules is imported (but those in
    ``ALONE``), and hands out the submodule that loading it imported already, so no module
    is ever executed twice."""

    def __init__(self, alone: Sequence[str]) -> None:
        self.alone = frozenset(alone)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package = _deferred_package_of(fullname)
        if package is None or fullname in self.alone:
            return None  # the path finders find it, under the stand-in's __path__ if deferred
        load(package)
        if fullname in sys.modules:
            return importlib.util.spec_from_loader(fullname, _Imported())
        return None  # the path finders find it under the real package


class _Imported(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return sys.modules[spec.name]

    def exec_module(self, module: ModuleType) -> None:
        pass


def defer() -> None:
    """Put the stand-ins in place, for each subpackage not imported already. Imports scipy."""
    scipy = importlib.import_module("scipy")
    version = tuple(int(part) for part in scipy.__version__.split(".")[:2])
    finder = _SubmoduleFinder(ALONE if version >= ALONE_SINCE else ())
    for name, stand_ins in DEFERRED.items():
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)  # imports the parent package, not this one
        if spec is None:
            continue
        module = _Deferred(name, f"{name}, loaded on first use (ping.lazy_scipy)")
        # What finding the module told already, so that introspection (inspect.getmodule
        # asks every module for __file__) does not load it.
        module.__path__ = list(spec.submodule_search_locations or [])
        module.__spec__, module.__file__, module.__loader__ = spec, spec.origin, spec.loader
        for stand_in in stand_ins:
            setattr(module, stand_in, _StandIn(name, stand_in))
        sys.modules[name] = module
        _set_on_parent(name, module)
    if not any(isinstance(f, _SubmoduleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, finder)


def is_deferred(name: str) -> bool:
    """True while the stand-in holds subpackage ``name``'s place."""
    return isinstance(sys.modules.get(name), _Deferred)


def load(name: str) -> ModuleType:
    """The real subpackage ``name``, imported now if its stand-in still holds its place."""
    if is_deferred(name):
        # Its deferred submodules go too, so that the package's own imports run them.
        for held in DEFERRED:
            if (held == name or held.startswith(name + ".")) and is_deferred(held):
                sys.modules.pop(held, None)
    # Threads racing here meet in the import system's lock for the module: one imports, the
    # others wait for it. The finder stays installed, inert once everything is loaded.
    module = importlib.import_module(name)
    _set_on_parent(name, module)
    for alone in ALONE:  # run before their package: the import system set them on the stand-in
        parent, _, child = alone.rpartition(".")
        if parent == name and alone in sys.modules and not hasattr(module, child):
            setattr(module, child, sys.modules[alone])
    return module


def _deferred_package_of(fullname: str) -> str | None:
    """The deferred subpackage that ``fullname`` is inside of, if it is still deferred."""
    for name in DEFERRED:
        if fullname.startswith(name + ".") and is_deferred(name):
            return name
    return None


def _set_on_parent(name: str, module: ModuleType) -> None:
    """As the import system does, so that ``parent.child`` finds it without a getattr hook."""
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
