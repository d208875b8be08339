"""Ping's own routes: predict, health, model metadata and metrics."""

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from ping.batching import Prediction, RowRefused
from ping.errors import PROBLEM_JSON, InvalidInput, ModelNotReady
from ping.fastdecode import PredictRows, predict_rows
from ping.inputs import InputSchema, request_input
from ping.model import Model, predict_answer
from ping.schemas import PredictRequest, PredictResponse
from ping.validation import parse_body, read_body

router = APIRouter()

_PROBLEM = {"model": dict[str, Any], "content": {PROBLEM_JSON: {}}}


def json_response(body: Any, status_code: int = 200) -> Response:
    """Compact JSON (``{"prediction":0}``), encoded by orjson, numpy-aware."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code,
        media_type="application/json",
    )


def ensure_ready(request: Request) -> None:
    """Raise a 503 with the reason unless the service is ready (model loaded, not draining)."""
    reason = request.app.state.readiness.reason
    if reason is not None:
        raise ModelNotReady(reason)


def loaded_model(request: Request) -> Model:
    """The served model, or a 503 that says why there is none.

    Predictions go on while draining: a load balancer may still route here until it
    has seen readiness turn 503.
    """
    model: Model | None = request.app.state.model
    if model is None:
        raise ModelNotReady(request.app.state.readiness.reason or "model is not loaded")
    return model


@router.post(
    "/predict",
    summary="Predict one row or a batch",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={n: _PROBLEM for n in (400, 408, 413, 415, 422, 503)},
    # The body is read and validated by hand (415/413/400 first, then the schema),
    # so its schema is declared for /docs here rather than as a parameter.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        }
    },
)
async def predict(request: Request) -> Response:
    """`{"features": [...]}` answers `{"prediction": ...}`; `{"instances": [[...], ...]}`
    answers `{"predictions": [...]}`. A row is a list in feature order or an object keyed
    by feature name. Class names and probabilities are opt-in, for classifiers."""
    model = loaded_model(request)
    settings = request.app.state.settings
    schema: InputSchema = request.app.state.input_schema
    with request.app.state.tracing.span("ping.validate"):
        raw = await read_body(
            request, settings.max_body_bytes, timeout=settings.body_timeout_seconds
        )
        # The common body in one pass; any other takes the strict path, which answers it
        # exactly as before (errors included).
        body = predict_rows(raw, schema, max_rows=settings.max_rows) or parse_body(raw, schema.body)
        if body.return_probabilities and not model.supports_probabilities:
            raise InvalidInput.for_field("return_probabilities", "this model has no predict_proba")
        if body.return_class_names and not model.is_classifier:
            raise InvalidInput.for_field(
                "return_class_names", "this model is a regressor: no classes"
            )
        batch = body.field == "instances"
        if isinstance(body, PredictRows):
            rows = body.matrix
        else:
            rows = request_input(
                body.rows, schema, max_rows=settings.max_rows, field=body.field, batch=batch
            )
    result = await run_model(
        request,
        rows,
        want_probabilities=body.return_probabilities,
        field=body.field,
        row_field=lambda i: f"{body.field}[{i}]" if batch else body.field,
    )
    request.app.state.metrics.count_predictions(result.labels)
    answer = predict_answer(
        model,
        result.labels,
        result.probabilities if body.return_probabilities else None,
        single=not batch,
        class_names=body.return_class_names,
    )
    return json_response(answer)


async def run_model(
    request: Request,
    rows: Any,
    *,
    want_probabilities: bool,
    field: str,
    row_field: Callable[[int], str],
) -> Prediction:
    """Predict through the micro-batcher. Input the model refuses (it raised ValueError)
    is a 422 naming the row, ``row_field(i)``, or ``field`` when no single row fails."""
    try:
        result: Prediction = await request.app.state.batcher.predict(
            rows, want_probabilities=want_probabilities
        )
    except RowRefused as exc:
        where = field if exc.row is None else row_field(exc.row)
        raise InvalidInput.for_field(
            where, f"the model cannot predict this input: {exc.reason}"
        ) from None
    return result


@router.get("/healthz", summary="Liveness: 200 while the process serves")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: 503 until the model is loaded and while draining",
    responses={503: _PROBLEM},
)
async def readyz(request: Request) -> Response:
    ensure_ready(request)
    return json_response({"status": "ready"})


@router.get("/metadata", summary="What the model artifact records", responses={503: _PROBLEM})
async def metadata(request: Request) -> Response:
    return json_response(loaded_model(request).metadata.model_dump(mode="json", exclude_none=True))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
