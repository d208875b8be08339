"""The fast lane answers exactly what FastAPI's routing answers, without going through it.

Every request of the bad-input tables (and good ones) is sent to two apps on the same
model, one with the lane and one without, and the answers must be the same: status,
body, media type and headers, but for the request id, which is fixed by the client.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from tests.conftest import SEED_ROW
from tests.unit.test_bad_input import CASES as PREDICT_CASES
from tests.unit.test_v2 import ERRORS as V2_ERRORS

from ping import api, v2
from ping.app import create_app, problem_response
from ping.fastlane import KNOWN_PATHS, FastLane
from ping.settings import Settings

pytestmark = pytest.mark.unit

JSON = {"Content-Type": "application/json"}
INFER = "/v2/models/iris/infer"
V2_ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": SEED_ROW}]}

# (id, method, path, raw body, headers)
REQUESTS: list[tuple[str, str, str, bytes, dict[str, str]]] = [
    ("one row", "POST", "/predict", json.dumps({"features": SEED_ROW}).encode(), JSON),
    (
        "a batch, with names and probabilities",
        "POST",
        "/predict",
        json.dumps(
            {
                "instances": [SEED_ROW, [6.3, 2.5, 5.0, 1.9]],
                "return_probabilities": True,
                "return_class_names": True,
            }
        ).encode(),
        JSON,
    ),
    ("V2", "POST", INFER, json.dumps(V2_ROW).encode(), {}),
    ("V2, versioned", "POST", "/v2/models/iris/versions/1/infer", json.dumps(V2_ROW).encode(), {}),
    ("V2, another model", "POST", "/v2/models/other/infer", json.dumps(V2_ROW).encode(), {}),
    ("GET on /predict (405)", "GET", "/predict", b"", {}),
    ("PUT on infer (405)", "PUT", INFER, json.dumps(V2_ROW).encode(), {}),
    (
        "trailing slash (404)",
        "POST",
        "/predict/",
        json.dumps({"features": SEED_ROW}).encode(),
        JSON,
    ),
    *[(f"predict: {c[0]}", "POST", "/predict", c[1], c[2]) for c in PREDICT_CASES],
    *[(f"V2: {e[0]}", "POST", INFER, json.dumps(e[1]).encode(), JSON) for e in V2_ERRORS],
]


def without_lane(settings: Settings) -> Any:
    app = create_app(settings)
    for middleware in app.user_middleware:
        if middleware.cls is FastLane:
            middleware.kwargs["enabled"] = False
    return app


@pytest.fixture(scope="module")
def clients(model_dir: Path) -> Iterator[tuple[TestClient, TestClient]]:
    settings = Settings(model_dir=model_dir)
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as lane,
        TestClient(without_lane(settings), raise_server_exceptions=False) as fastapi,
    ):
        yield lane, fastapi


def answer(client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    response = client.request(
        method, path, content=body or None, headers={**headers, "X-Request-ID": "same-id"}
    )
    return response.status_code, response.content, dict(response.headers)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"), [pytest.param(*r[1:], id=r[0]) for r in REQUESTS]
)
def test_lane_answers_as_fastapi_routing_does(
    clients: tuple[TestClient, TestClient],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    lane, fastapi = clients

    assert answer(lane, method, path, body, headers) == answer(fastapi, method, path, body, headers)


def test_prediction_routes_never_reach_fastapi_routing(model_dir: Path) -> None:
    app = create_app(Settings(model_dir=model_dir))
    routed: list[str] = []

    async def note_and_refuse(scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["path"])
        await Response(status_code=599)(scope, receive, send)

    # What FastAPI's router runs for a route it selected, if it ever got these.
    lane_routes = [
        route
        for route in (*api.router.routes, *v2.router.routes)
        if isinstance(route, APIRoute) and route.endpoint in (api.predict, v2.infer)
    ]
    for route in lane_routes:
        route.handle = note_and_refuse  # type: ignore[method-assign]
    try:
        with TestClient(app) as client:
            single = client.post("/predict", json={"features": SEED_ROW})
            infer = client.post(INFER, json=V2_ROW)
            again = client.post(INFER, json=V2_ROW, headers={"X-Request-ID": "x"})
            metrics = client.get("/metrics").text
        with TestClient(without_lane(Settings(model_dir=model_dir))) as client:
            through_fastapi = client.post("/predict", json={"features": SEED_ROW})
    finally:
        for route in lane_routes:
            del route.handle

    assert (single.status_code, single.json()) == (200, {"prediction": 0})
    assert infer.status_code == again.status_code == 200
    assert through_fastapi.status_code == 599, (
        "the spy must see FastAPI's routing, or this proves nothing"
    )
    assert routed == ["/predict"]
    assert 'ping_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics
    assert 'route="/v2/models/{name}/infer",status="200"} 2.0' in metrics


def test_an_endpoint_that_needs_dependency_injection_is_refused() -> None:
    async def endpoint(request: Request, limit: int) -> Response:
        return Response()

    with pytest.raises(TypeError, match=r"takes \(request, \*path parameters\)"):
        FastLane(
            app=api.router,
            routes=[APIRoute("/things/{name}", endpoint, methods=["POST"])],
            on_error=problem_response,
            enabled=True,
        )


def test_remembered_paths_are_bounded_and_each_request_gets_its_own_parameters() -> None:
    seen: list[str] = []

    async def endpoint(request: Request, name: str) -> Response:
        seen.append(name)
        request.path_params["name"] = "changed by the endpoint"  # must not leak
        return Response(name)

    async def not_mine(scope: Scope, receive: Receive, send: Send) -> None:
        await Response(status_code=404)(scope, receive, send)

    lane = FastLane(
        app=not_mine,
        routes=[APIRoute("/things/{name}/do", endpoint, methods=["POST"])],
        on_error=problem_response,
        enabled=True,
    )
    client = TestClient(lane)
    names = [f"n{i}" for i in range(KNOWN_PATHS + 10)]
    answers = [client.post(f"/things/{name}/do").text for name in names * 2]

    assert answers == names * 2  # past the bound too, and again once remembered
    assert seen == names * 2
    assert len(lane._known) == KNOWN_PATHS
    assert client.post("/things/a/b/do").status_code == 404  # still not this route
