"""What Esup-Pod reads back: a task's result manifest (every file under the task's output
directory, with its SHA-256: Pod checks each download against it). For encoding and studio tasks
Pod's files and ``info_video.json`` are among them: a worker made them as the ladder's last step
(``tasks/pod.py``), before the task was completed; nothing here runs ffmpeg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediarunner.models.esup import EsupTask
from mediarunner.models.schemas import Job
from mediarunner.storage.local import file_sha256

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
