"""The engine-independent result of a transcription."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Segment(BaseModel):
    """One timed piece of speech. Times are seconds from the start of the audio."""

    start: float = Field(ge=0.0)
    end: float = Field(ge=0.0)
    text: str
    speaker: str | None = None


class Transcript(BaseModel):
    """What every engine returns.

    ``language`` is the (given or detected) ISO code, or None when nothing was detected
    (e.g. silent audio). ``engine``/``model``/``device`` say what produced it.
    ``audio_duration`` is the length of the audio in seconds and ``processing_seconds`` the
    wall-clock time the engine spent on it (model loading excluded).
    """

    language: str | None
    segments: list[Segment] = Field(default_factory=list)
    engine: str
    model: str
    device: str
    audio_duration: float = Field(ge=0.0)
    processing_seconds: float = Field(ge=0.0)

    @property
    def realtime_factor(self) -> float:
        """``processing_seconds / audio_duration``: **lower is faster**.

        0.1 means one minute of audio took six seconds; above 1.0 the engine is slower than
        real time. 0.0 when the audio has no duration.
        """
        if self.audio_duration <= 0:
            return 0.0
        return self.processing_seconds / self.audio_duration

    @property
    def text(self) -> str:
        """All segment texts joined by single spaces, stripped."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())
