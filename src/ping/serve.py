"""``python -m ping serve``: validate config and artifact, then serve with uvicorn.

Start-up problems (bad config, missing or tampered artifact) end the process with
exit code 2 and one line on stderr, not a traceback.
"""

import logging
import signal
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
from ping.settings import Settings
from ping.tracing import TracingError, load_tracing

EXIT_BAD_START = 2


class DrainingServer(uvicorn.Server):
    """Uvicorn, plus a drain phase: on SIGTERM readiness turns 503 while requests are
    still served for ``drain_seconds``; then uvicorn's graceful shutdown runs, and
    the process exits 0 rather than re-raising the signal."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness, drain_seconds: float) -> None:
        super().__init__(config)
        self.readiness = readiness
        self.drain_seconds = drain_seconds
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_deadline is None:
            self.readiness.draining = True
            self.drain_deadline = time.monotonic() + self.drain_seconds
            return  # not recorded as captured, so uvicorn will not re-raise it at exit
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            return True
        return await super().on_tick(counter)


def _one_line(exc: ValidationError) -> str:
    problems = [f"PING_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
    return "invalid configuration: " + "; ".join(problems)


def serve() -> int:
    """Serve until SIGTERM or SIGINT; the exit code is the process's."""
    try:
        settings = Settings()
        model = open_model(settings)
        if version_problem(model.metadata) is None or settings.allow_version_mismatch:
            self_check(model)  # a model that cannot answer its own sample is never ready
        tracing = load_tracing(settings)
    except ValidationError as exc:
        print(f"ping: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_START
    except ArtifactError as exc:
        print(f"ping: cannot serve: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    except TracingError as exc:
        print(f"ping: cannot trace: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    # Warnings raised while predicting (scikit-learn's, numpy's) become JSON log lines,
    # once per kind (logs.OncePerKind), instead of raw stderr. This adds no warnings
    # filter: each one costs a forest predict ~170 us (PERF-NOTES.md, trap 1).
    logging.captureWarnings(True)
    app = create_app(settings, model=model, tracing=tracing)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config(settings.log_level),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        server_header=False,
    )
    server = DrainingServer(config, app.state.readiness, settings.drain_seconds)
    server.run()
    return 0 if server.started else EXIT_BAD_START
