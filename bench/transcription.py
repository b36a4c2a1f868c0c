"""(6) Transcription speed: realtime factor (processing seconds / audio seconds; < 1 is faster than
realtime) of faster-whisper and whisperx on the same speech clip.

``python -m bench.transcription [--smoke] [--json out.json] [--seconds 30] [--model tiny.en] [--model-dir DIR]``

whisperx usually lives in its own virtualenv (``make test-whisperx`` builds it at
``$MEDIARUNNER_WHISPERX_VENV``, default ``/var/cache/mediarunner/whisperx-venv``): when it is not
importable here, the same measurement runs in that virtualenv's interpreter, on the same clip.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import (
    BenchResult,
    Unavailable,
    bench_tmp,
    cached_clip,
    cli,
    database,
    make_stack,
    private_redis,
    start_workers,
    stop_workers,
)
from mediarunner.models.enums import JobState

NAME = "transcription"
TITLE = "Transcription: realtime factor of faster-whisper and whisperx"
MODULE = "mediarunner.speech"
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
    return mod.get_engine(engine, model, model_dir=model_dir, device=device)


def _transcribe(engine: Any, wav: Path) -> Any:
    return engine.transcribe(wav, language="en")


WHISPERX_VENV = Path(os.environ.get("MEDIARUNNER_WHISPERX_VENV", "/var/cache/mediarunner/whisperx-venv"))
_IN_VENV = """
import json, sys, time
from pathlib import Path
from mediarunner.speech import get_engine
engine_name, model, model_dir, device, wav, warm = sys.argv[1:7]
t0 = time.perf_counter()
engine = get_engine(engine_name, model, model_dir=Path(model_dir) if model_dir else None, device=device)
load_s = time.perf_counter() - t0
if warm == "1":
    engine.transcribe(Path(wav), language="en")
t1 = time.perf_counter()
t = engine.transcribe(Path(wav), language="en")
print(json.dumps({"load_s": load_s, "transcribe_s": time.perf_counter() - t1, "text": t.text}))
"""


def _measure_in_venv(name: str, model: str, model_dir: Path | None, device: str, wav: Path,
                     warm: bool) -> dict[str, Any]:
    """Same measurement in the whisperx virtualenv (whisperx pins its own CUDA torch)."""
    python = WHISPERX_VENV / "bin" / "python"
    if not python.exists():
        raise Unavailable(f"{name} is not installed here and {python} does not exist (make test-whisperx)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([str(python), "-c", _IN_VENV, name, model, str(model_dir or ""), device, str(wav),
                          "1" if warm else "0"], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1",
                              "PYANNOTE_METRICS_ENABLED": "0"}, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


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


def _rss_mib(pid: int) -> float:
    """Resident memory of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pool_pids(pid: int) -> list[int]:
    """The worker's pool processes (its direct children; ffmpeg runs below them)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class _Sampler(threading.Thread):
    """Samples the worker's RSS (main process + pool) every 0.1 s until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0.0, threading.Event()

    def now(self) -> dict[str, float]:
        pool = sum(_rss_mib(p) for p in _pool_pids(self.pid))
        main = _rss_mib(self.pid)
        return {"main_mib": main, "pool_mib": pool, "total_mib": main + pool}

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak = max(self.peak, self.now()["total_mib"])


def worker_memory(tmp: Path, media: Path, engine: str, jobs: int, timeout: float) -> dict[str, Any]:
    """RSS of a real ``celery worker -c 1`` idle, then while it transcribes ``jobs`` clips one after
    another; each job reports whether it had to load the model (it must, once per process)."""
    tmp.mkdir(parents=True, exist_ok=True)
    with private_redis(tmp) as redis, database("sqlite", tmp) as url, \
            make_stack(tmp, url, redis.url, MEDIARUNNER_WHISPER_ENGINE=engine) as stack:
        (worker,) = start_workers(stack, [{"name": f"rss-{engine}", "concurrency": 1}])
        assert worker.proc is not None
        sampler = _Sampler(worker.proc.pid)
        idle = sampler.now()
        sampler.start()
        client = stack.client()
        per_job = []
        try:
            for i in range(jobs):
                job = client.wait(client.submit_transcription(str(media), str(tmp / "outputs" / f"t{i}"),
                                                              language="en", device="cpu").id, timeout=timeout)
                child = job.children[0]
                if child.state is not JobState.COMPLETED:
                    raise RuntimeError(f"transcription failed: {child.state.value}: {child.error}")
                result = child.result or {}
                per_job.append({"model_loaded": result.get("model_loaded"), "rtf": result.get("realtime_factor"),
                                **{k: round(v, 1) for k, v in sampler.now().items()}})
        finally:
            sampler.stopped.set()
            sampler.join()
            stop_workers(stack)
    return {"idle": idle, "peak_total_mib": sampler.peak, "jobs": per_job}


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
                if name == "whisperx" and importlib.util.find_spec("whisperx") is None:
                    if smoke:  # loading whisperx takes ~30 s: the smoke only checks faster-whisper
                        raise Unavailable("whisperx venv not used in smoke mode")
                    m = _measure_in_venv(name, model, model_dir, device, wav, warm=not smoke)
                    load_s, elapsed, text = m["load_s"], m["transcribe_s"], m["text"]
                else:
                    t0 = time.perf_counter()
                    engine = _load_engine(mod, name, model, model_dir, device)
                    load_s = time.perf_counter() - t0
                    if not smoke:
                        _transcribe(engine, wav)  # warm-up: lazy initialisation inside the engine
                    t1 = time.perf_counter()
                    transcript = _transcribe(engine, wav)
                    elapsed = time.perf_counter() - t1
                    text = " ".join(getattr(s, "text", "") for s in getattr(transcript, "segments", []))
            except Exception as exc:  # engine not installed, model not found, API mismatch (see TODO)
                res.add(f"{name}: not available", None, note=f"{type(exc).__name__}: {exc}"[:160])
                continue
            measured += 1
            res.add(f"{name}: realtime factor", elapsed / seconds, "x", note=f"{seconds:g} s of audio")
            res.add(f"{name}: model load", load_s, "s")
            res.details[name] = {"transcribe_s": elapsed, "load_s": load_s, "text": text[:500]}
        if importlib.util.find_spec("faster_whisper") is not None:
            jobs = 2 if smoke else 3
            mem = worker_memory(tmp / "rss", wav, "faster-whisper", jobs, timeout=120 + seconds * 20)
            loads = sum(1 for j in mem["jobs"] if j["model_loaded"])
            res.add("faster-whisper worker: RSS idle", mem["idle"]["total_mib"], "MiB",
                    note=f"celery main {mem['idle']['main_mib']:.0f} + pool {mem['idle']['pool_mib']:.0f} MiB, -c 1")
            res.add("faster-whisper worker: RSS peak under load", mem["peak_total_mib"], "MiB",
                    note=f"{jobs} transcriptions in a row, sampled every 0.1 s")
            res.add("faster-whisper worker: RSS after the last job", mem["jobs"][-1]["total_mib"], "MiB",
                    note="after job 1: " + f"{mem['jobs'][0]['total_mib']:.0f} MiB")
            res.add("faster-whisper worker: model loads", float(loads), "", goal=("<=", 1),
                    note=f"over {jobs} jobs in one pool process")
            res.details["worker_memory"] = mem
            measured += 1
    if not measured:
        raise Unavailable("; ".join(m.note for m in res.metrics) or "no engine ran")
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
