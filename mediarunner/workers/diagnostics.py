"""What a runner can do (capabilities, collected once at registration: ``tasks.probes``, shared
with remote runners) and how it is doing (diagnostics, collected on every heartbeat). Plain
functions: no Celery, no SQL.

Machine figures come from ``psutil``, GPUs from NVML (``nvidia-ml-py``, when installed and a
driver is present). Every probe is best effort: a missing tool gives an ``error`` entry, never an exception, so a
half-equipped machine still registers and shows what it lacks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import psutil

from mediarunner.config import Settings
from mediarunner.tasks.probes import (  # noqa: F401 (re-exported: the probes live in tasks, shared with runners)
    WHISPER_ENGINES,
    _nvml,
    ffmpeg_capabilities,
    gpus,
    machine_capabilities,
    whisper_capabilities,
)


def capabilities(settings: Settings) -> dict[str, Any]:
    from celery import __version__ as celery_version

    return {**machine_capabilities(settings), "celery": celery_version}


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
