"""Validated payloads: every request is checked here, at the edge, before a row is written.

The dicts stored in ``jobs.payload`` are ``model_dump(mode="json")`` of these models, and the
handlers parse them back with the same models, so a malformed payload is a permanent error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mediarunner.config.settings import Rendition

Format = Literal["hls", "mp4"]
MAX_URL = 4096


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_url(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("must not be empty")
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


class TranscodePayload(_Payload):
    """Parent of a VOD ladder: probe, plan, encode the top rendition."""

    input: str = Field(max_length=MAX_URL)
    output: str = Field(max_length=MAX_URL)
    formats: tuple[Format, ...] = ("hls", "mp4")
    ladder: tuple[Rendition, ...] = Field(min_length=1, max_length=16)  # snapshot at submission

    _url = field_validator("input", "output")(_check_url)

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
    rendition: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")


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


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
