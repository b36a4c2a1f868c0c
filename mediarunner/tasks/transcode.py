"""VOD ladder handlers: stage input -> probe/plan -> encode -> package HLS -> publish.

Output layout under the job's output directory::

    <name>.mp4 | audio.m4a      web MP4 (faststart) per rendition, when "mp4" is asked
    hls/<name>/index.m3u8       VOD media playlist + seg_00000.ts ..., when "hls" is asked
    master.m3u8                 master playlist, rewritten (atomically) as renditions complete
    .parts/<name>/part_NNN.mp4  split renditions only: encoded parts (and audio.m4a), removed once the
                                joiner's completion is recorded (or by beat's sweep after a grace period)

A split rendition (``parts`` > 1) is encoded by one child per time part, in parallel; each
publishes its video-only part under ``.parts/`` (part 0 also the audio of the whole video) and
says so under the family lock. The part that finds all its siblings encoded joins them (stream
copy), then packages and publishes the rendition exactly as an unsplit job would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mediarunner.errors import JobCancelled, PermanentError
from mediarunner.media import (
    HlsVariant,
    MediaInfo,
    PlannedRendition,
    concat_parts,
    describe_variant,
    effective_parts,
    encode_rendition,
    encode_renditions,
    package_hls,
    part_span,
    plan_ladder,
    probe,
    render_master_playlist,
)
from mediarunner.media.cover import probe_image, with_cover
from mediarunner.media.encoders import HARDWARE_ENCODERS, codec_spec, codec_speed
from mediarunner.media.hardware import choose_encoder, usable_encoders
from mediarunner.media.passthrough import check_passthrough, copy_rendition
from mediarunner.media.quality import measure_quality
from mediarunner.media.strategy import LadderLayout, choose_layout, rung_cost
from mediarunner.models.enums import JobState, JobType, Stage
from mediarunner.models.payloads import RenditionPayload, TranscodePayload, load
from mediarunner.models.schemas import Job
from mediarunner.storage.local import file_sha256
from mediarunner.tasks import io, pod
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome

MASTER = "master.m3u8"
PARTS_DIR = ".parts"
AUDIO_PART = "audio.m4a"  # a split rendition's audio, encoded once by part 0


def run_transcode(ctx: JobContext) -> Outcome:
    p = load(TranscodePayload, ctx.job.payload)
    s = ctx.settings
    src = io.stage_input(ctx, p.input)
    cover = _stage_cover(ctx, p.cover_image)
    ctx.set_stage(Stage.PROCESSING)
    info = probe(src, ffprobe=s.ffprobe_path)
    if cover is not None:
        info = with_cover(info, probe_image(cover, ffprobe=s.ffprobe_path))
        ctx.log(f"audio + cover image: a {info.width}x{info.height} video of {info.duration:.2f}s")
    plan = plan_ladder(info, p.ladder, codecs=p.video_codecs)
    if p.fps is not None:  # the children read the plan, frame rate included, from this job's result
        plan = [r.model_copy(update={"fps": p.fps}) if r.has_video else r for r in plan]
    layout = _layout(ctx, p, info, plan, cover)
    parts = layout.parts
    ctx.log(f"probed {info.width}x{info.height} {info.duration:.2f}s; plan: {[r.name for r in plan]}"
            + (f"; {parts} part(s) per rendition" if p.parts > 1 else "") + f"; layout {layout.kind}: {layout.reason}")
    own = _own_rungs(ctx, p, plan, layout)
    ctx.progress(5)
    if layout.combined and parts == 1:
        done = _encode_combined(ctx, src, info, plan, p.output, p.formats)
        ctx.prune_children({c.id for c in ctx.job.children if c.type is not JobType.TRANSCODE_RENDITION})
    else:
        step = 95 / max(1, len(own))
        done = [encode_and_publish(ctx, src, info, r, p.output, p.formats, span=(5 + i * step, 5 + (i + 1) * step),
                                   cover=cover, hardware=p.hardware) for i, r in enumerate(own)]
    result: dict[str, Any] = dict(done[0]) if done else {}
    if len(done) > 1:
        result["also"] = done[1:]  # the other renditions this job encoded (their variants)
        result["artifacts"] = [a for d in done for a in d["artifacts"]]
    result.update(plan=[r.model_dump() for r in plan], media=dataclasses.asdict(info), parts=parts,
                  layout={"kind": layout.kind, "parts": parts, "workers": layout.workers, "reason": layout.reason,
                          **({"rungs": [r.name for r in plan]} if layout.combined and parts > 1 else {})})
    return pod.finish(ctx, p.pod, p.output,
                      Outcome(result, finalize=_master_writer(ctx, p.output, p.formats) if done else None))


def _own_rungs(ctx: JobContext, p: TranscodePayload, plan: list[PlannedRendition],
               layout: LadderLayout) -> list[PlannedRendition]:
    """The rungs this job encodes itself; prunes the children it does not need."""
    parts = layout.parts
    child_rungs = {c.payload.get("rendition") for c in ctx.job.children if c.type is JobType.TRANSCODE_RENDITION}
    # Unsplit, the parent encodes the top rung of the first codec (combined: every rung); split, the
    # children encode every rung. A planned rendition no child was made for (a source smaller than
    # every rung, audio only) is encoded here, whole.
    top_here = p.parts == 1 or (p.planner == "auto" and parts == 1)
    own = [r for i, r in enumerate(plan) if (i == 0 and top_here) or r.name not in child_rungs]
    rungs = {r.name for r in plan if r not in own}
    if layout.combined and parts > 1:  # each part job of the top rung encodes every rung of its span
        rungs = {plan[0].name}
    # Children were created for every rung (and part); keep those the source can fill (never
    # upscale) and the parts a video this long is split into. Combined, the children of the lower
    # rungs are kept until every rung is published, so that a failed attempt fans out on retry.
    keep = {c.id for c in ctx.job.children
            if c.type is not JobType.TRANSCODE_RENDITION
            or (c.payload.get("rendition") in rungs and c.payload.get("part", 0) < parts)}
    if dropped := ctx.prune_children(keep):
        ctx.log(f"dropped {len(dropped)} child job(s): rungs that would upscale, parts not needed, "
                "or rungs this job encodes")
    return own


def _layout(ctx: JobContext, p: TranscodePayload, info: MediaInfo, plan: list[PlannedRendition],
            cover: Path | None) -> LadderLayout:
    """How this ladder is encoded (media/strategy.py): from the submitted parts (fixed planner) or
    from the idle slots of the children's queue now (auto). A retried attempt never combines (it
    fans out, so that a rung that fails again fails alone), and splits only into the parts whose
    children are still there."""
    s = ctx.settings
    fit = {"min_part_seconds": s.transcode_part_min_seconds, "segment_seconds": s.hls_segment_seconds}
    if p.planner != "auto":
        parts = effective_parts(info.duration, p.parts, **fit) if p.parts > 1 else 1
        return LadderLayout(parts, False, 0, f"fixed planner, {p.parts} part(s) asked for")
    kids = [c for c in ctx.job.children if c.type is JobType.TRANSCODE_RENDITION]
    have = min((sum(1 for c in kids if c.payload.get("rendition") == r.name) for r in plan), default=0)
    first = ctx.job.failures == 0 and ctx.job.aborts == 0
    idle = ctx.idle_slots(kids[0].queue if kids else ctx.job.queue)
    return choose_layout(info.duration, [rung_cost(r.width, r.height) for r in plan], idle,
                         parts=None if p.auto_parts else min(p.parts, max(1, have)), max_parts=max(1, have),
                         can_combine=first and cover is None and p.hardware == "none", can_split=have > 1, **fit)


def _encode_combined(ctx: JobContext, src: Path, info: MediaInfo, plan: list[PlannedRendition], output: str,
                     formats: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every rung of ``plan`` by this job: one ffmpeg decodes the source once and encodes them all
    (a top rung the source fits as it is is copied instead, on its own), then each is packaged and
    published as a child would."""
    s = ctx.settings
    io.check_output(ctx, output)
    done: list[dict[str, Any]] = []
    encode = list(plan)
    if s.transcode_passthrough and plan[0].has_video and check_passthrough(
            src, info, plan[0], segment_seconds=s.hls_segment_seconds, ffprobe=s.ffprobe_path).fits:
        done.append(encode_and_publish(ctx, src, info, plan[0], output, formats, span=(5, 20)))
        encode = plan[1:]
    outs = [(r, ctx.scratch / f"{r.name}.{'mp4' if r.has_video else 'm4a'}") for r in encode]
    lo, mid = (20.0 if done else 5.0), 85.0
    encode_renditions(src, outs, info, ffmpeg=s.ffmpeg_path, speed=lambda codec: codec_speed(s, codec),
                      threads=s.ffmpeg_threads, segment_seconds=s.hls_segment_seconds,
                      on_progress=ctx.span(lo, mid), should_cancel=ctx.should_cancel, cancel_poll=s.cancel_poll_seconds)
    ctx.log(f"encoded {', '.join(r.name for r, _ in outs)} in one ffmpeg (one decode)")
    step = (100 - mid) / len(outs)
    for i, (r, mp4) in enumerate(outs):
        res = publish_rendition(ctx, mp4, info, r, output, formats, span=(mid + i * step, mid + (i + 1) * step),
                                quality=src)
        if r.has_video:
            res["encoder"] = {**encoder_record("none", r, None, "software"), "combined": True}
        done.append(res)
    return done


def run_rendition(ctx: JobContext) -> Outcome:
    p = load(RenditionPayload, ctx.job.payload)
    parent = ctx.parent
    if parent is None or not parent.result:
        raise PermanentError("rendition job has no completed parent with a plan")
    plan = {r["name"]: PlannedRendition.model_validate(r) for r in parent.result["plan"]}
    if p.rendition not in plan:
        raise PermanentError(f"rendition {p.rendition!r} is not in the parent's plan {sorted(plan)}")
    parts = int(parent.result.get("parts", 1)) if p.parts > 1 else 1
    if p.part >= parts:
        raise PermanentError(f"part {p.part} of {p.rendition!r}, which the parent split into {parts}")
    info = MediaInfo(**parent.result["media"])
    src = io.stage_input(ctx, p.input)
    cover = _stage_cover(ctx, p.cover_image)
    ctx.set_stage(Stage.PROCESSING)
    if parts > 1:
        together = (parent.result.get("layout") or {}).get("rungs")
        if together:
            outcome = _run_combined_part(ctx, p, src, info, [plan[n] for n in together], parts)
        else:
            outcome = _run_part(ctx, p, src, info, plan[p.rendition], parts, cover)
        return pod.finish(ctx, p.pod, p.output, outcome)
    result = encode_and_publish(ctx, src, info, plan[p.rendition], p.output, p.formats, span=(0, 100), cover=cover,
                                hardware=p.hardware)
    return pod.finish(ctx, p.pod, p.output, Outcome(result, finalize=_master_writer(ctx, p.output, p.formats)))


def _stage_cover(ctx: JobContext, url: str | None) -> Path | None:
    """The cover image of an audio + cover job, staged beside the input (None without one)."""
    return None if url is None else io.stage_input(ctx, url)


def _run_part(ctx: JobContext, p: RenditionPayload, src: Path, info: MediaInfo, r: PlannedRendition,
              parts: int, cover: Path | None) -> Outcome:
    """Encode one time part of a split rendition (part 0 also the audio of the whole video, so
    that joining is a stream copy); the last part to finish joins them all."""
    s = ctx.settings
    io.check_output(ctx, p.output)
    start, length = part_span(info.duration, p.part, parts, segment_seconds=s.hls_segment_seconds)
    chunk = ctx.scratch / _part_name(p.part)
    with_audio = p.part == 0 and r.has_audio
    kind, why = choose_hardware(ctx, p.hardware, r, cover)
    encode_rendition(src, chunk, r.model_copy(update={"has_audio": False}), info, ffmpeg=s.ffmpeg_path,
                     preset=codec_speed(s, r.codec), threads=s.ffmpeg_threads, segment_seconds=s.hls_segment_seconds,
                     on_progress=ctx.span(0, 55 if with_audio else 60), should_cancel=ctx.should_cancel,
                     cancel_poll=s.cancel_poll_seconds, start=start, duration=length, cover=cover, hardware=kind,
                     vaapi_device=s.vaapi_device)
    io.publish_output(ctx, chunk, p.output, f"{PARTS_DIR}/{r.name}/{chunk.name}")
    if with_audio:
        audio = ctx.scratch / AUDIO_PART
        encode_rendition(src, audio, r.model_copy(update={"has_video": False}), info, ffmpeg=s.ffmpeg_path,
                         threads=s.ffmpeg_threads, on_progress=ctx.span(55, 60), should_cancel=ctx.should_cancel,
                         cancel_poll=s.cancel_poll_seconds)
        io.publish_output(ctx, audio, p.output, f"{PARTS_DIR}/{r.name}/{AUDIO_PART}")
    siblings = _encoded_siblings(ctx, r.name)
    result: dict[str, Any] = {"rendition": r.name, "part": p.part, "parts": parts, "start": start,
                              "part_encoded": True, "encoder": encoder_record(p.hardware, r, kind, why)}
    if len(siblings) != parts or not all((j.result or {}).get("part_encoded") for j in siblings):
        ctx.log(f"part {p.part + 1}/{parts} of {r.name} encoded ({start:g}s +{length or 'end'}); "
                "another part joins them")
        return Outcome(result)
    if any((j.result or {}).get("joined") for j in siblings):  # a retried part after the join
        ctx.log(f"part {p.part + 1}/{parts} of {r.name} encoded again; the parts were already joined")
        return Outcome(result)
    ctx.log(f"all {parts} parts of {r.name} encoded: joining them")
    ctx.set_stage(Stage.PROCESSING)
    where = f"{PARTS_DIR}/{r.name}"
    chunks = [io.fetch_output(ctx, p.output, f"{where}/{_part_name(i)}") for i in range(parts)]
    audio_in = io.fetch_output(ctx, p.output, f"{where}/{AUDIO_PART}") if r.has_audio else None
    mp4 = ctx.scratch / f"{r.name}.mp4"
    concat_parts(chunks, audio_in, mp4, ffmpeg=s.ffmpeg_path, duration=info.duration, on_progress=ctx.span(60, 75),
                 should_cancel=ctx.should_cancel, cancel_poll=s.cancel_poll_seconds, codec=r.codec)
    result.update(publish_rendition(ctx, mp4, info, r, p.output, p.formats, span=(75, 100),
                                    quality=None if cover is not None else src), joined=parts)
    # The parts go only once this attempt's completion is recorded: a superseded joiner must
    # never delete what the live attempt joins from (parts of failed families: beat's sweep).
    return Outcome(result, finalize=_master_writer(ctx, p.output, p.formats),
                   cleanup=lambda: io.discard_after_completion(ctx, p.output, where))


def _encoded_siblings(ctx: JobContext, rendition: str) -> list[Job]:
    """Record this part as encoded (under the family lock) and return the part jobs of
    ``rendition`` as committed so far; raises JobCancelled once this attempt may not go on."""
    family = ctx.record_part_encoded()
    if family is None:
        raise JobCancelled("cancelled or superseded while encoding a part")
    return [j for j in family.family if j.parent_id == ctx.job.parent_id
            and j.type is JobType.TRANSCODE_RENDITION and j.payload.get("rendition") == rendition]


def _run_combined_part(ctx: JobContext, p: RenditionPayload, src: Path, info: MediaInfo,
                       rungs: list[PlannedRendition], parts: int) -> Outcome:
    """One time part of every rung in one ffmpeg (one decode of the span; part 0 also the audio of
    each audio bitrate), published under ``.parts/<top rung>/<rung>/``; the last part to finish
    joins every rung, packages and publishes them (the other rungs' results under ``also``)."""
    s = ctx.settings
    io.check_output(ctx, p.output)
    start, length = part_span(info.duration, p.part, parts, segment_seconds=s.hls_segment_seconds)
    where = f"{PARTS_DIR}/{rungs[0].name}"
    outs = [(r.model_copy(update={"has_audio": False}), ctx.scratch / r.name / _part_name(p.part)) for r in rungs]
    with_audio = p.part == 0 and rungs[0].has_audio
    encode_renditions(src, outs, info, ffmpeg=s.ffmpeg_path, speed=lambda codec: codec_speed(s, codec),
                      threads=s.ffmpeg_threads, segment_seconds=s.hls_segment_seconds, start=start, duration=length,
                      on_progress=ctx.span(0, 55 if with_audio else 60), should_cancel=ctx.should_cancel,
                      cancel_poll=s.cancel_poll_seconds)
    for r, chunk in outs:
        io.publish_output(ctx, chunk, p.output, f"{where}/{r.name}/{chunk.name}")
    for r in {_audio_name(r): r for r in rungs}.values() if with_audio else ():
        audio = ctx.scratch / _audio_name(r)
        encode_rendition(src, audio, r.model_copy(update={"has_video": False}), info, ffmpeg=s.ffmpeg_path,
                         threads=s.ffmpeg_threads, should_cancel=ctx.should_cancel, cancel_poll=s.cancel_poll_seconds)
        io.publish_output(ctx, audio, p.output, f"{where}/{audio.name}")
    siblings = _encoded_siblings(ctx, p.rendition)
    result: dict[str, Any] = {"rendition": p.rendition, "part": p.part, "parts": parts, "start": start,
                              "part_encoded": True, "rungs": [r.name for r in rungs],
                              "encoder": {**encoder_record("none", rungs[0], None, "software"), "combined": True}}
    if len(siblings) != parts or not all((j.result or {}).get("part_encoded") for j in siblings) \
            or any((j.result or {}).get("joined") for j in siblings):
        ctx.log(f"part {p.part + 1}/{parts} of {len(rungs)} rungs encoded ({start:g}s +{length or 'end'})")
        return Outcome(result)
    ctx.log(f"all {parts} parts encoded: joining {len(rungs)} rungs")
    done = []
    for i, r in enumerate(rungs):
        chunks = [io.fetch_output(ctx, p.output, f"{where}/{r.name}/{_part_name(k)}") for k in range(parts)]
        audio_in = io.fetch_output(ctx, p.output, f"{where}/{_audio_name(r)}") if r.has_audio else None
        mp4 = ctx.scratch / "joined" / f"{r.name}.mp4"
        concat_parts(chunks, audio_in, mp4, ffmpeg=s.ffmpeg_path, duration=info.duration, codec=r.codec,
                     should_cancel=ctx.should_cancel, cancel_poll=s.cancel_poll_seconds)
        step = 40 / len(rungs)
        done.append(publish_rendition(ctx, mp4, info, r, p.output, p.formats, span=(60 + i * step, 60 + (i + 1) * step),
                                      quality=src))
    result.update(done[0], also=done[1:], artifacts=[a for d in done for a in d["artifacts"]], joined=parts)
    return Outcome(result, finalize=_master_writer(ctx, p.output, p.formats),
                   cleanup=lambda: io.discard_after_completion(ctx, p.output, where))


def _audio_name(r: PlannedRendition) -> str:
    return f"audio_{r.audio_bitrate_k or 0}k.m4a"


def _part_name(part: int) -> str:
    return f"part_{part:03d}.mp4"


# --------------------------------------------------------------------------- steps

def encode_and_publish(ctx: JobContext, src: Path, info: MediaInfo, r: PlannedRendition, output: str,
                       formats: tuple[str, ...], span: tuple[float, float],
                       cover: Path | None = None, hardware: str = "none") -> dict[str, Any]:
    s = ctx.settings
    io.check_output(ctx, output)
    ext = "mp4" if r.has_video else "m4a"
    mp4 = ctx.scratch / f"{r.name}.{ext}"
    lo, hi = span
    encode_end = lo + (hi - lo) * 0.85
    verdict = None
    if s.transcode_passthrough and cover is None and r.has_video:
        verdict = check_passthrough(src, info, r, segment_seconds=s.hls_segment_seconds, ffprobe=s.ffprobe_path)
        ctx.log(f"{r.name}: {'passthrough' if verdict.fits else 'encode'} ({verdict.reason})")
    if verdict is not None and verdict.fits:
        copy_rendition(src, mp4, r, info, ffmpeg=s.ffmpeg_path, should_cancel=ctx.should_cancel,
                       on_progress=ctx.span(lo, encode_end))
    else:
        kind, why = choose_hardware(ctx, hardware, r, cover)
        encode_rendition(src, mp4, r, info, ffmpeg=s.ffmpeg_path, preset=codec_speed(s, r.codec),
                         threads=s.ffmpeg_threads, segment_seconds=s.hls_segment_seconds,
                         on_progress=ctx.span(lo, encode_end), should_cancel=ctx.should_cancel,
                         cancel_poll=s.cancel_poll_seconds, cover=cover, hardware=kind, vaapi_device=s.vaapi_device)
    result = publish_rendition(ctx, mp4, info, r, output, formats, span=(encode_end, hi),
                               quality=None if cover is not None else src)
    if r.has_video and not (verdict is not None and verdict.fits):
        result["encoder"] = encoder_record(hardware, r, kind, why)
    if verdict is not None:
        result["passthrough"] = {"used": verdict.fits, "reason": verdict.reason}
    return result


def choose_hardware(ctx: JobContext, asked: str, r: PlannedRendition, cover: Path | None) -> tuple[str | None, str]:
    """The hardware family this worker uses for ``r`` (None: software) and why, logged."""
    if asked == "none" or not r.has_video:
        return None, "software"
    if cover is not None:
        kind, why = None, f"software {codec_spec(r.codec).encoder}: a cover image is encoded in software"
    else:
        kind, why = choose_encoder(asked, r.codec, usable_encoders(ctx.settings.ffmpeg_path, ctx.settings.vaapi_device))
    ctx.log(f"{r.name}: {why}")
    return kind, why


def encoder_record(asked: str, r: PlannedRendition, kind: str | None, why: str) -> dict[str, Any]:
    """What the job result says about a rendition's encoder: asked for, used, and why."""
    used = HARDWARE_ENCODERS[kind][r.codec] if kind else codec_spec(r.codec).encoder
    return {"asked": asked, "used": used, "hardware": kind, "reason": why}


def publish_rendition(ctx: JobContext, mp4: Path, info: MediaInfo, r: PlannedRendition, output: str,
                      formats: tuple[str, ...], span: tuple[float, float],
                      quality: Path | None = None) -> dict[str, Any]:
    """Package an encoded rendition as HLS (when asked) and publish it with its MP4; with the
    ``quality_metrics`` setting, its PSNR/SSIM against ``quality`` (the source) are recorded first."""
    s = ctx.settings
    lo, hi = span
    result: dict[str, Any] = {"rendition": r.name}
    if s.quality_metrics and quality is not None and r.has_video:
        result["quality"] = measure_quality(mp4, quality, info, every=s.quality_sample_every, ffmpeg=s.ffmpeg_path)
        ctx.log(f"{r.name}: PSNR {result['quality']['psnr']} dB, SSIM {result['quality']['ssim']}")
    hls_dir = None
    if "hls" in formats:
        playlist = package_hls(mp4, ctx.scratch / "hls" / r.name, ffmpeg=s.ffmpeg_path,
                               segment_seconds=s.hls_segment_seconds, should_cancel=ctx.should_cancel,
                               codec=r.codec if r.has_video else None)
        hls_dir = playlist.parent
        variant = describe_variant(mp4, f"hls/{r.name}/index.m3u8", ffprobe=s.ffprobe_path,
                                   segment_seconds=s.hls_segment_seconds, media_playlist=playlist)
        result["variant"] = variant.to_dict()
    ctx.progress(lo + (hi - lo) / 2)

    artifacts: list[dict[str, Any]] = []
    if hls_dir is not None:  # io.publish_output fences cancellation before anything becomes visible
        for f in io.publish_output(ctx, hls_dir, output, f"hls/{r.name}"):
            kind = {".m3u8": "hls_playlist", ".mp4": "hls_init"}.get(f.local.suffix, "hls_segment")
            artifacts.append({**artifact(kind, f.local), "path": f.location})
    if "mp4" in formats:
        (f,) = io.publish_output(ctx, mp4, output, mp4.name)
        artifacts.append({**artifact("mp4" if r.has_video else "audio", f.local, info.duration,
                                      r.codec if r.has_video else "aac"), "path": f.location})
    result["artifacts"] = [a for a in artifacts if a["kind"] not in ("hls_segment", "hls_init")]
    result["segments"] = sum(1 for a in artifacts if a["kind"] == "hls_segment")
    return result


def artifact(kind: str, path: Path, duration: float | None = None, codec: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "path": str(path), "size": path.stat().st_size, "duration": duration,
            "codec": codec, "checksum": file_sha256(path) if kind in ("mp4", "audio") else None}


def _master_writer(ctx: JobContext, output: str, formats: tuple[str, ...]) -> Any:
    if "hls" not in formats:
        return None
    io.check_output(ctx, output)

    def write_master(root: Job) -> None:
        # Runs under the family lock, so concurrent completions write in commit order and the
        # master always lists every rendition completed so far (a valid playlist at all times).
        variants = [HlsVariant.from_dict(r["variant"]) for j in root.family
                    if j.state is JobState.COMPLETED and j.result
                    for r in [j.result, *j.result.get("also", [])] if "variant" in r]
        # In a worker this runs in the completion's own transaction: no fence read of its own.
        io.publish_text(ctx, render_master_playlist(variants), output, MASTER,  # local or remote
                        fence=not ctx.lease.finalize_in_completion)

    return write_master
