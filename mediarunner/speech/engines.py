"""Speech-to-text engines: faster-whisper (CPU/GPU, CTranslate2) and whisperx (batched,
VAD, optional word alignment and diarization).

Every engine loads its model once, in ``__init__``; :func:`get_engine` keeps one engine per
argument set per process, and :func:`engine_lock` serialises transcriptions per device so a
GPU runs one at a time. Nothing is ever downloaded: models come from local directories only
(see :mod:`.models`).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack, runtime_checkable

from mediarunner.errors import (
    InvalidInputError,
    JobCancelled,
    ModelNotFoundError,
    PermanentError,
    ProcessingError,
)

from .models import is_model_dir, resolve_model
from .transcript import Segment, Transcript

log = logging.getLogger(__name__)

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


def _classify_runtime_error(engine: str, audio: Path, exc: Exception) -> Exception:
    """Decoding errors are the input's fault (permanent); anything else may pass (transient)."""
    kind = type(exc).__module__ + "." + type(exc).__name__
    if kind.startswith("av.") or "Invalid data" in str(exc) or "could not be decoded" in str(exc):
        return InvalidInputError(f"{engine}: cannot decode audio {audio}: {exc}")
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ProcessingError(f"{engine}: out of memory transcribing {audio}: {exc}")
    return ProcessingError(f"{engine}: transcription of {audio} failed: {kind}: {exc}")



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
        if not is_model_dir(self.model_path):
            raise ModelNotFoundError(
                f"{self.model_path} is not a CTranslate2 model directory (needs model.bin and "
                "config.json); fix MEDIARUNNER_WHISPER_MODEL / MEDIARUNNER_WHISPER_MODEL_DIR"
            )
        if vad_method not in ("pyannote", "silero"):
            raise PermanentError(f"whisperx: unknown vad_method {vad_method!r} (pyannote or silero)")
        # Cheap configuration checks before the (slow) model loads.
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
        self.model_name = model_name or self.model_path.name
        self.device = device
        self.compute_type = compute_type
        self.batch_size = batch_size
        self.vad_method = vad_method
        self.align_model_dir = Path(align_model_dir) if align_model_dir is not None else None
        self.diarize_model_dir = Path(diarize_model_dir) if diarize_model_dir is not None else None

        try:
            import whisperx
            from whisperx.asr import WhisperModel
        except ImportError as exc:
            raise PermanentError(
                f"whisperx is not importable in this interpreter ({exc}); run the worker in the "
                "whisperx virtualenv (scripts/whisperx-venv.sh) or set MEDIARUNNER_WHISPER_ENGINE="
                "faster-whisper"
            ) from exc
        self._whisperx: Any = whisperx
        if vad_method == "silero":
            self._check_silero_cached()

        dev, _, index = device.partition(":")
        self._torch_device = dev if dev != "cuda" else f"cuda:{index or 0}"
        try:
            wmodel = WhisperModel(
                str(self.model_path),
                device=dev,
                device_index=int(index) if index else 0,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
            self.multilingual = bool(wmodel.model.is_multilingual)
            # English-only models must be told their language (whisperx only infers it from a
            # whisper_arch name ending in ".en", and a path does not).
            self.preset_language = language if self.multilingual else "en"
            self._pipeline: Any = whisperx.load_model(
                str(self.model_path),
                device=dev,
                device_index=int(index) if index else 0,
                compute_type=compute_type,
                language=self.preset_language,
                vad_method=vad_method,
                vad_options=vad_options,
                model=wmodel,
                download_root=str(self.model_path),
                local_files_only=True,
                threads=cpu_threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise _model_load_error(self.name, self.model_path, exc) from exc

        self._align: dict[str, tuple[Any, dict[str, Any]] | None] = {}
        if self.align_model_dir is not None and self.preset_language is not None:
            # Language known up front: a missing alignment model is a configuration error.
            self._align[self.preset_language] = self._load_align(self.preset_language, strict=True)
        self._diarize: Any = None
        if self.diarize_model_dir is not None:
            self._diarize = self._load_diarize(self.diarize_model_dir)

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
                if detected not in self._align:
                    self._align[detected] = self._load_align(detected, strict=False)
                aligner = self._align[detected]
                if aligner is not None:
                    model, metadata = aligner
                    aligned = wx.align(segments, model, metadata, samples, self._torch_device)
                    segments = [s for s in aligned.get("segments", []) if str(s.get("text", "")).strip()]
                    _check_cancel(should_cancel)
            if segments and self._diarize is not None:
                diarized = self._diarize(samples)
                segments = wx.assign_word_speakers(diarized, {"segments": segments})["segments"]
        except (JobCancelled, PermanentError):
            raise
        except Exception as exc:
            raise _classify_runtime_error(self.name, audio, exc) from exc
        elapsed = time.perf_counter() - started
        return Transcript(
            language=detected,
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


# --------------------------------------------------------------------------- loading and caching


def normalize_engine_name(engine: str) -> str:
    """``faster-whisper`` or ``whisperx`` (a few spellings accepted); PermanentError otherwise."""
    key = engine.strip().lower()
    if key not in _ALIASES:
        raise PermanentError(
            f"unknown transcription engine {engine!r}; fix MEDIARUNNER_WHISPER_ENGINE "
            f"(one of: {', '.join(ENGINES)})"
        )
    return _ALIASES[key]


def load_engine(
    engine: str,
    model: str | None,
    *,
    model_dir: Path | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
    beam_size: int = 5,
    cpu_threads: int = 0,
    batch_size: int = 16,
    vad_method: str = "pyannote",
    align_model_dir: Path | None = None,
    diarize_model_dir: Path | None = None,
) -> Engine:
    """Resolve ``model`` locally (:func:`~.models.resolve_model`) and build a new engine.

    ``beam_size``/``cpu_threads`` apply to faster-whisper; ``batch_size``, ``vad_method``,
    ``align_model_dir`` and ``diarize_model_dir`` to whisperx. This always loads a model: use
    :func:`get_engine` to reuse one per process.
    """
    kind = normalize_engine_name(engine)
    path = resolve_model(model, model_dir)
    name = (model or "").strip() or path.name
    if "/" in name or "\\" in name:
        name = Path(name).name
    if kind == FASTER_WHISPER:
        return FasterWhisperEngine(
            path,
            device=device,
            compute_type=compute_type,
            beam_size=beam_size,
            cpu_threads=cpu_threads,
            model_name=name,
        )
    return WhisperXEngine(
        path,
        device=device,
        compute_type=compute_type,
        batch_size=batch_size,
        vad_method=vad_method,
        align_model_dir=align_model_dir,
        diarize_model_dir=diarize_model_dir,
        model_name=name,
        cpu_threads=cpu_threads,
    )


class EngineOptions(TypedDict, total=False):
    """:func:`load_engine`'s keyword options, as :func:`get_engine` passes them on."""

    model_dir: Path | None
    device: str
    compute_type: str
    beam_size: int
    cpu_threads: int
    batch_size: int
    vad_method: str
    align_model_dir: Path | None
    diarize_model_dir: Path | None


# load_engine's defaults: get_engine(x) and get_engine(x, device="cpu") are the same engine.
_DEFAULTS: dict[str, Any] = {
    name: p.default for name, p in inspect.signature(load_engine).parameters.items() if p.kind is p.KEYWORD_ONLY}
_cache: dict[tuple[object, ...], Engine] = {}
_cache_lock = threading.Lock()
_load_locks: dict[tuple[object, ...], threading.Lock] = {}
_device_locks: dict[str, threading.Lock] = {}
_device_locks_guard = threading.Lock()
_loads = 0


def get_engine(engine: str, model: str | None, **options: Unpack[EngineOptions]) -> Engine:
    """Like :func:`load_engine`, but returns the same engine for the same arguments within a
    process (the model is loaded once). Thread-safe: concurrent first calls load it once.

    A failed load is not cached (the next call tries again). Engines are not safe for
    concurrent ``transcribe`` calls: wrap each in :func:`engine_lock` (``pipeline.transcribe``
    does)."""
    global _loads
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"get_engine() got unexpected option(s) {sorted(unknown)}")
    resolved = {**_DEFAULTS, **options}
    key: tuple[object, ...] = (
        normalize_engine_name(engine),
        (model or "").strip() or None,
        *(str(v) if isinstance(v, Path) else v for _, v in sorted(resolved.items())),
    )
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        key_lock = _load_locks.setdefault(key, threading.Lock())
    # Load under this key's lock only: concurrent first calls for the same arguments load the
    # model once, while lookups of other (already loaded) engines are not held up.
    with key_lock:
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None:
            return cached
        loaded = load_engine(engine, model, **options)
        with _cache_lock:
            _cache[key] = loaded
            _loads += 1
        return loaded


def engine_loads() -> int:
    """How many models :func:`get_engine` has loaded in this process (a worker loads each once)."""
    return _loads


def clear_engine_cache() -> None:
    """Forget every cached engine (their models are freed once no one else holds them)."""
    with _cache_lock:
        _cache.clear()


def _device_key(device: str) -> str:
    dev = device.strip().lower()
    if dev in ("cuda", "gpu"):
        return "cuda:0"
    return dev


@contextlib.contextmanager
def engine_lock(device: str) -> Iterator[None]:
    """Hold the per-process lock of ``device`` (``cuda`` and ``cuda:0`` are the same device):
    wrap each ``transcribe`` call so one device runs one transcription at a time."""
    key = _device_key(device)
    with _device_locks_guard:
        lock = _device_locks.setdefault(key, threading.Lock())
    with lock:
        yield
