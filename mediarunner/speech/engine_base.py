"""What every speech-to-text engine shares: the :class:`Engine` protocol, the engine names, and
the checks and error mapping both engines apply."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from mediarunner.errors import (
    InvalidInputError,
    JobCancelled,
    ModelNotFoundError,
    PermanentError,
    ProcessingError,
)

from .transcript import Transcript

FASTER_WHISPER = "faster-whisper"
WHISPERX = "whisperx"
ENGINES = (FASTER_WHISPER, WHISPERX)
_ALIASES = {
    "faster-whisper": FASTER_WHISPER,
    "faster_whisper": FASTER_WHISPER,
    "fasterwhisper": FASTER_WHISPER,
    "whisperx": WHISPERX,
    "whisper-x": WHISPERX,
}

ShouldCancel = Callable[[], bool]


@runtime_checkable
class Engine(Protocol):
    """What the transcription worker needs from an engine."""

    name: str
    model_name: str
    device: str

    def transcribe(
        self, audio: Path, *, language: str | None, should_cancel: ShouldCancel | None = None
    ) -> Transcript:
        """Transcribe a (preferably 16 kHz mono WAV) audio file. ``language`` None: detect
        (English-only models always answer ``en``). ``should_cancel`` is polled when the engine
        can stop (raises :class:`~mediarunner.errors.JobCancelled`)."""
        ...


def _offline() -> None:
    """Make any accidental hub access fail instead of downloading."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _check_audio(audio: Path) -> Path:
    audio = Path(audio)
    if not audio.is_file():
        raise InvalidInputError(f"audio file {audio} does not exist")
    if audio.stat().st_size == 0:
        raise InvalidInputError(f"audio file {audio} is empty")
    return audio


def _check_cancel(should_cancel: ShouldCancel | None) -> None:
    if should_cancel is not None and should_cancel():
        raise JobCancelled("transcription cancelled")


def _model_load_error(engine: str, model_path: Path, exc: BaseException) -> PermanentError:
    msg = str(exc)
    if "model.bin" in msg or "No such file" in msg or "not found" in msg.lower():
        return ModelNotFoundError(f"{engine}: cannot load model from {model_path}: {msg}")
    return PermanentError(f"{engine}: cannot load model from {model_path}: {type(exc).__name__}: {msg}")


def _classify_runtime_error(engine: str, audio: Path, exc: Exception) -> Exception:
    """Decoding errors are the input's fault (permanent); anything else may pass (transient)."""
    kind = type(exc).__module__ + "." + type(exc).__name__
    if kind.startswith("av.") or "Invalid data" in str(exc) or "could not be decoded" in str(exc):
        return InvalidInputError(f"{engine}: cannot decode audio {audio}: {exc}")
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ProcessingError(f"{engine}: out of memory transcribing {audio}: {exc}")
    return ProcessingError(f"{engine}: transcription of {audio} failed: {kind}: {exc}")
