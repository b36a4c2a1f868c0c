"""Request bodies: the arguments of ``Client.submit_*``, plus an optional ``notify_url``.

Types and bounds are checked here (422 with the field's path); the rest (renditions, output
roots, priority classes, studio operations) by ``Client`` itself, whose ``ValidationError`` is a
422 problem as well. Strings with NUL bytes or lone surrogates, non-finite numbers and deep
nesting are refused before anything reaches the database.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Text = Field(min_length=1, max_length=4096)
MAX_DEPTH = 32


def _bad_value(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, or None."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "strings must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "strings must be valid Unicode (no lone surrogates)"
    elif isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    elif isinstance(value, dict):
        for k, v in value.items():
            why = _bad_value(k, depth + 1) or _bad_value(v, depth + 1)
            if why:
                return why
    elif isinstance(value, list | tuple):
        for v in value:
            why = _bad_value(v, depth + 1)
            if why:
                return why
    return None


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first within its class")
    priority_class: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    metadata: dict[str, Any] | None = Field(default=None, description="yours, returned with the job (≤ 16 KiB)")
    notify_url: str | None = Field(default=None, max_length=2000,
                                   description="http(s) URL POSTed a signed webhook when the family finishes")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        why = _bad_value(data)
        if why:
            raise ValueError(why)
        return data

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of the matching ``Client.submit_*`` (``notify_url`` included)."""
        return self.model_dump()


#: a queue name; ``Client`` checks it against ``job_queues`` (422 for any other, e.g. ``scheduler``)
Queue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Rungs = Field(default=None, min_length=1, max_length=16, description="rendition names (default: the whole ladder)")


class TranscodeRequest(Submission):
    input: str = Text
    output: str = Text
    renditions: list[str] | None = Rungs
    formats: list[str] = Field(default=["hls", "mp4"], min_length=1, max_length=4)
    queue: Queue | None = None
    transcribe: bool = False
    language: str | None = Field(default=None, max_length=16)
    transcribe_device: Literal["auto", "cpu", "gpu"] = "auto"
    parts: int | None = Field(default=None, ge=1, le=64)
    video_codecs: list[str] = Field(default=["h264"], min_length=1, max_length=4,
                                    description="one ladder per codec: h264, hevc, av1, vp9")
    storyboard: bool = Field(default=False, description="a sprite sheet and a WebVTT thumbnails track")
    thumbnails: int = Field(default=0, ge=0, le=50, description="N preview images and a poster")
    cover_image: str | None = Field(default=None, max_length=4096,
                                    description="a still image: with an audio input, the video of the ladder")
    hardware: Literal["auto", "nvenc", "qsv", "vaapi", "none"] = "none"


class StudioRequest(Submission):
    input: str = Text
    output: str = Text
    operations: list[dict[str, Any]] = Field(min_length=1, max_length=64)
    transcode: bool = False
    renditions: list[str] | None = Rungs
    formats: list[str] = Field(default=["hls", "mp4"], min_length=1, max_length=4)
    queue: Queue | None = None


class LiveRequest(Submission):
    input_url: str = Text
    output: str = Text
    renditions: list[str] | None = Rungs
    listen: bool = False
    audio: bool = True
    queue: Queue | None = None


class TranscriptionRequest(Submission):
    input: str = Text
    output: str = Text
    language: str | None = Field(default=None, max_length=16)
    model: str | None = Field(default=None, max_length=200)
    formats: list[str] = Field(default=["vtt", "srt", "json"], min_length=1, max_length=4)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    queue: Queue | None = None
