"""The whisperx engine: batched faster-whisper behind a VAD, optional word alignment and
speaker diarization. whisperx and torch are imported lazily, in the engine's ``__init__``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from mediarunner.errors import InvalidInputError, JobCancelled, ModelNotFoundError, PermanentError

from .engine_base import (
    WHISPERX,
    ShouldCancel,
    _check_audio,
    _check_cancel,
    _classify_runtime_error,
    _model_load_error,
    _offline,
)
from .models import is_model_dir
from .transcript import Segment, Transcript

__all__ = ["WhisperXEngine"]

log = logging.getLogger(__name__)


def _check_config(model_path: Path, vad_method: str, align_model_dir: Path | None,
                  diarize_model_dir: Path | None) -> None:  # fmt: skip
    if not is_model_dir(model_path):
        raise ModelNotFoundError(
            f"{model_path} is not a CTranslate2 model directory (needs model.bin and "
            "config.json); fix MEDIARUNNER_WHISPER_MODEL / MEDIARUNNER_WHISPER_MODEL_DIR"
        )
    if vad_method not in ("pyannote", "silero"):
        raise PermanentError(f"whisperx: unknown vad_method {vad_method!r} (pyannote or silero)")
    if align_model_dir is not None and not Path(align_model_dir).is_dir():
        raise ModelNotFoundError(
            f"whisperx: alignment model directory {align_model_dir} does not exist; "
            "fix MEDIARUNNER_WHISPER_ALIGN_MODEL_DIR or unset it to skip alignment"
        )
    if diarize_model_dir is not None and not (Path(diarize_model_dir) / "config.yaml").is_file():
        raise ModelNotFoundError(
            f"whisperx: {diarize_model_dir} is not a pyannote pipeline directory (no config.yaml); "
            "fix MEDIARUNNER_WHISPER_DIARIZE_MODEL_DIR or unset it to skip diarization"
        )


def _import_whisperx() -> Any:
    try:
        import whisperx
        import whisperx.asr  # WhisperModel, imported again where the model loads
    except ImportError as exc:
        raise PermanentError(
            f"whisperx is not importable in this interpreter ({exc}); run the worker in the "
            "whisperx virtualenv (scripts/whisperx-venv.sh) or set MEDIARUNNER_WHISPER_ENGINE="
            "faster-whisper"
        ) from exc
    return whisperx


class WhisperXEngine:
    """whisperx: batched faster-whisper inference behind a VAD, with optional word alignment and
    speaker diarization. ``whisperx`` (and torch) are imported here, lazily, so the rest of the
    package works without them; it is meant to run in its own virtualenv
    (``scripts/whisperx-venv.sh``).

    Nothing is downloaded:

    * the Whisper model is the local CTranslate2 directory ``model_path`` (loaded with
      ``local_files_only=True``);
    * ``vad_method="pyannote"`` (default) uses the segmentation model bundled in the whisperx
      wheel; ``"silero"`` needs silero-vad already in the torch hub cache;
    * alignment runs only when ``align_model_dir`` is given: either a Hugging Face wav2vec2
      model directory (``config.json``), or a directory holding the torchaudio checkpoint of
      whisperx's default model for the language (e.g. ``wav2vec2_fairseq_base_ls960_asr_ls960.pth``
      for English) or a Hugging Face cache of its default model;
    * diarization runs only when ``diarize_model_dir`` is given: a local pyannote pipeline
      directory (``config.yaml``, e.g. a snapshot of pyannote/speaker-diarization-community-1).
    """

    name = WHISPERX

    def __init__(
        self,
        model_path: Path,
        device: str = "cuda",
        compute_type: str = "float16",
        batch_size: int = 16,
        vad_method: str = "pyannote",
        align_model_dir: Path | None = None,
        diarize_model_dir: Path | None = None,
        *,
        vad_options: dict[str, float] | None = None,
        model_name: str | None = None,
        cpu_threads: int = 0,
        language: str | None = None,
    ) -> None:
        _offline()
        os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
        self.model_path = Path(model_path)
        # Cheap configuration checks before the (slow) model loads.
        _check_config(self.model_path, vad_method, align_model_dir, diarize_model_dir)
        self.model_name = model_name or self.model_path.name
        self.device = device
        self.compute_type = compute_type
        self.batch_size = batch_size
        self.vad_method = vad_method
        self.align_model_dir = Path(align_model_dir) if align_model_dir is not None else None
        self.diarize_model_dir = Path(diarize_model_dir) if diarize_model_dir is not None else None
        self._whisperx: Any = _import_whisperx()
        if vad_method == "silero":
            self._check_silero_cached()
        dev, _, index = device.partition(":")
        self._torch_device = dev if dev != "cuda" else f"cuda:{index or 0}"
        self._pipeline: Any = self._load_pipeline(cpu_threads, language, vad_options)

        self._align: dict[str, tuple[Any, dict[str, Any]] | None] = {}
        if self.align_model_dir is not None and self.preset_language is not None:
            # Language known up front: a missing alignment model is a configuration error.
            self._align[self.preset_language] = self._load_align(self.preset_language, strict=True)
        self._diarize: Any = None
        if self.diarize_model_dir is not None:
            self._diarize = self._load_diarize(self.diarize_model_dir)

    def _load_pipeline(self, cpu_threads: int, language: str | None, vad_options: dict[str, float] | None) -> Any:
        """The Whisper model (local files only) inside whisperx's VAD + batched ASR pipeline.
        Sets ``multilingual`` and ``preset_language``."""
        from whisperx.asr import WhisperModel

        dev, _, index = self.device.partition(":")
        try:
            wmodel = WhisperModel(
                str(self.model_path),
                device=dev,
                device_index=int(index) if index else 0,
                compute_type=self.compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
            self.multilingual = bool(wmodel.model.is_multilingual)
            # English-only models must be told their language (whisperx only infers it from a
            # whisper_arch name ending in ".en", and a path does not).
            self.preset_language = language if self.multilingual else "en"
            return self._whisperx.load_model(
                str(self.model_path),
                device=dev,
                device_index=int(index) if index else 0,
                compute_type=self.compute_type,
                language=self.preset_language,
                vad_method=self.vad_method,
                vad_options=vad_options,
                model=wmodel,
                download_root=str(self.model_path),
                local_files_only=True,
                threads=cpu_threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise _model_load_error(self.name, self.model_path, exc) from exc

    def __repr__(self) -> str:
        return (
            f"WhisperXEngine(model={self.model_name!r}, device={self.device!r}, "
            f"compute_type={self.compute_type!r}, vad={self.vad_method!r}, "
            f"align={self.align_model_dir is not None}, diarize={self.diarize_model_dir is not None})"
        )

    # ---------------------------------------------------------------- optional models

    @staticmethod
    def _check_silero_cached() -> None:
        import torch

        hub = Path(torch.hub.get_dir())
        if not any((hub / f"snakers4_silero-vad_{ref}").is_dir() for ref in ("master", "main")):
            raise ModelNotFoundError(
                f"whisperx vad_method='silero' needs silero-vad in the torch hub cache ({hub}); "
                "it is never downloaded at run time. Use vad_method='pyannote' (bundled with whisperx)."
            )

    def _load_align(self, language: str, *, strict: bool) -> tuple[Any, dict[str, Any]] | None:
        assert self.align_model_dir is not None
        base = self.align_model_dir
        wx = self._whisperx
        from whisperx import alignment

        model_name: str | None = None
        model_dir: str | None = str(base)
        problem = ""
        if (base / "config.json").is_file():
            model_name, model_dir = str(base), None  # a Hugging Face wav2vec2 directory
        elif language in alignment.DEFAULT_ALIGN_MODELS_TORCH:
            import torchaudio

            bundle = getattr(torchaudio.pipelines, alignment.DEFAULT_ALIGN_MODELS_TORCH[language])
            checkpoint = base / Path(str(getattr(bundle, "_path", ""))).name
            if not checkpoint.is_file():
                problem = f"{checkpoint} is missing"
        elif language not in alignment.DEFAULT_ALIGN_MODELS_HF:
            problem = f"no default alignment model for language {language!r}"
        if not problem:
            try:
                model, metadata = wx.load_align_model(
                    language_code=language,
                    device=self._torch_device,
                    model_name=model_name,
                    model_dir=model_dir,
                    model_cache_only=True,
                )
                return model, metadata
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
        msg = (
            f"whisperx: no local alignment model for {language!r} under {base} ({problem}); "
            "fix MEDIARUNNER_WHISPER_ALIGN_MODEL_DIR or unset it to skip alignment"
        )
        if strict:
            raise ModelNotFoundError(msg)
        log.warning("%s; transcribing without word alignment", msg)
        return None

    def _load_diarize(self, path: Path) -> Any:
        try:
            from whisperx.diarize import DiarizationPipeline

            return DiarizationPipeline(model_name=str(path), device=self._torch_device)
        except Exception as exc:
            raise ModelNotFoundError(
                f"whisperx: cannot load the diarization pipeline from {path}: {type(exc).__name__}: "
                f"{exc}; fix MEDIARUNNER_WHISPER_DIARIZE_MODEL_DIR"
            ) from exc

    # ---------------------------------------------------------------- transcription

    def _aligned(self, segments: list[dict[str, Any]], language: str, samples: Any) -> list[dict[str, Any]]:
        """Word-aligned ``segments`` (unchanged when no alignment model serves ``language``)."""
        if language not in self._align:
            self._align[language] = self._load_align(language, strict=False)
        aligner = self._align[language]
        if aligner is None:
            return segments
        model, metadata = aligner
        aligned = self._whisperx.align(segments, model, metadata, samples, self._torch_device)
        return [s for s in aligned.get("segments", []) if str(s.get("text", "")).strip()]

    def transcribe(
        self,
        audio: Path,
        *,
        language: str | None,
        should_cancel: ShouldCancel | None = None,
    ) -> Transcript:
        """Transcribe ``audio``; ``should_cancel`` is polled between stages (VAD+ASR, alignment,
        diarization)."""
        audio = _check_audio(audio)
        _check_cancel(should_cancel)
        wx = self._whisperx
        lang = language if self.multilingual else "en"
        started = time.perf_counter()
        try:
            samples = wx.load_audio(str(audio))
        except Exception as exc:
            raise InvalidInputError(f"whisperx: cannot decode audio {audio}: {exc}") from exc
        duration = float(len(samples)) / 16_000.0
        try:
            result: dict[str, Any] = {"segments": [], "language": lang}
            if len(samples):
                result = self._pipeline.transcribe(samples, batch_size=self.batch_size, language=lang)
            segments = [s for s in result.get("segments", []) if str(s.get("text", "")).strip()]
            detected: str | None = result.get("language") if segments else language
            _check_cancel(should_cancel)
            if segments and self.align_model_dir is not None and detected:
                segments = self._aligned(segments, detected, samples)
                _check_cancel(should_cancel)
            if segments and self._diarize is not None:
                diarized = self._diarize(samples)
                segments = wx.assign_word_speakers(diarized, {"segments": segments})["segments"]
        except (JobCancelled, PermanentError):
            raise
        except Exception as exc:
            raise _classify_runtime_error(self.name, audio, exc) from exc
        return self._transcript(segments, detected, duration, time.perf_counter() - started)

    def _transcript(self, segments: list[dict[str, Any]], language: str | None, duration: float,
                    elapsed: float) -> Transcript:  # fmt: skip
        return Transcript(
            language=language,
            segments=[
                Segment(
                    start=max(0.0, float(s["start"])),
                    end=max(0.0, float(s["end"])),
                    text=str(s["text"]).strip(),
                    speaker=s.get("speaker"),
                )
                for s in segments
            ],
            engine=self.name,
            model=self.model_name,
            device=self.device,
            audio_duration=duration,
            processing_seconds=elapsed,
        )
