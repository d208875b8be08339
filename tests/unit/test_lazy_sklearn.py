"""ping.lazy_sklearn: a deferred scikit-learn package gives every name its ``__init__``
binds, the very object the real package gives, whichever of its modules is imported first;
and a package that does more than bind names is left alone."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO
from tests.unit.zoo import Specimen

from ping import lazy_sklearn
from ping.check import answer_for
from ping.model import load_model

pytestmark = pytest.mark.unit

# Each group of names comes from one module. Each group is resolved in its own fork of a
# serving process that has imported nothing of the deferred packages, so every module is
# the first one imported at least once: an import cycle that the real __init__'s order
# happens to avoid would show here as an error.
RESOLVE_EACH_FIRST = """
import json, os, sys
from ping import lazy_sklearn, startup
startup.prepare()
groups = json.loads(os.environ["GROUPS"])
def describe(value):
    if type(value).__name__ in ("module", "_Package"):
        return "module " + value.__name__
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', '')}"
results = {}
for source, names in groups.items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            found = {f"{p}.{n}": describe(getattr(sys.modules[p], n)) for p, n in names}
            packages = {p for p, n in names}
            found["still deferred"] = all(lazy_sklearn.is_deferred(p) for p in packages)
        except BaseException as exc:
            found = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(found).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        results[source] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


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
        for name, source in bindings[0].items():
            groups.setdefault(source, []).append((package, name))
            # This process imported the real packages, __init__ and all.
            real = importlib.import_module(package)
            expected[f"{package}.{name}"] = describe(getattr(real, name))
    assert len(expected) > 200  # every estimator of twelve packages

    done = subprocess.run(
        [sys.executable, "-c", RESOLVE_EACH_FIRST],
        env={**os.environ, "GROUPS": json.dumps(groups), "OPENBLAS_NUM_THREADS": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    results = json.loads(done.stdout.splitlines()[-1])
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
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])

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
            "A": "sklearn.x._a",
            "C": "sklearn.x._a",
            "D": "sklearn.x._b",
            "_c": "sklearn.x",
            "randomized_svd": "sklearn.utils.extmath",
        },
        ["A", "C", "D"],
    )


ANSWER_EACH_MODEL = """
import json, os
from pathlib import Path
from ping import startup
startup.prepare()
from ping.check import answer_for, self_check
from ping.model import load_model
answers = {}
for name, (model_dir, request) in json.loads(os.environ["CASES"]).items():
    model = load_model(Path(model_dir))
    self_check(model)
    answers[name] = answer_for(model, request)
print(json.dumps(answers))
"""


def test_every_zoo_model_answers_in_a_serving_process_as_with_whole_packages(
    zoo: dict[str, Specimen],
) -> None:
    cases = {
        name: (str(specimen.model_dir), {"instances": specimen.positional()})
        for name, specimen in zoo.items()
    }
    # This process imported scikit-learn's packages whole, and no lazy module.
    expected = {
        name: answer_for(load_model(Path(model_dir)), request)
        for name, (model_dir, request) in cases.items()
    }

    done = subprocess.run(
        [sys.executable, "-c", ANSWER_EACH_MODEL],
        env={**os.environ, "CASES": json.dumps(cases)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    assert json.loads(done.stdout.splitlines()[-1]) == expected
