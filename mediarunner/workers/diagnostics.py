"""What a runner can do (capabilities, collected once at registration) and how it is doing
(diagnostics, collected on every heartbeat). Plain functions: no Celery, no SQL.

Machine figures come from ``psutil``, GPUs from NVML (``nvidia-ml-py``, when installed and a
driver is present). Every probe is best effort: a missing tool gives an ``error`` entry, never an exception, so a
half-equipped machine still registers and shows what it lacks.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from mediarunner.config import Settings
from mediarunner.errors import MediarunnerError
from mediarunner.media.ffmpeg import ffmpeg_version, list_encoders
from mediarunner.media.hardware import usable_encoders

WHISPER_ENGINES = {"faster-whisper": "faster_whisper", "whisperx": "whisperx", "openai-whisper": "whisper"}


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def ffmpeg_capabilities(ffmpeg: str, vaapi_device: str = "/dev/dri/renderD128") -> dict[str, Any]:
    try:
        version, encoders = ffmpeg_version(ffmpeg), sorted(list_encoders(ffmpeg))
    except MediarunnerError as exc:
        return {"error": str(exc)[:500]}
    out = _run([ffmpeg, "-hide_banner", "-hwaccels"]) or ""
    hwaccels = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    return {"version": version, "encoders": encoders, "hwaccels": hwaccels,
            "hardware_encoders": [e for e in encoders if re.search(r"_(nvenc|qsv|vaapi|videotoolbox|amf)$", e)],
            # the ones a 1-frame test encode really opened (a GPU, a driver, a device): what routing trusts
            "hardware_usable": sorted(usable_encoders(ffmpeg, vaapi_device))}


@functools.cache
def _nvml() -> ModuleType | None:
    """``pynvml`` (nvidia-ml-py), initialised once per process; None without the package or an
    NVIDIA driver (NVML is what nvidia-smi itself reads)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def _query(nvml: ModuleType, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except nvml.NVMLError:  # e.g. NotSupported on some boards: that value is unknown, the rest stands
        return None


def _gpu(nvml: ModuleType, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _query(nvml, lambda: nvml.nvmlDeviceGetName(handle))
    mem = _query(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = _query(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    return {"index": index, "name": name.decode() if isinstance(name, bytes) else name,
            "memory_total_mb": None if mem is None else int(mem.total) // 2**20,
            "memory_used_mb": None if mem is None else int(mem.used) // 2**20,
            "utilization_percent": None if util is None else int(util.gpu)}


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs as NVML reports them (empty without nvidia-ml-py, a driver or a GPU)."""
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        return [_gpu(nvml, i) for i in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError:  # the driver went away (GPU fell off the bus, driver reload)
        return []


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
        "ffmpeg": ffmpeg_capabilities(settings.ffmpeg_path, settings.vaapi_device),
        "gpus": [{k: g[k] for k in ("index", "name", "memory_total_mb")} for g in gpus()],
        "whisper": whisper_capabilities(settings),
        "python": platform.python_version(), "celery": celery_version, "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 1,
    }


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def diagnostics(settings: Settings, *, with_gpus: bool = True) -> dict[str, Any]:
    """Load, scratch disk, memory, ffmpeg presence and GPU usage, now. Cheap: runs every heartbeat."""
    out: dict[str, Any] = {"cpu_count": psutil.cpu_count() or 1}
    with contextlib.suppress(OSError):  # no load average on this platform
        out["load_1m"], out["load_5m"], out["load_15m"] = (round(x, 2) for x in psutil.getloadavg())
    usage = psutil.disk_usage(str(_existing(Path(settings.scratch_dir))))
    out["disk_free_mb"], out["disk_total_mb"] = usage.free // 2**20, usage.total // 2**20
    mem = psutil.virtual_memory()
    out["mem_total_mb"], out["mem_available_mb"] = mem.total // 2**20, mem.available // 2**20
    ffmpeg = settings.ffmpeg_path
    out["ffmpeg_ok"] = bool(shutil.which(ffmpeg)) if os.sep not in ffmpeg else os.access(ffmpeg, os.X_OK)
    if with_gpus and (found := gpus()):
        out["gpus"] = found
    out["pid"] = os.getpid()
    return out
