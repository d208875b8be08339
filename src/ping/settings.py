"""Service configuration, read from ``PING_*`` environment variables.

This class is the configuration reference: the README's config table mirrors it,
and a test keeps the two in step.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything Ping can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="PING_",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

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

    max_rows: int = Field(default=1000, ge=1)
    """Most rows one request may carry, for `/predict` and V2 infer alike."""

    max_body_bytes: int = Field(default=1_048_576, ge=64)
    """Largest request body accepted; larger bodies get 413."""

    allow_version_mismatch: bool = False
    """Serve a model pickled by another scikit-learn version instead of staying not-ready."""

    drain_seconds: float = Field(default=0.0, ge=0)
    """After SIGTERM, keep serving with readiness at 503 this long, so load balancers
    stop sending traffic before the listener closes."""

    shutdown_grace_seconds: int = Field(default=20, ge=1)
    """After draining, how long in-flight requests get to finish before they are cancelled."""

    batch_max_rows: int = Field(default=2048, ge=1)
    """Micro-batching: most rows stacked into one `predict` call (1 turns batching off)."""

    batch_max_wait_us: int = Field(default=0, ge=0)
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
