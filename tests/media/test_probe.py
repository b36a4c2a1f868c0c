from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import InvalidInputError, PermanentError, UnsupportedMediaError
from mediarunner.media.probe import MediaInfo, media_info_from_ffprobe, probe
from tests.media.conftest import ffmpeg_gen


def test_probe_audio_video(clips: dict[str, Path]) -> None:
    info = probe(clips["av"])
    assert isinstance(info, MediaInfo)
    assert (info.width, info.height) == (640, 360)
    assert info.has_video and info.has_audio
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert info.audio_channels == 2 and info.audio_sample_rate == 48000
    assert info.bit_rate and info.bit_rate > 0
    assert "mp4" in info.format_name


def test_probe_video_only_and_audio_only(clips: dict[str, Path]) -> None:
    v = probe(str(clips["video"]))  # str paths work too
    assert (v.width, v.height, v.has_audio, v.audio_codec) == (320, 240, False, None)
    a = probe(clips["audio"])
    assert (a.has_video, a.has_audio, a.width, a.height, a.fps) == (False, True, None, None, None)
    assert a.duration == pytest.approx(2.0, abs=0.1)


def test_cover_art_is_not_video(tmp_path: Path, clips: dict[str, Path]) -> None:
    cover = tmp_path / "cover.png"
    ffmpeg_gen("-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1", str(cover))
    mp3 = tmp_path / "song.mp3"
    ffmpeg_gen("-i", str(clips["audio"]), "-i", str(cover), "-map", "0:a", "-map", "1:v",
               "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic", str(mp3))  # fmt: skip
    info = probe(mp3)
    assert not info.has_video and info.width is None and info.audio_codec == "mp3"


def test_rotation_swaps_display_size(tmp_path: Path, clips: dict[str, Path]) -> None:
    rotated = tmp_path / "rotated.mp4"
    ffmpeg_gen("-i", str(clips["video"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    info = probe(rotated)
    assert (info.width, info.height) == (240, 320)


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "directory", "colon name"])
def test_probe_rejects_bad_inputs(case: str, tmp_path: Path, clips: dict[str, Path]) -> None:
    path = tmp_path / "input.mp4"
    if case == "empty":
        path.touch()
    elif case == "text":
        path.write_text("this is not a video\n" * 50)
    elif case == "truncated":  # moov atom at the end (no faststart): the cut loses it
        data = clips["av"].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "directory":
        path.mkdir()
    elif case == "colon name":  # must not be read as an ffmpeg protocol ("concat:...")
        path = tmp_path / "concat:whatever.mp4"
        path.write_text("garbage")
    with pytest.raises(InvalidInputError) as ei:
        probe(path)
    msg = str(ei.value)
    assert str(path) in msg.splitlines()[0]  # the first line names the file
    assert ei.value.permanent


def test_probe_subtitle_only_is_unsupported(tmp_path: Path) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(UnsupportedMediaError, match="no audio or video stream"):
        probe(srt)


# --- parsing edge cases that are impractical to produce with a real file

_BASE: dict[str, Any] = {
    "format": {"format_name": "mov,mp4", "duration": "3.000000", "bit_rate": "800000"},
    "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
         "sample_aspect_ratio": "1:1", "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001",
         "duration": "3.0", "disposition": {"attached_pic": 0}},
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 6, "sample_rate": "44100",
         "duration": "2.9", "disposition": {}},
    ],
}  # fmt: skip


def _data(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(_BASE)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        target = d["format"] if section == "format" else d["streams"][int(section[1:])]
        if value is None:
            target.pop(field, None)
        else:
            target[field] = value
    return d


def test_parse_good() -> None:
    info = media_info_from_ffprobe(_data(), "x.mp4", frozenset({"h264", "aac"}))
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.audio_channels == 6 and info.audio_sample_rate == 44100 and info.bit_rate == 800000


@pytest.mark.parametrize(
    "changes, exc, match",
    [
        ({"s0__width": 0, "s0__height": 0}, UnsupportedMediaError, "no picture size"),
        ({"s0__codec_name": None, "s0__codec_tag_string": "XVID"}, UnsupportedMediaError, "unknown codec"),
        ({"s0__codec_name": "prores"}, UnsupportedMediaError, "cannot be decoded"),
        ({"s1__codec_name": "weird"}, UnsupportedMediaError, "audio codec 'weird'"),
        ({"format__duration": "N/A", "s0__duration": None, "s1__duration": None}, InvalidInputError,
         "duration is unknown"),
    ],
)  # fmt: skip
def test_parse_rejects(changes: dict[str, Any], exc: type[PermanentError], match: str) -> None:
    with pytest.raises(exc, match=match):
        media_info_from_ffprobe(_data(**changes), "x.mp4", frozenset({"h264", "aac"}))


def test_parse_duration_falls_back_to_longest_stream() -> None:
    info = media_info_from_ffprobe(_data(format__duration=None), "x.mp4")
    assert info.duration == pytest.approx(3.0)


def test_parse_anamorphic_and_rotation() -> None:
    d = _data(s0__width=720, s0__height=576, s0__sample_aspect_ratio="16:15")
    info = media_info_from_ffprobe(d, "x.mp4")
    assert (info.width, info.height) == (768, 576)
    d = _data(s0__side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}])
    assert (media_info_from_ffprobe(d, "x.mp4").width, media_info_from_ffprobe(d, "x.mp4").height) == (
        360,
        640,
    )


def test_parse_attached_pic_only_video() -> None:
    d = _data(s0__disposition={"attached_pic": 1})
    info = media_info_from_ffprobe(d, "x.mp3")
    assert not info.has_video and info.has_audio and info.width is None
    d["streams"].pop(1)
    with pytest.raises(UnsupportedMediaError):
        media_info_from_ffprobe(d, "x.mp3")


def test_the_probe_keeps_what_passthrough_decides_on(tmp_path: Path, clips: dict[str, Path]) -> None:
    """Deciding a passthrough rung reads the input's probe, not a second ffprobe of the source."""
    from mediarunner.media.ladder import PlannedRendition
    from mediarunner.media.passthrough import check_passthrough

    info = probe(clips["av"])
    assert info.video_stream is not None
    assert info.video_stream["codec_name"] == "h264" and info.video_stream["pix_fmt"] == "yuv420p"
    assert (info.video_stream["width"], info.video_stream["height"]) == (640, 360)
    assert "tags" not in info.video_stream and "side_data_list" not in info.video_stream
    rung = PlannedRendition(name="360p", width=640, height=360, video_bitrate_k=1, audio_bitrate_k=64,
                            has_video=True, has_audio=True)
    # an ffprobe that cannot start: the verdict must come from the probe alone
    verdict = check_passthrough(clips["av"], info, rung, segment_seconds=4, ffprobe=str(tmp_path / "no-ffprobe"))
    assert not verdict.fits and "bitrate" in verdict.reason
    rotated = tmp_path / "rotated.mp4"
    ffmpeg_gen("-i", str(clips["av"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    turned = probe(rotated)
    assert turned.video_stream is not None and (turned.video_stream.get("side_data_list")
                                                 or turned.video_stream.get("tags"))
