"""The thin-stack baseline: the least any Python server pays around ``predict``.

A bare ASGI app under uvicorn: ``json.loads``, ``np.asarray``, one ``predict`` per
request, ``json.dumps``. No validation, no logging, no metrics, no batching. It
accepts the same bodies as Ping's ``POST /predict`` so both see identical load.

    BENCH_MODEL_DIR=models/iris python -m uvicorn --app-dir bench thin:app --port 9697
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ping.model import load_model

# Ping's loader (checksum, skops trust list) at start-up only; each request is bare.
_model = load_model(Path(os.environ["BENCH_MODEL_DIR"])).estimator
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = json.loads(body)
    if "features" in request:
        answer: dict[str, Any] = {
            "prediction": _model.predict(np.asarray([request["features"]])).tolist()[0]
        }
    else:
        answer = {"predictions": _model.predict(np.asarray(request["instances"])).tolist()}
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
