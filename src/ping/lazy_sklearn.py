"""scikit-learn's estimator packages, each used without running its ``__init__``.

Importing a module inside a package runs the package's ``__init__`` first, and each of
scikit-learn's estimator packages imports every estimator it holds there. An artifact
names each class by the module that defines it (``sklearn.ensemble._forest``), so
loading a 100-tree forest also imported gradient boosting, stacking and isolation
forests; skops's own imports (``Birch``, the SGD losses) pulled in sklearn.cluster and
sklearn.linear_model, and through them neighbors, decomposition and manifold.

Each package in ``PACKAGES`` whose ``__init__`` only binds names from modules (checked
by reading it, not running it) is replaced, before anything imports it, by a
``_Package``. That is the lazy-loading scheme (SPEC 1) that scipy and scikit-image use
for their own packages:

- it has the package's ``__path__`` and ``__spec__``, so each of its modules imports as
  it always did, on its own, and runs once;
- a name the ``__init__`` binds (``from sklearn.ensemble._forest import
  RandomForestClassifier``) is imported from that module on first access, and is the
  very object that module defines;
- any other name that is a submodule's is that submodule, imported then: the real package
  has as attributes the submodules its ``__init__`` imported;
- anything else is missing.

A package whose ``__init__`` does anything else (runs code, defines ``__getattr__``) is
imported as usual; sklearn.model_selection is one, and the linear models import it.

From interpreter start to a loaded, self-checked model (callgrind, PYTHONHASHSEED=0, one
core), with the bench's models: the forest 3,962 -> 3,742 million instructions (-5.6 %),
1,325 -> 1,206 modules and 123 -> 113 MB of peak RSS; the iris-like logistic pipeline
3,137 -> 2,978 million (-5.1 %), 1,298 -> 1,216 modules and 111 -> 105 MB.
"""

import ast
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# The estimator packages that serving a model, or skops's imports, would otherwise import
# whole.
PACKAGES = (
    "sklearn.cluster",
    "sklearn.compose",
    "sklearn.covariance",
    "sklearn.decomposition",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.manifold",
    "sklearn.metrics",
    "sklearn.neighbors",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.tree",
)

# Each name an __init__ binds, with the module it imports it from and its name there
# (``from m import a as b`` binds ``b`` to ``m.a``).
Bindings = dict[str, tuple[str, str]]
# Those of each deferred package.
_SOURCES: dict[str, Bindings] = {}


class _Package(ModuleType):
    """A scikit-learn package whose ``__init__`` has not run (see the module docstring)."""

    def __getattr__(self, name: str) -> Any:  # only for what it does not have yet
        binding = _SOURCES.get(self.__name__, {}).get(name)
        if binding is None:
            return self._submodule(name)
        source, original = binding
        if source == self.__name__:  # ``from package import submodule``
            value = importlib.import_module(f"{source}.{original}")
        else:
            value = _import_from(source, original)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(vars(self)) | set(_SOURCES.get(self.__name__, {})))

    def _submodule(self, name: str) -> ModuleType:
        full = f"{self.__name__}.{name}"
        if name.startswith("__") or importlib.util.find_spec(full) is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return importlib.import_module(full)  # which sets it here too


def defer(packages: Sequence[str] = PACKAGES) -> None:
    """Put a ``_Package`` in place of each of ``packages`` that is not imported yet and
    only binds names in its ``__init__``. Needs their parent packages imported."""
    for name in packages:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue  # not a package with a source __init__ (bytecode only): as usual
        try:
            init = ast.parse(Path(spec.origin).read_bytes(), spec.origin)
        except (OSError, SyntaxError, ValueError):
            continue
        bindings = reexports(init, name)
        if bindings is None:
            continue
        sources, exported = bindings
        module = _Package(name, ast.get_docstring(init, clean=False))
        module.__path__ = list(spec.submodule_search_locations or [])
        module.__spec__, module.__file__, module.__loader__ = spec, spec.origin, spec.loader
        module.__package__ = name
        if exported is not None:
            module.__all__ = exported  # type: ignore[attr-defined]  # a module global
        _SOURCES[name] = sources
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)


def is_deferred(name: str) -> bool:
    """True while package ``name`` is a ``_Package``."""
    return isinstance(sys.modules.get(name), _Package)


def reexports(init: ast.Module, package: str) -> tuple[Bindings, list[str] | None] | None:
    """What a package's ``__init__`` binds: each name with the module it imports it from
    and its name there, and its literal ``__all__`` if it has one. None if it does anything
    else, or imports from outside its top-level package."""
    inside = package.partition(".")[0] + "."
    sources: Bindings = {}
    exported: list[str] | None = None
    for index, statement in enumerate(init.body):
        if index == 0 and isinstance(statement, ast.Expr) and _is_text(statement.value):
            continue  # the docstring
        if isinstance(statement, ast.ImportFrom):
            relative = "." * statement.level + (statement.module or "")
            source = importlib.util.resolve_name(relative, package) if statement.level else relative
            if not source.startswith(inside) or any(a.name == "*" for a in statement.names):
                return None
            for alias in statement.names:
                sources[alias.asname or alias.name] = (source, alias.name)
            continue
        if isinstance(statement, ast.Assign) and [
            getattr(target, "id", None) for target in statement.targets
        ] == ["__all__"]:
            try:
                names = ast.literal_eval(statement.value)
            except (ValueError, TypeError, SyntaxError):
                return None
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                return None
            exported = list(names)
            continue
        return None
    return sources, exported


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _import_from(source: str, name: str) -> Any:
    """What ``from source import name`` binds: an attribute, or else a submodule."""
    module = importlib.import_module(source)
    try:
        return getattr(module, name)
    except AttributeError:
        return importlib.import_module(f"{source}.{name}")
