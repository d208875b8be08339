"""``pingctl package MODEL_FILE --output DIR``: a fitted estimator in, a servable artifact out.

It infers what serving needs (task, inputs and their kinds, outputs, classes), records
a sample request with the answer the model gave for it, writes the model with skops,
then reloads the directory and self-checks it exactly as the server will.
``training/`` writes its artifacts through :func:`package` too: one writer, one format.
"""

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ping.artifact import (
    ArtifactError,
    Column,
    ModelMetadata,
    created_at,
    dump_model,
    write_metadata,
)
from ping.check import answer_for, open_model, self_check, summary
from ping.errors import PingError
from ping.model import Model, check_estimator
from ping.settings import Settings

SAMPLE_ROWS = 3
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class PackageError(Exception):
    """The estimator cannot be packaged; the message says why and what to do."""


def package(
    estimator: Any,
    output_dir: Path,
    *,
    name: str,
    version: str = "1",
    sample: Sequence[Any] | None = None,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    model_format: str = "skops",
    settings: Settings | None = None,
    extra: dict[str, Any] | None = None,
) -> Model:
    """Describe ``estimator``, record a sample, write the artifact, and self-check it."""
    fields = describe(estimator, feature_names=feature_names, class_names=class_names)
    columns = [Column.model_validate(c) for c in fields["columns"]]
    lists = _json_rows(sample, fields) if sample is not None else default_sample(estimator, fields)
    rows: list[Any] = lists
    if fields["input"] == "frame":  # named rows say what each value is
        rows = [dict(zip(fields["feature_names"], row, strict=True)) for row in lists]
    request: dict[str, Any] = {"instances": rows}
    if "predict_proba" in fields["outputs"]:
        request["return_probabilities"] = True
    fields["columns"] = _with_nulls_from(rows, columns, fields["feature_names"])
    draft = ModelMetadata.model_validate(
        {
            "format_version": 2,
            "name": name,
            "version": version,
            "created_at": created_at(),
            "model_file": "",
            "model_format": model_format,
            "sha256": "",
            "python_version": "",
            "sklearn_version": "",
            "numpy_version": "",
            **fields,
            **(extra or {}),
            "sample": {"request": request, "response": {}},
        }
    )
    try:
        response = answer_for(Model(estimator, draft, output_dir), request)
    except PingError as exc:
        raise PackageError(f"the sample does not fit the model's inputs: {exc}") from None
    except Exception as exc:
        raise PackageError(
            f"the model cannot predict the sample ({type(exc).__name__}: {exc}); "
            "pass a few valid rows with --sample FILE"
        ) from None
    document = draft.model_dump(mode="json", exclude_none=True)
    document.pop("format_version")
    first = response["predictions"][0]
    if fields["task"] == "regression" and isinstance(first, list):  # multi-output
        document["outputs"]["predict"]["shape"] = [-1, len(first)]
    document |= dump_model(estimator, output_dir, model_format)
    document["sample"] = {"request": request, "response": response}
    write_metadata(output_dir, document)
    # Reload from disk under the server's rules: what was written is what will be served.
    settings = (settings or Settings(model_dir=output_dir)).model_copy(
        # A pickle written just now, from an estimator already in memory, runs no one
        # else's code; serving it still needs PING_ALLOW_PICKLE.
        update={"model_dir": output_dir, "allow_pickle": model_format == "joblib"}
    )
    try:
        model = open_model(settings)
        self_check(model)
    except ArtifactError as exc:
        raise PackageError(f"the written artifact does not load back: {exc}") from None
    return model


def describe(
    estimator: Any,
    *,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What serving needs to know about a fitted estimator, as metadata fields."""
    from sklearn.base import is_classifier, is_regressor

    kind = type(estimator)
    if not hasattr(estimator, "predict"):
        raise PackageError(f"a {kind.__name__} has no predict(): not an estimator")
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise PackageError(f"the {kind.__name__} is not fitted (it has no n_features_in_)")
    fitted_names = getattr(estimator, "feature_names_in_", None)
    frame = fitted_names is not None
    if fitted_names is not None:
        names = [str(n) for n in fitted_names]
    elif feature_names is not None:
        names = list(feature_names)
    else:
        names = [f"x{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise PackageError(f"{len(names)} feature names for a model of {n_features} features")
    columns = infer_columns(estimator, names) if frame else [{"name": n} for n in names]
    if is_classifier(estimator) or (not is_regressor(estimator) and hasattr(estimator, "classes_")):
        classes = _classes(estimator)
        labels = "INT64" if all(isinstance(c, int) for c in classes) else "BYTES"
        outputs: dict[str, Any] = {"predict": {"datatype": labels, "shape": [-1]}}
        if hasattr(estimator, "predict_proba"):
            outputs["predict_proba"] = {"datatype": "FP64", "shape": [-1, len(classes)]}
        names_of_classes = list(class_names) if class_names else [str(c) for c in classes]
        task = "classification"
    elif is_regressor(estimator):
        classes, names_of_classes, task = [], [], "regression"
        # [-1, k] for k outputs, once the sample's answer shows k.
        outputs = {"predict": {"datatype": "FP64", "shape": [-1]}}
    else:
        raise PackageError(f"cannot tell whether the {kind.__name__} classifies or regresses")
    return {
        "task": task,
        "estimator": f"{kind.__module__}.{kind.__qualname__}",
        "input": "frame" if frame else "array",
        "n_features": n_features,
        "feature_names": names,
        "columns": columns,
        "outputs": outputs,
        "classes": classes,
        "class_names": names_of_classes,
    }


def _classes(estimator: Any) -> list[int | str]:
    raw = estimator.classes_
    if isinstance(raw, list):
        raise PackageError("multi-output classifiers are not supported; package one per output")
    classes: list[int | str] = []
    for value in raw.tolist():
        if isinstance(value, bool):
            raise PackageError("boolean class labels are not supported; fit on 0/1 or strings")
        if isinstance(value, float):
            if not value.is_integer():
                raise PackageError(f"class label {value} is not a whole number or a string")
            value = int(value)
        classes.append(value if isinstance(value, int) else str(value))
    return classes


def infer_columns(estimator: Any, names: list[str]) -> list[dict[str, Any]]:
    """Column kinds of a model fitted on a DataFrame, from its fitted ColumnTransformer."""
    columns: list[dict[str, Any]] = [{"name": n, "kind": "number"} for n in names]
    transformer = _column_transformer(estimator)
    if transformer is None:
        return columns
    indices = getattr(transformer, "_transformer_to_input_indices", {})
    for branch, step, _ in transformer.transformers_:
        steps = [s for _, s in step.steps] if hasattr(step, "steps") else [step]
        if step == "drop":
            for i in indices.get(branch, []):
                columns[i]["nullable"] = True  # not used by the model
            continue
        imputes = any(type(s).__name__.endswith("Imputer") for s in steps[:1])
        encoder = next((s for s in steps if hasattr(s, "categories_")), None)
        for position, i in enumerate(indices.get(branch, [])):
            if imputes:
                columns[i]["nullable"] = True
            if encoder is not None and position < len(encoder.categories_):
                columns[i]["kind"] = _kind_of(encoder.categories_[position])
    return columns


def _column_transformer(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer

    steps = [s for _, s in getattr(estimator, "steps", [])] or [estimator]
    return next((s for s in steps if isinstance(s, ColumnTransformer)), None)


def _kind_of(values: np.ndarray) -> str:
    if values.dtype.kind == "b":
        return "boolean"
    if values.dtype.kind in "iu":
        return "integer"
    if values.dtype.kind == "f":
        return "number"
    present = [v for v in values.tolist() if v is not None and v == v]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    return "string"


def default_sample(estimator: Any, fields: dict[str, Any]) -> list[list[Any]]:
    """One plausible row, from what the fitted transformers learnt, or a clear refusal."""
    columns = fields["columns"]
    row: list[Any] = []
    center = _centre(estimator, len(columns))
    categories = _categories(estimator, fields["feature_names"])
    for i, column in enumerate(columns):
        kind = column.get("kind", "number")
        if kind == "string":
            if column["name"] not in categories:
                raise PackageError(
                    f"cannot make a sample value for string column {column['name']!r}; "
                    "pass a few valid rows with --sample FILE"
                )
            row.append(categories[column["name"]])
        elif kind == "boolean":
            row.append(bool(categories.get(column["name"], False)))
        elif kind == "integer":
            row.append(round(center[i]) if center is not None else 0)
        else:
            row.append(float(center[i]) if center is not None else 0.0)
    return [row]


def _centre(estimator: Any, width: int) -> np.ndarray | None:
    """The training mean a leading scaler learnt, when there is one of the right width."""
    first = estimator.steps[0][1] if hasattr(estimator, "steps") else None
    mean = getattr(first, "mean_", None)
    return np.asarray(mean) if mean is not None and len(mean) == width else None


def _categories(estimator: Any, names: list[str]) -> dict[str, Any]:
    transformer = _column_transformer(estimator)
    found: dict[str, Any] = {}
    if transformer is None:
        return found
    indices = getattr(transformer, "_transformer_to_input_indices", {})
    for branch, step, _ in transformer.transformers_:
        steps = [s for _, s in step.steps] if hasattr(step, "steps") else [step]
        encoder = next((s for s in steps if hasattr(s, "categories_")), None)
        if encoder is None:
            continue
        for position, i in enumerate(indices.get(branch, [])):
            values = [v for v in encoder.categories_[position].tolist() if v is not None and v == v]
            if values:
                found[names[i]] = values[0]
    return found


def _json_rows(sample: Sequence[Any], fields: dict[str, Any]) -> list[list[Any]]:
    """Sample rows (lists in feature order, or objects by name) as JSON-native lists."""
    names = fields["feature_names"]
    rows: list[list[Any]] = []
    for i, row in enumerate(list(sample)[:SAMPLE_ROWS]):
        if isinstance(row, dict):
            missing = [n for n in names if n not in row]
            if missing:
                raise PackageError(f"sample row {i} has no value for {missing[0]!r}")
            row = [row[n] for n in names]
        row = list(row)
        if len(row) != len(names):
            raise PackageError(
                f"sample row {i} has {len(row)} values, the model takes {len(names)}"
            )
        rows.append([_json_value(v) for v in row])
    if not rows:
        raise PackageError("the sample has no rows")
    return rows


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _with_nulls_from(
    rows: list[Any], columns: list[Column], names: list[str]
) -> list[dict[str, Any]]:
    """A column the sample leaves null accepts null; the model answered for it."""
    result = []
    for j, column in enumerate(columns):
        values = [row[names[j]] if isinstance(row, dict) else row[j] for row in rows]
        nullable = column.nullable or any(v is None for v in values)
        result.append(column.model_copy(update={"nullable": nullable}).model_dump())
    return result


def read_sample(path: Path) -> list[Any]:
    """Rows from a JSON file (a /predict body, or a list of rows) or a CSV file with a header."""
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, nrows=SAMPLE_ROWS)
        return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]
    document = json.loads(path.read_text())
    if isinstance(document, dict):
        if "instances" in document:
            return list(document["instances"])
        if "features" in document:
            return [document["features"]]
        raise PackageError(f'{path}: expected {{"instances": [...]}} or a list of rows')
    return list(document)


def load_model_file(path: Path, settings: Settings) -> Any:
    """The fitted estimator in a skops or joblib file."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        import joblib

        return joblib.load(path)  # the packager's user made this file: see --help
    from ping.artifact import _load_skops

    return _load_skops(path, settings.trusted_types)


def run(args: argparse.Namespace) -> int:
    """``pingctl package``: write the artifact and print the check summary."""
    # Warnings while loading and predicting the sample are the user's to see, once each,
    # after the outcome; a refusal stays one line.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            settings = Settings(model_dir=args.output)
            estimator = load_model_file(args.model_file, settings)
            sample = read_sample(args.sample) if args.sample else None
            model = package(
                estimator,
                args.output,
                name=args.name or args.model_file.stem,
                version=args.version,
                sample=sample,
                model_format=args.format,
                settings=settings,
            )
            check_estimator(model.estimator, model.metadata, args.output)
        except (PackageError, ArtifactError, OSError, ValueError) as exc:
            print(f"ping: cannot package {args.model_file}: {exc}", file=sys.stderr)
            return 2
    for text in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
        print(f"ping: warning while packaging: {text}", file=sys.stderr)
    print(summary(model, self_check(model)))
    print(f"wrote {args.output}/ ({model.metadata.model_file}, metadata.json)")
    return 0
