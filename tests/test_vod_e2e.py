"""VOD ladder end to end: real Redis, real PostgreSQL, real ffmpeg, real (in-process) workers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState, JobType
from tests.media_checks import duration, master_variants, media_playlist_duration, streams
from tests.support import Stack, make_clip, wait_for

DONE = JobState.COMPLETED


def outputs(stack: Stack, name: str) -> Path:
    return stack.tmp / "outputs" / name


def test_full_ladder(broker_stack: Stack, tmp_path: Path) -> None:
    """The happy path, on Redis and on RabbitMQ. On RabbitMQ with worker processes as deployed (two
    in-process workers share one Celery app, whose queue declarations RabbitMQ checks strictly); on
    Redis with in-process workers (no fault here: nothing needs a process)."""
    stack = broker_stack
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="1920x1080")
    start = stack.worker if stack.env["MEDIARUNNER_BROKER_URL"].startswith("amqp") else stack.inproc_worker
    start("a")
    start("b")
    client = stack.client()
    job = client.submit_transcode(str(src), str(outputs(stack, "full")))
    job = client.wait(job.id, timeout=240)
    assert [j.state for j in job.family] == [DONE] * 5, [(j.state, j.error) for j in job.family]
    out = outputs(stack, "full")
    expected = {"1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480), "360p": (640, 360),
                "240p": (426, 240)}
    for name, (w, h) in expected.items():
        mp4 = out / f"{name}.mp4"
        (v,) = streams(mp4, "video")
        (a,) = streams(mp4, "audio")
        assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
        assert (int(v["width"]), int(v["height"])) == (w, h)
        assert abs(duration(mp4) - 2.0) <= 0.1
        assert abs(media_playlist_duration(out / "hls" / name / "index.m3u8") - 2.0) <= 0.1
        # faststart: the moov atom comes before mdat
        head = mp4.read_bytes()[:4096]
        moov, mdat = head.find(b"moov"), head.find(b"mdat")
        assert moov != -1 and (mdat == -1 or moov < mdat)
    variants = master_variants(out / "master.m3u8")
    assert sorted(uri for _, uri in variants) == sorted(f"hls/{n}/index.m3u8" for n in expected)
    assert all("RESOLUTION=" in attrs and "CODECS=" in attrs for attrs, _ in variants)
    # artifacts recorded with checksums
    arts = [a for j in job.family for a in j.artifacts if a.kind == "mp4"]
    assert len(arts) == 5 and all(a.checksum and len(a.checksum) == 64 for a in arts)


def test_no_upscale_for_360p_source(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "small.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a")
    client = stack.client()
    job = client.wait(client.submit_transcode(str(src), str(outputs(stack, "small"))).id, timeout=120)
    assert all(j.state is DONE for j in job.family)
    out = outputs(stack, "small")
    assert sorted(p.name for p in out.glob("*.mp4")) == ["240p.mp4", "360p.mp4"]
    assert len(master_variants(out / "master.m3u8")) == 2
    assert len(job.family) == 2  # the rungs that would upscale were dropped, not run


def test_audio_only_and_video_without_audio(stack: Stack, tmp_path: Path) -> None:
    audio = make_clip(tmp_path / "audio.m4a", seconds=2.0, video=False)
    silent_video = make_clip(tmp_path / "mute.mp4", seconds=2.0, size="640x360", audio=False)
    stack.inproc_worker("a")
    client = stack.client()
    a = client.submit_transcode(str(audio), str(outputs(stack, "audio")))
    v = client.submit_transcode(str(silent_video), str(outputs(stack, "mute")), renditions=["360p"])
    a, v = client.wait(a.id, timeout=120), client.wait(v.id, timeout=120)
    assert [j.state for j in a.family] == [DONE], a.error
    m4a = outputs(stack, "audio") / "audio.m4a"
    assert streams(m4a, "video") == [] and streams(m4a, "audio")[0]["codec_name"] == "aac"
    assert abs(duration(m4a) - 2.0) <= 0.1
    ((attrs, _),) = master_variants(outputs(stack, "audio") / "master.m3u8")
    assert "RESOLUTION" not in attrs and "mp4a" in attrs
    assert [j.state for j in v.family] == [DONE], v.error
    mp4 = outputs(stack, "mute") / "360p.mp4"
    assert streams(mp4, "audio") == [] and len(streams(mp4, "video")) == 1


def test_children_run_concurrently_on_two_workers(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=6.0, size="1280x720")
    stack.inproc_worker("a")
    stack.inproc_worker("b")
    client = stack.client()
    job = client.wait(client.submit_transcode(str(src), str(outputs(stack, "par")),
                                              renditions=["720p", "480p", "360p", "240p"]).id, timeout=240)
    kids = job.children
    assert len(kids) == 3 and all(k.state is DONE for k in kids)
    assert len({k.worker for k in kids}) == 2, "children should be spread over both workers"
    overlaps = [(x, y) for x in kids for y in kids if x.worker != y.worker
                and x.started_at < y.finished_at and y.started_at < x.finished_at]  # type: ignore[operator]
    assert overlaps, [(k.worker, k.started_at, k.finished_at) for k in kids]
    assert all(k.started_at >= job.finished_at for k in kids)  # type: ignore[operator]


def _ffmpeg_running_for(scratch: Path) -> bool:
    out = subprocess.run(["pgrep", "-af", "ffmpeg"], capture_output=True, text=True).stdout
    return str(scratch) in out


def test_cancel_running_job_kills_ffmpeg_and_leaves_nothing(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "long.mp4", seconds=20.0, size="1280x720")  # seconds of encoding at "medium"
    stack.inproc_worker("a", extra_env={"MEDIARUNNER_X264_PRESET": "medium"})
    client = stack.client()
    job = client.submit_transcode(str(src), str(outputs(stack, "cancel")), renditions=["720p", "360p"])
    scratch = Path(stack.env["MEDIARUNNER_SCRATCH_DIR"])
    wait_for(lambda: client.get(job.id).progress > 1 and _ffmpeg_running_for(scratch), 60,
             what="ffmpeg to be encoding")
    client.cancel(job.id)
    wait_for(lambda: not _ffmpeg_running_for(scratch), 2.0, what="ffmpeg to be killed within 2 s")
    done = client.wait(job.id, timeout=10)
    assert done.state is JobState.CANCELLED
    assert [c.state for c in done.children] == [JobState.PARENT_CANCELLED]
    out = outputs(stack, "cancel")
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    wait_for(lambda: not any(scratch.glob(f"{job.id}-*")), 10, what="scratch to be cleaned")


def test_corrupt_input_fails_once_with_clear_error(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_text("this is not a video\n" * 100)
    stack.inproc_worker("a")
    client = stack.client()
    job = client.wait(client.submit_transcode(str(bad), str(outputs(stack, "bad"))).id, timeout=60)
    assert job.state is JobState.FAILED
    assert job.attempt == 1 and job.error_kind == "permanent"
    assert "corrupt.mp4" in (job.error or "")
    assert all(c.state is JobState.PARENT_FAILED for c in job.children)
    # the worker keeps serving
    ok = make_clip(tmp_path / "ok.mp4", seconds=1.0, size="320x240")
    again = client.wait(client.submit_transcode(str(ok), str(outputs(stack, "ok"))).id, timeout=60)
    assert again.state is DONE


@pytest.mark.parametrize("kwargs, message", [
    (dict(input="", output="x"), "input"),
    (dict(input="in.mp4", output="../escape"), "output"),
    (dict(input="in.mp4", output="/etc/mediarunner"), "escapes"),
    (dict(input="in.mp4", output="gopher://h/x"), "scheme"),
    (dict(input="in.mp4", output="ok", renditions=["999p"]), "unknown rendition"),
    (dict(input="in.mp4", output="ok", renditions=[]), "renditions"),
    (dict(input="in.mp4", output="ok", formats=("hls", "webm")), "formats"),
    (dict(input="in.mp4", output="ok", formats="hls"), "formats"),
    (dict(input="in.mp4", output="ok", priority="high"), "priority"),
    (dict(input="in.mp4", output="ok", metadata={"x": object()}), "metadata"),
])
def test_invalid_arguments_rejected_before_enqueue(stack: Stack, redis_server: object, kwargs: dict,
                                                   message: str) -> None:
    client = stack.client()
    if kwargs.get("output") not in ("", None) and not str(kwargs["output"]).startswith(("/", "gopher", "..")):
        kwargs["output"] = str(outputs(stack, kwargs["output"]))
    before = len(client.list(limit=10_000))
    with pytest.raises(ValidationError, match=message):
        client.submit_transcode(**kwargs)
    assert len(client.list(limit=10_000)) == before
    r = redis.Redis.from_url(stack.env["MEDIARUNNER_BROKER_URL"])
    assert r.llen("cpu") == 0


def test_sqlite_backend_end_to_end(sqlite_stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, size="640x360")
    sqlite_stack.inproc_worker("a", concurrency=2)
    client = sqlite_stack.client()
    job = client.wait(client.submit_transcode(str(src), str(outputs(sqlite_stack, "lite"))).id, timeout=120)
    assert [j.state for j in job.family] == [DONE, DONE]
    assert os.path.exists(outputs(sqlite_stack, "lite") / "master.m3u8")
    assert job.children[0].type is JobType.TRANSCODE_RENDITION
