"""Codecs per ladder: H.264, HEVC, AV1 and VP9 renditions encoded, packaged (TS or fMP4/CMAF) and
described with real ffmpeg; playlists checked with the ``m3u8`` parser, files with ffprobe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import m3u8
import pytest

from mediarunner.config.settings import DEFAULT_LADDER, Settings
from mediarunner.errors import ValidationError
from mediarunner.media import (
    describe_variant,
    encode_rendition,
    package_hls,
    plan_ladder,
    probe,
    render_master_playlist,
)
from mediarunner.media.encoders import CODECS, codec_speed, codec_video_options
from mediarunner.media.hls import _codec_string
from mediarunner.models.payloads import TranscodePayload
from tests.media.conftest import ffmpeg_gen

SEG = 1.0
FAST = {"h264": "ultrafast", "hevc": "ultrafast", "av1": "12", "vp9": "8"}
PREFIX = {"h264": "avc1.", "hevc": "hvc1.", "av1": "av01.", "vp9": "vp09."}


def _probe(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args], capture_output=True, check=True,
                         text=True).stdout  # fmt: skip
    return json.loads(out)


def _keyframes(path: Path) -> list[float]:
    pkts = _probe("-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", str(path))["packets"]
    return [round(float(p["pts_time"]), 3) for p in pkts if "K" in p["flags"]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("codec_clip") / "clip_320x180.mp4"
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
               str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def renditions(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The 180p rendition of the clip in every codec: MP4, HLS playlist, variant."""
    d = tmp_path_factory.mktemp("codecs")
    info = probe(clip)
    plan = plan_ladder(info, DEFAULT_LADDER, ["240p"], codecs=tuple(CODECS))
    out: dict[str, dict] = {}
    for r in plan:
        mp4 = d / f"{r.name}.mp4"
        encode_rendition(clip, mp4, r, info, preset=FAST[r.codec], segment_seconds=SEG)
        playlist = package_hls(mp4, d / "hls" / r.name, segment_seconds=SEG, codec=r.codec)
        variant = describe_variant(mp4, f"hls/{r.name}/index.m3u8", segment_seconds=SEG, media_playlist=playlist)
        out[r.codec] = {"r": r, "mp4": mp4, "playlist": playlist, "variant": variant}
    return out


def test_plan_names_one_ladder_per_codec(clip: Path) -> None:
    plan = plan_ladder(probe(clip), DEFAULT_LADDER, ["360p", "240p"], codecs=("h264", "av1"))
    assert [(r.name, r.codec) for r in plan] == [("180p", "h264"), ("180p_av1", "av1")]
    big = plan_ladder(probe(clip).__class__(**{**probe(clip).__dict__, "width": 1280, "height": 720}),
                      DEFAULT_LADDER, ["360p", "240p"], codecs=("hevc", "vp9"))  # fmt: skip
    assert [r.name for r in big] == ["360p_hevc", "240p_hevc", "360p_vp9", "240p_vp9"]


@pytest.mark.parametrize("codec", list(CODECS))
def test_rendition_in_codec(codec: str, renditions: dict[str, dict]) -> None:
    got = renditions[codec]
    (v,) = [s for s in _probe("-show_streams", str(got["mp4"]))["streams"] if s["codec_type"] == "video"]
    assert v["codec_name"] == codec and (v["width"], v["height"]) == (320, 180)
    assert v["codec_tag_string"] == CODECS[codec].tag  # hvc1, not hev1: Safari plays only hvc1
    media = m3u8.load(str(got["playlist"]))
    assert media.is_endlist and media.playlist_type == "vod" and len(media.segments) == 2
    assert abs(sum(s.duration for s in media.segments) - 2.0) <= 0.1
    if CODECS[codec].segment_type == "fmp4":  # CMAF: an init segment and .m4s media segments
        assert media.segment_map and media.segment_map[0].uri == "init.mp4" and media.version >= 6
        assert all(s.uri.endswith(".m4s") for s in media.segments)
        init = (got["playlist"].parent / "init.mp4").read_bytes()
        joined = got["playlist"].parent / "joined.mp4"
        joined.write_bytes(init + (got["playlist"].parent / media.segments[1].uri).read_bytes())
        (seg_v,) = [s for s in _probe("-show_streams", str(joined))["streams"] if s["codec_type"] == "video"]
        assert seg_v["codec_name"] == codec  # a player can decode a segment with the init segment
    else:
        assert all(s.uri.endswith(".ts") for s in media.segments) and not media.segment_map
    variant = got["variant"]
    assert variant.codecs.startswith(PREFIX[codec]) and variant.codecs.endswith(",mp4a.40.2")
    assert variant.resolution == (320, 180) and variant.frame_rate == 25.0
    peak = max((got["playlist"].parent / s.uri).stat().st_size * 8 / s.duration for s in media.segments)
    assert variant.bandwidth >= peak and variant.average_bandwidth > 0
    # read from the MP4's boxes (hvcC, av1C, vpcC): exactly what ffprobe describes
    assert describe_variant(got["mp4"], variant.uri, media_playlist=got["playlist"], use_ffprobe=True) == variant


def test_keyframes_aligned_across_codecs(renditions: dict[str, dict]) -> None:
    """Every codec puts its keyframes on the same segment grid, so a player can switch codecs."""
    grids = {codec: _keyframes(got["mp4"]) for codec, got in renditions.items()}
    assert all(g == [0.0, 1.0] for g in grids.values()), grids


def test_one_master_lists_every_codec(renditions: dict[str, dict]) -> None:
    master = m3u8.loads(render_master_playlist([got["variant"] for got in renditions.values()]))
    assert master.is_variant and master.version == 7 and master.is_independent_segments
    codecs = sorted(p.stream_info.codecs.split(".")[0] for p in master.playlists)
    assert codecs == ["av01", "avc1", "hvc1", "vp09"]
    for p in master.playlists:
        assert p.stream_info.resolution == (320, 180) and p.stream_info.frame_rate == 25.0
        assert p.stream_info.bandwidth >= p.stream_info.average_bandwidth > 0


def test_codec_strings_from_records() -> None:
    hvcc = "\n00000000: 0101 6000 0000 9000 0000 0000 3cf0 00fc  ..`.........<...\n"
    assert _codec_string({"codec_name": "hevc", "extradata": hvcc}) == "hvc1.1.6.L60.90"
    av1c = "\n00000000: 8108 0c00 0a0b 0000 0004 3cfe cc02 f802  ..........<.....\n"
    assert _codec_string({"codec_name": "av1", "extradata": av1c}) == "av01.0.08M.08"
    vp9 = {"codec_name": "vp9", "profile": "Profile 0", "width": 1920, "height": 1080, "avg_frame_rate": "30/1"}
    assert _codec_string(vp9) == "vp09.00.40.08"
    assert _codec_string({**vp9, "width": 320, "height": 180, "avg_frame_rate": "25/1"}) == "vp09.00.11.08"


def test_codec_options_from_one_policy() -> None:
    av1 = codec_video_options("av1", 640, 360, 25.0, 800, speed="12", segment_seconds=2.0)
    assert (av1["c:v"], av1["g"], av1["maxrate"]) == ("libsvtav1", "50", "800k")  # one segment per GOP
    hevc = codec_video_options("hevc", 640, 360, 25.0, 800, speed="fast", segment_seconds=2.0)
    assert hevc["tag:v"] == "hvc1" and "forced-idr=1" in str(hevc["x265-params"])
    assert "open-gop=0" in str(hevc["x265-params"]) and hevc["force_key_frames"] == "expr:gte(t,n_forced*2)"
    vp9 = codec_video_options("vp9", 640, 360, 25.0, 800, speed="4", segment_seconds=2.0)
    assert (vp9["c:v"], vp9["b:v"], vp9["cpu-used"]) == ("libvpx-vp9", "800k", "4")
    settings = Settings(x265_preset="medium", svtav1_preset=8, vp9_cpu_used=2)
    assert [codec_speed(settings, c) for c in CODECS] == ["veryfast", "medium", "8", "2"]
    with pytest.raises(ValidationError, match="unknown video codec"):
        codec_video_options("mpeg2", 640, 360, 25.0, 800, speed="x", segment_seconds=2.0)


def test_payload_refuses_unknown_codec() -> None:
    base = {"input": "/in.mp4", "output": "/out", "ladder": [DEFAULT_LADDER[0].model_dump()]}
    assert TranscodePayload.model_validate({**base, "video_codecs": ["av1", "av1", "h264"]}).video_codecs == \
        ("av1", "h264")
    for bad in (["h266"], []):
        with pytest.raises(ValueError):
            TranscodePayload.model_validate({**base, "video_codecs": bad})


def test_quality_numbers_against_the_source(clip: Path, renditions: dict[str, dict]) -> None:
    from mediarunner.media.quality import measure_quality

    info = probe(clip)
    numbers = {codec: measure_quality(got["mp4"], clip, info, every=5) for codec, got in renditions.items()}
    for q in numbers.values():
        assert 25.0 < q["psnr"] < 100.0 and 0.8 < q["ssim"] <= 1.0 and q["every"] == 5
    same = measure_quality(clip, clip, info, every=5)
    assert same["psnr"] == 100.0 and same["ssim"] == 1.0  # the source against itself
