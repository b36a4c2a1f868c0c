from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from mediarunner.config.settings import DEFAULT_LADDER
from mediarunner.errors import JobCancelled, ValidationError
from mediarunner.media import (
    HlsVariant,
    describe_variant,
    encode_rendition,
    package_hls,
    plan_ladder,
    probe,
    render_master_playlist,
)
from mediarunner.media.encode import h264_level

SEG = 1.0  # short segments so a 3 s clip has several


def _ffprobe_json(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args], capture_output=True,
                         check=True, text=True).stdout  # fmt: skip
    return json.loads(out)


def _playlist_segments(playlist: Path) -> list[tuple[float, str]]:
    lines = playlist.read_text().splitlines()
    return [(float(lines[i].split(":")[1].rstrip(",")), lines[i + 1])
            for i in range(len(lines)) if lines[i].startswith("#EXTINF:")]  # fmt: skip


def _real_peak(playlist: Path) -> float:
    return max((playlist.parent / name).stat().st_size * 8 / d for d, name in _playlist_segments(playlist))


@pytest.fixture(scope="module")
def encoded(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real rendition (240p of the 640x360 clip), encoded once and packaged."""
    d = tmp_path_factory.mktemp("enc")
    info = probe(clips["av"])
    r = plan_ladder(info, DEFAULT_LADDER, ["240p"])[0]
    progress: list[float] = []
    mp4 = d / "240p.mp4"
    encode_rendition(clips["av"], mp4, r, info, preset="veryfast", segment_seconds=SEG,
                     on_progress=progress.append, cancel_poll=0.1, should_cancel=lambda: False)  # fmt: skip
    playlist = package_hls(mp4, d / "hls" / "240p", segment_seconds=SEG)
    return {"info": info, "r": r, "mp4": mp4, "playlist": playlist, "progress": progress}


def test_encoded_mp4_matches_plan(encoded: dict) -> None:
    out = probe(encoded["mp4"])
    assert (out.width, out.height) == (426, 240)
    assert (out.video_codec, out.audio_codec) == ("h264", "aac")
    assert abs(out.duration - encoded["info"].duration) <= 0.1
    assert out.audio_sample_rate == 48000 and out.audio_channels == 2
    v = _ffprobe_json("-select_streams", "v:0", "-show_streams", str(encoded["mp4"]))["streams"][0]
    assert (v["profile"], v["pix_fmt"]) == ("High", "yuv420p")
    assert v["level"] == 30
    data = encoded["mp4"].read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart


def test_keyframes_exactly_every_segment(encoded: dict) -> None:
    pkts = _ffprobe_json("-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                         str(encoded["mp4"]))["packets"]  # fmt: skip
    keys = [round(float(p["pts_time"]), 3) for p in pkts if "K" in p["flags"]]
    assert keys == [0.0, 1.0, 2.0]


def test_progress_monotonic_ending_at_one(encoded: dict) -> None:
    progress = encoded["progress"]
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert all(0.0 <= p <= 1.0 for p in progress)


def test_hls_package(encoded: dict) -> None:
    playlist: Path = encoded["playlist"]
    assert playlist.name == "index.m3u8"
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    segs = _playlist_segments(playlist)
    assert [name for _, name in segs] == ["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"]
    assert [round(d, 3) for d, _ in segs] == [1.0, 1.0, 1.0]
    assert all((playlist.parent / name).stat().st_size > 0 for _, name in segs)
    info = probe(playlist.parent / "seg_00001.ts")
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (426, 240, "h264", "aac")


def test_package_removes_stale_segments(encoded: dict, tmp_path: Path) -> None:
    out = tmp_path / "hls"
    out.mkdir()
    (out / "seg_00099.ts").write_bytes(b"old")
    package_hls(encoded["mp4"], out, segment_seconds=SEG)
    assert not (out / "seg_00099.ts").exists()
    assert len(list(out.glob("seg_*.ts"))) == 3


def test_describe_variant(encoded: dict) -> None:
    measured = describe_variant(encoded["mp4"], "240p/index.m3u8", media_playlist=encoded["playlist"])
    estimated = describe_variant(encoded["mp4"], "240p/index.m3u8", segment_seconds=SEG)
    real_peak = _real_peak(encoded["playlist"])
    for v in (measured, estimated):
        assert v.uri == "240p/index.m3u8"
        assert v.codecs.startswith("avc1.64") and v.codecs.endswith("001e,mp4a.40.2")  # High@3.0
        assert v.resolution == (426, 240) and v.frame_rate == 25.0
        assert v.bandwidth >= math.ceil(1.1 * v.average_bandwidth) - 1
    assert measured.bandwidth >= real_peak
    # The estimate from the MP4 alone is close to, and not below, the real TS segments.
    assert real_peak * 0.98 <= estimated.bandwidth <= real_peak * 1.2
    assert HlsVariant.from_dict(json.loads(json.dumps(measured.to_dict()))) == measured
    # Codecs, size and rate read from the MP4's boxes are what ffprobe says.
    assert describe_variant(encoded["mp4"], "240p/index.m3u8", media_playlist=encoded["playlist"],
                            use_ffprobe=True) == measured  # fmt: skip


def test_audio_only_rendition(clips: dict[str, Path], tmp_path: Path) -> None:
    info = probe(clips["audio"])
    (r,) = plan_ladder(info, DEFAULT_LADDER)
    m4a = tmp_path / "audio.m4a"
    encode_rendition(clips["audio"], m4a, r, info, segment_seconds=SEG)
    out = probe(m4a)
    assert not out.has_video and out.audio_codec == "aac" and out.audio_sample_rate == 48000
    assert abs(out.duration - info.duration) <= 0.1
    playlist = package_hls(m4a, tmp_path / "hls", segment_seconds=SEG)
    v = describe_variant(m4a, "audio/index.m3u8", media_playlist=playlist)
    assert (v.codecs, v.resolution, v.frame_rate) == ("mp4a.40.2", None, None)
    assert describe_variant(m4a, "audio/index.m3u8", media_playlist=playlist, use_ffprobe=True) == v
    assert v.bandwidth >= _real_peak(playlist)


def test_encode_cancel_removes_partial_output(clips: dict[str, Path], tmp_path: Path) -> None:
    info = probe(clips["av"])
    r = plan_ladder(info, DEFAULT_LADDER)[0]
    dst = tmp_path / "out.mp4"
    with pytest.raises(JobCancelled):
        encode_rendition(clips["av"], dst, r, info, preset="ultrafast", should_cancel=lambda: True,
                         cancel_poll=0.01)  # fmt: skip
    assert not dst.exists()


def test_encode_rejects_mismatched_plan(clips: dict[str, Path], tmp_path: Path) -> None:
    av = probe(clips["av"])
    video_only = probe(clips["video"])
    r = plan_ladder(av, DEFAULT_LADDER)[0]
    with pytest.raises(ValidationError, match="has none"):
        encode_rendition(clips["video"], tmp_path / "x.mp4", r, video_only)


def test_h264_level() -> None:
    assert h264_level(426, 240, 25, 400, 800) == "3.0"
    assert h264_level(1280, 720, 30, 2800, 5600) == "3.1"
    assert h264_level(1920, 1080, 30, 5000, 10000) == "4.0"
    assert h264_level(1920, 1080, 60, 5000, 10000) == "4.2"
    assert h264_level(3840, 2160, 30, 20000, 40000) == "5.1"
    with pytest.raises(ValidationError):
        h264_level(8192, 8192, 120, 10, 10)


def test_master_playlist() -> None:
    variants = [
        HlsVariant("240p/index.m3u8", 500_000, 420_000, "avc1.64001e,mp4a.40.2", (426, 240), 25.0),
        HlsVariant("audio/index.m3u8", 80_000, 70_000, "mp4a.40.2", None, None),
        HlsVariant("720p/index.m3u8", 3_000_000, 2_500_000, "avc1.64001f,mp4a.40.2", (1280, 720), 29.97),
    ]
    text = render_master_playlist(variants)
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    inf = [ln for ln in lines if ln.startswith("#EXT-X-STREAM-INF:")]
    uris = [lines[lines.index(ln) + 1] for ln in inf]
    assert uris == ["720p/index.m3u8", "240p/index.m3u8", "audio/index.m3u8"]
    assert inf[0] == ('#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,'
                      'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970')  # fmt: skip
    assert "RESOLUTION" not in inf[2] and 'CODECS="mp4a.40.2"' in inf[2]
    assert text.endswith("\n")
    with pytest.raises(ValueError):
        render_master_playlist([])


def test_codec_strings_without_avcc() -> None:
    from mediarunner.media.hls import _codec_string

    assert _codec_string({"codec_name": "h264", "profile": "High", "level": 40}) == "avc1.640028"
    assert (
        _codec_string({"codec_name": "h264", "profile": "Constrained Baseline", "level": 30}) == "avc1.42c01e"
    )
    assert _codec_string({"codec_name": "aac", "profile": "HE-AAC"}) == "mp4a.40.5"
    hexdump = "\n00000000: 0164 001f ffe1 0019 6764 001f acd9 4050  .d......gd....@P\n"
    assert (
        _codec_string({"codec_name": "h264", "profile": "High", "level": 31, "extradata": hexdump})
        == "avc1.64001f"
    )


def test_master_playlist_parses_with_m3u8() -> None:
    import m3u8

    variants = [
        HlsVariant("240p/index.m3u8", 500_000, 420_000, "avc1.64001e,mp4a.40.2", (426, 240), 25.0),
        HlsVariant("audio/index.m3u8", 80_000, 70_000, "mp4a.40.2", None, None),
    ]
    master = m3u8.loads(render_master_playlist(variants))
    assert master.is_variant and master.version == 3
    first, second = master.playlists
    assert (first.uri, second.uri) == ("240p/index.m3u8", "audio/index.m3u8")
    info = first.stream_info
    assert (info.bandwidth, info.average_bandwidth, info.codecs) == (500_000, 420_000, "avc1.64001e,mp4a.40.2")
    assert info.resolution == (426, 240) and info.frame_rate == 25.0
    assert second.stream_info.resolution is None and second.stream_info.codecs == "mp4a.40.2"


def test_encode_renditions_makes_in_one_run_what_encode_rendition_makes_per_rung(clips, tmp_path: Path) -> None:
    """One decode, ``split`` + ``scale`` per rung: each MP4 is the one a run of its own makes
    (same stream parameters, frames, keyframes and, with one thread, the same bytes of video)."""
    from mediarunner.media import encode_renditions

    src = clips["av"]
    info = probe(src)
    plan = plan_ladder(info, [r for r in DEFAULT_LADDER if r.height <= 360])
    assert len(plan) >= 2
    together = [(r, tmp_path / "one" / f"{r.name}.mp4") for r in plan]
    encode_renditions(src, together, info, speed=lambda codec: "ultrafast", threads=1, segment_seconds=SEG)
    for r, mp4 in together:
        alone = tmp_path / "alone" / f"{r.name}.mp4"
        encode_rendition(src, alone, r, info, preset="ultrafast", threads=1, segment_seconds=SEG)
        entries = "stream=codec_name,width,height,nb_frames,bit_rate,sample_rate,channels:format=duration"
        assert _ffprobe_json("-show_entries", entries, str(mp4)) == _ffprobe_json("-show_entries", entries, str(alone))
        keys = ["-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time"]
        assert _ffprobe_json(*keys, str(mp4)) == _ffprobe_json(*keys, str(alone))


def test_encode_renditions_gives_each_rung_its_own_fps(clips, tmp_path: Path) -> None:
    """A rung's own ``fps`` (PeerTube's payload) holds in the one-decode multi-rung run as in a run
    of its own: each output has that rate and that many frames, keyframes on its grid."""
    from mediarunner.media import encode_renditions

    src = clips["av"]  # 25 fps, 3 s
    info = probe(src)
    base = plan_ladder(info, [r for r in DEFAULT_LADDER if r.height <= 360])
    assert len(base) >= 2
    rates = [15.0, None, 10.0][: len(base)]
    plan = [r.model_copy(update={"fps": f}) for r, f in zip(base, rates, strict=False)]
    together = [(r, tmp_path / "one" / f"{r.name}.mp4") for r in plan]
    encode_renditions(src, together, info, speed=lambda codec: "ultrafast", threads=1, segment_seconds=SEG)
    entries = "stream=avg_frame_rate,nb_frames"
    for r, mp4 in together:
        got = _ffprobe_json("-select_streams", "v:0", "-show_entries", entries, str(mp4))["streams"][0]
        want = r.fps or info.fps
        num, den = (int(x) for x in got["avg_frame_rate"].split("/"))
        assert abs(num / den - want) < 0.01, (r.name, got)
        assert int(got["nb_frames"]) == round(want * 3), (r.name, got)
        alone = tmp_path / "alone" / f"{r.name}.mp4"
        encode_rendition(src, alone, r, info, preset="ultrafast", threads=1, segment_seconds=SEG)
        assert _ffprobe_json("-show_entries", entries, str(mp4)) == _ffprobe_json("-show_entries", entries, str(alone))
        keys = ["-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time"]
        assert _ffprobe_json(*keys, str(mp4)) == _ffprobe_json(*keys, str(alone))


def test_encode_renditions_removes_every_partial_output_on_failure(clips, tmp_path: Path) -> None:
    from mediarunner.media import encode_renditions

    src = clips["av"]
    info = probe(src)
    plan = plan_ladder(info, [r for r in DEFAULT_LADDER if r.height <= 360])
    outs = [(r, tmp_path / f"{r.name}.mp4") for r in plan]
    with pytest.raises(JobCancelled):
        encode_renditions(src, outs, info, threads=1, segment_seconds=SEG, should_cancel=lambda: True,
                          cancel_poll=0.01)
    assert not any(p.exists() for _, p in outs)
    with pytest.raises(ValidationError):
        encode_renditions(src, [], info)
