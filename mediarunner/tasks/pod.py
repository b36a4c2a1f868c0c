"""An Esup-Pod task's files, made on a worker as the last step of its ladder (``PodPackaging`` in
the ladder's payloads, set by ``api/esup.py``).

Every ladder job of such a task says, under the family lock, which rungs it published
(``JobContext.record_published``); the lock serialises these calls, so exactly one job sees every
planned rung published: that one fetches the MP4 rungs through the output store, makes Pod's
files (:mod:`mediarunner.media.pod_package`: per-rung single-file HLS, ``livestream.m3u8``,
``audio_192k.mp3``, thumbnails, ``overview.png`` + ``.vtt``), publishes them beside the rungs and,
last, ``info_video.json`` (the index Pod imports the files by, in the keys esup-runner's encoding
writes), before its own completion. The family, and so Pod's task, is completed only then; a
failed packaging fails that job (its error says so), and so the task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mediarunner.errors import JobCancelled, MediarunnerError, PermanentError, StaleAttemptError, TransientError
from mediarunner.media.pod_package import PodFiles, Rung, package_for_pod
from mediarunner.media.probe import probe
from mediarunner.models.enums import JobType, Stage
from mediarunner.models.payloads import PodPackaging
from mediarunner.storage.local import file_sha256
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome

INFO = "info_video.json"
LADDER = (JobType.TRANSCODE, JobType.TRANSCODE_RENDITION)


def published(result: dict[str, Any] | None) -> list[str]:
    """The rungs a ladder job's (final) result published: its rendition and those under ``also``,
    each only with files (a part of a split rendition that did not join publishes none)."""
    r = result or {}
    return [row["rendition"] for row in [r, *r.get("also", [])] if row.get("artifacts") and "rendition" in row]


def finish(ctx: JobContext, pod: PodPackaging | None, output: str, outcome: Outcome) -> Outcome:
    """A ladder job's outcome; the job that publishes the ladder's last rung packages for Pod first."""
    mine = published(outcome.result)
    if pod is None or not mine:
        return outcome
    result = {**outcome.result, "published": mine}
    family = ctx.record_published(mine)
    if family is None:
        raise JobCancelled("cancelled or superseded before packaging for Esup-Pod")
    plan = outcome.result.get("plan") or ((ctx.parent.result or {}).get("plan") if ctx.parent else None) or []
    done = set(mine)
    for j in family.family:
        if j.id != ctx.job.id and j.type in LADDER:
            done.update((j.result or {}).get("published") or ())
    if not plan or not {r["name"] for r in plan} <= done:
        return Outcome(result, outcome.finalize, outcome.cleanup)
    ctx.log(f"every rung published ({', '.join(sorted(done))}): packaging for Esup-Pod")
    try:
        files = package(ctx, pod, output, plan)
    except (JobCancelled, StaleAttemptError):
        raise
    except Exception as exc:  # said as such to Pod; a transient cause is still retried
        permanent = isinstance(exc, MediarunnerError) and exc.permanent
        raise (PermanentError if permanent else TransientError)(
            f"packaging for Esup-Pod failed: {type(exc).__name__}: {exc}") from exc
    artifacts = [*result.get("artifacts", []), *files]
    return Outcome({**result, "artifacts": artifacts, "pod": {"info": INFO, "files": len(files)}},
                   outcome.finalize, outcome.cleanup)


def package(ctx: JobContext, pod: PodPackaging, output: str, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch the rungs, make Pod's files in scratch, publish them, then ``info_video.json``;
    their artifacts (with SHA-256, which Pod checks each download against)."""
    s = ctx.settings
    videos = sorted((r for r in plan if r["has_video"] and r["name"] in pod.resolutions),
                    key=lambda r: int(pod.resolutions[r["name"]].split("x")[1]))
    rungs = [Rung(r["name"], io.fetch_output(ctx, output, f"{r['name']}.mp4")) for r in videos]
    sound = next((r for r in plan if not r["has_video"]), None)
    audio = io.fetch_output(ctx, output, f"{sound['name']}.m4a") if sound is not None else None
    ctx.set_stage(Stage.PROCESSING)
    work = ctx.scratch / "pod"
    work.mkdir(parents=True, exist_ok=True)
    top = rungs[-1].mp4 if rungs else audio
    made, duration = PodFiles(), 0.0
    if top is not None:
        info = probe(top, ffprobe=s.ffprobe_path)
        duration = info.duration
        knobs = {"tile_width": s.storyboard_tile_width, "max_tiles": s.storyboard_max_tiles,
                 "min_interval": s.storyboard_min_interval_seconds, "columns": s.storyboard_columns}
        made = package_for_pod(work, rungs, info, ffmpeg=s.ffmpeg_path, ffprobe=s.ffprobe_path, audio=audio,
                               storyboard=knobs)
    artifacts = [_artifact(f) for f in io.publish_output(ctx, work, output)] if any(work.iterdir()) else []
    text = json.dumps(info_video(pod, [r.name for r in rungs], audio, duration, made), indent=2, ensure_ascii=False)
    artifacts.append(_artifact(io.publish_text(ctx, text + "\n", output, INFO)))  # last: marks it done
    ctx.log(f"packaged for Esup-Pod: {len(artifacts)} file(s)")
    return artifacts


def _artifact(f: io.Published) -> dict[str, Any]:
    return {"kind": "pod", "path": f.location, "size": f.local.stat().st_size, "duration": None, "codec": None,
            "checksum": file_sha256(f.local)}


def info_video(pod: PodPackaging, rungs: list[str], audio: Path | None, duration: float,
               made: PodFiles) -> dict[str, Any]:
    """Pod's ``info_video.json``: ``encode_video`` (``video/mp4`` and ``video/mp2t`` entries with the
    resolution Pod sent), ``encode_audio``, ``encode_thumbnail``, ``encode_overview``."""
    res = pod.resolutions
    videos = [{"encoding_format": "video/mp4", "filename": f"{name}.mp4", "rendition": res[name]} for name in rungs]
    videos += [{"encoding_format": "video/mp2t", "filename": name, "rendition": res[Path(name).stem]}
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
        if getattr(pod, key) is not None:
            info[key] = getattr(pod, key)
    return info
