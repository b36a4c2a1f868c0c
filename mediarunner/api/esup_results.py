"""What Esup-Pod reads back: a task's status (esup-runner's words), its result manifest (every
file under the task's output directory, with its SHA-256: Pod checks each download against it)
and, for encoding and studio tasks, the ``info_video.json`` Pod imports the files by
(``runner_manager_utils.store_after_remote_encoding_video``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mediarunner.models.esup import EsupTask
from mediarunner.models.schemas import Job
from mediarunner.storage.local import file_sha256

INFO = "info_video.json"
STUDIO_BASE = "studio_base.mp4"  # what Pod's studio import opens (views._create_video_from_studio_task)


def _local(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def checksums(job: Job, out: Path) -> dict[str, str]:
    """Relative path -> SHA-256 the workers recorded for the family's artifacts."""
    known: dict[str, str] = {}
    for j in job.family:
        for a in j.artifacts:
            try:
                rel = _local(a.path).resolve().relative_to(out)
            except ValueError:
                continue
            if a.checksum:
                known[rel.as_posix()] = a.checksum
    return known


def aliases(task: EsupTask, job: Job, out: Path) -> dict[str, str]:
    """Published name -> file: a studio task's ``studio_base.mp4`` is its edit (``studio.mp4``)
    or, unedited, its tallest MP4 rung."""
    if task.task_type != "studio":
        return {}
    if (out / "studio.mp4").is_file():
        return {STUDIO_BASE: "studio.mp4"}
    rungs = [a for j in job.family for a in j.artifacts if a.kind == "mp4" and "/hls/" not in a.path]
    top = next((r for r in rungs if r.path.endswith("p.mp4")), None)
    return {STUDIO_BASE: _local(top.path).name} if top else {}


def manifest(task: EsupTask, job: Job) -> dict[str, Any]:
    """``{"task_id", "files": [{"file_path", "sha256", "size"}]}`` (Pod reads ``file_path`` or
    ``path`` and checks ``sha256``); hidden files and folders (``.parts``) are left out."""
    out = Path(task.output).resolve()
    if task.task_type in ("encoding", "studio"):
        write_info(out, task, job)
    known = checksums(job, out)
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        name = rel.as_posix()
        files.append({"file_path": name, "sha256": known.get(name) or file_sha256(path), "size": path.stat().st_size})
    for alias, target in aliases(task, job, out).items():
        src = next(f for f in files if f["file_path"] == target)
        if target == "studio.mp4":  # the edit is listed once, under Pod's name (a rung stays: info names it)
            files.remove(src)
        files.append({**src, "file_path": alias})
    return {"task_id": task.task_id, "files": files}


def resolve(task: EsupTask, job: Job, file_path: str) -> Path | None:
    """The file a manifest entry names, confined to the task's output directory; None: no such file."""
    out = Path(task.output).resolve()
    name = aliases(task, job, out).get(file_path, file_path)
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or any(p.startswith(".") for p in rel.parts) or "\x00" in name:
        return None
    path = (out / rel).resolve()
    if out not in path.parents or not path.is_file():
        return None
    return path


def info_video(task: EsupTask, job: Job, out: Path) -> dict[str, Any]:
    """Pod's ``RemoteEncodingInfo``: every MP4 rung as ``video/mp4`` with the resolution string Pod
    sent for it, the audio-only ``audio.m4a`` as ``encode_audio``; no thumbnail, no HLS (Pod's HLS
    import wants one ``.ts`` per rung; mediarunner writes segmented HLS, which stays in the files)."""
    resolutions: dict[str, str] = (job.meta.get("esup") or {}).get("resolutions") or {}
    videos, audio, duration = [], None, 0.0
    for j in job.family:
        for a in j.artifacts:
            local = _local(a.path)
            if local.parent.resolve() != out:
                continue
            if a.kind == "mp4" and local.stem in resolutions:
                videos.append({"encoding_format": "video/mp4", "filename": local.name,
                               "rendition": resolutions[local.stem]})
            elif a.kind == "audio":
                audio = {"encoding_format": "video/mp4", "filename": local.name}
            duration = max(duration, a.duration or 0.0)
    info: dict[str, Any] = {"duration": round(duration, 3), "has_stream_video": bool(videos),
                            "has_stream_audio": audio is not None,
                            "has_stream_thumbnail": False, "encode_video": videos}
    if audio is not None:
        info["encode_audio"] = audio
    for key in ("video_id", "video_slug", "video_title"):
        if key in (job.meta.get("esup") or {}):
            info[key] = job.meta["esup"][key]
    return info


def write_info(out: Path, task: EsupTask, job: Job) -> None:
    """``info_video.json`` in the task's output directory, written once (atomically)."""
    target = out / INFO
    if target.exists():
        return
    tmp = out / f".{INFO}.tmp"
    tmp.write_text(json.dumps(info_video(task, job, out), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
