"""A real HTTP server on 127.0.0.1 serving an artifact directory, with scripted faults.

Faults per file name: "missing" (404), "truncated" (a Content-Length larger than the body,
then the connection closes), "slow" (headers, then silence longer than any read timeout the
tests use), "unsized" (no Content-Length, chunk by chunk, so only the byte count can cap it),
and ("redirect", URL). Anything else is served as is.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SLOW_SECONDS = 5.0


@contextmanager
def artifact_server(
    root: Path, faults: dict[str, Any] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """Serve root's files, over TLS with tls=(cert, key); yield the base URL (ending in /).
    The server is reaped on exit."""
    faults = faults or {}
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.lstrip("/").split("?")[0]
            fault = faults.get(name)
            path = root / name
            if fault == "missing" or not path.is_file():
                self._send(404, b"not found")
                return
            if isinstance(fault, tuple) and fault[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", fault[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = path.read_bytes()
            if fault == "truncated":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if fault == "slow":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                stop.wait(SLOW_SECONDS)  # the client's read timeout fires first
                self.close_connection = True
                return
            if fault == "unsized":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for start in range(0, len(body), 4096):
                    self.wfile.write(body[start : start + 4096])
                self.close_connection = True
                return
            self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
