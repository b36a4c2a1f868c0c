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
