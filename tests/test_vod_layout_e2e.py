"""The auto planner end to end (media/strategy.py, tasks/transcode.py): with no other idle worker
the parent encodes every rung in one ffmpeg, with one it fans out, and a long video is split
without a ``parts`` argument. The ladders are the same whichever layout made them (real ffmpeg,
PostgreSQL, workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediarunner.config import get_settings
from mediarunner.models.enums import JobState, JobType
from tests.media_checks import duration, master_variants, media_playlist_duration, streams
from tests.support import (
    RedisServer,
    Stack,
    create_pg_database,
    drop_pg_database,
    empty_broker,
    make_clip,
    make_stack,
    wait_for,
)

DONE = JobState.COMPLETED
AUTO = {"MEDIARUNNER_TRANSCODE_PLANNER": "auto", "MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "3"}
RUNGS = ["480p", "360p", "240p"]


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """A PostgreSQL database of this test's own: a runner another test left registered (a killed
    worker looks online for a while) would count as idle capacity and change the layout."""
    redis_server.ping() or redis_server.start()
    empty_broker(redis_server.url)
    url = create_pg_database()
    try:
        with make_stack(tmp_path, url, redis_server.url) as s:
            yield s
    finally:
        drop_pg_database(url)


def ladder(out: Path, seconds: float) -> dict[str, Any]:
    """What a player sees of a ladder: per rendition the picture, codecs, durations and segments;
    the master playlist's variants without their measured bitrates."""
    got: dict[str, Any] = {}
    for mp4 in sorted(out.glob("*.mp4")):
        (v,), (a,) = streams(mp4, "video"), streams(mp4, "audio")
        playlist = out / "hls" / mp4.stem / "index.m3u8"
        assert abs(duration(mp4) - seconds) <= 0.1 and abs(media_playlist_duration(playlist) - seconds) <= 0.1
        got[mp4.stem] = (v["codec_name"], v["width"], v["height"], a["codec_name"],
                         playlist.read_text().count("#EXTINF"))
    got["master"] = sorted((uri, ",".join(p for p in attrs.split(",") if not p.startswith(("BANDWIDTH", "AVERAGE"))))
                           for attrs, uri in master_variants(out / "master.m3u8"))
    return got


def test_one_worker_encodes_the_ladder_in_one_ffmpeg_and_two_fan_out_to_the_same_ladder(
        stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=4.0, size="854x480")
    stack.inproc_worker("a", extra_env=AUTO)
    client = stack.client()
    one = client.wait(client.submit_transcode(str(src), str(stack.tmp / "outputs" / "one"), renditions=RUNGS).id,
                      timeout=180)
    assert all(j.state is DONE for j in one.family), [(j.type, j.state, j.error) for j in one.family]
    assert one.result is not None and one.result["layout"]["kind"] == "combined", one.result.get("layout")
    assert len(one.family) == 1  # every rung by the parent: the rung children were dropped once published
    assert [r["rendition"] for r in [one.result, *one.result["also"]]] == RUNGS
    assert all(r["encoder"]["combined"] for r in [one.result, *one.result["also"]])
    assert sum(1 for a in one.artifacts if a.kind == "mp4") == 3

    stack.inproc_worker("b")  # now one slot is idle while the parent plans: one job per rung
    two = client.wait(client.submit_transcode(str(src), str(stack.tmp / "outputs" / "two"), renditions=RUNGS).id,
                      timeout=180)
    assert all(j.state is DONE for j in two.family), [(j.type, j.state, j.error) for j in two.family]
    assert two.result is not None and two.result["layout"]["kind"] == "fan-out", two.result["layout"]
    assert two.result["layout"]["workers"] == 2 and "also" not in two.result
    kids = [j for j in two.family if j.type is JobType.TRANSCODE_RENDITION]
    assert sorted(k.payload["rendition"] for k in kids) == ["240p", "360p"]
    assert ladder(stack.tmp / "outputs" / "one", 4.0) == ladder(stack.tmp / "outputs" / "two", 4.0)


def test_a_long_video_is_split_for_the_idle_workers_without_a_parts_argument(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "long.mp4", seconds=12.0, size="854x480")
    stack.inproc_worker("a", extra_env=AUTO)
    stack.inproc_worker("b")
    client = stack.client()
    out = stack.tmp / "outputs" / "split"
    job = client.wait(client.submit_transcode(str(src), str(out), renditions=RUNGS[:2]).id, timeout=300)
    assert all(j.state is DONE for j in job.family), [(j.type, j.state, j.error) for j in job.family]
    assert job.result is not None and job.result["layout"]["kind"] == "split" and job.result["parts"] == 2
    assert job.result["layout"]["rungs"] == ["480p", "360p"]  # each part job encodes both rungs of its span
    kids = [j for j in job.family if j.type is JobType.TRANSCODE_RENDITION]
    assert sorted((k.payload["rendition"], k.payload["part"]) for k in kids) == [("480p", 0), ("480p", 1)]
    (joiner,) = [k for k in kids if k.result and k.result.get("joined") == 2]
    assert joiner.result is not None and [r["rendition"] for r in [joiner.result, *joiner.result["also"]]] == \
        ["480p", "360p"]
    got = ladder(out, 12.0)
    assert [uri for uri, _ in got.pop("master")] == ["hls/360p/index.m3u8", "hls/480p/index.m3u8"]
    assert got == {"360p": ("h264", 640, 360, "aac", 6), "480p": ("h264", 854, 480, "aac", 6)}
    wait_for(lambda: not (out / ".parts").exists(), 10, what="the joined parts to be removed")


@pytest.mark.slow
def test_a_killed_combined_attempt_is_retried_one_job_per_rung(tmp_path: Path, stack: Stack,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The combined encode is one ffmpeg: killed, nothing of it was published, and the retry never
    combines: it fans out, so every rung is a job of its own (failing, or retried, alone)."""
    fast = {**AUTO, "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5", "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "3"}
    src = make_clip(tmp_path / "in.mp4", seconds=6.0, size="854x480")
    stack.worker("sched", queues="scheduler", beat=True, extra_env=fast)
    victim = stack.worker("a", extra_env={**fast, "MEDIARUNNER_X264_PRESET": "veryslow"})
    for k, v in fast.items():  # the client submits with the auto planner too
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    client = stack.client()
    out = stack.tmp / "outputs" / "retried"
    job = client.submit_transcode(str(src), str(out), renditions=RUNGS)
    wait_for(lambda: (j := client.get(job.id)).state is JobState.RUNNING and j.progress > 6, 120,
             what="the combined encode to start")
    victim.kill()
    stack.worker("b", extra_env=fast)
    done = client.wait(job.id, timeout=240)
    assert all(j.state is DONE for j in done.family), [(j.type, j.state, j.error) for j in done.family]
    assert done.aborts == 1 and done.result is not None and done.result["layout"]["kind"] == "fan-out"
    kids = [j for j in done.family if j.type is JobType.TRANSCODE_RENDITION]
    assert sorted(k.payload["rendition"] for k in kids) == ["240p", "360p"] and all(k.attempt == 1 for k in kids)
    got = ladder(out, 6.0)
    assert sorted(got) == ["240p", "360p", "480p", "master"] and len(got["master"]) == 3


@pytest.mark.slow
def test_a_killed_part_of_a_split_ladder_is_retried_alone(tmp_path: Path, stack: Stack,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part job encodes every rung of its span; the worker of one part is killed: only that
    part runs again (on the other worker), the finished part is not redone, and one part joins."""
    fast = {**AUTO, "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5", "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "3",
            "MEDIARUNNER_X264_PRESET": "faster"}
    for k, v in fast.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    src = make_clip(tmp_path / "in.mp4", seconds=12.0, size="1280x720")
    workers = {w.hostname: w for w in (stack.worker("a", extra_env=fast), stack.worker("b", extra_env=fast))}
    stack.worker("sched", queues="scheduler", beat=True, extra_env=fast)
    client = stack.client()
    out = stack.tmp / "outputs" / "split-killed"
    job = client.submit_transcode(str(src), str(out), renditions=["720p", "360p"])

    def a_running_part() -> Any:
        kids = [j for j in client.get(job.id).children if j.state is JobState.RUNNING and j.progress > 5]
        return kids[0] if kids else None

    victim_part = wait_for(a_running_part, 120, what="a part to be encoding")
    workers[victim_part.worker].kill()
    done = client.wait(job.id, timeout=300)
    assert all(j.state is DONE for j in done.family), [(j.type, j.state, j.error) for j in done.family]
    assert done.result is not None and done.result["layout"]["rungs"] == ["720p", "360p"]
    kids = {k.id: k for k in done.children if k.type is JobType.TRANSCODE_RENDITION}
    assert len(kids) == 2 and kids[victim_part.id].attempt == 2
    (other,) = [k for k in kids.values() if k.id != victim_part.id]
    assert other.attempt == 1  # the finished part was not redone
    assert sum(1 for k in kids.values() if k.result and k.result.get("joined") == 2) == 1
    got = ladder(out, 12.0)
    assert [uri for uri, _ in got.pop("master")] == ["hls/360p/index.m3u8", "hls/720p/index.m3u8"]
    assert got == {"360p": ("h264", 640, 360, "aac", 6), "720p": ("h264", 1280, 720, "aac", 6)}
