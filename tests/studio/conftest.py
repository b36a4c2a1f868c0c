"""Tiny synthetic clips (<= 320x240, a few seconds, ultrafast) generated once per session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def ffmpeg_gen(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120)


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "64k", "-ac", "2"]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("studio-media")
    out = {
        "main": d / "main_320x240_av.mp4",  # 3 s, 25 fps, uniform gray + 440 Hz
        "intro": d / "intro_200x100_silent.mp4",  # 1 s, 15 fps, no audio, another aspect ratio
        "outro": d / "outro_240x240_av.mp4",  # 1 s, 30 fps, audio at 44.1 kHz mono
        "silent": d / "main_320x240_silent.mp4",  # 2 s, no audio
        "logo": d / "logo_64x32.png",  # opaque pure red
    }
    ffmpeg_gen(
        "-f", "lavfi", "-i", "color=c=0x808080:size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        *X264, *AAC, "-shortest", str(out["main"]),
    )  # fmt: skip
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=200x100:rate=15:duration=1", *X264, str(out["intro"]))
    ffmpeg_gen(
        "-f", "lavfi", "-i", "testsrc2=size=240x240:rate=30:duration=1",
        "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=44100:duration=1",
        *X264, "-c:a", "aac", "-ac", "1", "-shortest", str(out["outro"]),
    )  # fmt: skip
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", *X264, str(out["silent"]))
    ffmpeg_gen("-f", "lavfi", "-i", "color=c=red:size=64x32", "-frames:v", "1", str(out["logo"]))
    return out


def frame_rgb(path: Path, at: float, width: int, height: int) -> bytes:
    raw = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-ss", f"{at}", "-i", str(path),
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    assert len(raw) == width * height * 3
    return raw


def region_mean(raw: bytes, width: int, x0: int, y0: int, x1: int, y1: int) -> tuple[float, float, float]:
    sums = [0, 0, 0]
    n = 0
    for y in range(y0, y1):
        row = raw[(y * width + x0) * 3 : (y * width + x1) * 3]
        for c in range(3):
            sums[c] += sum(row[c::3])
        n += x1 - x0
    return (sums[0] / n, sums[1] / n, sums[2] / n)
