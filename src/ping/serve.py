"""``python -m ping serve``: validate config and artifact, then serve with uvicorn.

Start-up problems (bad or unknown config, missing or tampered artifact, an address
that cannot be bound) end the process with exit code 2 and one line on stderr, not
a traceback.
"""

import asyncio
import logging
import os
import resource
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn
from pydantic import ValidationError

from ping.app import create_app
from ping.artifact import ArtifactError, version_problem
from ping.check import open_model, self_check
from ping.health import Readiness
from ping.logs import log_config
from ping.protocol import DRAIN_IDLE_SECONDS, GuardedHttpToolsProtocol, HttpLimits
from ping.settings import Settings, invalid_settings, unknown_variable
from ping.tracing import TracingError, load_tracing

EXIT_BAD_START = 2
# File descriptors beyond the connection cap: the listener, the model, logs, the runtime.
_SPARE_FDS = 64


class StartError(Exception):
    """A start-up problem, said in one line."""


class DrainingServer(uvicorn.Server):
    """Uvicorn, plus a drain phase. On SIGTERM readiness turns 503 while requests are
    still served for ``drain_seconds``: every response from then on carries
    ``Connection: close``, and idle connections are closed, so keep-alive clients move
    to other replicas while this listener is still open. Then uvicorn's graceful
    shutdown runs, and the process exits 0 rather than re-raising the signal."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness, drain_seconds: float) -> None:
        super().__init__(config)
        self.readiness = readiness
        self.drain_seconds = drain_seconds
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between any two bytecodes, even inside uvicorn writing a
        # response, so it only sets flags; connections are dealt with on the loop's tick.
        if sig == signal.SIGTERM and self.drain_deadline is None:
            self.readiness.draining = True
            self.drain_deadline = time.monotonic() + self.drain_seconds
            return  # not recorded as captured, so uvicorn will not re-raise it at exit
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None:
            if time.monotonic() >= self.drain_deadline:
                return True
            now = asyncio.get_running_loop().time()
            for connection in list(self.server_state.connections):
                if isinstance(connection, GuardedHttpToolsProtocol):
                    connection.close_after_response()
                    connection.close_if_idle(now, DRAIN_IDLE_SECONDS)
        return await super().on_tick(counter)


def bind(settings: Settings) -> socket.socket:
    """The listening socket, bound now so that a taken or invalid address is one line."""
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        raise StartError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    return sock


def raise_fd_limit(max_connections: int) -> None:
    """Raise the soft open-file limit so the connection cap is reached before it is."""
    needed = max_connections + _SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise StartError(
                f"PING_MAX_CONNECTIONS={max_connections} needs {needed} open files, "
                f"but the hard limit is {hard}; lower it or raise `ulimit -n`"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def serve() -> int:
    """Serve until SIGTERM or SIGINT; the exit code is the process's."""
    try:
        if problem := unknown_variable(os.environ):
            raise StartError(f"invalid configuration: {problem}")
        settings = Settings()
        model = open_model(settings)
        if version_problem(model.metadata) is None or settings.allow_version_mismatch:
            self_check(model)  # a model that cannot answer its own sample is never ready
        tracing = load_tracing(settings)
        raise_fd_limit(settings.max_connections)
        sock = bind(settings)
    except ValidationError as exc:
        print(f"ping: {invalid_settings(exc)}", file=sys.stderr)
        return EXIT_BAD_START
    except ArtifactError as exc:
        print(f"ping: cannot serve: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    except StartError as exc:
        print(f"ping: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    except TracingError as exc:
        print(f"ping: cannot trace: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    # Warnings raised while predicting (scikit-learn's, numpy's) become JSON log lines,
    # once per kind (logs.OncePerKind), instead of raw stderr. This adds no warnings
    # filter: each one costs a forest predict ~170 us (PERF-NOTES.md, trap 1).
    logging.captureWarnings(True)
    app = create_app(settings, model=model, tracing=tracing)
    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_request_line_bytes=settings.max_request_line_bytes,
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        max_connections=settings.max_connections,
    )
    config = uvicorn.Config(
        app,
        http=GuardedHttpToolsProtocol.with_limits(limits, app.state.readiness),
        log_config=log_config(settings.log_level),
        access_log=False,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        server_header=False,
    )
    server = DrainingServer(config, app.state.readiness, settings.drain_seconds)
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else EXIT_BAD_START
