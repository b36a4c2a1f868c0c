"""VOD ladder handlers: stage input -> probe/plan -> encode -> package HLS -> publish.

Output layout under the job's output directory::

    <name>.mp4 | audio.m4a      web MP4 (faststart) per rendition, when "mp4" is asked
    hls/<name>/index.m3u8       VOD media playlist + seg_00000.ts ..., when "hls" is asked
    master.m3u8                 master playlist, rewritten (atomically) as renditions complete
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from mediarunner.errors import PermanentError
from mediarunner.models.enums import JobState, JobType, Stage
from mediarunner.models.payloads import RenditionPayload, TranscodePayload
from mediarunner.models.schemas import Job
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome
from mediarunner.workers.media import (
    HlsVariant,
    MediaInfo,
    PlannedRendition,
    describe_variant,
    encode_rendition,
    package_hls,
    plan_ladder,
    probe,
    render_master_playlist,
)

MASTER = "master.m3u8"


def run_transcode(ctx: JobContext) -> Outcome:
    p = TranscodePayload.model_validate(ctx.job.payload)
    src = stage_input(ctx, p.input)
    ctx.set_stage(Stage.PROCESSING)
    info = probe(src, ffprobe=ctx.settings.ffprobe_path)
    plan = plan_ladder(info, p.ladder)
    ctx.log(f"probed {info.width}x{info.height} {info.duration:.2f}s; plan: {[r.name for r in plan]}")
    # Children were created for every rung; keep those the source can fill (never upscale).
    rungs = {r.name for r in plan[1:]}
    keep = {c.id for c in ctx.job.children
            if c.type is not JobType.TRANSCODE_RENDITION or c.payload.get("rendition") in rungs}
    dropped = ctx.prune_children(keep)
    if dropped:
        ctx.log(f"dropped {len(dropped)} rung(s) that would upscale")
    ctx.progress(5)
    result = encode_and_publish(ctx, src, info, plan[0], p.output, p.formats, span=(5, 100))
    result.update(plan=[r.model_dump() for r in plan], media=dataclasses.asdict(info))
    return Outcome(result, finalize=_master_writer(ctx, p.output, p.formats))


def run_rendition(ctx: JobContext) -> Outcome:
    p = RenditionPayload.model_validate(ctx.job.payload)
    parent = ctx.parent
    if parent is None or not parent.result:
        raise PermanentError("rendition job has no completed parent with a plan")
    plan = {r["name"]: PlannedRendition.model_validate(r) for r in parent.result["plan"]}
    if p.rendition not in plan:
        raise PermanentError(f"rendition {p.rendition!r} is not in the parent's plan {sorted(plan)}")
    info = MediaInfo(**parent.result["media"])
    src = stage_input(ctx, p.input)
    ctx.set_stage(Stage.PROCESSING)
    result = encode_and_publish(ctx, src, info, plan[p.rendition], p.output, p.formats, span=(0, 100))
    return Outcome(result, finalize=_master_writer(ctx, p.output, p.formats))


# --------------------------------------------------------------------------- steps

def stage_input(ctx: JobContext, url: str) -> Path:
    return io.stage_input(ctx, url)


def encode_and_publish(ctx: JobContext, src: Path, info: MediaInfo, r: PlannedRendition, output: str,
                       formats: tuple[str, ...], span: tuple[float, float]) -> dict[str, Any]:
    s = ctx.settings
    io.check_output(ctx, output)
    ext = "mp4" if r.has_video else "m4a"
    mp4 = ctx.scratch / f"{r.name}.{ext}"
    lo, hi = span
    encode_end = lo + (hi - lo) * 0.85
    encode_rendition(src, mp4, r, info, ffmpeg=s.ffmpeg_path, preset=s.x264_preset, threads=s.ffmpeg_threads,
                     segment_seconds=s.hls_segment_seconds, on_progress=ctx.span(lo, encode_end),
                     should_cancel=ctx.should_cancel, cancel_poll=s.cancel_poll_seconds)
    result: dict[str, Any] = {"rendition": r.name}
    hls_dir = None
    if "hls" in formats:
        playlist = package_hls(mp4, ctx.scratch / "hls" / r.name, ffmpeg=s.ffmpeg_path,
                               segment_seconds=s.hls_segment_seconds, should_cancel=ctx.should_cancel)
        hls_dir = playlist.parent
        variant = describe_variant(mp4, f"hls/{r.name}/index.m3u8", ffprobe=s.ffprobe_path,
                                   segment_seconds=s.hls_segment_seconds, media_playlist=playlist)
        result["variant"] = variant.to_dict()
    ctx.progress(encode_end + (hi - encode_end) / 2)

    artifacts: list[dict[str, Any]] = []
    if hls_dir is not None:  # io.publish_output fences cancellation before anything becomes visible
        for f in io.publish_output(ctx, hls_dir, output, f"hls/{r.name}"):
            kind = "hls_playlist" if f.local.suffix == ".m3u8" else "hls_segment"
            artifacts.append({**artifact(kind, f.local), "path": f.location})
    if "mp4" in formats:
        (f,) = io.publish_output(ctx, mp4, output, mp4.name)
        artifacts.append({**artifact("mp4" if r.has_video else "audio", f.local, info.duration,
                                      "h264" if r.has_video else "aac"), "path": f.location})
    result["artifacts"] = [a for a in artifacts if a["kind"] != "hls_segment"]
    result["segments"] = sum(1 for a in artifacts if a["kind"] == "hls_segment")
    return result


def artifact(kind: str, path: Path, duration: float | None = None, codec: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "path": str(path), "size": path.stat().st_size, "duration": duration,
            "codec": codec, "checksum": _sha256(path) if kind in ("mp4", "audio") else None}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _master_writer(ctx: JobContext, output: str, formats: tuple[str, ...]) -> Any:
    if "hls" not in formats:
        return None
    io.check_output(ctx, output)

    def write_master(root: Job) -> None:
        # Runs under the family lock, so concurrent completions write in commit order and the
        # master always lists every rendition completed so far (a valid playlist at all times).
        variants = [HlsVariant.from_dict(j.result["variant"]) for j in root.family
                    if j.state is JobState.COMPLETED and j.result and "variant" in j.result]
        io.publish_text(ctx, render_master_playlist(variants), output, MASTER)  # local or remote

    return write_master
