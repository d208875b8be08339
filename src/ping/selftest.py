"""``python -m ping selftest URL``: prove that a running Ping answers as its artifact recorded.

The chart's ``helm test`` pod runs this in Ping's own image, so the test needs no model's
answer in values: it waits for readiness, reads the sample that ``metadata.json`` records
(``sample.request``, ``sample.response``) from ``GET /metadata``, POSTs the request to
``/predict``, and compares the answer with the recorded response, floats within a tight
tolerance (the artifact contract's rtol 1e-9, atol 1e-12) and everything else exactly.

For the bundled iris model it also POSTs the seed payload and expects exactly
``{"prediction":0}``, byte for byte, as the quick start promises. ``--request`` and
``--expect`` override the sample (the chart's ``test.request`` and ``test.expect``).

Through the chart's gateway, URL is the model's route on the gateway, ``--ready-url`` the
gateway (its /readyz), ``--metadata-url`` the model's own Service (the gateway publishes only
/predict and /v2), and ``--api-key-from-env`` names the variable holding the Secret's
``<client> <key>`` lines: a request without a key must get 401, and the predictions go with the
first key, which is never printed.

Standard library only. Exits 0 when every check passes, else 1 with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

REL_TOL = 1e-9
ABS_TOL = 1e-12
EXIT_FAILED = 1
# The bundled model: training/'s iris, which the quick start's seed payload targets.
IRIS_FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]
SEED_REQUEST = {"features": [5.1, 3.5, 1.4, 0.2]}
SEED_RESPONSE = b'{"prediction":0}'


class SelftestFailed(Exception):
    """A check failed; the message is one line."""


def mismatch(want: Any, got: Any, where: str = "$") -> str | None:
    """Where got differs from want, or None: numbers within the tolerance (integers exactly),
    everything else exactly, with strings, numbers, booleans and null never equal to each other."""
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        same = type(want) is type(got) and want == got
    elif isinstance(want, int) and isinstance(got, int):
        same = want == got
    elif isinstance(want, int | float) and isinstance(got, int | float):
        # JSON has one number type, and values pass through helm as float64 (1 and 1.0 agree).
        same = math.isclose(want, got, rel_tol=REL_TOL, abs_tol=ABS_TOL) or (
            math.isnan(want) and math.isnan(got)
        )
    elif isinstance(want, dict) and isinstance(got, dict):
        if want.keys() != got.keys():
            return f"{where}: keys {sorted(got)} but want {sorted(want)}"
        for key in want:
            if problem := mismatch(want[key], got[key], f"{where}.{key}"):
                return problem
        return None
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return f"{where}: {len(got)} items but want {len(want)}"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            if problem := mismatch(w, g, f"{where}[{i}]"):
                return problem
        return None
    else:
        same = type(want) is type(got) and want == got
    if same:
        return None
    return f"{where}: got {json.dumps(got)}, want {json.dumps(want)}"


class Client:
    """Plain HTTP to one Ping (or its gateway route), each request bounded by a timeout."""

    def __init__(self, url: str, timeout: float, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key

    def call(self, path: str, body: Any = None, *, keyless: bool = False) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key and not keyless:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, path: str, body: Any = None) -> Any:
        """A 200 JSON answer, or SelftestFailed naming the path and what came back."""
        try:
            status, raw = self.call(path, body)
        except (OSError, urllib.error.URLError) as exc:
            raise SelftestFailed(f"{path}: {_reason(exc)}") from None
        if status != 200:
            raise SelftestFailed(f"{path}: HTTP {status}: {_snippet(raw)}")
        try:
            return json.loads(raw)
        except ValueError:
            raise SelftestFailed(f"{path}: not JSON: {_snippet(raw)}") from None

    def wait_ready(self, wait: float) -> float:
        """Seconds until /readyz said 200; SelftestFailed after ``wait`` seconds."""
        began = time.monotonic()
        last = "no answer"
        while True:
            try:
                status, raw = self.call("/readyz")
                if status == 200:
                    return time.monotonic() - began
                last = f"HTTP {status}: {_snippet(raw)}"
            except (OSError, urllib.error.URLError) as exc:
                last = _reason(exc)
            if time.monotonic() - began + 1 > wait:
                raise SelftestFailed(f"/readyz: not ready after {wait:g}s (last: {last})")
            time.sleep(1)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason) or type(exc).__name__


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode(errors="replace").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def is_bundled_iris(metadata: Any) -> bool:
    """training/'s iris model, which the seed payload's exact answer is promised for."""
    return (
        isinstance(metadata, dict)
        and metadata.get("name") == "iris"
        and metadata.get("feature_names") == IRIS_FEATURES
    )


def first_key(lines: str) -> str:
    """The first key of a keys Secret's `<client> <key>` lines (`#` comments allowed)."""
    for line in lines.splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#"):
            return fields[1]
    raise SelftestFailed("the API keys hold no `<client> <key>` line")


def selftest(
    url: str,
    *,
    wait: float,
    timeout: float,
    request: Any = None,
    expect: Any = None,
    ready_url: str | None = None,
    metadata_url: str | None = None,
    api_key: str | None = None,
) -> list[str]:
    """Run every check against the Ping at url; return one line per check passed."""
    client = Client(url, timeout, api_key)
    ready = Client(ready_url or url, timeout)
    passed = [f"readyz: ready after {ready.wait_ready(wait):.1f}s"]
    metadata = Client(metadata_url or url, timeout).json("/metadata")
    sample = metadata.get("sample") if isinstance(metadata, dict) else None
    if request is None and isinstance(sample, dict):
        request = sample.get("request")
        if expect is None:
            expect = sample.get("response")
    bundled = is_bundled_iris(metadata)
    if request is None and expect is not None:
        raise SelftestFailed("an expected answer was given, but no request to send")
    if request is None and not bundled:
        raise SelftestFailed(
            "/metadata: the artifact records no sample; package it with "
            "`python -m ping package`, or set test.request and test.expect"
        )
    if api_key:
        status, _ = client.call("/predict", request or SEED_REQUEST, keyless=True)
        if status != 401:
            raise SelftestFailed(f"/predict: without an API key got HTTP {status}, want 401")
        passed.append("gateway without a key: 401")
    if request is not None:
        answer = client.json("/predict", request)
        if expect is None:
            passed.append(f"predict: answered {_snippet(json.dumps(answer).encode())}")
        elif problem := mismatch(expect, answer):
            raise SelftestFailed(f"/predict: answer differs from the expected one at {problem}")
        else:
            shown = _snippet(json.dumps(expect).encode())
            passed.append(f"predict: answer matches the expected {shown}")
    if bundled:
        status, raw = client.call("/predict", SEED_REQUEST)
        if status != 200 or raw != SEED_RESPONSE:
            raise SelftestFailed(
                f"/predict: seed payload got HTTP {status} {_snippet(raw)}, "
                f"want 200 {SEED_RESPONSE.decode()}"
            )
        passed.append(f"seed: {SEED_RESPONSE.decode()}")
    return passed


def _json_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``selftest`` subcommand's arguments (registered by ping.cli)."""
    parser.add_argument("url", help="base URL of the Ping to test, e.g. http://ping:80")
    parser.add_argument(
        "--wait",
        type=float,
        default=120.0,
        help="seconds to wait for /readyz to say 200 (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds each HTTP request may take (default: %(default)s)",
    )
    parser.add_argument("--ready-url", help="where /readyz is, if not at url (the gateway)")
    parser.add_argument("--metadata-url", help="where /metadata is, if not at url (the model)")
    parser.add_argument(
        "--api-key-from-env",
        metavar="VAR",
        help="environment variable with `<client> <key>` lines; the first key is sent",
    )
    parser.add_argument(
        "--request",
        type=_json_argument,
        help="a POST /predict body (JSON) to send instead of the recorded sample",
    )
    parser.add_argument(
        "--expect",
        type=_json_argument,
        help="the JSON answer expected instead of the recorded one",
    )


def run(args: argparse.Namespace) -> int:
    """Print one line per passed check; one line on stderr and exit 1 on the first failure."""
    try:
        api_key = None
        if args.api_key_from_env:
            api_key = first_key(os.environ.get(args.api_key_from_env, ""))
        lines = selftest(
            args.url,
            wait=args.wait,
            timeout=args.timeout,
            request=args.request,
            expect=args.expect,
            ready_url=args.ready_url,
            metadata_url=args.metadata_url,
            api_key=api_key,
        )
    except SelftestFailed as exc:
        print(f"ping selftest: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in lines:
        print(line)
    print(f"ping selftest: {args.url} passed")
    return 0
