"""Request and response bodies: ``POST /predict`` and the Open Inference Protocol (V2)."""

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

# Cells are checked by ping.validation, not here: row count and width first, then every
# cell at C speed, so a megabyte of bad cells costs milliseconds and a short error list
# (pydantic would build one error per cell). Strict all the same: booleans, strings and
# null are refused rather than coerced, and NaN/Infinity are refused as non-finite.
# The served model's width and PING_MAX_ROWS are added to /openapi.json by ping.openapi.
# A row is positional (a list, in the model's feature order) or named (an object keyed
# by feature name); cells may be strings, booleans or null where a column takes them
# (ping.inputs). The tags label the two forms in validation errors, which ping.errors
# reduces to the form the client sent; they are not a path step.
POSITIONAL, NAMED = "[row]", "{row}"
_NUMBER = {"type": "number"}
_ROW_SCHEMA = {
    "oneOf": [
        {"type": "array", "items": _NUMBER},
        {"type": "object", "additionalProperties": True},
    ]
}
_ROW = Annotated[list[Any], Tag(POSITIONAL)] | Annotated[dict[str, Any], Tag(NAMED)]
Row = Annotated[_ROW | None, WithJsonSchema(_ROW_SCHEMA)]
Rows = Annotated[list[_ROW] | None, WithJsonSchema({"type": "array", "items": _ROW_SCHEMA})]


class PredictRequest(BaseModel):
    """Exactly one of ``features`` (one row) or ``instances`` (a batch of rows)."""

    # Unknown fields are refused, so a misspelt option is an error, not silently ignored.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["features"]}, {"required": ["instances"]}]},
    )

    features: Row = Field(
        default=None,
        description="One row: a list in feature order, or an object keyed by feature name.",
        examples=[[5.1, 3.5, 1.4, 0.2]],
    )
    instances: Rows = Field(
        default=None,
        description="A batch of rows, each a list or an object.",
        examples=[[[5.1, 3.5, 1.4, 0.2]]],
    )
    return_probabilities: bool = Field(
        default=False, strict=True, description="Add class probabilities, keyed by class name."
    )
    return_class_names: bool = Field(
        default=False, strict=True, description="Add the predicted class names."
    )

    @field_validator("features", "instances", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # absent is fine; an explicit null is no array
            raise ValueError("Input should be a valid array")
        return value

    @model_validator(mode="after")
    def _exactly_one_input(self) -> Self:
        if (self.features is None) == (self.instances is None):
            raise ValueError("give exactly one of 'features' (one row) or 'instances' (a batch)")
        return self

    @property
    def rows(self) -> list[Any]:
        """The request's rows, whichever way they were given."""
        return [self.features] if self.features is not None else self.instances or []

    @property
    def field(self) -> str:
        """The body member the rows came from, for error messages."""
        return "features" if self.features is not None else "instances"


class PredictResponse(BaseModel):
    """``prediction`` for one row, ``predictions`` for a batch; extras only when asked for."""

    prediction: Any | None = Field(
        default=None, description="A class label, or a value (a list of them for multi-output)."
    )
    predictions: list[Any] | None = None
    class_name: str | None = None
    class_names: list[str] | None = None
    probabilities: dict[str, float] | list[dict[str, float]] | None = None


# Open Inference Protocol (V2 REST), as KServe, MLServer and Triton speak it.
# BYTES and BOOL are for string and boolean columns; FP16/BF16 (which JSON cannot carry)
# are refused.
V2Datatype = Literal[
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "BYTES",
    "BOOL",
]


class V2InputTensor(BaseModel):
    """One input tensor; ``data`` is checked against ``shape`` and ``datatype`` by ping.v2."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Any name for the one [rows, n_features] tensor; or a column's name, "
        "one tensor per column",
        examples=["input-0"],
    )
    shape: list[Annotated[int, Field(strict=True, ge=0)]] = Field(max_length=8, examples=[[1, 4]])
    datatype: V2Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(
        default=None,
        description="Values in row-major order, flat or nested as the shape.",
        examples=[[5.1, 3.5, 1.4, 0.2]],
    )


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["predict"])
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    """``inputs`` holds one ``[rows, n_features]`` tensor; ``outputs`` picks what comes back."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Echoed in the response.")
    # KServe's Python client sends the model name in the body too.
    model_name: str | None = Field(default=None, description="If given, must match the URL.")
    parameters: dict[str, Any] | None = None
    # Bounded, so that a body of many bad tensors gets a short answer quickly.
    inputs: list[V2InputTensor] = Field(max_length=16)
    outputs: list[V2RequestedOutput] | None = Field(
        default=None,
        max_length=16,
        description="Default: every output (`predict` and `predict_proba`).",
    )


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2MetadataTensor]
    outputs: list[V2MetadataTensor]
