"""The 3-rendition HLS ladder used by the overhead and scale-out benchmarks: submit it through
mediarunner and time it from the job table, or build the equivalent plain ffmpeg commands."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.media import encode as encode_mod
from mediarunner.media import encode_rendition, encode_renditions, package_hls, plan_ladder, probe
from mediarunner.media.encoders import codec_speed
from mediarunner.models.base import utcnow
from mediarunner.models.enums import JobState
from mediarunner.models.schemas import Job

LADDER = ("720p", "480p", "360p")
FORMATS = ("hls",)


def _secs(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def family_timings(root: Job, submitted_at: datetime) -> dict[str, Any]:
    """Times of a finished family from the job table (all timestamps from the same host clock).

    ``e2e_s``: submit call start -> last job finished. ``busy_s``: sum of the jobs' running times
    (claim -> completion, on one worker or several). ``jobs``: per job, how long it waited to be
    claimed after it became runnable, and how long it ran.
    """
    family = root.family
    bad = [(j.type.value, j.state.value, j.error) for j in family if j.state is not JobState.COMPLETED]
    if bad:
        raise RuntimeError(f"ladder did not complete: {bad}")
    jobs = []
    for j in family:
        assert j.started_at and j.finished_at
        runnable_at = j.created_at if j.parent_id is None else root.finished_at
        assert runnable_at is not None
        jobs.append({"type": j.type.value, "rendition": j.payload.get("rendition") or LADDER[0],
                     "worker": j.worker, "wait_s": round(_secs(runnable_at, j.started_at), 4),
                     "run_s": round(_secs(j.started_at, j.finished_at), 4)})
    last = max(j.finished_at for j in family if j.finished_at)
    layout = (root.result or {}).get("layout") or {}
    return {"layout": layout.get("kind"), "parts": (root.result or {}).get("parts"),
            "e2e_s": _secs(submitted_at, last), "db_span_s": _secs(root.created_at, last),
            "busy_s": sum(j["run_s"] for j in jobs), "jobs": jobs}


def submit_ladder(client: Client, src: Path, out: Path, parts: int | None = None) -> Job:
    return client.submit_transcode(str(src), str(out), renditions=list(LADDER), formats=FORMATS, parts=parts)


def wait_all(client: Client, ids: Sequence[str], timeout: float) -> list[Job]:
    """Wait for families to finish, polling gently (4 Hz): the end time comes from ``finished_at``,
    so polling faster would not make the measurement more precise, only steal CPU from ffmpeg."""
    return [client.wait(i, timeout=timeout, poll=0.25) for i in ids]


def run_ladders(client: Client, src: Path, outs: Sequence[Path], timeout: float,
                parts: int | None = None) -> dict[str, Any]:
    """Submit one ladder per output directory at once (each rung split into ``parts``; None: as the
    planner decides); time until every job of every family is done."""
    submitted_at = utcnow()
    t0 = time.perf_counter()
    roots = [submit_ladder(client, src, out, parts) for out in outs]
    submit_s = time.perf_counter() - t0
    done = wait_all(client, [r.id for r in roots], timeout)
    per = [family_timings(r, submitted_at) for r in done]
    for out in outs:
        master = (out / "master.m3u8").read_text()
        if master.count("#EXT-X-STREAM-INF") != len(LADDER):
            raise RuntimeError(f"{out}/master.m3u8 does not list {len(LADDER)} renditions:\n{master}")
    return {"e2e_s": max(p["e2e_s"] for p in per), "busy_s": sum(p["busy_s"] for p in per),
            "submit_s": submit_s, "families": per}


def ffmpeg_commands(src: Path, work: Path, settings: Settings) -> list[list[str]]:
    """The exact ffmpeg command lines a worker runs for the ladder (encode, then HLS packaging, per
    rung), captured from mediarunner's own builders so the baseline does identical media work.
    Only mediarunner's progress pipe (``-progress pipe:1 -nostats``) is left out."""
    info = probe(src, ffprobe=settings.ffprobe_path)
    ladder = settings.ladder_by_name()
    plan = plan_ladder(info, [ladder[n] for n in LADDER])
    if [r.name for r in plan] != list(LADDER):
        raise RuntimeError(f"source {info.width}x{info.height} does not fill the ladder {LADDER}")
    cmds: list[list[str]] = []

    def record(args: Sequence[str], **_: Any) -> None:
        cmds.append([settings.ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args])

    with mock.patch.object(encode_mod, "run_ffmpeg", record):  # encode_rendition and package_hls live there
        for r in plan:
            mp4 = work / f"{r.name}.mp4"
            encode_rendition(src, mp4, r, info, ffmpeg=settings.ffmpeg_path, preset=settings.x264_preset,
                             threads=settings.ffmpeg_threads, segment_seconds=settings.hls_segment_seconds)
            package_hls(mp4, work / "hls" / r.name, ffmpeg=settings.ffmpeg_path,
                        segment_seconds=settings.hls_segment_seconds)
    return cmds


def one_command(src: Path, work: Path, settings: Settings) -> list[list[str]]:
    """What a careful operator runs on one machine: one ffmpeg invocation that decodes the source
    once and encodes every rung (``split`` + ``scale`` per rung, the same encoder options as each
    rung alone), then HLS packaging of each encoded MP4 by stream copy. Captured from
    ``encode_renditions`` and ``package_hls``, without the progress pipe."""
    info = probe(src, ffprobe=settings.ffprobe_path)
    ladder = settings.ladder_by_name()
    plan = plan_ladder(info, [ladder[n] for n in LADDER])
    cmds: list[list[str]] = []

    def record(args: Sequence[str], **_: Any) -> None:
        cmds.append([settings.ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args])

    with mock.patch.object(encode_mod, "run_ffmpeg", record):
        encode_renditions(src, [(r, work / f"{r.name}.mp4") for r in plan], info, ffmpeg=settings.ffmpeg_path,
                          speed=lambda codec: codec_speed(settings, codec), threads=settings.ffmpeg_threads,
                          segment_seconds=settings.hls_segment_seconds)
        for r in plan:
            package_hls(work / f"{r.name}.mp4", work / "hls" / r.name, ffmpeg=settings.ffmpeg_path,
                        segment_seconds=settings.hls_segment_seconds)
    return cmds


def run_commands(cmds: Sequence[Sequence[str]]) -> float:
    """Run the commands one after the other (as one worker does); return the wall time."""
    t0 = time.perf_counter()
    for cmd in cmds:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0
