"""The one-pass body decoder either defers or agrees with the strict path, bit for bit.

``ping.fastdecode`` may only take bodies the strict path (pydantic, then ``inputs`` or
``tensors``) accepts, and must produce exactly what it produces for them. Hypothesis
writes JSON text from a grammar that leans towards the edges (duplicate keys, nulls,
booleans, NaN, 1e400, integers past 64 bits, -0.0, a BOM, trailing bytes, deep
parameters, bad escapes) and checks the property on each body; a second grammar of
valid, common bodies checks that the fast path takes all of them.
"""

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ping.artifact import Column
from ping.errors import PingError
from ping.fastdecode import InferRows, PredictRows, infer_rows, predict_rows
from ping.inputs import InputSchema, request_input
from ping.model import FLOAT32_MAX
from ping.schemas import PredictRequest, V2InferRequest
from ping.tensors import model_input
from ping.validation import parse_body

pytestmark = pytest.mark.unit

WIDTH = 4
SCHEMA = InputSchema(tuple(Column(name=f"x{i}") for i in range(WIDTH)), frame=False)
FRAME = InputSchema(tuple(Column(name=f"x{i}") for i in range(WIDTH)), frame=True)
# Derandomized, so that the suite is reproducible; no database files in the worktree.
EXPLORE = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CHECK = settings(EXPLORE, max_examples=300)  # for the grammars of valid bodies
EXPLORE_V2 = settings(EXPLORE, max_examples=600)  # its grammar is slower to draw from
NUMERIC = ["FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]

# -- a grammar of JSON text, leaning towards the edges ----------------------------------

ws = st.sampled_from(["", " ", "\n", "\t", " \r\n "])
digits = st.text("0123456789", min_size=1, max_size=22)


@st.composite
def number_text(draw: st.DrawFn, max_exponent: int = 420) -> str:
    """Any JSON number literal: long mantissas, big integers, exponents both ways."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(st.sampled_from(["0", "1", "5"]) | digits.map(lambda d: d.lstrip("0") or "0"))
    fraction = draw(st.none() | digits)
    exponent = draw(st.none() | st.integers(0, max_exponent))
    text = sign + whole + (f".{fraction}" if fraction is not None else "")
    if exponent is not None:
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"])) + str(exponent)
    return text


odd_values = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "-0.0",
        "true",
        "false",
        "null",
        '"3.5"',
        "[]",
        "[1]",
        "{}",
        "01",
        "1.",
        ".5",
        "+1",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775808",
        "-9223372036854775809",
        "9007199254740993",
        "340282346638528859811704183484516925440",
        "3.4028235e38",
        "3.4028236e38",
        "-3.4028235677973366e38",
        "4.9e-324",
    ]
)


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 8) -> Any:
    """``good``, and ``odd`` about once in ``one_in`` draws: bodies stay near the edge."""
    return st.sampled_from([good] * (one_in - 1) + [odd]).flatmap(lambda branch: branch)


def array(elements: st.SearchStrategy[str], min_size: int = 0, max_size: int = 6) -> Any:
    return st.builds(
        lambda items, a, b: "[" + a + ",".join(items) + b + "]",
        st.lists(elements, min_size=min_size, max_size=max_size),
        ws,
        ws,
    )


def obj(*members: st.SearchStrategy[tuple[str, str] | None]) -> Any:
    """An object of these members in any order; a member drawn as None is left out.

    Keys may repeat (orjson and pydantic both keep the last).
    """
    return st.builds(
        lambda items, a: "{" + a + ",".join(f"{k}:{v}" for k, v in items if v is not None) + "}",
        st.tuples(*members)
        .map(lambda items: [m for m in items if m is not None])
        .flatmap(st.permutations),
        ws,
    )


def member(key: str, value: st.SearchStrategy[str], absent: int = 2) -> Any:
    """``"key": value``, or no member at all about once in ``absent`` draws (0: never).

    The value is sometimes an explicit null, which pydantic does not read as absent.
    """
    pair = mostly(value, st.just("null"), 10).map(lambda v: (f'"{key}"', v))
    return mostly(pair, st.none(), absent) if absent else pair


number = number_text() | st.floats(allow_nan=False, allow_infinity=False).map(repr)
cell = mostly(number | st.integers().map(str), odd_values | st.floats().map(repr), 12)
strings = st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False))
odd_strings = st.sampled_from(
    ['"\\ud800"', '"\\udc00"', '"a\x01b"', '"\\u0000"', '"\ud800"', '"\\x"', "7", "null"]
)
scalar = strings | cell | st.sampled_from(["true", "false", "null"])
flat_parameters = st.lists(st.tuples(strings, scalar), max_size=3).map(
    lambda items: "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
)
deep = st.integers(1, 260).map(lambda d: '{"a":' + "[" * d + "]" * d + "}")
parameters = mostly(flat_parameters, deep | st.sampled_from(["1", "[]", '{"a":{"b":1}}']), 4)
unknown = (
    st.none()
    | st.none()
    | st.tuples(
        st.sampled_from(['"model"', '"feat\\u0075res"', '"instances "', '"inputz"', '"Id"']), cell
    )
)


def framed(body: st.SearchStrategy[str]) -> Any:
    """A body as bytes, sometimes with a BOM or bytes around it."""
    return st.builds(
        lambda before, text, after: (before + text + after).encode("utf-8", "surrogatepass"),
        mostly(st.just(""), st.sampled_from(["\ufeff", " ", "\x0c"])),
        body,
        mostly(ws, st.sampled_from(["x", ",", "\x00", "}", "]"])),
    )


row = mostly(array(cell, WIDTH, WIDTH), array(cell, 0, 6) | odd_values, 6)
rows = mostly(array(row, 1, 4), array(row, 0, 4) | odd_values, 6)
option = mostly(st.sampled_from(["true", "false"]), st.sampled_from(["null", "0", "1", '"yes"']))
features = member("features", row, 0)
instances = member("instances", rows, 0)
predict_bodies = framed(
    mostly(
        obj(
            features | instances,
            member("return_probabilities", option),
            member("return_class_names", option),
            unknown,
            st.none() | st.none() | features | instances,  # both, or one key twice
        ),
        rows | cell,
        12,
    )
)


@st.composite
def tensor(draw: st.DrawFn) -> str:
    """One input tensor whose shape and data mostly agree."""
    n_rows = draw(mostly(st.integers(1, 3), st.sampled_from([0, -1, 2**64, 1001]), 12))
    width = draw(mostly(st.just(WIDTH), st.integers(0, 6), 12))
    shape = draw(mostly(st.just(f"[{n_rows}, {width}]"), array(number_text(3) | odd_values, 0, 3)))
    count = draw(mostly(st.just(max(0, min(n_rows, 5)) * width), st.integers(0, 12), 10))
    flat = array(cell, count, count)
    nested = array(array(cell, width, width), max(0, min(n_rows, 5)), max(0, min(n_rows, 5)))
    odd_dtype = st.sampled_from([*NUMERIC[2:], '"BYTES"', '"BOOL"', '"fp32"', "1"])
    dtype = mostly(st.sampled_from(NUMERIC[:2]), odd_dtype, 3)  # integer types: mostly refused
    return str(
        draw(
            obj(
                member("name", mostly(st.just('"input-0"') | strings, odd_strings), 0),
                st.just(('"shape"', shape)),
                member("datatype", dtype.map(lambda d: d if d[0] in '"1' else f'"{d}"'), 0),
                member("data", mostly(flat | nested, odd_values), 12),
                member("parameters", parameters),
                unknown,
            )
        )
    )


output = obj(
    member("name", mostly(st.sampled_from(['"predict"', '"predict_proba"']), odd_strings), 0),
    member("parameters", parameters),
)
infer_bodies = framed(
    mostly(
        obj(
            member("id", mostly(strings, odd_strings)),
            member("model_name", mostly(strings, odd_strings)),
            member("parameters", parameters),
            member("inputs", mostly(array(tensor(), 1, 1), array(tensor(), 0, 2) | odd_values), 12),
            member("outputs", mostly(array(output, 0, 3), odd_values), 2),
            unknown,
        ),
        cell,
        12,
    )
)


# -- the strict path, as the routes run it -------------------------------------------------


def strict_predict(raw: bytes, schema: InputSchema, max_rows: int) -> Any:
    """(body, rows) as today's path gives them, or None where it answers an error."""
    try:
        body = parse_body(raw, PredictRequest)
        batch = body.instances is not None
        return body, request_input(
            body.rows, schema, max_rows=max_rows, field=body.field, batch=batch
        )
    except PingError:
        return None


def strict_infer(raw: bytes, schema: InputSchema, max_rows: int) -> Any:
    try:
        body = parse_body(raw, V2InferRequest)
        return body, model_input(body.inputs, schema, max_rows=max_rows)
    except PingError:
        return None


def assert_same_matrix(fast: np.ndarray, strict: np.ndarray) -> None:
    assert fast.dtype == strict.dtype == np.float64
    assert fast.shape == strict.shape
    assert fast.tobytes() == strict.tobytes()  # bit for bit: rounding, -0.0


def strict_agrees(fast: PredictRows | InferRows, strict: Any, raw: bytes) -> Any:
    """The strict path took the body the fast path took, to the same matrix: its body."""
    assert strict is not None, f"the fast path took a body the strict path refuses: {raw!r}"
    body, matrix = strict
    assert_same_matrix(fast.matrix, matrix)
    return body


def check_predict(raw: bytes, max_rows: int) -> bool:
    """The property for one body; whether the fast path took it."""
    fast = predict_rows(raw, SCHEMA, max_rows=max_rows)
    if fast is None:
        return False
    body = strict_agrees(fast, strict_predict(raw, SCHEMA, max_rows), raw)
    assert fast.field == body.field
    assert fast.return_probabilities is body.return_probabilities
    assert fast.return_class_names is body.return_class_names
    return True


def check_infer(raw: bytes, max_rows: int) -> bool:
    fast = infer_rows(raw, SCHEMA, max_rows=max_rows)
    if fast is None:
        return False
    body = strict_agrees(fast, strict_infer(raw, SCHEMA, max_rows), raw)
    assert (fast.id, fast.model_name, fast.outputs) == (body.id, body.model_name, body.outputs)
    return True


# -- any body: defer, or agree -------------------------------------------------------------


@EXPLORE
@given(raw=predict_bodies, max_rows=st.sampled_from([1, 2, 1000]))
def test_predict_decoder_defers_or_agrees_with_the_strict_path(raw: bytes, max_rows: int) -> None:
    check_predict(raw, max_rows)


@EXPLORE_V2
@given(raw=infer_bodies, max_rows=st.sampled_from([1, 2, 1000]))
def test_infer_decoder_defers_or_agrees_with_the_strict_path(raw: bytes, max_rows: int) -> None:
    check_infer(raw, max_rows)


@EXPLORE
@given(st.data())
def test_a_byte_changed_in_a_good_body_is_deferred_or_agreed(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(GOOD_PREDICT + GOOD_INFER)))
    at = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.integers(0, 255) | st.sampled_from(list(b'[]{},:"-.eE0 tfn\\')))
    edit = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    if edit == "insert":
        raw.insert(at, byte)
    elif edit == "replace":
        raw[at] = byte
    else:
        del raw[at]
    check_predict(bytes(raw), 1000)
    check_infer(bytes(raw), 1000)


# -- the common bodies: all taken by the fast path -----------------------------------------

in_range = st.floats(-1e30, 1e30, allow_nan=False) | st.integers(-(2**63), 2**64 - 1)
value_text = in_range.map(repr) | number_text(30).filter(lambda t: abs(float(t)) <= FLOAT32_MAX)


@CHECK
@given(
    st.lists(st.lists(value_text, min_size=WIDTH, max_size=WIDTH), min_size=1, max_size=5),
    st.booleans(),
    st.dictionaries(st.sampled_from(["return_probabilities", "return_class_names"]), st.booleans()),
)
def test_every_valid_positional_body_takes_the_fast_path(
    rows: list[list[str]], single: bool, options: dict[str, bool]
) -> None:
    text = "[" + "],[".join(",".join(r) for r in rows) + "]"
    member = f'"features":{text[: text.index("]") + 1]}' if single else f'"instances":[{text}]'
    extra = "".join(f',"{k}":{json.dumps(v)}' for k, v in options.items())

    assert check_predict(("{" + member + extra + "}").encode(), 1000)


@st.composite
def kserve_or_mlserver_body(draw: st.DrawFn) -> bytes:
    dtype = draw(st.sampled_from(NUMERIC))
    n_rows = draw(st.integers(1, 4))
    if dtype.startswith(("INT", "UINT")):
        bits = np.iinfo(dtype.lower())
        low, high = max(int(bits.min), -(2**53) + 1), min(int(bits.max), 2**53 - 1)
        values: Any = st.integers(low, high) | st.integers(max(low, -100), min(high, 100)).map(
            float
        )
    else:
        width = 64 if dtype == "FP64" else 32  # KServe's client sends float32 values
        values = st.floats(-FLOAT32_MAX, FLOAT32_MAX, width=width)
    flat = draw(st.lists(values, min_size=n_rows * WIDTH, max_size=n_rows * WIDTH))
    nested = draw(st.booleans())
    data = [flat[i : i + WIDTH] for i in range(0, len(flat), WIDTH)] if nested else flat
    tensor: dict[str, Any] = {"name": "input-0", "shape": [n_rows, WIDTH], "datatype": dtype}
    tensor |= {"data": data}
    if draw(st.booleans()):
        tensor["parameters"] = {"content_type": "np"}
    body: dict[str, Any] = {"id": draw(st.uuids()).hex, "inputs": [tensor]}
    if draw(st.booleans()):
        body["model_name"] = "iris"
    if draw(st.booleans()):
        body["parameters"] = {"content_type": "np", "headers": None}
    if draw(st.booleans()):
        names = draw(st.permutations(["predict", "predict_proba"]))
        body["outputs"] = [{"name": n} for n in names[: draw(st.integers(1, 2))]]
    return json.dumps(body).encode()


@CHECK
@given(kserve_or_mlserver_body())
def test_every_valid_single_tensor_body_takes_the_fast_path(raw: bytes) -> None:
    assert check_infer(raw, 1000)


# -- examples worth naming -----------------------------------------------------------------

GOOD_PREDICT = [
    b'{"features": [5.1, 3.5, 1.4, 0.2]}',
    b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6, 3, 4.8, 1.8]], "return_probabilities": true}',
]
GOOD_INFER = [
    b'{"id": "a", "model_name": "iris", "inputs": [{"name": "input-0", "shape": [1, 4],'
    b' "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "INT64", "parameters":'
    b' {"content_type": "np"}, "data": [[5, 3, 1, 0], [6, 3, 5, 2]]}],'
    b' "outputs": [{"name": "predict_proba"}]}',
]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"features":[1,2,3,4],"features":null}',  # the last duplicate wins, in both
        b'{"features":null,"features":[1,2,3,4]}',
        b'{"features":[1,2,3,4],"bogus":1,"bogus":2}',
        b'{"features":[18446744073709551616,-9223372036854775809,1e-400,-0.0]}',
        b'{"features":[3.4028235677973366e38,-0,4.9e-324,2.4703282292062328e-324]}',
        b'{"features":[1,2,3,3.4028235677973367e38]}',
        b'\xef\xbb\xbf{"features":[1,2,3,4]}',
        b'{"features":[1,2,3,4]} \r\n\t',
        b'{"features":[1,2,3,4],"return_probabilities":1}',
        b'{"features":[1,2,3,4],"instances":[[1,2,3,4]]}',
        b'{"features":null,"instances":[[1,2,3,4]]}',
        b'{"instances":[[1,2,3,4]],"return_class_names":null}',
        b'{"instances":[{"x0":1,"x1":2,"x2":3,"x3":4}]}',
    ],
)
def test_edge_bodies_defer_or_agree(raw: bytes) -> None:
    check_predict(raw, 1000)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64",'
        b'"data":[9007199254740993,1,1,1]}]}',  # 2**53 + 1: compared exactly, strictly
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"UINT64",'
        b'"data":[18446744073709551616,1,1,1]}]}',
        b'{"inputs":[{"name":"x","shape":[1,4.0],"datatype":"FP64","data":[1,1,1,1]}]}',
        b'{"inputs":[{"name":"x","shape":[true,4],"datatype":"FP64","data":[1,1,1,1]}]}',
        b'{"inputs":[{"name":"x0","shape":[4],"datatype":"FP64","data":[1,1,1,1]}]}',
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,1,1,1]}],'
        b'"parameters":{"a":[[[]]]}}',
    ],
)
def test_edge_infer_bodies_defer_or_agree(raw: bytes) -> None:
    check_infer(raw, 1000)


def test_a_model_fitted_on_a_frame_always_takes_the_strict_path() -> None:
    assert predict_rows(GOOD_PREDICT[0], FRAME, max_rows=1000) is None
    assert infer_rows(GOOD_INFER[0], FRAME, max_rows=1000) is None
