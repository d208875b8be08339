"""ping.lazy_sklearn: a deferred scikit-learn package gives every name its ``__init__``
binds, the very object the real package gives, whichever of its modules is imported first;
and a package that does more than bind names is left alone."""

import ast
import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC
from tests.conftest import REPO
from tests.unit.scripts import run_json
from tests.unit.zoo import Specimen

from ping import lazy_sklearn
from ping.check import answer_for
from ping.model import load_model
from ping.package import package as package_model
from ping.settings import Settings

pytestmark = pytest.mark.unit

# Both scripts below start with this: ``in_fork(compute)`` runs ``compute`` in a fork of
# the script's process and gives back its JSON value, or ``{"error": ...}`` if it raised.
IN_A_FORK = """
import json, os

def in_fork(compute):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            found = compute()
        except BaseException as exc:
            found = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(found).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return found
"""

# Each group of names comes from one module. Each group is resolved in its own fork of a
# serving process that has imported nothing of the deferred packages, so every module is
# the first one imported at least once: an import cycle that the real __init__'s order
# happens to avoid would show here as an error.
RESOLVE_EACH_FIRST = (
    IN_A_FORK
    + """
import sys
from ping import lazy_sklearn, startup
startup.prepare()
groups = json.loads(os.environ["GROUPS"])
def describe(value):
    if type(value).__name__ in ("module", "_Package"):
        return "module " + value.__name__
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', '')}"
def resolve(names):
    found = {f"{p}.{n}": describe(getattr(sys.modules[p], n)) for p, n in names}
    found["still deferred"] = all(lazy_sklearn.is_deferred(p) for p, _ in names)
    return found
print(json.dumps({source: in_fork(lambda: resolve(names)) for source, names in groups.items()}))
"""
)


def init_of(package: str) -> ast.Module:
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.origin is not None
    return ast.parse(Path(spec.origin).read_bytes())


def describe(value: Any) -> str:
    if type(value).__name__ == "module":
        return "module " + value.__name__
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', '')}"


def test_each_package_binds_only_names_so_it_is_deferred() -> None:
    for package in lazy_sklearn.PACKAGES:
        assert lazy_sklearn.reexports(init_of(package), package) is not None, package


def test_every_name_resolves_to_what_the_real_package_gives_whatever_is_imported_first() -> None:
    groups: dict[str, list[tuple[str, str]]] = {}
    expected: dict[str, str] = {}
    for package in lazy_sklearn.PACKAGES:
        bindings = lazy_sklearn.reexports(init_of(package), package)
        assert bindings is not None
        for name, (source, _) in bindings[0].items():
            groups.setdefault(source, []).append((package, name))
            # This process imported the real packages, __init__ and all.
            real = importlib.import_module(package)
            expected[f"{package}.{name}"] = describe(getattr(real, name))
    assert len(expected) > 200  # every estimator of twelve packages

    results = run_json(
        RESOLVE_EACH_FIRST,
        env={"GROUPS": json.dumps(groups), "OPENBLAS_NUM_THREADS": "1"},
        timeout=300,
    )

    errors = {source: found["error"] for source, found in results.items() if "error" in found}
    assert errors == {}
    assert all(found.pop("still deferred") for found in results.values())
    resolved = {name: what for found in results.values() for name, what in found.items()}
    assert resolved == expected


def test_star_import_dir_and_submodules_behave_as_the_real_package() -> None:
    script = """
import json
from ping import startup
startup.prepare()
import sklearn.ensemble
names = {}
exec("from sklearn.ensemble import *", names)
from sklearn.svm import _liblinear  # a submodule that the __init__ does not bind
from sklearn.metrics import cluster  # a submodule that it does bind
print(json.dumps({
    "star": sorted(n for n in names if not n.startswith("__")),
    "all": sorted(sklearn.ensemble.__all__),
    "in_dir": "RandomForestClassifier" in dir(sklearn.ensemble),
    "submodules": [_liblinear.__name__, cluster.__name__],
    "doc": sklearn.ensemble.__doc__.splitlines()[0],
}))
"""
    found = run_json(script)

    import sklearn.ensemble

    assert found["star"] == found["all"] == sorted(sklearn.ensemble.__all__)
    assert found["in_dir"] is True
    assert found["submodules"] == ["sklearn.svm._liblinear", "sklearn.metrics.cluster"]
    assert found["doc"] == sklearn.ensemble.__doc__.splitlines()[0]


@pytest.mark.parametrize(
    "source",
    [
        "from sklearn.x._a import A\nA.register()\n",  # runs code
        "def __getattr__(name):\n    pass\n",  # a hook of its own
        "try:\n    from sklearn.x._a import A\nexcept ImportError:\n    A = None\n",
        "from sklearn.x._a import *\n",
        "from numpy import ndarray\n",  # binds a name from outside scikit-learn
        "from sklearn.x._a import A\n__all__ = ['A'] + []\n",  # a computed __all__
        "import sklearn.x._a\n",
        "from sklearn.x._a import A\n__all__ = 1\n",  # not a list of names
        "from sklearn.x._a import A\n__all__ = 'A'\n",
    ],
)
def test_an_init_that_does_more_than_bind_names_is_not_deferred(source: str) -> None:
    assert lazy_sklearn.reexports(ast.parse(source), "sklearn.x") is None


def test_bindings_are_read_from_relative_and_absolute_imports() -> None:
    source = (
        '"""Doc."""\n'
        "from ._a import A, B as C\n"
        "from sklearn.x._b import D\n"
        "from . import _c\n"
        "from sklearn.utils.extmath import randomized_svd\n"
        "__all__ = ['A', 'C', 'D']\n"
    )
    assert lazy_sklearn.reexports(ast.parse(source), "sklearn.x") == (
        {
            "A": ("sklearn.x._a", "A"),
            "C": ("sklearn.x._a", "B"),
            "D": ("sklearn.x._b", "D"),
            "_c": ("sklearn.x", "_c"),
            "randomized_svd": ("sklearn.utils.extmath", "randomized_svd"),
        },
        ["A", "C", "D"],
    )


# A package of the shapes scikit-learn's do not use (yet): aliases, a submodule bound by
# `from . import`, a name from a sibling package, and a submodule the __init__ imports
# without binding it.
DEMO = {
    "lazydemo/__init__.py": "",
    "lazydemo/x/__init__.py": (
        '"""Demo."""\n'
        "from lazydemo.x._a import A as B\n"
        "from . import _c as c\n"
        "from lazydemo.y import helper as assist\n"
        "from lazydemo.x._e import E\n"
        "__all__ = ['B', 'assist']\n"
    ),
    "lazydemo/x/_a.py": "A = 'a'\n",
    "lazydemo/x/_c.py": "C = 'c'\n",
    "lazydemo/x/_d.py": "D = 'd'\n",
    "lazydemo/x/_e.py": "import lazydemo.x._d\nE = 'e'\n",
    "lazydemo/y.py": "def helper():\n    return 'h'\n",
}
DEMO_SCRIPT = """
import json, sys
import lazydemo
from ping import lazy_sklearn
lazy_sklearn.defer(["lazydemo.x"])
import lazydemo.x as x
names = {}
exec("from lazydemo.x import *", names)
print(json.dumps({
    "deferred": lazy_sklearn.is_deferred("lazydemo.x"),
    "values": [x.B, x.c.C, x.assist(), x.E, x._d.D],
    "star": sorted(n for n in names if not n.startswith("__")),
    "missing": [hasattr(x, "A"), hasattr(x, "nothing"), hasattr(x, "__wrapped__")],
    "same_module": x._d is sys.modules["lazydemo.x._d"],
}))
"""


def test_aliases_and_submodules_resolve_as_the_real_package_gives_them(tmp_path: Path) -> None:
    for relative, text in DEMO.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}

    assert run_json(DEMO_SCRIPT, env=env, timeout=60) == {
        "deferred": True,
        "values": ["a", "c", "h", "e", "d"],
        "star": ["B", "assist"],
        "missing": [False, False, False],
        "same_module": True,
    }


# Each model is loaded, self-checked and asked in its own fork of a serving process, so
# that its modules are the first of the deferred packages imported.
ANSWER_EACH_MODEL = (
    IN_A_FORK
    + """
from pathlib import Path
from ping import startup
startup.prepare()
from ping.check import answer_for, self_check
from ping.model import load_model
def answer(model_dir, request, trusted, pickled):
    model = load_model(Path(model_dir), trusted_types=trusted, allow_pickle=pickled)
    self_check(model)
    return answer_for(model, request)
cases = json.loads(os.environ["CASES"])
print(json.dumps({name: in_fork(lambda: answer(*case)) for name, case in cases.items()}))
"""
)

HIST_TREES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
# Beyond the zoo: estimators from the other deferred packages, ones whose predict calls the
# scipy.linalg stand-ins (a Gaussian process), the boosting the skipped binning module is
# part of, and a pickled model.
MORE = {
    "neighbors": (lambda: KNeighborsClassifier(n_neighbors=5), "skops", []),
    "kernel-svc": (lambda: SVC(), "skops", []),
    "gaussian-process": (lambda: GaussianProcessClassifier(random_state=0), "skops", []),
    "hist-boosting": (
        lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
        "skops",
        HIST_TREES,
    ),
    "pca-logistic": (
        lambda: make_pipeline(PCA(n_components=2), LogisticRegression(max_iter=500)),
        "skops",
        [],
    ),
    "pickled-forest": (
        lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        "joblib",
        [],
    ),
}


def test_every_model_answers_in_a_serving_process_as_with_whole_packages(
    zoo: dict[str, Specimen], tmp_path: Path
) -> None:
    cases = {
        name: (str(specimen.model_dir), {"instances": specimen.positional()}, [], False)
        for name, specimen in zoo.items()
    }
    iris = load_iris()
    for name, (make, model_format, trusted) in MORE.items():
        estimator = make().fit(iris.data, iris.target)
        settings = Settings(trusted_types=trusted, allow_pickle=model_format == "joblib")
        package_model(
            estimator, tmp_path / name, name=name, model_format=model_format, settings=settings
        )
        probabilities = hasattr(estimator, "predict_proba")
        request = {"instances": iris.data[::15].tolist(), "return_probabilities": probabilities}
        cases[name] = (str(tmp_path / name), request, trusted, model_format == "joblib")
    # This process imported scikit-learn's packages whole, and no lazy module.
    expected = {
        name: answer_for(
            load_model(Path(model_dir), trusted_types=trusted, allow_pickle=pickled), request
        )
        for name, (model_dir, request, trusted, pickled) in cases.items()
    }

    assert run_json(ANSWER_EACH_MODEL, env={"CASES": json.dumps(cases)}, timeout=300) == expected
