"""`python -m ping fetch`: a real HTTP server on 127.0.0.1, the real command, every failure.

Each failure must exit non-zero with exactly one line on stderr, and leave nothing in the
destination that Ping could mistake for an artifact.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.artifact_server import SLOW_SECONDS, artifact_server

from ping.fetch import FetchError, Limits, check_url
from ping.model import load_model

pytestmark = pytest.mark.unit


def fetch(url: str, dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ping", "fetch", url, str(dest), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_failed_with_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ping fetch: ")
    for word in words:
        assert word in lines[0]


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == [], list(dest.iterdir())


@pytest.fixture
def artifact(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the iris artifact, so a test may damage it."""
    return Path(shutil.copytree(model_dir, tmp_path / "served"))


@pytest.fixture
def model_file(artifact: Path) -> str:
    """The artifact's model file name, whatever its format."""
    (name,) = [p.name for p in artifact.iterdir() if p.name != "metadata.json"]
    return name


def test_it_fetches_a_verified_artifact_that_ping_then_loads(
    artifact: Path, model_file: str, tmp_path: Path
) -> None:
    dest = tmp_path / "model"
    with artifact_server(artifact) as url:
        result = fetch(url, dest)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == sorted(["metadata.json", model_file])
    for name in ("metadata.json", model_file):
        assert (dest / name).read_bytes() == (artifact / name).read_bytes()
    assert load_model(dest).metadata.name == "iris"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA, server cert, server key): a throwaway CA that signed a cert for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert, san = (
        d / n for n in ("ca.key", "ca.crt", "k", "csr", "crt", "san")
    )
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
         "-extfile", san, "-out", cert],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


def test_https_with_the_stores_ca_fetches_the_artifact(
    artifact: Path, tmp_path: Path, certificate: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = certificate
    with artifact_server(artifact, tls=(cert, key)) as url:
        assert url.startswith("https://")
        result = fetch(url, tmp_path / "model", "--ca-file", str(ca))
    assert result.returncode == 0, result.stderr
    assert load_model(tmp_path / "model").metadata.name == "iris"


def test_https_with_an_untrusted_certificate_fails_with_one_line(
    artifact: Path, tmp_path: Path, certificate: tuple[Path, Path, Path]
) -> None:
    _, cert, key = certificate
    with artifact_server(artifact, tls=(cert, key)) as url:
        result = fetch(url, tmp_path / "model")  # the system CAs do not know this one
    assert_failed_with_one_line(result, "metadata.json", "certificate verify failed")
    assert_nothing_written(tmp_path / "model")


def test_a_missing_ca_file_fails_with_one_line(artifact: Path, tmp_path: Path) -> None:
    with artifact_server(artifact) as url:
        result = fetch(url, tmp_path / "model", "--ca-file", str(tmp_path / "nope.pem"))
    assert_failed_with_one_line(result, "nope.pem")


def test_a_killed_fetchs_leftovers_are_cleared_and_an_old_artifact_replaced(
    artifact: Path, model_file: str, tmp_path: Path
) -> None:
    dest = tmp_path / "model"
    (dest / ".fetch-killed").mkdir(parents=True)
    (dest / ".fetch-killed" / model_file).write_bytes(b"half a file")
    (dest / "metadata.json").write_text("{}")  # an older artifact, from the pod's last start
    with artifact_server(artifact) as url:
        result = fetch(url, dest)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(["metadata.json", model_file])
    assert load_model(dest).metadata.name == "iris"


def test_a_url_without_a_trailing_slash_names_the_directory(artifact: Path, tmp_path: Path) -> None:
    nested = artifact.parent / "bucket" / "iris" / "v1"
    shutil.copytree(artifact, nested)
    with artifact_server(artifact.parent) as url:
        result = fetch(url + "bucket/iris/v1", tmp_path / "model")
    assert result.returncode == 0, result.stderr


def test_the_model_file_metadata_names_is_the_one_fetched(
    artifact: Path, model_file: str, tmp_path: Path
) -> None:
    (artifact / model_file).rename(artifact / "iris-v1.bin")
    metadata = json.loads((artifact / "metadata.json").read_text())
    (artifact / "metadata.json").write_text(json.dumps({**metadata, "model_file": "iris-v1.bin"}))
    with artifact_server(artifact) as url:
        result = fetch(url, tmp_path / "model")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "iris-v1.bin").is_file()


def test_a_model_file_name_with_a_path_is_refused(artifact: Path, tmp_path: Path) -> None:
    metadata = json.loads((artifact / "metadata.json").read_text())
    (artifact / "metadata.json").write_text(json.dumps({**metadata, "model_file": "../x"}))
    with artifact_server(artifact) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, "not a plain file name")
    assert_nothing_written(tmp_path / "model")


@pytest.mark.parametrize("missing", ["metadata.json", "model"])
def test_a_404_fails_with_one_line(
    artifact: Path, model_file: str, tmp_path: Path, missing: str
) -> None:
    missing = model_file if missing == "model" else missing
    with artifact_server(artifact, {missing: "missing"}) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, missing, "404")
    assert_nothing_written(tmp_path / "model")


@pytest.mark.parametrize("damaged", ["metadata.json", "model"])
def test_a_truncated_file_fails_with_one_line(
    artifact: Path, model_file: str, tmp_path: Path, damaged: str
) -> None:
    damaged = model_file if damaged == "model" else damaged
    with artifact_server(artifact, {damaged: "truncated"}) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, damaged, "truncated")
    assert_nothing_written(tmp_path / "model")


def test_a_sha256_mismatch_fails_with_one_line(
    artifact: Path, model_file: str, tmp_path: Path
) -> None:
    with (artifact / model_file).open("ab") as model:
        model.write(b"\0")  # a swapped or corrupted model: same name, other bytes
    with artifact_server(artifact) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, "sha256", "does not match")
    assert_nothing_written(tmp_path / "model")


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "no-content-length"])
def test_a_body_over_the_size_cap_fails_with_one_line(
    artifact: Path, model_file: str, tmp_path: Path, sized: bool
) -> None:
    cap = (artifact / model_file).stat().st_size - 1
    faults = {} if sized else {model_file: "unsized"}
    with artifact_server(artifact, faults) as url:
        result = fetch(url, tmp_path / "model", "--max-bytes", str(cap))
    assert_failed_with_one_line(result, model_file, f"over the {cap}-byte cap")
    assert_nothing_written(tmp_path / "model")


def test_a_slow_server_hits_the_read_timeout(
    artifact: Path, model_file: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    with artifact_server(artifact, {model_file: "slow"}) as url:
        result = fetch(url, tmp_path / "model", "--read-timeout", "0.5")
    assert_failed_with_one_line(result, model_file, "timed out")
    # Bounded by the timeout, not by the server's silence (generous for a loaded machine).
    assert time.monotonic() - began < SLOW_SECONDS + 10
    assert_nothing_written(tmp_path / "model")


def test_metadata_that_is_not_json_fails_with_one_line(artifact: Path, tmp_path: Path) -> None:
    (artifact / "metadata.json").write_text("<html>login page</html>")
    with artifact_server(artifact) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, "not valid JSON")


def test_a_refused_connection_fails_with_one_line(tmp_path: Path) -> None:
    with artifact_server(tmp_path) as url:
        pass  # the server is gone: nothing listens on its port now
    assert_failed_with_one_line(fetch(url, tmp_path / "model"), "refused")


def test_a_redirect_to_plain_http_elsewhere_is_refused(artifact: Path, tmp_path: Path) -> None:
    faults = {"metadata.json": ("redirect", "http://models.example.test/metadata.json")}
    with artifact_server(artifact, faults) as url:
        result = fetch(url, tmp_path / "model")
    assert_failed_with_one_line(result, "plain http is refused")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://models.example.test/iris/", "plain http is refused"),
        ("ftp://models.example.test/iris/", "unsupported scheme"),
        ("s3://bucket/iris/", "unsupported scheme"),
        ("file:///etc/", "unsupported scheme"),
    ],
)
def test_only_https_or_loopback_http_is_allowed(url: str, complaint: str) -> None:
    with pytest.raises(FetchError, match=complaint):
        check_url(url, Limits())


def test_allow_http_opens_plain_http_on_purpose() -> None:
    check_url("http://models.internal/iris/", Limits(allow_http=True))
    check_url("http://[::1]:8080/iris/", Limits())
    check_url("https://models.example.test/iris/", Limits())
