"""Service configuration, read from ``PING_*`` environment variables.

This class is the configuration reference: the README's config table mirrors it,
and a test keeps the two in step. Every number is finite and bounded, so a typo
such as ``PING_DRAIN_SECONDS=inf`` fails at start-up rather than at the next rollout.
"""

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PING_"


class Settings(BaseSettings):
    """Everything Ping can be configured with.

    Each field's docstring is its documentation (the README's config table). pydantic's
    ``use_attribute_docstrings`` is off: at import it reads and parses this file and asks
    every loaded module for its file (inspect.getmodule), which costs the server ~60 ms of
    start-up and loads the modules ping.startup defers, for descriptions nothing reads at
    run time. tests/unit/test_settings.py reads the docstrings instead.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    model_dir: Path = Path("models/iris")
    """Artifact directory: `metadata.json` and the model file (`pingctl package` makes one)."""

    trusted_types: Annotated[tuple[str, ...], NoDecode] = ()
    """Comma-separated types to trust in a skops model file besides scikit-learn's, numpy's
    and scipy's own, e.g. `mylib.MyTransformer`; only for code you trust."""

    allow_pickle: bool = False
    """Load joblib/pickle model files. This runs code from the file: only for your own."""

    host: str = "127.0.0.1"
    """Address to bind; the image sets `0.0.0.0`."""

    port: int = Field(default=9696, ge=1, le=65535)
    """TCP port to listen on."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level for the service's own and uvicorn's loggers."""

    access_log: bool = True
    """Write one JSON log line per request."""

    docs: bool = True
    """Serve `/docs` (Swagger UI, from the installed package) and `/openapi.json`."""

    max_rows: int = Field(default=1000, ge=1, le=1_000_000)
    """Most rows one request may carry, for `/predict` and V2 infer alike."""

    max_body_bytes: int = Field(default=1_048_576, ge=64, le=1_073_741_824)
    """Largest request body accepted; larger bodies get 413."""

    max_header_bytes: int = Field(default=32_768, ge=1024, le=1_048_576)
    """Largest request header block (request line and headers); larger ones get 431."""

    max_headers: int = Field(default=100, ge=8, le=1000)
    """Most header fields one request may carry; more get 431."""

    max_request_line_bytes: int = Field(default=8192, ge=256, le=65_536)
    """Longest request target (path and query); longer ones get 414."""

    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    """Time from a request's first byte to the end of its headers; slower clients get 408."""

    body_timeout_seconds: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    """Time to receive a request body once its headers are in; slower clients get 408."""

    keep_alive_seconds: float = Field(default=5.0, gt=0, le=3600, allow_inf_nan=False)
    """Idle time after which a connection with no request in progress is closed. Keep it
    above the idle timeout of any load balancer that pools connections to Ping."""

    max_connections: int = Field(default=1000, ge=1, le=100_000)
    """Most open client connections; further ones get 503 and are closed at once."""

    max_queued_rows: int = Field(default=8192, ge=1, le=10_000_000)
    """Backpressure: rows waiting for the model past which new predictions get 503 with
    `Retry-After`, instead of waiting ever longer."""

    allow_version_mismatch: bool = False
    """Serve a model pickled by another scikit-learn version instead of staying not-ready."""

    drain_seconds: float = Field(default=0.0, ge=0, le=600, allow_inf_nan=False)
    """After SIGTERM, keep serving with readiness at 503 this long, so load balancers
    stop sending traffic before the listener closes. Every response then carries
    `Connection: close`, and idle connections are closed."""

    shutdown_grace_seconds: int = Field(default=20, ge=1, le=600)
    """After draining, how long in-flight requests get to finish before they are cancelled."""

    batch_max_rows: int = Field(default=2048, ge=1, le=1_000_000)
    """Micro-batching: most rows stacked into one `predict` call (1 turns batching off)."""

    batch_max_wait_us: int = Field(default=0, ge=0, le=60_000_000)
    """Micro-batching: how long a batch may wait for more rows, in microseconds."""

    tracing: bool = False
    """Send OpenTelemetry traces, configured by the standard `OTEL_*` variables (README
    "Operate it"); `OTEL_SDK_DISABLED=true` still turns them off."""

    @field_validator("trusted_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


def invalid_settings(exc: ValidationError) -> str:
    """One line naming each invalid variable and why, for a command that stops on it."""
    problems = [f"PING_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
    return "invalid configuration: " + "; ".join(problems)


def unknown_variable(environ: Mapping[str, str]) -> str | None:
    """A sentence naming the first ``PING_*`` variable that is no setting, or None.

    pydantic-settings ignores unknown variables, so ``PING_MAX_ROW=5`` would run with
    the default: a misspelt setting must stop the start instead.
    """
    known = sorted(name.upper() for name in Settings.model_fields)
    for variable in sorted(environ):
        name = variable.upper().removeprefix(ENV_PREFIX)
        if variable.upper().startswith(ENV_PREFIX) and name not in known:
            # Compared without the shared prefix, which would make everything look close.
            close = difflib.get_close_matches(name, known, n=1)
            hint = (
                f"; did you mean {ENV_PREFIX}{close[0]}?"
                if close
                else f"; known: {', '.join(ENV_PREFIX + k for k in known)}"
            )
            return f"unknown setting {variable}{hint}"
    return None
