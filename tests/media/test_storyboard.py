"""Storyboards (sprite + WebVTT with #xywh cues) and thumbnails with real ffmpeg."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from mediarunner.errors import InvalidInputError
from mediarunner.media import probe
from mediarunner.media.storyboard import make_storyboard, make_thumbnails, plan_storyboard, render_vtt


def _size(image: Path) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height,codec_name", "-of",
                          "csv=p=0", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    codec, w, h = out.split(",")
    assert codec in ("mjpeg", "webp")
    return int(w), int(h)


def test_plan_caps_tiles_and_stretches_the_interval(clips: dict[str, Path]) -> None:
    info = probe(clips["av"])  # 640x360, 3 s
    plan = plan_storyboard(info, tile_width=160, max_tiles=100, min_interval=0.5, columns=4)
    assert (plan.count, plan.interval, plan.columns, plan.rows) == (6, 0.5, 4, 2)
    assert (plan.tile_width, plan.tile_height) == (160, 90)
    long = dataclasses.replace(info, duration=3600.0)
    capped = plan_storyboard(long, max_tiles=100, min_interval=1.0)
    assert capped.count == 100 and capped.interval == 36.0 and (capped.columns, capped.rows) == (10, 10)


def test_vtt_cues_point_into_the_sprite(clips: dict[str, Path]) -> None:
    plan = plan_storyboard(probe(clips["av"]), tile_width=160, min_interval=0.5, columns=4)
    vtt = render_vtt(plan, "storyboard.jpg", 3.0)
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\S+) --> (\S+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
    assert len(cues) == 6
    assert cues[0] == ("00:00:00.000", "00:00:00.500", "storyboard.jpg", "0", "0", "160", "90")
    assert cues[4][3:] == ("0", "90", "160", "90")  # second row
    assert cues[-1][:2] == ("00:00:02.500", "00:00:03.000")


@pytest.mark.parametrize("image", ["jpg", "webp"])
def test_sprite_sheet_has_every_tile(clips: dict[str, Path], tmp_path: Path, image: str) -> None:
    info = probe(clips["av"])
    plan = plan_storyboard(info, tile_width=160, min_interval=0.5, columns=4)
    board = make_storyboard(clips["av"], tmp_path, info, plan, image=image)
    assert _size(board.sprite) == (4 * 160, 2 * 90) and board.sprite.name == f"storyboard.{image}"
    assert board.vtt.read_text().count("#xywh=") == 6


def test_thumbnails_and_poster(clips: dict[str, Path], tmp_path: Path) -> None:
    info = probe(clips["av"])
    shots = make_thumbnails(clips["av"], tmp_path, info, 3, width=160, poster_width=1280)
    assert [p.name for p in shots] == ["thumb_000.jpg", "thumb_001.jpg", "thumb_002.jpg", "poster.jpg"]
    assert all(_size(p) == (160, 90) for p in shots[:3])
    assert _size(shots[-1]) == (640, 360)  # the poster is never upscaled
    assert len({p.read_bytes() for p in shots[:3]}) == 3  # three different moments


def test_audio_only_has_no_storyboard(clips: dict[str, Path], tmp_path: Path) -> None:
    info = probe(clips["audio"])
    with pytest.raises(InvalidInputError, match="audio only"):
        plan_storyboard(info)
    with pytest.raises(InvalidInputError, match="audio only"):
        make_thumbnails(clips["audio"], tmp_path, info, 2)
    assert list(tmp_path.iterdir()) == []
