"""Run ``python -m ping`` for real on 127.0.0.1, as the image does, for the tests that need it."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(model_dir: Path, **env: str) -> Server:
    """Start ``python -m ping`` as the image does; its output is piped for inspection."""
    port = free_port()
    environment = {
        **os.environ,
        "PING_MODEL_DIR": str(model_dir),
        "PING_PORT": str(port),
        "PING_HOST": "127.0.0.1",
        "PING_ACCESS_LOG": "false",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ping"],
        env=environment,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Server(process, port)


def wait_ready(server: Server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited early: {server.process.communicate()[1]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail("server did not become ready in time")
