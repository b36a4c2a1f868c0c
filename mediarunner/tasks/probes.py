"""What a machine can do, probed once (a Celery worker at registration, a remote runner when it
starts serving): its ffmpeg's encoders (and the hardware encoders a 1-frame test encode really
opens: ``media.hardware``), its NVIDIA GPUs (NVML) and the Whisper models it has on local disk.
Every probe is best effort: a missing tool gives an ``error`` entry or nothing, never an exception.
``models.capabilities.Skills.from_capabilities`` reads the result."""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
import subprocess
from collections.abc import Callable
from types import ModuleType
from typing import Any

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


def machine_capabilities(settings: Settings) -> dict[str, Any]:
    """ffmpeg, GPUs, Whisper and the platform: what routing and the fleet views read."""
    return {
        "ffmpeg": ffmpeg_capabilities(settings.ffmpeg_path, settings.vaapi_device),
        "gpus": [{k: g[k] for k in ("index", "name", "memory_total_mb")} for g in gpus()],
        "whisper": whisper_capabilities(settings),
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count() or 1,
    }
