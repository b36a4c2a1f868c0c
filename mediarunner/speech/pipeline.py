"""One file in, one :class:`Transcript` out: audio extraction + a (cached) engine."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from .audio import extract_audio
from .engines import Engine, ShouldCancel, engine_lock
from .transcript import Transcript


def transcribe(
    src: Path,
    *,
    engine: Engine,
    work_dir: Path,
    language: str | None = None,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    on_progress: Callable[[float], None] | None = None,
    should_cancel: ShouldCancel | None = None,
) -> Transcript:
    """Extract the audio of ``src`` to ``work_dir`` and transcribe it with ``engine`` while
    holding :func:`engine_lock` for the engine's device.

    An input without an audio stream gives an empty transcript (``audio_duration`` 0), not an
    error. ``on_progress`` is handed to ffmpeg for the extraction step only. The temporary WAV
    is removed afterwards. Get ``engine`` from :func:`~.engines.get_engine` so the model is
    loaded once per process.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    wav = work_dir / "transcribe-audio.wav"
    try:
        duration = extract_audio(
            Path(src),
            wav,
            ffmpeg=ffmpeg,
            ffprobe=ffprobe,
            on_progress=on_progress,
            should_cancel=should_cancel,
        )
        if duration is None:
            return Transcript(
                language=None,
                segments=[],
                engine=engine.name,
                model=engine.model_name,
                device=engine.device,
                audio_duration=0.0,
                processing_seconds=0.0,
            )
        with engine_lock(engine.device):
            return engine.transcribe(wav, language=language, should_cancel=should_cancel)
    finally:
        with contextlib.suppress(FileNotFoundError):
            wav.unlink()
