"""What the serving process does to start fast and small (ping.startup, artifact.skops_io),
checked inside a real ``python -m ping`` process: the collector is back on and the heap
frozen once it serves, modules nothing uses stay unloaded, and answers stay scikit-learn's.
"""

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, QuantileTransformer
from starlette.testclient import TestClient
from tests.conftest import REPO
from tests.unit.live_server import free_port
from tests.unit.scripts import run_json
from tests.unit.zoo import Specimen

from ping import lazy_scipy, lazy_sklearn, startup
from ping.app import create_app
from ping.artifact import is_trusted, skops_io
from ping.settings import Settings

pytestmark = pytest.mark.unit

# Serves like `python -m ping`, and once the model answers, reports from inside the process.
PROBE = """
import gc, json, os, signal, sys, threading, time, urllib.error, urllib.request
def probe():
    url = f"http://127.0.0.1:{os.environ['PING_PORT']}"
    while True:
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1)
            break
        except urllib.error.HTTPError as exc:  # the lifespan has run: it answers
            if exc.code == 503 and os.environ.get("REFUSED"):
                break
            time.sleep(0.05)
        except OSError:
            time.sleep(0.05)
    answer = {"predictions": None}
    if not os.environ.get("REFUSED"):
        body = json.dumps({"instances": json.loads(os.environ["ROWS"])}).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(url + "/predict", body, headers)
        answer = json.load(urllib.request.urlopen(request, timeout=10))
    openapi_model = sys.modules["fastapi.openapi.models"].OpenAPI
    built_before = openapi_model.__pydantic_complete__
    document = json.load(urllib.request.urlopen(url + "/openapi.json", timeout=10))
    kinds = {n: type(m).__name__ for n, m in sys.modules.items()}
    report = {
        "openapi_built": [built_before, openapi_model.__pydantic_complete__],
        "openapi_has_predict": "/predict" in document["paths"],
        "predictions": answer["predictions"],
        "gc_enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "deferred": {n: kinds.get(n) == "_LazyModule" for n in ("numpy.f2py", "numpy.testing")},
        "imported": sorted(n for n in ("pandas", "rich", "pydantic.v1") if sys.modules.get(n)),
        "scipy_deferred": sorted(n for n, kind in kinds.items() if kind == "_Deferred"),
        "sklearn_deferred": sorted(n for n, kind in kinds.items() if kind == "_Package"),
        "ensemble_modules": sorted(n for n in sys.modules if n.startswith("sklearn.ensemble.")),
    }
    with open(os.environ["REPORT"], "w") as f:
        json.dump(report, f)
    os.kill(os.getpid(), signal.SIGTERM)  # drains, then exits 0
threading.Thread(target=probe, daemon=True).start()
from ping.cli import main
sys.exit(main([]))
"""


def probe_server(
    model_dir: Path, rows: list[list[float]], tmp_path: Path, *, refused: bool = False
) -> dict[str, Any]:
    """Serve ``model_dir`` in a real process, predict ``rows`` (unless the model is
    ``refused``: then it never gets ready), and say what was inside."""
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "PING_MODEL_DIR": str(model_dir),
        "PING_PORT": str(free_port()),
        "PING_ACCESS_LOG": "false",
        "ROWS": json.dumps(rows),
        "REPORT": str(report),
        **({"REFUSED": "1"} if refused else {}),
    }
    process = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, timeout=90
    )
    assert process.returncode == 0, process.stderr
    return dict(json.loads(report.read_text()))


def test_serving_iris_resumes_gc_freezes_the_heap_and_leaves_unused_modules_unloaded(
    zoo: dict[str, Specimen], tmp_path: Path
) -> None:
    specimen, rows = zoo["iris-logreg"], load_iris().data

    report = probe_server(specimen.model_dir, rows.tolist(), tmp_path)

    assert report["predictions"] == specimen.estimator.predict(rows).tolist()
    assert report["gc_enabled"] is True
    assert report["frozen"] > 10_000  # imports and the model, out of the collector's scans
    assert report["deferred"] == {"numpy.f2py": True, "numpy.testing": True}
    assert report["imported"] == []
    assert report["scipy_deferred"] == sorted(lazy_scipy.DEFERRED)
    assert report["sklearn_deferred"] == sorted(lazy_sklearn.PACKAGES)
    assert report["ensemble_modules"] == []  # skops's _BinMapper is not imported either
    # FastAPI's OpenAPI models are built by the first /openapi.json, which still answers.
    assert report["openapi_built"] == [False, True]
    assert report["openapi_has_predict"] is True


def test_serving_a_forest_imports_what_it_needs_and_answers_like_sklearn(
    zoo: dict[str, Specimen], tmp_path: Path
) -> None:
    specimen, rows = zoo["iris-forest"], load_iris().data

    report = probe_server(specimen.model_dir, rows.tolist(), tmp_path)

    assert report["predictions"] == specimen.estimator.predict(rows).tolist()
    assert report["gc_enabled"] is True
    assert report["imported"] == []
    assert report["scipy_deferred"] == sorted(lazy_scipy.DEFERRED)
    # The forest's own modules, not gradient boosting, stacking or isolation forests.
    assert report["ensemble_modules"] == [
        "sklearn.ensemble._base",
        "sklearn.ensemble._bootstrap",
        "sklearn.ensemble._forest",
    ]
    assert report["sklearn_deferred"] == sorted(lazy_sklearn.PACKAGES)


# Normal quantiles are scipy.stats.norm.ppf at predict; an isotonic calibrator rebuilds its
# scipy.interpolate.interp1d when it is loaded.
NEEDS_SCIPY = {
    "scipy.stats": lambda: make_pipeline(
        QuantileTransformer(n_quantiles=50, output_distribution="normal"),
        LogisticRegression(max_iter=1000),
    ),
    "scipy.interpolate": lambda: CalibratedClassifierCV(
        LogisticRegression(max_iter=1000), method="isotonic"
    ),
}


@pytest.mark.parametrize("needed", sorted(NEEDS_SCIPY))
def test_a_model_that_needs_a_deferred_subpackage_loads_it_before_it_is_ready(
    needed: str, tmp_path: Path
) -> None:
    from ping.package import package

    iris = load_iris()
    model = NEEDS_SCIPY[needed]().fit(iris.data, iris.target)
    package(model, tmp_path / "model", name="needs-scipy")

    report = probe_server(tmp_path / "model", iris.data.tolist(), tmp_path)

    assert report["predictions"] == model.predict(iris.data).tolist()
    assert needed not in report["scipy_deferred"]


def test_a_model_of_numpy_and_scipy_ufuncs_serves_without_skops_default_trust(
    tmp_path: Path,
) -> None:
    from ping.package import package

    iris = load_iris()
    model = make_pipeline(
        FunctionTransformer(np.tanh),
        FunctionTransformer(scipy.special.expit),
        LogisticRegression(max_iter=1000),
    ).fit(iris.data, iris.target)
    package(model, tmp_path / "ufuncs", name="ufuncs")

    report = probe_server(tmp_path / "ufuncs", iris.data.tolist(), tmp_path)

    assert report["predictions"] == model.predict(iris.data).tolist()


def test_every_ufunc_skops_trusts_by_default_ping_trusts_too() -> None:
    """skops_io skips skops's ufunc scans: Ping's own rule must cover what they listed."""
    skops_io()
    from skops.io._utils import get_public_type_names

    listed = get_public_type_names(module=np, oftype=np.ufunc)
    listed += get_public_type_names(module=scipy.special, oftype=np.ufunc)

    assert len(listed) > 200
    assert [name for name in listed if not is_trusted(name)] == []


SKOPS_IN = """
import json, sys
from ping import startup
startup.prepare()
from ping.artifact import skops_io
skops = skops_io()
from skops.io import _sklearn
print(json.dumps({
    "imported": [name for name in json.loads(sys.argv[1]) if name in sys.modules],
    "dict_with_deprecated_keys": _sklearn._DictWithDeprecatedKeys,
    "round_trip": skops.loads(skops.dumps({"a": [1, 2]})),
}))
"""
SKIPPING = """
import json, sys
from ping.artifact import import_skipping
skipped = sys.argv[1]
skops = import_skipping("skops.io", [skipped])
print(json.dumps({
    "skipped": type(sys.modules[skipped]).__name__,
    # What the first try imported is set on the package as if imported in one go.
    "submodules": all(
        getattr(sys.modules[name.rpartition(".")[0]], name.rpartition(".")[2], None) is module
        for name, module in sys.modules.items() if name.startswith("skops.io.")
    ),
    "round_trip": skops.loads(skops.dumps({"a": [1, 2]})),
}))
"""


def test_skops_imports_without_the_modules_it_only_probes_for_a_name() -> None:
    probed = ["sklearn.covariance._graph_lasso", "sklearn.ensemble._hist_gradient_boosting.binning"]

    found = run_json(SKOPS_IN, json.dumps(probed))

    assert found == {"imported": [], "dict_with_deprecated_keys": None, "round_trip": {"a": [1, 2]}}
    # Skipping _graph_lasso changes nothing for skops: the name it wants is gone from it.
    import sklearn.covariance._graph_lasso

    assert not hasattr(sklearn.covariance._graph_lasso, "_DictWithDeprecatedKeys")


# skops.io imports _audit before anything else, and _quantile_forest after its other parts.
@pytest.mark.parametrize("skipped", ["skops.io._audit", "skops.io._quantile_forest"])
def test_a_skipped_module_is_imported_after_all_when_something_needs_it(skipped: str) -> None:
    found = run_json(SKIPPING, skipped)

    assert found == {"skipped": "module", "submodules": True, "round_trip": {"a": [1, 2]}}


def test_the_in_process_app_leaves_the_collector_as_it_found_it(settings: Settings) -> None:
    assert gc.isenabled()
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.isenabled()
    gc.disable()  # a caller's choice, kept
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").status_code == 200
            assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_deferred_module_loads_on_first_use() -> None:
    name = "email._header_value_parser"
    was = sys.modules.pop(name, None)
    try:
        startup.defer(name)
        module = sys.modules[name]
        assert type(module).__name__ == "_LazyModule"
        assert sys.modules["email"]._header_value_parser is module  # type: ignore[attr-defined]

        assert module.get_address_list  # the first attribute access runs the module

        assert type(module).__name__ != "_LazyModule"
    finally:
        if was is not None:
            sys.modules[name] = was
            sys.modules["email"]._header_value_parser = was  # type: ignore[attr-defined]


def test_a_process_that_refuses_its_model_still_collects_garbage(
    zoo: dict[str, Specimen], tmp_path: Path
) -> None:
    artifact = Path(shutil.copytree(zoo["iris-logreg"].model_dir, tmp_path / "old"))
    metadata = json.loads((artifact / "metadata.json").read_text())
    (artifact / "metadata.json").write_text(json.dumps({**metadata, "sklearn_version": "0.24.2"}))

    report = probe_server(artifact, [], tmp_path, refused=True)

    assert report["gc_enabled"] is True  # it answers probes for as long as it runs
    assert report["frozen"] > 10_000
