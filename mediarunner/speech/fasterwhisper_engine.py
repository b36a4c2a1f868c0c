"""The faster-whisper engine (CTranslate2, CPU or GPU)."""

from __future__ import annotations

import time
from pathlib import Path

from mediarunner.errors import JobCancelled, ModelNotFoundError

from .engine_base import (
    FASTER_WHISPER,
    ShouldCancel,
    _check_audio,
    _check_cancel,
    _classify_runtime_error,
    _model_load_error,
    _offline,
)
from .models import is_model_dir
from .transcript import Segment, Transcript

__all__ = ["FasterWhisperEngine"]


class FasterWhisperEngine:
    """faster-whisper (CTranslate2). ``model_path`` is a local CTranslate2 model directory.

    ``vad_filter`` (default on) runs faster-whisper's bundled Silero VAD first, which skips
    silence (no hallucinated text on silent audio) and speeds up sparse recordings.
    """

    name = FASTER_WHISPER

    def __init__(
        self,
        model_path: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        cpu_threads: int = 0,
        *,
        vad_filter: bool = True,
        model_name: str | None = None,
    ) -> None:
        _offline()
        self.model_path = Path(model_path)
        if not is_model_dir(self.model_path):
            raise ModelNotFoundError(
                f"{self.model_path} is not a CTranslate2 model directory (needs model.bin and "
                "config.json); fix MEDIARUNNER_WHISPER_MODEL / MEDIARUNNER_WHISPER_MODEL_DIR"
            )
        self.model_name = model_name or self.model_path.name
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.vad_filter = vad_filter

        from faster_whisper import WhisperModel

        dev, _, index = device.partition(":")
        try:
            self._model = WhisperModel(
                str(self.model_path),
                device=dev,
                device_index=int(index) if index else 0,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise _model_load_error(self.name, self.model_path, exc) from exc

    def __repr__(self) -> str:
        return (
            f"FasterWhisperEngine(model={self.model_name!r}, device={self.device!r}, "
            f"compute_type={self.compute_type!r})"
        )

    def transcribe(
        self,
        audio: Path,
        *,
        language: str | None,
        should_cancel: ShouldCancel | None = None,
    ) -> Transcript:
        """Transcribe ``audio``; ``should_cancel`` is polled between segments."""
        audio = _check_audio(audio)
        _check_cancel(should_cancel)
        started = time.perf_counter()
        try:
            seg_iter, info = self._model.transcribe(
                str(audio),
                language=language,
                beam_size=self.beam_size,
                vad_filter=self.vad_filter,
            )
            segments: list[Segment] = []
            for s in seg_iter:
                _check_cancel(should_cancel)
                text = s.text.strip()
                if text:
                    segments.append(Segment(start=max(0.0, s.start), end=max(0.0, s.end), text=text))
        except JobCancelled:
            raise
        except Exception as exc:
            raise _classify_runtime_error(self.name, audio, exc) from exc
        elapsed = time.perf_counter() - started
        detected = info.language if (segments or language) else None
        return Transcript(
            language=language or detected,
            segments=segments,
            engine=self.name,
            model=self.model_name,
            device=self.device,
            audio_duration=float(info.duration),
            processing_seconds=elapsed,
        )
