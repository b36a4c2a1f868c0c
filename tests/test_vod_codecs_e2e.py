"""Codecs per ladder end to end (real PostgreSQL, Redis, ffmpeg, in-process workers): one master
playlist over an H.264 and an AV1 ladder, HEVC and VP9 ladders split into parts, bad codecs refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import m3u8
import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState, JobType
from tests.media_checks import duration, streams
from tests.support import Stack, make_clip

DONE = JobState.COMPLETED
FAST = {"MEDIARUNNER_X265_PRESET": "ultrafast", "MEDIARUNNER_SVTAV1_PRESET": "12", "MEDIARUNNER_VP9_CPU_USED": "8"}
CODEC_OF = {"avc1": "h264", "hvc1": "hevc", "av01": "av1", "vp09": "vp9"}


def _video_codec(path: Path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True).stdout
    return str(json.loads(out)["streams"][0]["codec_name"])


def play(out: Path, seconds: float) -> dict[str, tuple[int, int]]:
    """What a player does: read the master with an HLS parser, then each variant's media playlist,
    its init segment (fMP4) and segments; the decoded codec must be the one CODECS announced.
    Returns {uri: resolution}."""
    master = m3u8.load(str(out / "master.m3u8"))
    assert master.is_variant and master.playlists
    seen: dict[str, tuple[int, int]] = {}
    for p in master.playlists:
        info = p.stream_info
        assert info.bandwidth >= info.average_bandwidth > 0 and info.frame_rate == 25.0 and info.resolution
        media_path = out / p.uri
        media = m3u8.load(str(media_path))
        assert media.is_endlist and abs(sum(s.duration for s in media.segments) - seconds) <= 0.1
        peak = max((media_path.parent / s.uri).stat().st_size * 8 / s.duration for s in media.segments)
        assert info.bandwidth >= peak  # measured, not guessed
        first = (media_path.parent / media.segments[0].uri).read_bytes()
        if media.segment_map:
            first = (media_path.parent / media.segment_map[0].uri).read_bytes() + first
        probe_me = media_path.parent / "first-segment.probe"
        probe_me.write_bytes(first)
        try:
            assert _video_codec(probe_me) == CODEC_OF[info.codecs[:4]], (p.uri, info.codecs)
        finally:
            probe_me.unlink()
        seen[p.uri] = info.resolution
    return seen


def test_h264_and_av1_ladders_in_one_master(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a", extra_env=FAST)
    stack.inproc_worker("b", extra_env=FAST)
    client = stack.client()
    out = stack.tmp / "outputs" / "h264av1"
    job = client.submit_transcode(str(src), str(out), renditions=["360p", "240p"], video_codecs=("h264", "av1"))
    assert sorted(c.payload["rendition"] for c in job.children) == ["240p", "240p_av1", "360p_av1"]
    job = client.wait(job.id, timeout=240)
    assert all(j.state is DONE for j in job.family), [(j.state, j.error) for j in job.family]
    seen = play(out, 2.0)
    assert seen == {"hls/360p/index.m3u8": (640, 360), "hls/240p/index.m3u8": (426, 240),
                    "hls/360p_av1/index.m3u8": (640, 360), "hls/240p_av1/index.m3u8": (426, 240)}
    for name, codec in (("360p", "h264"), ("240p", "h264"), ("360p_av1", "av1"), ("240p_av1", "av1")):
        (v,) = streams(out / f"{name}.mp4", "video")
        assert v["codec_name"] == codec and abs(duration(out / f"{name}.mp4") - 2.0) <= 0.1
        assert streams(out / f"{name}.mp4", "audio")[0]["codec_name"] == "aac"
    assert {a.codec for j in job.family for a in j.artifacts if a.kind == "mp4"} == {"h264", "av1"}
    assert sorted(p.name for p in (out / "hls" / "360p_av1").iterdir())[:2] == ["index.m3u8", "init.mp4"]


def test_hevc_and_vp9_ladders_split_into_parts(stack: Stack, tmp_path: Path) -> None:
    """Split encoding works for every codec: parts are joined by stream copy (hvc1 kept)."""
    src = make_clip(tmp_path / "in.mp4", seconds=4.0, size="640x360")
    env = {**FAST, "MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "1"}
    stack.inproc_worker("a", extra_env=env)
    stack.inproc_worker("b", extra_env=env)
    client = stack.client()
    out = stack.tmp / "outputs" / "hevcvp9"
    job = client.submit_transcode(str(src), str(out), renditions=["360p"], video_codecs=("hevc", "vp9"), parts=2)
    job = client.wait(job.id, timeout=240)
    assert all(j.state is DONE for j in job.family), [(j.state, j.error) for j in job.family]
    parts = [j for j in job.family if j.type is JobType.TRANSCODE_RENDITION]
    assert sorted((j.payload["rendition"], j.payload["part"]) for j in parts) == \
        [("360p_hevc", 0), ("360p_hevc", 1), ("360p_vp9", 0), ("360p_vp9", 1)]
    assert play(out, 4.0) == {"hls/360p_hevc/index.m3u8": (640, 360), "hls/360p_vp9/index.m3u8": (640, 360)}
    (hevc,) = streams(out / "360p_hevc.mp4", "video")
    assert (hevc["codec_name"], hevc["codec_tag_string"]) == ("hevc", "hvc1")
    assert streams(out / "360p_vp9.mp4", "video")[0]["codec_name"] == "vp9"
    assert not (out / "360p.mp4").exists()  # no H.264 ladder was asked for


def test_unknown_codec_is_refused_before_anything_is_written(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, size="320x180")
    client = stack.client()
    before = len(client.list(limit=1000))
    for bad in (("h264", "mpeg2"), (), "av1"):
        with pytest.raises(ValidationError, match="video_codecs"):
            client.submit_transcode(str(src), str(stack.tmp / "outputs" / "bad"), video_codecs=bad)
    assert len(client.list(limit=1000)) == before and not (stack.tmp / "outputs" / "bad").exists()


def test_quality_numbers_recorded_when_asked(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a", extra_env={**FAST, "MEDIARUNNER_QUALITY_METRICS": "true",
                                        "MEDIARUNNER_QUALITY_SAMPLE_EVERY": "5"})
    client = stack.client()
    job = client.submit_transcode(str(src), str(stack.tmp / "outputs" / "q"), renditions=["240p"],
                                  video_codecs=("h264", "vp9"))
    job = client.wait(job.id, timeout=120)
    assert all(j.state is DONE for j in job.family), [(j.state, j.error) for j in job.family]
    for j in job.family:
        q = (j.result or {})["quality"]
        assert 25.0 < q["psnr"] < 100.0 and 0.8 < q["ssim"] <= 1.0 and q["every"] == 5
