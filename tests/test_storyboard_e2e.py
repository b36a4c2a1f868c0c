"""Storyboard jobs end to end (real PostgreSQL, Redis, ffmpeg, an in-process worker): a transcode with a
storyboard and thumbnails; an audio-only input refused before anything is written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState, JobType
from tests.support import Stack, make_clip

ENV = {"MEDIARUNNER_STORYBOARD_MIN_INTERVAL_SECONDS": "0.5", "MEDIARUNNER_STORYBOARD_TILE_WIDTH": "160",
       "MEDIARUNNER_STORYBOARD_COLUMNS": "3", "MEDIARUNNER_THUMBNAIL_WIDTH": "128"}


def _size(image: Path) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                          str(image)], check=True, capture_output=True, text=True).stdout.strip()
    w, h = out.split(",")
    return int(w), int(h)


def test_transcode_with_storyboard_and_thumbnails(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a", extra_env=ENV)
    client = stack.client()
    out = stack.tmp / "outputs" / "board"
    job = client.submit_transcode(str(src), str(out), renditions=["240p"], storyboard=True, thumbnails=2)
    job = client.wait(job.id, timeout=120)
    assert all(j.state is JobState.COMPLETED for j in job.family), [(j.type, j.state, j.error) for j in job.family]
    (board,) = [j for j in job.family if j.type is JobType.STORYBOARD]
    assert board.result is not None and board.result["storyboard"]["tiles"] == 4
    vtt = (out / "storyboard" / "storyboard.vtt").read_text()
    cues = re.findall(r"--> (\S+)\nstoryboard\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
    assert vtt.startswith("WEBVTT") and len(cues) == 4 and cues[-1][0] == "00:00:02.000"
    sprite_w, sprite_h = _size(out / "storyboard" / "storyboard.jpg")
    assert (sprite_w, sprite_h) == (3 * 160, 2 * 90)
    assert all(int(x) + int(w) <= sprite_w and int(y) + int(h) <= sprite_h for _, x, y, w, h in cues)
    assert [_size(out / "thumbnails" / n) for n in ("thumb_000.jpg", "thumb_001.jpg")] == [(128, 72)] * 2
    assert _size(out / "thumbnails" / "poster.jpg") == (640, 360)
    kinds = sorted(a.kind for a in board.artifacts)
    assert kinds == ["poster", "storyboard_sprite", "storyboard_vtt", "thumbnail", "thumbnail"]
    assert (out / "240p.mp4").is_file()  # the ladder itself is unchanged


def test_storyboard_of_audio_only_is_refused(stack: Stack, tmp_path: Path) -> None:
    audio = make_clip(tmp_path / "a.m4a", seconds=1.0, video=False)
    client = stack.client()
    before = len(client.list(limit=1000))
    for kwargs in ({"storyboard": True}, {"thumbnails": 3}):
        with pytest.raises(ValidationError, match="audio only"):
            client.submit_transcode(str(audio), str(stack.tmp / "outputs" / "nope"), **kwargs)
    with pytest.raises(ValidationError, match="thumbnails"):
        client.submit_transcode(str(audio), str(stack.tmp / "outputs" / "nope"), thumbnails=51)
    assert len(client.list(limit=1000)) == before and not (stack.tmp / "outputs" / "nope").exists()


def test_storyboard_job_of_its_own_with_a_given_grid(stack: Stack, tmp_path: Path) -> None:
    """``submit_storyboard`` with the caller's geometry (PeerTube's payload): a tile every 0.5 s of a
    2 s video in a 3 x 2 grid of 100 x 75 tiles (odd sizes kept), JPEG whatever the settings say;
    the two cells past the last tile stay in the image. A geometry out of range is refused at submit."""
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="320x240")
    stack.inproc_worker("a", extra_env=ENV | {"MEDIARUNNER_STORYBOARD_IMAGE": "webp"})
    client = stack.client()
    out = stack.tmp / "outputs" / "grid"
    grid = {"tile_width": 100, "tile_height": 75, "columns": 3, "rows": 2, "interval": 0.5}
    job = client.wait(client.submit_storyboard(str(src), str(out), sprites=grid, image="jpg").id, timeout=120)
    assert job.state is JobState.COMPLETED and [j.type for j in job.family] == [JobType.STORYBOARD], job.error
    assert job.result is not None and job.result["storyboard"] == {
        "tiles": 4, "interval": 0.5, "columns": 3, "rows": 2, "tile_width": 100, "tile_height": 75}
    assert _size(out / "storyboard" / "storyboard.jpg") == (300, 150)
    cues = re.findall(r"(\S+) --> (\S+)\nstoryboard\.jpg#xywh=(\d+),(\d+),100,75", (out / "storyboard" /
                                                                                   "storyboard.vtt").read_text())
    assert [c[0] for c in cues] == ["00:00:00.000", "00:00:00.500", "00:00:01.000", "00:00:01.500"]
    assert [(int(c[2]), int(c[3])) for c in cues] == [(0, 0), (100, 0), (200, 0), (0, 75)]
    before = len(client.list(limit=1000))
    for bad in ({**grid, "tile_width": 4}, {**grid, "columns": 0}, {**grid, "interval": 0}, {"tile_width": 100}):
        with pytest.raises(ValidationError):
            client.submit_storyboard(str(src), str(stack.tmp / "outputs" / "nope"), sprites=bad)
    assert len(client.list(limit=1000)) == before
