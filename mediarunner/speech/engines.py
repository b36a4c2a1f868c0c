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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict, Unpack

from mediarunner.errors import PermanentError

from .engine_base import _ALIASES, ENGINES, FASTER_WHISPER, WHISPERX, Engine, ShouldCancel
from .fasterwhisper_engine import FasterWhisperEngine
from .models import resolve_model
from .whisperx_engine import WhisperXEngine

__all__ = [
    "ENGINES",
    "FASTER_WHISPER",
    "WHISPERX",
    "Engine",
    "EngineOptions",
    "FasterWhisperEngine",
    "ShouldCancel",
    "WhisperXEngine",
    "clear_engine_cache",
    "engine_loads",
    "engine_lock",
    "get_engine",
    "load_engine",
    "normalize_engine_name",
]


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
