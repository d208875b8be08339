"""ping.lazy_stats: until scipy.stats is used nothing loads it, and once it is, everything
behaves as if it had been imported at the start. Each case runs in a fresh interpreter,
since this one imported scipy.stats long ago."""

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from scipy import stats
from tests.conftest import REPO

pytestmark = pytest.mark.unit

PRELUDE = """
import json, sys
from ping import lazy_stats
lazy_stats.defer()
from ping.startup import import_sklearn_without_pandas
import_sklearn_without_pandas()
import sklearn.linear_model, sklearn.metrics, sklearn.covariance, sklearn.isotonic
out = {"deferred_after_sklearn": lazy_stats.is_deferred()}
"""


def run(script: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script + "\nprint(json.dumps(out))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_importing_scikit_learn_leaves_scipy_stats_unloaded() -> None:
    out = run('out["loaded"] = [m for m in sys.modules if m.startswith("scipy.stats.")]')

    assert out == {"deferred_after_sklearn": True, "loaded": []}


def test_the_names_scikit_learn_imported_answer_as_scipy_stats_does() -> None:
    out = run(
        """
from sklearn._loss.link import gmean
from sklearn.metrics._ranking import rankdata
from sklearn.covariance._robust_covariance import chi2
from sklearn.isotonic import spearmanr
out["gmean"] = float(gmean([1.0, 2.0, 4.0]))
out["rankdata"] = rankdata([3.0, 1.0, 2.0, 1.0]).tolist()
out["chi2"] = [float(chi2(3).isf(0.05)), float(chi2.isf(0.05, 3))]
out["spearmanr"] = float(spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).statistic)
out["deferred_at_end"] = lazy_stats.is_deferred()
"""
    )

    assert out["deferred_after_sklearn"] is True
    assert out["gmean"] == float(stats.gmean([1.0, 2.0, 4.0]))
    assert out["rankdata"] == stats.rankdata([3.0, 1.0, 2.0, 1.0]).tolist()
    assert out["chi2"] == [float(stats.chi2(3).isf(0.05))] * 2
    assert out["spearmanr"] == float(stats.spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).statistic)
    assert out["deferred_at_end"] is False


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
"""
    )

    assert out["same_mstats"] is True
    assert out["norm_is_continuous"] is True
    assert out["package_attribute"] is True
    assert out["quantiles"] == stats.mstats.mquantiles([1.0, 2.0, 3.0, 4.0], prob=[0.5]).tolist()


def test_threads_that_first_use_it_together_share_one_loaded_module() -> None:
    out = run(
        """
import threading
from sklearn.metrics._ranking import rankdata
barrier, seen = threading.Barrier(8), []
def use():
    barrier.wait()
    seen.append((rankdata([2.0, 1.0]).tolist(), id(lazy_stats.load())))
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
