"""Audio + cover image end to end (PeerTube's audio merge): an audio file and a still become a video
ladder, split into parts too; a cover that is not an image, or a video input, is refused at submit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import m3u8
import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState
from tests.media_checks import duration, streams
from tests.support import Stack, make_clip


def _cover(path: Path, size: str = "480x480") -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}", "-frames:v", "1",
                    str(path)], check=True)
    return path


def test_audio_and_cover_become_a_video_ladder(stack: Stack, tmp_path: Path) -> None:
    audio = make_clip(tmp_path / "song.m4a", seconds=4.0, video=False)
    cover = _cover(tmp_path / "cover.jpg")
    env = {"MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "1"}
    stack.inproc_worker("a", extra_env=env)
    stack.inproc_worker("b", extra_env=env)
    client = stack.client()
    out = stack.tmp / "outputs" / "song"
    job = client.submit_transcode(str(audio), str(out), renditions=["360p", "240p"], cover_image=str(cover))
    split_out = stack.tmp / "outputs" / "song-split"
    split = client.submit_transcode(str(audio), str(split_out), renditions=["240p"], cover_image=str(cover), parts=2)
    job, split = client.wait(job.id, timeout=180), client.wait(split.id, timeout=180)
    for j in job.family + split.family:
        assert j.state is JobState.COMPLETED, (j.type, j.error)
    for where, name, side in ((out, "360p", 360), (out, "240p", 240), (split_out, "240p", 240)):
        mp4 = where / f"{name}.mp4"
        (v,) = streams(mp4, "video")
        (a,) = streams(mp4, "audio")
        assert (v["codec_name"], a["codec_name"], v["width"], v["height"]) == ("h264", "aac", side, side)
        assert abs(duration(mp4) - 4.0) <= 0.15 and abs(float(a["duration"]) - 4.0) <= 0.15
    master = m3u8.load(str(out / "master.m3u8"))
    assert sorted(p.stream_info.resolution for p in master.playlists) == [(240, 240), (360, 360)]
    assert all(p.stream_info.codecs.startswith("avc1.") for p in master.playlists)
    assert not (out / "audio.m4a").exists()  # a video ladder, not the audio ladder


def test_bad_covers_are_refused_before_anything_is_written(stack: Stack, tmp_path: Path) -> None:
    audio = make_clip(tmp_path / "song.m4a", seconds=1.0, video=False)
    video = make_clip(tmp_path / "clip.mp4", seconds=1.0, size="320x180")
    text = tmp_path / "cover.jpg"
    text.write_text("this is not a picture\n")
    cover = _cover(tmp_path / "real.png", "64x64")
    client = stack.client()
    before = len(client.list(limit=1000))
    for inp, img, why in ((audio, text, "not an image"), (audio, video, "not an image"),
                          (audio, tmp_path / "missing.png", "does not exist"), (video, cover, "already has video")):
        with pytest.raises(ValidationError, match=why):
            client.submit_transcode(str(inp), str(stack.tmp / "outputs" / "x"), cover_image=str(img))
    assert len(client.list(limit=1000)) == before and not (stack.tmp / "outputs" / "x").exists()
