"""Validated payloads: every request is checked here, at the edge, before a row is written.

The dicts stored in ``jobs.payload`` are ``model_dump(mode="json")`` of these models, and the
handlers parse them back with the same models, so a malformed payload is a permanent error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from mediarunner.config.settings import Rendition
from mediarunner.errors import MediarunnerError, ValidationError
from mediarunner.models.locations import control_character
from mediarunner.models.studio import Operation, parse_operations

Format = Literal["hls", "mp4"]
#: Video codecs of a VOD ladder (one ladder per codec, all in one master playlist).
VideoCodec = Literal["h264", "hevc", "av1", "vp9"]
VIDEO_CODECS: tuple[str, ...] = ("h264", "hevc", "av1", "vp9")
#: Hardware encoding asked for by a job (media/hardware.py): "auto" takes any family that opens.
Hardware = Literal["auto", "nvenc", "qsv", "vaapi", "none"]
MAX_URL = 4096
MAX_PARTS = 64  # time parts of one split rendition


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_url(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("must not be empty")
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    bad = control_character(value) or ("://" in value and control_character(unquote(value))) or None
    if bad is not None:
        raise ValueError(f"must not contain control characters (found {bad})")
    return value


def rendition_name(rung: str, codec: str) -> str:
    """A rendition's name (its output directory and file stem): the rung's for H.264, as always;
    ``<rung>_<codec>`` for the other codecs (``720p_av1``)."""
    return rung if codec == "h264" else f"{rung}_{codec}"


def _codecs(v: tuple[str, ...]) -> tuple[str, ...]:
    if not v:
        raise ValueError(f"at least one of {', '.join(map(repr, VIDEO_CODECS))}")
    return tuple(dict.fromkeys(v))


class PodPackaging(_Payload):
    """An Esup-Pod task's ladder (``api/esup.py``): once every rung is published, the ladder job
    that publishes the last one also makes Pod's files and ``info_video.json`` (``tasks/pod.py``).
    ``resolutions``: each rung's resolution as Pod wrote it (``{"360p": "640x360"}``)."""

    resolutions: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")],
                      Annotated[str, Field(pattern=r"^[0-9]{1,5}x[0-9]{1,5}$")]] = Field(max_length=16)
    video_id: str | None = Field(default=None, max_length=300)
    video_slug: str | None = Field(default=None, max_length=300)
    video_title: str | None = Field(default=None, max_length=300)


class TranscodePayload(_Payload):
    """Parent of a VOD ladder: probe, plan, encode the top rendition. Split into ``parts`` > 1,
    the parent only probes and plans: every rung is encoded by part children, in parallel."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    formats: tuple[Format, ...] = ("hls", "mp4")
    ladder: tuple[Rendition, ...] = Field(min_length=1, max_length=16)  # snapshot at submission
    parts: int = Field(default=1, ge=1, le=MAX_PARTS)  # time parts per rung asked for (fewer for short videos)
    # "auto": the parent lays the ladder out from the idle capacity it sees (media/strategy.py);
    # with auto_parts, ``parts`` is only the most it may choose (children exist for that many).
    planner: Literal["fixed", "auto"] = "fixed"
    auto_parts: bool = False
    video_codecs: tuple[VideoCodec, ...] = ("h264",)  # one ladder per codec
    cover_image: str | None = Field(default=None, max_length=MAX_URL)  # audio input + still image -> video
    hardware: Hardware = "none"  # software unless asked; a worker without it falls back (recorded)
    fps: float | None = Field(default=None, gt=0, le=120)  # every video rung at this rate (None: the source's)
    pod: PodPackaging | None = None  # an Esup-Pod task's ladder: Pod's files made after the last rung

    _url = field_validator("input", "output")(_check_url)
    _cover = field_validator("cover_image")(lambda v: None if v is None else _check_url(v))
    _video_codecs = field_validator("video_codecs")(_codecs)

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one of 'hls', 'mp4'")
        return tuple(dict.fromkeys(v))


class RenditionPayload(_Payload):
    """One lower rung, encoded after the parent has probed and planned."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    formats: tuple[Format, ...] = ("hls", "mp4")
    rendition: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")  # rendition_name(rung, codec)
    part: int = Field(default=0, ge=0, lt=MAX_PARTS)  # of a split rendition (see TranscodePayload.parts)
    parts: int = Field(default=1, ge=1, le=MAX_PARTS)
    cover_image: str | None = Field(default=None, max_length=MAX_URL)  # see TranscodePayload
    hardware: Hardware = "none"
    pod: PodPackaging | None = None  # see TranscodePayload

    _url = field_validator("input", "output")(_check_url)
    _cover = field_validator("cover_image")(lambda v: None if v is None else _check_url(v))

    @model_validator(mode="after")
    def _part_in_range(self) -> RenditionPayload:
        if self.part >= self.parts:
            raise ValueError(f"part {self.part} is not in 0..{self.parts - 1}")
        return self


MAX_THUMBNAILS = 50


class SpriteGrid(_Payload):
    """A storyboard's geometry given by the caller instead of planned from the settings (PeerTube's
    ``generate-video-storyboard`` payload: ``sprites.size``, ``sprites.count``, ``sprites.duration``):
    tiles of ``tile_width`` x ``tile_height`` taken every ``interval`` seconds, ``columns`` x ``rows``
    of them in one image."""

    tile_width: int = Field(ge=8, le=1920)
    tile_height: int = Field(ge=8, le=1920)
    columns: int = Field(ge=1, le=100)
    rows: int = Field(ge=1, le=100)
    interval: float = Field(gt=0, le=86_400)

    @model_validator(mode="after")
    def _fits(self) -> SpriteGrid:
        if self.tile_width * self.columns > 16_384 or self.tile_height * self.rows > 16_384:
            raise ValueError("the sprite image would be over 16384 pixels wide or tall")
        return self


class StoryboardPayload(_Payload):
    """Previews of a video (a child of its transcode, or a job of its own): a storyboard (sprite +
    WebVTT) and/or ``thumbnails`` preview images and a poster. ``sprites``: the storyboard's
    geometry (None: planned from the settings); ``image``: its format (None: the setting's)."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    storyboard: bool = True
    thumbnails: int = Field(default=0, ge=0, le=MAX_THUMBNAILS)
    sprites: SpriteGrid | None = None
    image: Literal["jpg", "webp"] | None = None

    _url = field_validator("input", "output")(_check_url)

    @model_validator(mode="after")
    def _something(self) -> StoryboardPayload:
        if not self.storyboard and not self.thumbnails:
            raise ValueError("asks for neither a storyboard nor thumbnails")
        return self


Subtitle = Literal["vtt", "srt", "json"]


class ExtractAudioPayload(_Payload):
    """Parent of a transcription: input -> 16 kHz mono WAV published beside the outputs."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)

    _url = field_validator("input", "output")(_check_url)


class TranscribePayload(_Payload):
    output: str = Field(max_length=MAX_URL)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    # A model *name* only: local model paths come from worker settings, never from a message.
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    formats: tuple[Subtitle, ...] = ("vtt", "srt", "json")
    device: Literal["auto", "gpu", "cpu"] = "auto"

    _url = field_validator("output")(_check_url)

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one of 'vtt', 'srt', 'json'")
        return tuple(dict.fromkeys(v))


class NoopPayload(_Payload):
    duration: float = Field(default=0.0, ge=0, le=3600)
    output: str | None = Field(default=None, max_length=MAX_URL)
    # Diagnostics: raise a transient error on attempts <= fail_attempts (exercises retries end to end).
    fail_attempts: int = Field(default=0, ge=0, le=10)

    @field_validator("output")
    @classmethod
    def _output(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)


STUDIO_OUTPUT = "studio.mp4"  # the edited file, relative to a studio job's output directory


class StudioPayload(_Payload):
    """Edit operations applied in order to ``input``; the result is published as ``output``/studio.mp4."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    operations: tuple[Operation, ...]

    _url = field_validator("input", "output")(_check_url)

    @field_validator("operations", mode="before")
    @classmethod
    def _operations(cls, v: Any) -> tuple[Any, ...]:
        if isinstance(v, str | bytes) or not isinstance(v, Sequence):
            raise ValueError("must be a list of operations")
        try:
            return tuple(parse_operations(v))
        except MediarunnerError as exc:  # pydantic reports ValueErrors only
            raise ValueError(str(exc)) from None


LIVE_INPUT_SCHEMES = ("rtmp", "rtmps", "srt", "http", "https", "udp", "rtp", "tcp", "file")


class LivePayload(_Payload):
    """A live input (pulled, or an RTMP publish received with ``listen``) turned into a live HLS ladder."""

    input_url: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    renditions: tuple[Rendition, ...] = Field(min_length=1, max_length=8)  # snapshot at submission
    listen: bool = False
    audio: bool = True  # False: the input has no audio track (renditions are video only)
    segment_seconds: float | None = Field(default=None, ge=0.5, le=60)  # None: the worker's LIVE_SEGMENT_SECONDS

    _url = field_validator("input_url", "output")(_check_url)

    @model_validator(mode="after")
    def _input(self) -> LivePayload:
        parts = urlsplit(self.input_url)
        scheme = parts.scheme.lower() if "://" in self.input_url else "file"
        if scheme not in LIVE_INPUT_SCHEMES:
            raise ValueError(f"unsupported live input scheme {scheme!r} (supported: {', '.join(LIVE_INPUT_SCHEMES)})")
        if "@" in parts.netloc:
            raise ValueError("credentials must not be embedded in the live input URL")
        if self.listen and scheme not in ("rtmp", "rtmps"):
            raise ValueError("listen needs an rtmp:// input URL (the address to listen on)")
        if len({r.name for r in self.renditions}) != len(self.renditions):
            raise ValueError("rendition names must be unique")
        return self


P = TypeVar("P", bound=BaseModel)


def load(model: type[P], data: Any) -> P:
    """Parse a stored payload (a handler's first step): a malformed one is a permanent
    :class:`~mediarunner.errors.ValidationError` of one line, naming the fields and their problems."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"invalid {model.__name__}: {problems}") from None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
