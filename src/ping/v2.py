"""The Open Inference Protocol (V2 REST) routes beside /predict: same validator, batcher, errors.

Every model route also answers under ``/versions/{version}``. The input is one
``[rows, n_features]`` tensor in any numeric datatype (computed as FP64), or one tensor
per named column (MLServer's pandas-codec convention; BYTES for strings, BOOL for
booleans). The outputs are ``predict`` (class labels as INT64 or BYTES, regression
values as FP64, ``[rows, k]`` for k outputs) and, where the model has it,
``predict_proba`` (in ``metadata.classes`` order). Outputs always come back as JSON
``data``; the binary and shared-memory tensor extensions are refused with a 4xx.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

import ping
from ping.api import ensure_ready, json_response, loaded_model, run_model
from ping.batching import Prediction
from ping.errors import (
    PROBLEM_JSON,
    FieldError,
    InvalidInput,
    NotFound,
    UnsupportedMediaType,
)
from ping.fastdecode import InferRows, infer_rows
from ping.model import Model, ModelMetadata
from ping.schemas import (
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
)
from ping.tensors import model_input
from ping.validation import body_headers, parse_body, read_body

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

INPUT = "input-0"  # the name KServe's sklearn server gives its input; any name is accepted
_COLUMN_DATATYPES = {"number": "FP64", "integer": "INT64", "string": "BYTES", "boolean": "BOOL"}
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
# orjson writes a one-row answer faster from lists than from numpy arrays (~0.6 µs, 1,850
# of 15,700 instructions), and 100 rows' ~4 µs slower: the crossover is near 16 values.
SHORT_TENSOR = 16
# What a model answers when no output is named, by whether it has predict_proba.
_EVERY_OUTPUT = {False: (PREDICT,), True: (PREDICT, PREDICT_PROBA)}

_PROBLEM = {"model": dict[str, Any], "content": {PROBLEM_JSON: {}}}
_VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}

Endpoint = Callable[..., Any]


def _model_route(path: str, method: str = "GET", **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
    """Register ``/models/{name}<path>`` and ``/models/{name}/versions/{version}<path>``.

    The endpoint reads ``version`` from ``request.path_params``, so that the unversioned
    route has no stray ``version`` query parameter.
    """

    extra = kwargs.pop("openapi_extra", {})

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            f"/models/{{name}}{path}", endpoint, methods=[method], openapi_extra=extra, **kwargs
        )
        router.add_api_route(
            f"/models/{{name}}/versions/{{version}}{path}",
            endpoint,
            methods=[method],
            openapi_extra={**extra, "parameters": [_VERSION_PARAM]},
            **kwargs,
        )
        return endpoint

    return register


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return json_response({"name": "ping", "version": ping.__version__, "extensions": []})


@router.get("/health/live", summary="Liveness: 200 while the process serves")
async def live() -> Response:
    return json_response({"live": True})


@router.get(
    "/health/ready",
    summary="Readiness: 503 until the model is loaded and while draining",
    responses={503: _PROBLEM},
)
async def ready(request: Request) -> Response:
    ensure_ready(request)
    return json_response({"ready": True})


@_model_route("/ready", summary="Model readiness", responses={404: _PROBLEM, 503: _PROBLEM})
async def model_ready(request: Request, name: str) -> Response:
    model: Model | None = request.app.state.model
    if model is not None:
        _check_address(model.metadata, name, request.path_params.get("version"))
    ensure_ready(request)
    return json_response({"name": name, "ready": True})


@_model_route(
    "",
    summary="Model metadata: the input and the outputs",
    response_model=V2ModelMetadata,
    responses={404: _PROBLEM, 503: _PROBLEM},
)
async def model_metadata(request: Request, name: str) -> Response:
    model = _served_model(request, name)
    meta = model.metadata
    outputs = [
        {"name": name, "datatype": tensor.datatype, "shape": tensor.shape}
        for name, tensor in meta.outputs.items()
    ]
    if meta.input == "frame":  # MLServer's pandas-codec convention: one tensor per column
        inputs = [
            {"name": c.name, "datatype": _COLUMN_DATATYPES[c.kind], "shape": [-1, 1]}
            for c in meta.columns
        ]
    else:
        inputs = [{"name": INPUT, "datatype": "FP64", "shape": [-1, meta.n_features]}]
    return json_response(
        {
            "name": meta.name,
            "versions": [meta.version],
            "platform": "sklearn",
            "inputs": inputs,
            "outputs": outputs,
        }
    )


@_model_route(
    "/infer",
    method="POST",
    summary="Infer: one [rows, n_features] tensor or one tensor per column in; "
    "predict and/or predict_proba out",
    response_model=V2InferResponse,
    response_model_exclude_none=True,
    responses={n: _PROBLEM for n in (400, 404, 408, 413, 415, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": V2InferRequest.model_json_schema()}},
        }
    },
)
async def infer(request: Request, name: str) -> Response:
    model = _served_model(request, name)
    meta = model.metadata
    headers = body_headers(request)
    if b"inference-header-content-length" in headers:
        reason = "binary tensor data is not supported; send the tensor as JSON `data`"
        raise UnsupportedMediaType(reason, [FieldError("Inference-Header-Content-Length", reason)])
    settings = request.app.state.settings
    with request.app.state.tracing.span("ping.validate"):
        # tritonclient and KServe's client send infer bodies without a Content-Type.
        raw = await read_body(
            request,
            settings.max_body_bytes,
            timeout=settings.body_timeout_seconds,
            untyped_is_json=True,
            headers=headers,
        )
        schema = request.app.state.input_schema
        # One numeric tensor (the common body) in one pass; any other takes the strict
        # path, which answers it exactly as before (errors included).
        body = infer_rows(raw, schema, max_rows=settings.max_rows) or parse_body(
            raw, V2InferRequest
        )
        if body.model_name is not None and body.model_name != name:
            reason = f"the body names {body.model_name!r} but the URL names {name!r}"
            raise InvalidInput.for_field("model_name", reason)
        wanted = _requested_outputs(body, model)
        if isinstance(body, InferRows):
            rows = body.matrix
        else:
            rows = model_input(body.inputs, schema, max_rows=settings.max_rows)
    result = await run_model(
        request,
        rows,
        want_probabilities=PREDICT_PROBA in wanted,
        field="inputs",
        row_field=lambda i: f"inputs[*].data[{i}]",
    )
    request.app.state.metrics.count_predictions(result.labels)

    answer: dict[str, Any] = {"model_name": meta.name, "model_version": meta.version}
    if body.id is not None:
        answer["id"] = body.id
    answer["outputs"] = _output_tensors(wanted, result, meta)
    return json_response(answer)


def _output_tensors(
    wanted: Sequence[str], result: Prediction, meta: ModelMetadata
) -> list[dict[str, Any]]:
    """The output tensors, in ``wanted`` order; data flat in row-major order. One loop,
    not a call per tensor: this runs for every request."""
    tensors = []
    for name in wanted:
        if name == PREDICT:
            datatype = meta.outputs["predict"].datatype
            values = result.labels
            if datatype == "INT64":
                data = _numbers(values.astype(np.int64, copy=False))
            elif datatype == "BYTES":
                data = values.tolist()
            else:
                data = _numbers(values.ravel())
        else:
            assert result.probabilities is not None  # asked for whenever predict_proba is
            datatype, values = "FP64", result.probabilities
            data = _numbers(values.ravel())
        tensors.append({"name": name, "shape": values.shape, "datatype": datatype, "data": data})
    return tensors


def _numbers(values: np.ndarray) -> Any:
    """What orjson writes fastest as ``values``: a list up to ``SHORT_TENSOR`` values, the
    array itself beyond. Either way it writes the same bytes."""
    return values.tolist() if values.size <= SHORT_TENSOR else values


def _requested_outputs(body: V2InferRequest | InferRows, model: Model) -> Sequence[str]:
    """The output names to answer, in the order asked; all of them when none are named."""
    available = _EVERY_OUTPUT[model.supports_probabilities]
    if not body.outputs:
        return available
    wanted: list[str] = []
    for i, output in enumerate(body.outputs):
        field = f"outputs[{i}]"
        if output.name not in available:
            reason = f"unknown output {output.name!r}; expected one of {list(available)}"
            raise InvalidInput.for_field(f"{field}.name", reason)
        if output.name in wanted:
            raise InvalidInput.for_field(
                f"{field}.name", f"output {output.name!r} is requested twice"
            )
        if "classification" in (output.parameters or {}):
            raise InvalidInput.for_field(
                f"{field}.parameters.classification",
                "the classification extension is not supported; ask for predict_proba",
            )
        wanted.append(output.name)
    return wanted


def _served_model(request: Request, name: str) -> Model:
    model = loaded_model(request)
    _check_address(model.metadata, name, request.scope["path_params"].get("version"))
    return model


def _check_address(meta: ModelMetadata, name: str, version: str | None) -> None:
    """404 unless the URL names the served model (and, if given, its version)."""
    if name != meta.name:
        reason = f"model {name!r} is not served here; this server serves {meta.name!r}"
        raise NotFound(reason, [FieldError("name", reason)])
    if version is not None and version != meta.version:
        reason = f"model {name!r} has no version {version!r}; it serves version {meta.version!r}"
        raise NotFound(reason, [FieldError("version", reason)])
