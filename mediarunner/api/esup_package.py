"""An encoding or studio task's results in Pod's form, made once when Pod first asks for them:
the HLS, audio, thumbnails and overview of :mod:`mediarunner.media.pod_package` beside the MP4
renditions, then ``info_video.json``, the index Pod imports the files by, in the keys
esup-runner's encoding writes (``encode_video`` (``video/mp4`` and ``video/mp2t`` entries with the
resolution Pod sent), ``encode_audio``, ``encode_thumbnail``, ``encode_overview``)."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from mediarunner.config import Settings
from mediarunner.media.pod_package import PodFiles, Rung, package_for_pod
from mediarunner.media.probe import probe
from mediarunner.models.esup import EsupTask
from mediarunner.models.schemas import Job

INFO = "info_video.json"


def _local(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def _rungs(job: Job, out: Path, resolutions: dict[str, str]) -> tuple[list[Rung], Path | None, float]:
    """The family's MP4 rungs in ``out`` (shortest first), its audio-only file, the longest duration."""
    rungs, audio, duration = {}, None, 0.0
    for j in job.family:
        for a in j.artifacts:
            local = _local(a.path)
            if local.parent.resolve() != out:
                continue
            if a.kind == "mp4" and local.stem in resolutions:
                rungs[local.stem] = Rung(local.stem, local)
            elif a.kind == "audio":
                audio = local
            duration = max(duration, a.duration or 0.0)
    ordered = sorted(rungs.values(), key=lambda r: int(resolutions[r.name].split("x")[1]))
    return ordered, audio, duration


def _storyboard(settings: Settings) -> dict[str, float]:
    return {"tile_width": settings.storyboard_tile_width, "max_tiles": settings.storyboard_max_tiles,
            "min_interval": settings.storyboard_min_interval_seconds, "columns": settings.storyboard_columns}


def info_video(job: Job, rungs: list[Rung], audio: Path | None, duration: float, made: PodFiles) -> dict[str, Any]:
    """Pod's ``info_video.json`` for what is in the task's directory."""
    esup: dict[str, Any] = job.meta.get("esup") or {}
    resolutions: dict[str, str] = esup.get("resolutions") or {}
    videos = [{"encoding_format": "video/mp4", "filename": r.mp4.name, "rendition": resolutions[r.name]}
              for r in rungs]
    videos += [{"encoding_format": "video/mp2t", "filename": name, "rendition": resolutions[Path(name).stem]}
               for name in made.hls]
    sounds = [{"encoding_format": "audio/mp3", "filename": made.mp3}] if made.mp3 else []
    if audio is not None:
        sounds.append({"encoding_format": "video/mp4", "filename": audio.name})
    info: dict[str, Any] = {"duration": round(duration, 3), "has_stream_video": bool(rungs),
                            "has_stream_audio": bool(sounds), "has_stream_thumbnail": bool(made.thumbnails),
                            "encode_video": videos}
    if sounds:
        info["encode_audio"] = sounds
    if made.master:
        info["master_playlist"] = made.master
    if made.thumbnails:
        info["encode_thumbnail"] = [{"filename": f, "timestamp": t, "percentage": p} for f, t, p in made.thumbnails]
    if made.overview:
        info["encode_overview"] = {"sprite_filename": made.overview[0], "vtt_filename": made.overview[1]}
    for key in ("video_id", "video_slug", "video_title"):
        if key in esup:
            info[key] = esup[key]
    return info


def prepare(task: EsupTask, job: Job, settings: Settings) -> None:
    """Make Pod's files and ``info_video.json`` in the task's directory, once (a file lock keeps two
    concurrent first requests from doing it twice; ``info_video.json`` written last marks it done)."""
    if task.task_type not in ("encoding", "studio"):
        return
    out = Path(task.output).resolve()
    if (out / INFO).exists():
        return
    with (out / ".pod.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / INFO).exists():
            return
        resolutions = (job.meta.get("esup") or {}).get("resolutions") or {}
        rungs, audio, duration = _rungs(job, out, resolutions)
        source = rungs[-1].mp4 if rungs else audio
        made = PodFiles()
        if source is not None:
            info = probe(source, ffprobe=settings.ffprobe_path)
            made = package_for_pod(out, rungs, info, ffmpeg=settings.ffmpeg_path, ffprobe=settings.ffprobe_path,
                                   audio=audio, storyboard=_storyboard(settings))
        tmp = out / f".{INFO}.tmp"
        tmp.write_text(json.dumps(info_video(job, rungs, audio, duration, made), indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, out / INFO)
