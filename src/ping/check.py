"""``pingctl check DIR`` and the start-up self-check: a model that cannot answer is never ready.

The self-check sends the artifact's recorded sample request through the same input
checks and answer shaping as ``POST /predict``, and compares the answer with the
recorded response: labels exactly, floats within rtol 1e-9 (atol 1e-12).
"""

import argparse
import math
import sys
import time
from typing import Any

import orjson
from pydantic import ValidationError

from ping.artifact import ArtifactError, version_problem
from ping.errors import PingError
from ping.inputs import InputSchema, request_input
from ping.model import Model, load_model, predict_answer
from ping.settings import Settings, invalid_settings

EXIT_BAD_ARTIFACT = 2
RTOL, ATOL = 1e-9, 1e-12


def open_model(settings: Settings) -> Model:
    """Load ``settings.model_dir`` under the configured trust rules."""
    return load_model(
        settings.model_dir,
        trusted_types=settings.trusted_types,
        allow_pickle=settings.allow_pickle,
    )


def answer_for(model: Model, request: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /predict`` answers for ``request``, as JSON values, without a server.

    Raises PingError for a request the schema refuses, and whatever the model raises.
    """
    schema = InputSchema.of(model.metadata)
    try:
        body = schema.body.model_validate(request)
    except ValidationError as exc:
        from ping.errors import from_validation_error

        raise from_validation_error(exc) from None
    batch = body.instances is not None
    rows = request_input(body.rows, schema, max_rows=len(body.rows), field=body.field, batch=batch)
    if body.return_probabilities:
        labels, probabilities = model.predict_with_probabilities(rows)
    else:
        labels, probabilities = model.predict(rows), None
    answer = predict_answer(
        model, labels, probabilities, single=not batch, class_names=body.return_class_names
    )
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))
    return parsed


def self_check(model: Model) -> float:
    """Predict the recorded sample and compare; raise ArtifactError naming the difference.

    Returns the seconds the check took.
    """
    started = time.perf_counter()
    where = f"{model.path}: self-check failed"
    sample = model.metadata.sample
    try:
        answer = answer_for(model, sample.request)
    except PingError as exc:
        raise ArtifactError(f"{where}: the recorded sample request is invalid: {exc}") from None
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ArtifactError(
            f"{where}: predicting the recorded sample raised {type(exc).__name__}: {text}"
        ) from None
    difference = first_difference(sample.response, answer)
    if difference is not None:
        raise ArtifactError(f"{where}: {difference}")
    return time.perf_counter() - started


def first_difference(recorded: Any, got: Any, path: str = "response") -> str | None:
    """The first place where ``got`` differs from ``recorded``, or None when they agree."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        if recorded.keys() != got.keys():
            return f"{path} has keys {sorted(got)}, recorded {sorted(recorded)}"
        for key in recorded:
            found = first_difference(recorded[key], got[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(got, list):
        if len(recorded) != len(got):
            return f"{path} has {len(got)} items, recorded {len(recorded)}"
        for i, (a, b) in enumerate(zip(recorded, got, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    both_float = isinstance(recorded, float) or isinstance(got, float)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (recorded, got))
    if both_float and numbers:
        if math.isclose(recorded, got, rel_tol=RTOL, abs_tol=ATOL):
            return None
    elif type(recorded) is type(got) and recorded == got:
        return None
    return f"{path} is {got!r}, recorded {recorded!r}"


def summary(model: Model, seconds: float) -> str:
    """One screen about the artifact: what it is, what it takes, what it gives."""
    meta = model.metadata
    columns = ", ".join(
        f"{c.name} ({c.kind}{', nullable' if c.nullable else ''})" for c in meta.columns[:12]
    )
    more = f", ... ({meta.n_features} in all)" if meta.n_features > 12 else ""
    outputs = ", ".join(f"{n} {o.datatype} {o.shape}" for n, o in meta.outputs.items())
    versions = (
        f"python {meta.python_version}, scikit-learn {meta.sklearn_version}, "
        f"numpy {meta.numpy_version}, "
        + (
            f"skops {meta.skops_version}"
            if meta.model_format == "skops"
            else f"joblib {meta.joblib_version}"
        )
    )
    lines = [
        f"artifact   {model.path}",
        f"model      {meta.name} version {meta.version} ({meta.task}), created {meta.created_at}",
        f"estimator  {meta.estimator}",
        f"file       {meta.model_file} ({meta.model_format}), sha256 {meta.sha256[:16]}…",
        f"saved by   {versions}",
        f"input      {meta.input}: {columns}{more}",
        f"outputs    {outputs}",
    ]
    if meta.classes:
        shown = ", ".join(
            f"{c!r}" if str(c) == n else f"{c!r} ({n})"
            for c, n in zip(meta.classes[:10], meta.class_names[:10], strict=True)
        )
        lines.append(f"classes    {shown}{', ...' if len(meta.classes) > 10 else ''}")
    problem = version_problem(meta)
    if problem:
        lines.append(f"warning    {problem}")
    rows = len(meta.sample.request.get("instances") or [None])
    lines.append(
        f"self-check ok: {rows} sample rows answered as recorded ({seconds * 1000:.1f} ms)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``pingctl check DIR``: load under the configured trust rules, self-check, summarise."""
    try:
        settings = Settings(model_dir=args.model_dir)
        model = open_model(settings)
        seconds = self_check(model)
    except ValidationError as exc:
        print(f"ping: {invalid_settings(exc)}", file=sys.stderr)
        return EXIT_BAD_ARTIFACT
    except ArtifactError as exc:
        print(f"ping: check failed: {exc}", file=sys.stderr)
        return EXIT_BAD_ARTIFACT
    print(summary(model, seconds))
    return 0
