"""The rendered config needs no privilege: HAProxy runs it as uid 99, as in the pod."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from . import harness
from .conftest import KEYS, KEYS_FILE, VALUES, keys_text

pytestmark = pytest.mark.gateway

UID = GID = 99  # the official image's haproxy user (gateway.podSecurityContext)


@pytest.fixture
def unprivileged_root() -> Iterator[Path]:
    """A directory uid 99 can read, whose run/ and tmp/ it alone may write, as the pod's mounts."""
    root = Path(tempfile.mkdtemp(prefix="ping-gateway-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_haproxy_serves_the_rendered_config_as_uid_99(unprivileged_root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: every other gateway test already runs haproxy without privilege")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop to uid 99")
    files = harness.rendered_gateway_files(VALUES)
    port = harness.free_port()
    config = harness.localize(
        files["haproxy.cfg"],
        unprivileged_root,
        dns_port=harness.free_port(),
        http_port=port,
        upstream_port=harness.free_port(),
        services=harness.service_addresses(files["haproxy.cfg"]),
    )
    path = harness.write_gateway(files, unprivileged_root, config, keys_text(KEYS), KEYS_FILE)
    for directory in unprivileged_root.iterdir():
        directory.chmod(0o755)
        for file in directory.iterdir():
            file.chmod(0o644)  # read-only to uid 99, as the ConfigMap and Secret mounts are
    os.chown(unprivileged_root / "run", UID, GID)  # the emptyDir it writes its socket to
    log = unprivileged_root / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--no-new-privs",
             harness.haproxy_binary(), "-db", "-f", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        harness.wait_until(lambda: _healthy(port), 15, f"haproxy as uid {UID}: {log}")
        status = Path(f"/proc/{process.pid}/status").read_text()
        assert f"Uid:\t{UID}\t{UID}\t{UID}\t{UID}" in status
        assert httpx.get(f"http://127.0.0.1:{port}/predict").status_code == 401
        assert (unprivileged_root / "run" / "admin.sock").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "api_keys_loaded" in log.read_text()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
