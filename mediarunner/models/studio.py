"""Studio edit requests: cut, intro, outro, watermark and compose operations, validated at the edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic import ValidationError as PydanticValidationError

from mediarunner.errors import MediarunnerError, ValidationError
from mediarunner.models.locations import parse_location

__all__ = ["MAX_OPERATIONS", "Compose", "Cut", "Intro", "Operation", "Outro", "StudioEdit", "Watermark",
           "parse_operations"]

MAX_OPERATIONS = 32

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]
Layout = Literal["mid", "piph", "pipb"]  # Esup-Pod's studio layouts


def _check_url(url: str) -> str:
    """Reject what can never be staged (embedded credentials, unknown schemes) before enqueueing."""
    try:
        parse_location(url, "input")
    except MediarunnerError as exc:
        raise ValueError(str(exc)) from None
    return url


#: A side input of an operation (a clip, an image): checked like any input location.
MediaUrl = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_check_url)]


class _Op(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cut(_Op):
    """Keep ``[start, end)`` seconds of the current video (``end`` None: to the end)."""

    op: Literal["cut"] = "cut"
    start: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    end: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _end_after_start(self) -> Cut:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"cut end ({self.end:g}) must be after its start ({self.start:g})")
        if self.end is None and self.start == 0:
            raise ValueError("a cut must set a start > 0 or an end")
        return self


class Intro(_Op):
    """Prepend a clip, scaled and padded to the current video's size and frame rate."""

    op: Literal["intro"] = "intro"
    url: MediaUrl


class Outro(_Op):
    """Append a clip, scaled and padded to the current video's size and frame rate."""

    op: Literal["outro"] = "outro"
    url: MediaUrl


class Watermark(_Op):
    """Overlay an image (alpha respected) at a corner or the center, ``margin`` pixels in.

    ``scale``: the image's width as a fraction of the video width (None: the image's own size,
    shrunk only if it would not fit). ``opacity``: 1 opaque (the image's own alpha), down to a
    faint 0.01 (its alpha multiplied by this).
    """

    op: Literal["watermark"] = "watermark"
    image_url: MediaUrl
    position: Position = "bottom-right"
    margin: int = Field(default=16, ge=0, le=4096)
    scale: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    opacity: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)


class Compose(_Op):
    """Show a second video with the current one, in Esup-Pod's studio layouts: ``mid`` side by side
    (current left, ``url`` right, both at the shorter height); ``piph`` / ``pipb`` the ``url`` video
    a quarter of the current height high, over its top / bottom right corner, 10 px in. As long as
    the longer of the two (the shorter holds its last frame); the current video's sound, else the other's."""

    op: Literal["compose"] = "compose"
    url: MediaUrl
    layout: Layout = "mid"


Operation = Annotated[Cut | Intro | Outro | Watermark | Compose, Field(discriminator="op")]


class StudioEdit(BaseModel):
    """A job payload's list of operations (at least one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operations: list[Operation] = Field(min_length=1, max_length=MAX_OPERATIONS)


_OPS_ADAPTER: TypeAdapter[list[Operation]] = TypeAdapter(list[Operation])


def parse_operations(data: Sequence[Any]) -> list[Operation]:
    """Validate raw operations (dicts or models); raise :class:`ValidationError` with pydantic's reasons."""
    try:
        return StudioEdit.model_validate({"operations": list(data)}).operations
    except PydanticValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'operations'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"invalid studio operations: {reasons}") from None
