"""(6) Transcription speed: realtime factor (processing seconds / audio seconds; < 1 is faster than
realtime) of faster-whisper and whisperx on the same speech clip.

``python -m bench.transcription [--smoke] [--json out.json] [--seconds 30] [--model tiny.en] [--model-dir DIR]``

======================================================================================== HOOK
TODO(lead): this is a hook. ``mediarunner.workers.transcribe`` is being written on another branch;
this module imports it lazily and reports "not available" while it is missing (or while the calls
below do not match its API). When it lands, check ``_load_engine`` and ``_transcribe`` (the only
two places that touch its API), run ``python -m bench.transcription --smoke`` and remove this note.
Written against the API seen while it was in progress: ``get_engine(engine, model, model_dir=...,
device=...)`` returning an engine whose ``transcribe(wav, language=...)`` gives a ``Transcript``.
whisperx usually lives in its own virtualenv (``make test-whisperx``): run this benchmark there
too, or accept "engine not installed" for it in the main one.
=============================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import BenchResult, Unavailable, bench_tmp, cached_clip, cli

NAME = "transcription"
TITLE = "Transcription: realtime factor of faster-whisper and whisperx"
MODULE = "mediarunner.workers.transcribe"
ENGINES = ("faster-whisper", "whisperx")
TEXT = ("Welcome to this short lecture about distributed media processing. Today we look at how a video "
        "is transcoded into several renditions, how the jobs are scheduled on a fleet of workers, and how "
        "speech is turned into subtitles. ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="speech clip length (default 30, smoke 3)")
    parser.add_argument("--model", default=os.environ.get("MEDIARUNNER_WHISPER_MODEL") or "tiny.en")
    parser.add_argument("--model-dir", type=Path, default=os.environ.get("MEDIARUNNER_WHISPER_MODEL_DIR") or None)
    parser.add_argument("--device", default="cpu")


def _module() -> ModuleType:
    try:
        return importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and MODULE.startswith(exc.name):
            raise Unavailable(f"{MODULE} is not in this checkout yet (hook: see bench/transcription.py)") from None
        raise Unavailable(f"{MODULE} needs {exc.name!r}, which is not installed") from None


def _load_engine(mod: ModuleType, engine: str, model: str, model_dir: Path | None, device: str) -> Any:
    # TODO(lead): check against the final API of mediarunner.workers.transcribe.
    return mod.get_engine(engine, model, model_dir=model_dir, device=device)


def _transcribe(engine: Any, wav: Path) -> Any:
    # TODO(lead): check against the final API of mediarunner.workers.transcribe.
    return engine.transcribe(wav, language="en")


def speech_wav(seconds: float, tmp: Path) -> tuple[Path, str]:
    """A 16 kHz mono WAV of synthetic English speech (espeak-ng), or the benchmark clip's tone."""
    wav = tmp / "speech.wav"
    if shutil.which("espeak-ng"):
        raw = tmp / "espeak.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), TEXT * 3], check=True, capture_output=True)
        src, what = raw, "espeak-ng English speech, looped"
    else:
        src, what = cached_clip(max(seconds, 1.0)), "440 Hz tone (espeak-ng missing): not speech"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-t", f"{seconds:g}", "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(wav)],
                   check=True)
    return wav, what


def run(smoke: bool = False, seconds: float | None = None, model: str = "tiny.en", model_dir: Path | None = None,
        device: str = "cpu") -> BenchResult:
    seconds = seconds or (3.0 if smoke else 30.0)
    mod = _module()
    res = BenchResult(NAME, TITLE, smoke, params={"seconds": seconds, "model": model, "device": device,
                                                   "engines": list(ENGINES)})
    measured = 0
    with bench_tmp(NAME) as tmp:
        wav, what = speech_wav(seconds, tmp)
        res.params["clip"] = what
        for name in ENGINES:
            try:
                t0 = time.perf_counter()
                engine = _load_engine(mod, name, model, model_dir, device)
                load_s = time.perf_counter() - t0
                if not smoke:
                    _transcribe(engine, wav)  # warm-up: lazy initialisation inside the engine
                t1 = time.perf_counter()
                transcript = _transcribe(engine, wav)
                elapsed = time.perf_counter() - t1
            except Exception as exc:  # engine not installed, model not found, API mismatch (see TODO)
                res.add(f"{name}: not available", None, note=f"{type(exc).__name__}: {exc}"[:160])
                continue
            measured += 1
            res.add(f"{name}: realtime factor", elapsed / seconds, "x", note=f"{seconds:g} s of audio")
            res.add(f"{name}: model load", load_s, "s")
            text = " ".join(getattr(s, "text", "") for s in getattr(transcript, "segments", []))
            res.details[name] = {"transcribe_s": elapsed, "load_s": load_s, "text": text[:500]}
    if not measured:
        raise Unavailable("; ".join(m.note for m in res.metrics) or "no engine ran")
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
