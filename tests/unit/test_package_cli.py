"""``pingctl package`` and ``pingctl check`` as a user runs them: real files, real processes."""

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.conftest import REPO
from tests.unit.zoo import mixed_frame

pytestmark = pytest.mark.unit


def pingctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ping", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def log_ridge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A joblib file whose model cannot predict a row of zeros (log(0) is -inf)."""
    data = load_diabetes()
    x = np.abs(data.data) + 0.01
    model = make_pipeline(FunctionTransformer(np.log), Ridge()).fit(x, data.target)
    path = tmp_path_factory.mktemp("files") / "log-ridge.joblib"
    joblib.dump(model, path)
    return path


def test_package_refuses_clearly_when_it_cannot_make_a_sample(
    log_ridge: Path, tmp_path: Path
) -> None:
    result = pingctl("package", str(log_ridge), "--output", str(tmp_path / "out"))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"ping: cannot package {log_ridge}: the model cannot predict")
    assert "--sample FILE" in result.stderr
    assert not (tmp_path / "out" / "metadata.json").exists()


def test_package_with_a_json_sample_then_check_prints_the_summary(
    log_ridge: Path, tmp_path: Path
) -> None:
    rows = (np.abs(load_diabetes().data[:2]) + 0.01).tolist()
    sample = tmp_path / "rows.json"
    sample.write_text(json.dumps({"instances": rows}))
    out = tmp_path / "log-ridge"

    packaged = pingctl(
        "package", str(log_ridge), "--output", str(out), "--sample", str(sample), "--version", "7"
    )
    checked = pingctl("check", str(out))

    assert packaged.returncode == 0, packaged.stderr
    assert f"wrote {out}/ (model.skops, metadata.json)" in packaged.stdout
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["name"] == "log-ridge"
    assert metadata["version"] == "7"
    assert metadata["task"] == "regression"
    assert metadata["sample"]["request"] == {"instances": rows}
    assert checked.returncode == 0, checked.stderr
    assert "model      log-ridge version 7 (regression)" in checked.stdout
    assert "outputs    predict FP64 [-1]" in checked.stdout
    assert "self-check ok: 2 sample rows answered as recorded" in checked.stdout


def test_package_takes_a_csv_sample_and_records_column_kinds(tmp_path: Path) -> None:
    from tests.unit.zoo import ZOO

    estimator, _ = ZOO["mixed-pipeline"]()
    model_file = tmp_path / "mixed.joblib"
    joblib.dump(estimator, model_file)
    x, _ = mixed_frame()
    x.iloc[:4].to_csv(tmp_path / "rows.csv", index=False)  # row 0 has bp missing

    result = pingctl(
        "package",
        str(model_file),
        "-o",
        str(tmp_path / "mixed"),
        "--sample",
        str(tmp_path / "rows.csv"),
    )

    assert result.returncode == 0, result.stderr
    assert "input      frame: sex (string), age (number), bmi (number), bp (number, nullable)" in (
        result.stdout
    )
    request = json.loads((tmp_path / "mixed" / "metadata.json").read_text())["sample"]["request"]
    assert request["instances"][0]["bp"] is None
    assert request["instances"][0]["sex"] in ("male", "female")


def test_check_fails_with_one_line_and_exit_2(tmp_path: Path) -> None:
    result = pingctl("check", str(tmp_path / "nothing"))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"ping: check failed: {tmp_path}/nothing/metadata.json")


def test_python_m_ping_without_a_command_still_serves() -> None:
    from ping.cli import parser

    assert not hasattr(parser().parse_args([]), "run")  # main() then calls serve
    assert parser().parse_args(["check", "x"]).run.__name__ == "_check"
