"""ping.lazy_scipy: until a deferred scipy subpackage is used nothing loads it, and once it
is, everything behaves as if it had been imported at the start. Each case runs in a fresh
interpreter, since this one imported all of scipy long ago."""

from typing import Any

import numpy as np
import pytest
import scipy.integrate
import scipy.interpolate
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg
import scipy.spatial.distance
from scipy import stats
from tests.unit.scripts import run_json

from ping import lazy_scipy

pytestmark = pytest.mark.unit

PRELUDE = """
import json, sys
from ping import lazy_scipy, lazy_sklearn
{setup}
lazy_scipy.defer()
from ping.startup import import_sklearn_without_extras
import_sklearn_without_extras()
lazy_sklearn.defer()
# What serving a linear classifier, a scaled pipeline or a forest imports, and skops.
import sklearn.linear_model._logistic, sklearn.pipeline, sklearn.preprocessing._data
import sklearn.ensemble._forest, sklearn.tree._classes
from ping.artifact import skops_io
skops_io()
deferred = lambda: sorted(n for n in lazy_scipy.DEFERRED if lazy_scipy.is_deferred(n))
out = {{"deferred_after_sklearn": deferred()}}
"""


def run(script: str, setup: str = "") -> dict[str, Any]:
    return dict(run_json(PRELUDE.format(setup=setup) + script + "\nprint(json.dumps(out))"))


def test_importing_scikit_learn_leaves_every_deferred_subpackage_unloaded() -> None:
    out = run(
        """
out["loaded"] = sorted(
    m for m in sys.modules
    if any(m.startswith(n + ".") for n in lazy_scipy.DEFERRED) and m not in lazy_scipy.DEFERRED
)
"""
    )

    assert out["deferred_after_sklearn"] == sorted(lazy_scipy.DEFERRED)
    # They ran without their package; no module here calls LAPACK from Cython.
    assert out["loaded"] == sorted(set(lazy_scipy.ALONE) - {"scipy.linalg.cython_lapack"})


def test_blas_and_lapack_for_cython_answer_without_scipy_linalg() -> None:
    out = run(
        """
import numpy as np
import scipy.linalg.cython_blas as blas, scipy.linalg.cython_lapack as lapack
out["dot"] = blas._test_ddot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
out["eps"] = lapack._test_dlamch(b"E")
out["deferred_at_end"] = deferred()
"""
    )

    assert out["dot"] == 11.0
    assert out["eps"] == np.finfo(np.float64).eps / 2  # LAPACK's eps is the unit roundoff
    assert out["deferred_at_end"] == sorted(lazy_scipy.DEFERRED)


def test_the_names_scikit_learn_imported_answer_as_scipy_does() -> None:
    out = run(
        """
from sklearn._loss.link import gmean
from sklearn.metrics._ranking import rankdata, trapezoid
from sklearn.covariance._robust_covariance import chi2
from sklearn.isotonic import spearmanr
from sklearn.metrics.cluster._bicluster import linear_sum_assignment
from sklearn.calibration import minimize_scalar
from sklearn.manifold._t_sne import pdist, squareform
from sklearn.gaussian_process.kernels import cdist
from sklearn.preprocessing._polynomial import BSpline
from sklearn.utils.fixes import _sparse_linalg_cg as cg, laplacian
from sklearn.utils.sparsefuncs import LinearOperator
from sklearn.linear_model._base import lsqr
from sklearn.utils.extmath import linalg  # the module, bound from the stand-in package
from scipy.linalg import eigh, svd, cho_solve, cholesky
from scipy.sparse.csgraph import connected_components
out["gmean"] = float(gmean([1.0, 2.0, 4.0]))
out["rankdata"] = rankdata([3.0, 1.0, 2.0, 1.0]).tolist()
out["chi2"] = [float(chi2(3).isf(0.05)), float(chi2.isf(0.05, 3))]
out["spearmanr"] = float(spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).statistic)
out["trapezoid"] = float(trapezoid([1.0, 2.0, 4.0], [0.0, 1.0, 3.0]))
out["assignment"] = [a.tolist() for a in linear_sum_assignment([[4, 1], [2, 3]])]
out["minimum"] = round(float(minimize_scalar(lambda x: (x - 2.0) ** 2).x), 6)
out["distances"] = squareform(pdist([[0.0, 0.0], [3.0, 4.0]])).tolist()
out["cdist"] = cdist([[0.0, 0.0]], [[3.0, 4.0], [6.0, 8.0]]).tolist()
spline = BSpline.construct_fast(np.array([0.0, 0, 1, 1]), np.array([1.0, 3.0]), 1)
out["spline"] = spline(np.array([0.25, 0.5])).tolist()
spd = np.array([[4.0, 1.0], [1.0, 3.0]])
out["cg"] = np.round(cg(spd, np.array([1.0, 2.0]))[0], 12).tolist()
out["laplacian"] = laplacian(np.array([[0.0, 1.0], [1.0, 0.0]])).tolist()
operator = LinearOperator((2, 2), matvec=lambda v: spd @ v)
out["operator"] = [operator.matvec(np.array([1.0, 0.0])).tolist()]
out["operator"].append(isinstance(operator, LinearOperator))
class Scaled(LinearOperator):  # a class statement takes the real class as its base
    pass
out["subclass"] = [issubclass(Scaled, LinearOperator), Scaled.__mro__[1].__module__]
out["lsqr"] = np.round(lsqr(spd, np.array([1.0, 2.0]))[0], 9).tolist()
out["eigh"] = np.round(eigh(spd)[0], 12).tolist()
out["svd"] = np.round(svd(spd, compute_uv=False), 12).tolist()
out["cholesky"] = np.round(cho_solve((cholesky(spd, lower=True), True), [1.0, 2.0]), 12).tolist()
out["norm"] = float(linalg.norm([3.0, 4.0]))
out["components"] = int(connected_components(np.eye(3))[0])
out["deferred_at_end"] = deferred()
""",
        setup="import numpy as np",
    )

    assert out["deferred_after_sklearn"] == sorted(lazy_scipy.DEFERRED)
    assert out["gmean"] == float(stats.gmean([1.0, 2.0, 4.0]))
    assert out["rankdata"] == stats.rankdata([3.0, 1.0, 2.0, 1.0]).tolist()
    assert out["chi2"] == [float(stats.chi2(3).isf(0.05))] * 2
    assert out["spearmanr"] == float(stats.spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).statistic)
    assert out["trapezoid"] == float(scipy.integrate.trapezoid([1.0, 2.0, 4.0], [0.0, 1.0, 3.0]))
    expected = scipy.optimize.linear_sum_assignment([[4, 1], [2, 3]])
    assert out["assignment"] == [a.tolist() for a in expected]
    minimum = scipy.optimize.minimize_scalar(lambda x: (x - 2.0) ** 2).x
    assert out["minimum"] == round(float(minimum), 6)
    distance = scipy.spatial.distance
    assert out["distances"] == distance.squareform(distance.pdist([[0.0, 0], [3, 4]])).tolist()
    assert out["cdist"] == distance.cdist([[0.0, 0.0]], [[3.0, 4.0], [6.0, 8.0]]).tolist()
    spline = scipy.interpolate.BSpline(np.array([0.0, 0, 1, 1]), np.array([1.0, 3.0]), 1)
    assert out["spline"] == spline(np.array([0.25, 0.5])).tolist()
    spd = np.array([[4.0, 1.0], [1.0, 3.0]])
    solved = np.round(np.linalg.solve(spd, [1.0, 2.0]), 12).tolist()
    assert out["cg"] == np.round(scipy.sparse.linalg.cg(spd, [1.0, 2.0])[0], 12).tolist()
    assert out["laplacian"] == [[1.0, -1.0], [-1.0, 1.0]]
    assert out["operator"] == [[4.0, 1.0], True]
    assert out["subclass"] == [True, scipy.sparse.linalg.LinearOperator.__module__]
    assert out["lsqr"] == np.round(solved, 9).tolist()
    assert out["eigh"] == np.round(scipy.linalg.eigh(spd)[0], 12).tolist()
    assert out["svd"] == np.round(scipy.linalg.svd(spd, compute_uv=False), 12).tolist()
    assert out["cholesky"] == solved
    assert out["norm"] == 5.0
    assert out["components"] == 3
    assert out["deferred_at_end"] == []


def test_a_stand_in_looks_its_name_up_once() -> None:
    out = run(
        """
from sklearn.utils.fixes import laplacian
graph = np.array([[0.0, 1.0], [1.0, 0.0]])
first = laplacian(graph).tolist()
lazy_scipy.load = None  # a second look-up would fail now
out["again"] = laplacian(graph).tolist() == first
""",
        setup="import numpy as np",
    )

    assert out["again"] is True


def test_a_copy_or_a_pickle_of_a_stand_in_is_the_real_one() -> None:
    out = run(
        """
import copy, pickle
from sklearn.utils.fixes import laplacian
out["before"] = repr(laplacian)
real = lazy_scipy.load("scipy.sparse.csgraph").laplacian
out["copies"] = [copy.copy(laplacian) is real, copy.deepcopy(laplacian) is real]
out["pickled"] = pickle.loads(pickle.dumps(laplacian)) is real
out["after"] = repr(laplacian) == repr(real)
"""
    )

    assert out["before"] == "<scipy.sparse.csgraph.laplacian, not loaded yet>"
    assert out["copies"] == [True, True]
    assert out["pickled"] is True
    assert out["after"] is True


def test_a_submodule_import_loads_the_package_once_and_never_a_second_copy() -> None:
    out = run(
        """
from scipy.stats.mstats import mquantiles
import scipy, scipy.stats._distn_infrastructure as infrastructure
real = sys.modules["scipy.stats"]
out["same_mstats"] = real.mstats is sys.modules["scipy.stats.mstats"]
out["norm_is_continuous"] = isinstance(real.norm, infrastructure.rv_continuous)
out["package_attribute"] = scipy.stats is real
out["quantiles"] = mquantiles([1.0, 2.0, 3.0, 4.0], prob=[0.5]).tolist()
from scipy.spatial.distance import euclidean  # a deferred submodule of a deferred package
out["euclidean"] = float(euclidean([0.0, 0.0], [3.0, 4.0]))
out["same_distance"] = scipy.spatial.distance is sys.modules["scipy.spatial.distance"]
out["distance_on_spatial"] = sys.modules["scipy.spatial"].distance is scipy.spatial.distance
out["deferred_at_end"] = deferred()
"""
    )

    assert out["same_mstats"] is True
    assert out["norm_is_continuous"] is True
    assert out["package_attribute"] is True
    assert out["quantiles"] == stats.mstats.mquantiles([1.0, 2.0, 3.0, 4.0], prob=[0.5]).tolist()
    assert out["euclidean"] == 5.0
    assert out["same_distance"] is True
    assert out["distance_on_spatial"] is True
    assert "scipy.spatial" not in out["deferred_at_end"]
    assert "scipy.spatial.distance" not in out["deferred_at_end"]


def test_submodules_that_ran_alone_are_the_ones_their_package_uses_once_loaded() -> None:
    out = run(
        """
alone = sys.modules["scipy.optimize._linesearch"]
import scipy.optimize, scipy.optimize._optimize as optimize_module
out["same_module"] = scipy.optimize._linesearch is alone
out["package_uses_it"] = optimize_module.line_search_wolfe1 is alone.line_search_wolfe1
out["minimum"] = round(float(scipy.optimize.minimize(lambda x: (x[0] - 3.0) ** 2, [0.0]).x[0]), 4)
"""
    )

    assert out == {
        "deferred_after_sklearn": sorted(lazy_scipy.DEFERRED),
        "same_module": True,
        "package_uses_it": True,
        "minimum": 3.0,
    }


def test_before_scipy_1_14_scipy_optimize_loads_with_the_linear_models() -> None:
    """Before scipy 1.14, scipy.optimize._linesearch imported from its package: running it
    alone would import the package from inside it. Here the gate is checked by moving it."""
    out = run(
        'out["minimize"] = scipy.optimize.minimize is sys.modules["scipy.optimize"].minimize',
        setup="import scipy; lazy_scipy.ALONE_SINCE = (99, 0)",
    )

    assert "scipy.optimize" not in out["deferred_after_sklearn"]
    assert "scipy.stats" in out["deferred_after_sklearn"]
    assert out["minimize"] is True


def test_threads_that_first_use_it_together_share_one_loaded_module() -> None:
    out = run(
        """
import threading
from sklearn.metrics._ranking import rankdata
barrier, seen = threading.Barrier(8), []
def use():
    barrier.wait()
    seen.append((rankdata([2.0, 1.0]).tolist(), id(lazy_scipy.load("scipy.stats"))))
threads = [threading.Thread(target=use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
out["answers"] = sorted({str(a) for a, _ in seen})
out["modules"] = len({m for _, m in seen})
out["count"] = len(seen)
"""
    )

    assert out["answers"] == [str(np.array([2.0, 1.0]).tolist())]
    assert (out["count"], out["modules"]) == (8, 1)
