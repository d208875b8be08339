"""A tiny scripted HTTP server on 127.0.0.1, for proving how the helm test command fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def stub_server(routes: dict[str, list[tuple[int, str]]]) -> Iterator[tuple[str, dict[str, int]]]:
    """Serve scripted answers per path: each request takes the next (status, body); the last
    one repeats.

    Yields the base URL and a dict counting the hits per path.
    """
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script = routes.get(self.path, [(404, "not found")])
            n = hits.get(self.path, 0)
            hits[self.path] = n + 1
            status, body = script[min(n, len(script) - 1)]
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
