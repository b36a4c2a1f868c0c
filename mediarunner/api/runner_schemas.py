"""What a remote runner says about itself: its capabilities (the shape of
``tasks.probes.machine_capabilities``), checked and bounded before they reach the fleet row that
routing reads (``models.capabilities.Skills.from_capabilities``). Names are plain tokens (no ``|``:
the skills column is ``|``-separated), lists and strings are bounded, anything else is dropped."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")]
Names: Any = Field(default_factory=list, max_length=2000)
Words: Any = Field(default=None, max_length=200)


class _Ignoring(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FfmpegCapabilities(_Ignoring):
    version: str | None = Words
    encoders: list[Name] = Names
    hwaccels: list[Name] = Names
    hardware_encoders: list[Name] = Names
    hardware_usable: list[Name] = Names  # the hardware encoders a 1-frame test encode opened
    error: str | None = Field(default=None, max_length=500)


class GpuCapabilities(_Ignoring):
    index: int = Field(ge=0, le=64)
    name: str | None = Words
    memory_total_mb: int | None = Field(default=None, ge=0)


class WhisperCapabilities(_Ignoring):
    engines: list[Name] = Field(default_factory=list, max_length=10)
    models: list[Name] = Field(default_factory=list, max_length=200)


class Capabilities(_Ignoring):
    ffmpeg: FfmpegCapabilities | None = None
    gpus: list[GpuCapabilities] = Field(default_factory=list, max_length=16)
    whisper: WhisperCapabilities | None = None
    python: str | None = Field(default=None, max_length=40)
    platform: str | None = Words
    cpu_count: int | None = Field(default=None, ge=1, le=4096)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
