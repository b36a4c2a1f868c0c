"""Audio + cover image: the still is probed (only image demuxers), looped for the audio's length."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediarunner.config.settings import DEFAULT_LADDER
from mediarunner.errors import InvalidInputError
from mediarunner.media import encode_rendition, plan_ladder, probe
from mediarunner.media.cover import probe_image, with_cover
from tests.media.conftest import ffmpeg_gen


@pytest.fixture(scope="module")
def cover(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cover") / "cover.png"
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=480x480", "-frames:v", "1", str(path))
    return path


def test_probe_image_accepts_stills_only(cover: Path, clips: dict[str, Path], tmp_path: Path) -> None:
    assert probe_image(cover) == (480, 480)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    for bad in (clips["av"], clips["audio"], text, tmp_path / "missing.png"):
        with pytest.raises(InvalidInputError, match="cover image"):
            probe_image(bad)


def test_audio_and_cover_make_a_video(cover: Path, clips: dict[str, Path], tmp_path: Path) -> None:
    info = with_cover(probe(clips["audio"]), probe_image(cover))
    assert (info.has_video, info.width, info.height, info.fps) == (True, 480, 480, 25.0)
    (r,) = plan_ladder(info, DEFAULT_LADDER, ["240p"])
    mp4 = tmp_path / "240p.mp4"
    encode_rendition(clips["audio"], mp4, r, info, preset="ultrafast", segment_seconds=1.0, cover=cover)
    out = probe(mp4)
    assert (out.video_codec, out.audio_codec, out.width, out.height) == ("h264", "aac", 240, 240)
    assert abs(out.duration - 2.0) <= 0.1
    with pytest.raises(InvalidInputError, match="audio-only"):
        with_cover(probe(clips["av"]), (480, 480))
