"""What a runner can do (capabilities, collected once at registration) and how it is doing
(diagnostics, collected on every heartbeat). Plain functions: no Celery, no SQL.

Every probe is best effort: a missing tool gives an ``error`` entry, never an exception, so a
half-equipped machine still registers and shows what it lacks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mediarunner.config import Settings
from mediarunner.errors import MediarunnerError
from mediarunner.media.ffmpeg import ffmpeg_version, list_encoders

# Encoders worth showing in `runners show` (the full list is stored).
NOTABLE_ENCODERS = re.compile(r"^(libx264|libx265|libsvtav1|libaom-av1|librav1e|libvpx(-vp9)?|aac|libfdk_aac|"
                              r"libopus|libmp3lame|.*_(nvenc|qsv|vaapi|videotoolbox|amf|v4l2m2m))$")
WHISPER_ENGINES = {"faster-whisper": "faster_whisper", "whisperx": "whisperx", "openai-whisper": "whisper"}


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def ffmpeg_capabilities(ffmpeg: str) -> dict[str, Any]:
    try:
        version, encoders = ffmpeg_version(ffmpeg), sorted(list_encoders(ffmpeg))
    except MediarunnerError as exc:
        return {"error": str(exc)[:500]}
    out = _run([ffmpeg, "-hide_banner", "-hwaccels"]) or ""
    hwaccels = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    return {"version": version, "encoders": encoders, "hwaccels": hwaccels,
            "hardware_encoders": [e for e in encoders if re.search(r"_(nvenc|qsv|vaapi|videotoolbox|amf)$", e)]}


def gpus(nvidia_smi: str = "nvidia-smi") -> list[dict[str, Any]]:
    """NVIDIA GPUs as nvidia-smi reports them (empty without nvidia-smi or a driver)."""
    if shutil.which(nvidia_smi) is None:
        return []
    out = _run([nvidia_smi, "--query-gpu=index,name,memory.total,memory.used,utilization.gpu",
                "--format=csv,noheader,nounits"], timeout=5.0)
    found: list[dict[str, Any]] = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        found.append({"index": _int(parts[0]), "name": parts[1], "memory_total_mb": _int(parts[2]),
                      "memory_used_mb": _int(parts[3]), "utilization_percent": _int(parts[4])})
    return found


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None  # "[N/A]" on some boards


def whisper_capabilities(settings: Settings) -> dict[str, Any]:
    """Installed engines (import specs only: importing torch here would cost seconds and GBs), the
    local models under ``whisper_model_dir`` and what this worker is configured to run."""
    from mediarunner.speech.models import available_models

    engines = sorted(name for name, module in WHISPER_ENGINES.items() if importlib.util.find_spec(module))
    return {"engines": engines, "models": available_models(settings.whisper_model_dir),
            "configured": {"engine": settings.whisper_engine, "model": settings.whisper_model,
                           "device": settings.whisper_device}}


def capabilities(settings: Settings) -> dict[str, Any]:
    from celery import __version__ as celery_version

    return {
        "ffmpeg": ffmpeg_capabilities(settings.ffmpeg_path),
        "gpus": [{k: g[k] for k in ("index", "name", "memory_total_mb")} for g in gpus()],
        "whisper": whisper_capabilities(settings),
        "python": platform.python_version(), "celery": celery_version, "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 1,
    }


def _meminfo() -> dict[str, int]:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    values = {k: int(v.split()[0]) // 1024 for k, v in pairs if v.split()}
    return {"mem_total_mb": values.get("MemTotal", 0), "mem_available_mb": values.get("MemAvailable", 0)}


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def diagnostics(settings: Settings, *, with_gpus: bool = True) -> dict[str, Any]:
    """Load, scratch disk, memory, ffmpeg presence and GPU usage, now. Cheap: runs every heartbeat."""
    out: dict[str, Any] = {"cpu_count": os.cpu_count() or 1}
    with contextlib.suppress(OSError):  # no load average on this platform
        out["load_1m"], out["load_5m"], out["load_15m"] = (round(x, 2) for x in os.getloadavg())
    usage = shutil.disk_usage(_existing(Path(settings.scratch_dir)))
    out["disk_free_mb"], out["disk_total_mb"] = usage.free // 2**20, usage.total // 2**20
    out.update(_meminfo())
    ffmpeg = settings.ffmpeg_path
    out["ffmpeg_ok"] = bool(shutil.which(ffmpeg)) if os.sep not in ffmpeg else os.access(ffmpeg, os.X_OK)
    if with_gpus and (found := gpus()):
        out["gpus"] = found
    out["pid"] = os.getpid()
    return out
