"""JSON log lines, one object per line, for the service and uvicorn alike."""

import json
import logging
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; fields given with ``extra=`` become members."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class OncePerKind(logging.Filter):
    """Lets each kind of warning through once: its category and its message's first line.

    scikit-learn's forest resets Python's own once-per-location bookkeeping on every
    call, so without this a warning raised per predict would be logged per request.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        # captureWarnings formats "path:line: Category: message\n  source line".
        text = record.getMessage().split("\n", 1)[0]
        kind = text.split(": ", 1)[1] if ": " in text else text
        if kind in self._seen:
            return False
        if len(self._seen) < 1000:  # bounded: messages may embed values
            self._seen.add(kind)
        return True


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: JSON to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"once_per_kind": {"()": OncePerKind}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # Uvicorn's own access log is off; ping.access writes one richer line per request.
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            # Python warnings, once logging.captureWarnings(True) routes them here.
            "py.warnings": {"filters": ["once_per_kind"]},
        },
    }
