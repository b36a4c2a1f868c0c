"""The HLS variant facts read from an MP4's boxes (media/mp4box.py) against ffprobe's, on MP4s
with frame rates and sizes the test ladder does not make, and files the reader must decline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mediarunner.media import describe_variant, package_hls
from mediarunner.media.mp4box import read_tracks


def _mp4(path: Path, *, rate: str, size: str, audio: str | None = "aac", movflags: str = "+faststart") -> Path:
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration=1.2"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1.2", "-c:a", audio]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", movflags, str(path)]
    subprocess.run(args, check=True)
    return path


@pytest.mark.parametrize(("rate", "size", "audio", "movflags"), [
    ("30000/1001", "322x182", "aac", "+faststart"),  # NTSC rate, odd-ish size
    ("24", "160x90", None, "+faststart"),  # video only
    ("50", "192x108", "aac", "0"),  # moov after mdat (no faststart)
])  # fmt: skip
def test_boxes_agree_with_ffprobe(tmp_path: Path, rate: str, size: str, audio: str | None, movflags: str) -> None:
    mp4 = _mp4(tmp_path / "v.mp4", rate=rate, size=size, audio=audio, movflags=movflags)
    playlist = package_hls(mp4, tmp_path / "hls", segment_seconds=1)
    tracks = read_tracks(mp4)
    assert tracks is not None and [t.kind for t in tracks] == ["video", *(["audio"] if audio else [])]
    fast = describe_variant(mp4, "v/index.m3u8", media_playlist=playlist)
    assert fast == describe_variant(mp4, "v/index.m3u8", media_playlist=playlist, use_ffprobe=True)
    assert fast.resolution == tuple(int(x) for x in size.split("x"))


def test_unreadable_files_fall_back_to_ffprobe(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an mp4")
    assert read_tracks(text) is None
    mp4 = _mp4(tmp_path / "v.mp4", rate="25", size="160x90")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[:200])  # the moov box runs past the end
    assert read_tracks(cut) is None
    mp3 = _mp4(tmp_path / "mp3.mp4", rate="25", size="160x90", audio="libmp3lame")
    playlist = package_hls(mp3, tmp_path / "hls", segment_seconds=1)
    v = describe_variant(mp3, "v/index.m3u8", media_playlist=playlist)
    assert v.codecs.endswith(",mp4a.40.34")
    assert v == describe_variant(mp3, "v/index.m3u8", media_playlist=playlist, use_ffprobe=True)
