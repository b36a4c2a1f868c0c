"""Speech transcription engines (faster-whisper, whisperx), subtitle rendering and helpers.

A pure library: it knows nothing of Celery or the database. Nothing is ever downloaded; models
are local CTranslate2 directories (see :func:`resolve_model`).
"""

from __future__ import annotations

from .subtitles import to_json, to_srt, to_webvtt
from .transcript import Segment, Transcript
from .wer import wer

__all__ = ["Segment", "Transcript", "to_json", "to_srt", "to_webvtt", "wer"]
