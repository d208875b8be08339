"""Request and response bodies of ``POST /predict``."""

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Strict: booleans and numeric strings are refused rather than coerced, and
# NaN/Infinity (which Python's json accepts) are refused as non-finite.
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    """Exactly one of ``features`` (one row) or ``instances`` (a batch of rows)."""

    # Unknown fields are refused, so a misspelt option is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    features: list[Feature] | None = Field(
        default=None, description="One row of features.", examples=[[5.1, 3.5, 1.4, 0.2]]
    )
    instances: list[list[Feature]] | None = Field(
        default=None, description="A batch of rows.", examples=[[[5.1, 3.5, 1.4, 0.2]]]
    )
    return_probabilities: bool = Field(
        default=False, strict=True, description="Add class probabilities, keyed by class name."
    )
    return_class_names: bool = Field(
        default=False, strict=True, description="Add the predicted class names."
    )

    @model_validator(mode="after")
    def _exactly_one_input(self) -> Self:
        if (self.features is None) == (self.instances is None):
            raise ValueError("give exactly one of 'features' (one row) or 'instances' (a batch)")
        return self

    @property
    def rows(self) -> list[list[float]]:
        """The request's rows, whichever way they were given."""
        return [self.features] if self.features is not None else self.instances or []

    @property
    def field(self) -> str:
        """The body member the rows came from, for error messages."""
        return "features" if self.features is not None else "instances"


class PredictResponse(BaseModel):
    """``prediction`` for one row, ``predictions`` for a batch; extras only when asked for."""

    prediction: Any | None = None
    predictions: list[Any] | None = None
    class_name: str | None = None
    class_names: list[str] | None = None
    probabilities: dict[str, float] | list[dict[str, float]] | None = None
