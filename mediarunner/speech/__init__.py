"""Speech transcription engines (faster-whisper, whisperx), subtitle rendering and helpers.

A pure library: it knows nothing of Celery or the database. Nothing is ever downloaded; models
are local CTranslate2 directories (see :func:`resolve_model`). Heavy imports (faster-whisper,
whisperx/torch) happen only when an engine is built.
"""

from __future__ import annotations

from .audio import extract_audio
from .engines import (
    ENGINES,
    Engine,
    FasterWhisperEngine,
    WhisperXEngine,
    clear_engine_cache,
    engine_loads,
    engine_lock,
    get_engine,
    load_engine,
)
from .models import available_models, resolve_model
from .pipeline import transcribe
from .subtitles import to_json, to_srt, to_webvtt
from .transcript import Segment, Transcript
from .wer import wer

__all__ = [
    "ENGINES",
    "Engine",
    "FasterWhisperEngine",
    "Segment",
    "Transcript",
    "WhisperXEngine",
    "available_models",
    "clear_engine_cache",
    "engine_loads",
    "engine_lock",
    "extract_audio",
    "get_engine",
    "load_engine",
    "resolve_model",
    "to_json",
    "to_srt",
    "to_webvtt",
    "transcribe",
    "wer",
]
