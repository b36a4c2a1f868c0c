"""Tiny synthetic clips made with lavfi (testsrc2 + sine), generated once per session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def ffmpeg_gen(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=60,
    )


_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-b:a", "64k"]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """640x360+audio 3 s, 320x240 video-only 2 s, audio-only 2 s.

    No ``+faststart``: the moov atom sits at the end, so cutting a file in half really
    produces a "moov atom not found" MP4.
    """
    d = tmp_path_factory.mktemp("clips")
    av = d / "av_640x360.mp4"
    ffmpeg_gen(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        *_X264, *_AAC, "-ac", "2", "-shortest", str(av),
    )  # fmt: skip
    v = d / "video_320x240.mp4"
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", *_X264, str(v))
    a = d / "audio_only.m4a"
    ffmpeg_gen("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2", *_AAC, str(a))
    return {"av": av, "video": v, "audio": a}
