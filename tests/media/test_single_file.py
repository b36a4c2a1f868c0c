"""Single-file reshaping (media/single_file.py) and a rendition's asked-for frame rate (encode.output_fps)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mediarunner.errors import ValidationError
from mediarunner.media.encode import output_fps
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.probe import probe
from mediarunner.media.single_file import merge_tracks, package_single_file_hls, select_streams


def _kinds(path: Path) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return sorted(s["codec_type"] for s in json.loads(out)["streams"])


@pytest.mark.parametrize(("streams", "kinds"), [("all", ["audio", "video"]), ("video", ["video"]),
                                                 ("audio", ["audio"])])
def test_single_file_hls(clips: dict[str, Path], tmp_path: Path, streams: str, kinds: list[str]) -> None:
    playlist, video = package_single_file_hls(clips["av"], tmp_path / "x-360.m3u8", "x-360-fragmented.mp4",
                                              streams=streams, segment_seconds=1)  # type: ignore[arg-type]
    text = playlist.read_text()
    assert video == tmp_path / "x-360-fragmented.mp4" and '#EXT-X-MAP:URI="x-360-fragmented.mp4"' in text
    assert "#EXT-X-BYTERANGE:" in text and "#EXT-X-ENDLIST" in text  # (one keyframe here: one segment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-360-fragmented.mp4", "x-360.m3u8"]  # one file
    assert _kinds(video) == kinds


def test_single_file_hls_refuses_paths(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        package_single_file_hls(clips["av"], tmp_path / "x.m3u8", "../x.mp4")


def test_select_and_merge_streams(clips: dict[str, Path], tmp_path: Path) -> None:
    assert _kinds(select_streams(clips["av"], tmp_path / "a.mp4", "audio")) == ["audio"]
    merged = merge_tracks(clips["video"], clips["audio"], tmp_path / "m.mp4")
    assert _kinds(merged) == ["audio", "video"]


def test_output_fps(clips: dict[str, Path]) -> None:
    info = probe(clips["av"])
    r = PlannedRendition(name="x", width=640, height=360, video_bitrate_k=500, audio_bitrate_k=64,
                         has_video=True, has_audio=True)
    assert output_fps(r, info) == (25.0, False)  # the source's
    assert output_fps(r.model_copy(update={"fps": 25.0}), info) == (25.0, False)
    assert output_fps(r.model_copy(update={"fps": 24.0}), info) == (24.0, True)  # a filter makes it
