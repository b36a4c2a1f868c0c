"""Describe HLS variants (measured bandwidth, RFC 6381 codecs) and render the master playlist."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8

from mediarunner.errors import ProcessingError, UnsupportedMediaError
from mediarunner.media.mp4box import Track, read_tracks

__all__ = ["HlsVariant", "describe_variant", "render_master_playlist"]

_TS = 188  # MPEG-TS packet size; 184 bytes of payload when there is no adaptation field
_PES_HEADER = 19  # PES header with PTS and DTS
_ADTS_HEADER = 7  # raw AAC in MP4 gains an ADTS header per frame in TS
_AUD_NAL = 6  # ffmpeg's mpegts muxer inserts an access unit delimiter per H.264 frame
_AUDIO_PES_PAYLOAD = 2930  # ffmpeg's default -pes_payload_size: audio frames are grouped
_SI_PERIOD = 0.1  # ffmpeg repeats PAT+PMT every 0.1 s (default -pat_period)


@dataclass(frozen=True)
class HlsVariant:
    """One ``#EXT-X-STREAM-INF`` entry. Stored in job results as JSON (``to_dict``)."""

    uri: str  # relative to the master playlist, e.g. "720p/index.m3u8"
    bandwidth: int  # bit/s: peak segment bitrate (never below 1.1 x the average)
    average_bandwidth: int  # bit/s over the whole stream
    codecs: str  # RFC 6381, e.g. "avc1.64001f,mp4a.40.2"
    resolution: tuple[int, int] | None
    frame_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "bandwidth": self.bandwidth,
            "average_bandwidth": self.average_bandwidth,
            "codecs": self.codecs,
            "resolution": list(self.resolution) if self.resolution else None,
            "frame_rate": self.frame_rate,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HlsVariant:
        res = d.get("resolution")
        fr = d.get("frame_rate")
        return cls(
            uri=str(d["uri"]),
            bandwidth=int(d["bandwidth"]),
            average_bandwidth=int(d["average_bandwidth"]),
            codecs=str(d["codecs"]),
            resolution=(int(res[0]), int(res[1])) if res else None,
            frame_rate=float(fr) if fr is not None else None,
        )


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except ValueError:
        return None


def _file_url(path: Path) -> str:
    return "file:" + str(path.resolve())  # never read as a protocol or an option


def _ffprobe(args: Sequence[str], ffprobe: str, timeout: float = 600) -> str:
    try:
        res = subprocess.run([ffprobe, "-v", "error", *args], capture_output=True, text=True,
                             timeout=timeout, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"ffprobe failed: {exc}") from exc
    if res.returncode != 0:
        raise ProcessingError(f"ffprobe failed on our own output: {res.stderr.strip()[-2000:]}")
    return res.stdout


_H264_PROFILES = {  # ffprobe profile name -> (profile_idc, constraint flags byte)
    "Constrained Baseline": (66, 0xC0),
    "Baseline": (66, 0x00),
    "Main": (77, 0x00),
    "Extended": (88, 0x00),
    "High": (100, 0x00),
    "High 10": (110, 0x00),
    "High 4:2:2": (122, 0x00),
    "High 4:4:4 Predictive": (244, 0x00),
}


def _avc_codec(stream: dict[str, Any]) -> str:
    """``avc1.PPCCLL``, preferably straight from the avcC box (exact constraint flags)."""
    rec = _extradata(stream)
    if len(rec) >= 4 and rec[0] == 1:
        return _avc_from_record(rec)
    profile = _H264_PROFILES.get(str(stream.get("profile")))
    level = stream.get("level")
    if profile is None or not isinstance(level, int) or level <= 0:
        raise UnsupportedMediaError(
            f"cannot derive an RFC 6381 codec for H.264 profile {stream.get('profile')!r}"
        )
    return f"avc1.{profile[0]:02x}{profile[1]:02x}{level:02x}"


def _avc_from_record(rec: bytes) -> str:
    return f"avc1.{rec[1:4].hex()}"  # AVCProfileIndication, profile_compatibility, AVCLevelIndication


def _extradata(stream: dict[str, Any]) -> bytes:
    """The codec configuration record (avcC, hvcC, av1C) from ffprobe's ``-show_data`` hexdump."""
    hexdump = str(stream.get("extradata") or "")
    data = "".join("".join(m.group(1).split()) for m in re.finditer(r"^[0-9a-f]{8}: ((?:[0-9a-f]{2,4} ?)+)",
                                                                   hexdump, re.M))  # fmt: skip
    return bytes.fromhex(data) if len(data) % 2 == 0 else b""


def _hevc_codec(rec: bytes) -> str:
    """``hvc1.<space><profile>.<compat, bit-reversed hex>.<tier><level>.<constraint bytes>`` (ISO
    14496-15 annex E) from the hvcC record."""
    if len(rec) < 13 or rec[0] != 1:
        raise UnsupportedMediaError("cannot derive an RFC 6381 codec for HEVC: no hvcC record")
    space = "" if rec[1] >> 6 == 0 else "ABC"[(rec[1] >> 6) - 1]
    compat = int(f"{int.from_bytes(rec[2:6], 'big'):032b}"[::-1], 2)
    constraints = list(rec[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    tier = "H" if rec[1] & 0x20 else "L"
    parts = [f"hvc1.{space}{rec[1] & 0x1F}", f"{compat:X}", f"{tier}{rec[12]}", *(f"{b:X}" for b in constraints)]
    return ".".join(parts)


def _av1_codec(rec: bytes) -> str:
    """``av01.<profile>.<level><tier>.<bit depth>`` (AV1 codec ISO media file format binding) from av1C."""
    if len(rec) < 4 or rec[0] != 0x81:
        raise UnsupportedMediaError("cannot derive an RFC 6381 codec for AV1: no av1C record")
    profile, level = rec[1] >> 5, rec[1] & 0x1F
    tier = "H" if rec[2] & 0x80 else "M"
    depth = 12 if rec[2] & 0x20 and profile == 2 else 10 if rec[2] & 0x40 else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


# VP9 levels (VP9 levels and decoder testing): (level x 10, max luma picture size, max luma samples/s).
_VP9_LEVELS = ((10, 36_864, 829_440), (11, 73_728, 2_764_800), (20, 122_880, 4_608_000),
               (21, 245_760, 9_216_000), (30, 552_960, 20_736_000), (31, 983_040, 36_864_000),
               (40, 2_228_224, 83_558_400), (41, 2_228_224, 160_432_128), (50, 8_912_896, 311_951_360),
               (51, 8_912_896, 588_251_136), (52, 8_912_896, 1_176_502_272), (60, 35_651_584, 1_176_502_272),
               (61, 35_651_584, 2_353_004_544), (62, 35_651_584, 4_706_009_088))  # fmt: skip


def _vp9_codec(stream: dict[str, Any]) -> str:
    """``vp09.<profile>.<level>.<bit depth>`` (VP codec ISO media file format binding): ffprobe does not
    show the vpcC record, so the level is derived from the picture size and rate."""
    profile = {"Profile 0": 0, "Profile 1": 1, "Profile 2": 2, "Profile 3": 3}.get(str(stream.get("profile")), 0)
    depth = int(stream.get("bits_per_raw_sample") or 0) or (10 if "10" in str(stream.get("pix_fmt")) else 8)
    return _vp9_string(profile, int(stream.get("width") or 0), int(stream.get("height") or 0),
                       _frame_rate(stream), depth)


def _vp9_string(profile: int, width: int, height: int, fps: float | None, depth: int) -> str:
    pixels = width * height
    rate = pixels * (fps or 30.0)
    level = next((lv for lv, size, per_s in _VP9_LEVELS if pixels <= size and rate <= per_s), 62)
    return f"vp09.{profile:02d}.{level:02d}.{depth:02d}"


def _codec_string(stream: dict[str, Any]) -> str:
    name = stream.get("codec_name")
    if name == "h264":
        return _avc_codec(stream)
    if name == "hevc":
        return _hevc_codec(_extradata(stream))
    if name == "av1":
        return _av1_codec(_extradata(stream))
    if name == "vp9":
        return _vp9_codec(stream)
    if name == "aac":
        aot = {"HE-AAC": 5, "HE-AACv2": 29}.get(str(stream.get("profile")), 2)
        return f"mp4a.40.{aot}"
    if name == "mp3":
        return "mp4a.40.34"
    raise UnsupportedMediaError(f"no HLS codec string for {name!r}")


@dataclass
class _Segment:
    start: float
    bytes: int = 2 * _TS  # PAT + PMT open every segment
    audio_pending: int = 0  # audio bytes not yet closed into a PES

    def close_audio(self) -> None:
        if self.audio_pending:
            self.bytes += math.ceil((self.audio_pending + _PES_HEADER) / (_TS - 4)) * _TS
            self.audio_pending = 0


# (stream index, pts, end time = pts + duration, size, is keyframe), in dts order.
_Packet = tuple[int, float, float, int, bool]


def _estimate_segments(
    packets: Sequence[_Packet], video_index: int | None, segment_seconds: float
) -> list[tuple[float, int]]:
    """Replay the HLS muxer's cut rule on the MP4's packets; estimate each segment's TS size.

    The muxer cuts at the first keyframe of the reference stream (video if any, else audio)
    whose pts is at least n x S after the first one. Returns (duration, bytes) per segment.
    """
    segments: list[_Segment] = []
    origin: float | None = None
    end = 0.0
    for stream, pts, pts_end, size, key in packets:
        is_ref = video_index is None or stream == video_index
        if is_ref and origin is None:
            origin = pts
        if not segments:
            segments.append(_Segment(start=pts))
        elif (
            is_ref and key and origin is not None
            and pts - origin >= segment_seconds * len(segments) - 1e-6
        ):  # fmt: skip
            segments[-1].close_audio()
            segments.append(_Segment(start=pts))
        seg = segments[-1]
        if len(segments) == 1:
            seg.start = min(seg.start, pts)
        end = max(end, pts_end)
        if stream == video_index:  # one PES per frame, with an AUD and a PCR adaptation field
            seg.bytes += math.ceil((size + _AUD_NAL + _PES_HEADER + 8) / (_TS - 4)) * _TS
        else:
            if seg.audio_pending + size + _ADTS_HEADER > _AUDIO_PES_PAYLOAD:
                seg.close_audio()
            seg.audio_pending += size + _ADTS_HEADER
    out: list[tuple[float, int]] = []
    for i, seg in enumerate(segments):
        seg.close_audio()
        seg_end = segments[i + 1].start if i + 1 < len(segments) else end
        dur = max(seg_end - seg.start, 1e-3)
        seg.bytes += 2 * _TS * int(dur / _SI_PERIOD)  # PAT + PMT repeated
        out.append((dur, seg.bytes))
    return out


def _measure_playlist(playlist: Path) -> list[tuple[float, int]]:
    """(duration, bytes) of each segment listed in a media playlist (parsed with ``m3u8``)."""
    media = m3u8.loads(playlist.read_text(encoding="utf-8"))
    return [(float(seg.duration), (playlist.parent / seg.uri).stat().st_size) for seg in media.segments]


def _estimate_from_packets(mp4: Path, video: dict[str, Any] | None, ffprobe: str,
                           segment_seconds: float) -> list[tuple[float, int]]:  # fmt: skip
    """Segments estimated from the MP4's packets (see :func:`_estimate_segments`)."""
    raw = _ffprobe(["-show_entries", "packet=stream_index,dts_time,pts_time,duration_time,size,flags",
                    "-of", "compact=p=0", _file_url(mp4)], ffprobe)  # fmt: skip
    timed: list[tuple[float, _Packet]] = []
    for row in raw.splitlines():
        f = dict(kv.split("=", 1) for kv in row.split("|") if "=" in kv)
        pts = _float(f.get("pts_time"))
        size = f.get("size", "")
        if pts is None or not size.isdigit():
            continue
        dts = _float(f.get("dts_time"))
        end = pts + (_float(f.get("duration_time")) or 0.0)
        packet = (int(f.get("stream_index", -1)), pts, end, int(size), "K" in f.get("flags", ""))
        timed.append((pts if dts is None else dts, packet))
    timed.sort(key=lambda tp: tp[0])  # the muxer receives packets interleaved by dts
    video_index = int(video["index"]) if video else None
    return _estimate_segments([p for _, p in timed], video_index, segment_seconds)


def _frame_rate(video: dict[str, Any]) -> float | None:
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            r = Fraction(str(video.get(key)))
        except (ValueError, ZeroDivisionError):
            continue
        if r > 0:
            return round(float(r), 3)
    return None


def _track_codec(t: Track) -> str | None:
    """The RFC 6381 string of a track read from the MP4's boxes; None: ask ffprobe."""
    rec = t.config
    if t.entry in ("avc1", "avc3") and len(rec) >= 4 and rec[0] == 1:
        return _avc_from_record(rec)
    if t.entry in ("hvc1", "hev1") and rec:
        return _hevc_codec(rec)
    if t.entry == "av01" and rec:
        return _av1_codec(rec)
    if t.entry == "vp09" and len(rec) >= 7:  # vpcC: version/flags, profile, level, bitDepth << 4 | ...
        fps = round(float(t.frame_rate), 3) if t.frame_rate else None
        return _vp9_string(rec[4], t.width, t.height, fps, rec[6] >> 4)
    if t.entry == "mp4a" and t.object_type in (0x69, 0x6B):
        return "mp4a.40.34"
    if t.entry == "mp4a" and t.object_type == 0x40 and rec:
        aot = rec[0] >> 3
        if aot == 31 and len(rec) >= 2:
            aot = 32 + ((rec[0] & 0x07) << 3 | rec[1] >> 5)
        return f"mp4a.40.{aot if aot in (5, 29) else 2}"  # as ffprobe's profile names map (see _codec_string)
    return None


def _facts_from_boxes(mp4: Path) -> tuple[str, tuple[int, int] | None, float | None] | None:
    """(codecs, resolution, frame rate) read from the MP4's ``moov`` (no ffprobe); None when it
    holds anything :mod:`.mp4box` does not know."""
    tracks = read_tracks(mp4)
    if tracks is None:
        return None
    video = next((t for t in tracks if t.kind == "video"), None)
    audio = next((t for t in tracks if t.kind == "audio"), None)
    codecs = [_track_codec(t) for t in (video, audio) if t is not None]
    if not codecs or None in codecs or (video is not None and not (video.width and video.height)):
        return None
    if video is None:
        return ",".join(c for c in codecs if c), None, None
    fps = round(float(video.frame_rate), 3) if video.frame_rate else None
    return ",".join(c for c in codecs if c), (video.width, video.height), fps


def _facts_from_ffprobe(mp4: Path, ffprobe: str) -> tuple[str, tuple[int, int] | None, float | None, Any]:
    """(codecs, resolution, frame rate, the video stream) as ffprobe describes the MP4."""
    streams = json.loads(_ffprobe(["-show_streams", "-show_data", "-of", "json", _file_url(mp4)], ffprobe))
    streams = streams.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise UnsupportedMediaError(f"{mp4}: nothing to describe (no audio or video)")
    codecs = ",".join(_codec_string(s) for s in (video, audio) if s is not None)
    resolution = (int(video["width"]), int(video["height"])) if video is not None else None
    return codecs, resolution, _frame_rate(video) if video is not None else None, video


def describe_variant(
    mp4: Path,
    playlist_uri: str,
    *,
    ffprobe: str = "ffprobe",
    segment_seconds: float = 4.0,
    media_playlist: Path | None = None,
    use_ffprobe: bool = False,
) -> HlsVariant:
    """Measure ``mp4`` (the rendition that was packaged) and describe it as a variant.

    With ``media_playlist`` (what :func:`package_hls` returned) the real segment files are
    measured; without it the segments are estimated from the MP4's packets, replaying the
    muxer's cut rule with ``segment_seconds`` and TS overhead. BANDWIDTH is the peak segment
    bitrate, and never less than 1.1 x the average.

    With ``media_playlist`` the codecs, picture size and frame rate are read from the MP4's
    ``moov`` box (:mod:`.mp4box`: no ffprobe process); ffprobe describes what that cannot read,
    and every MP4 when ``use_ffprobe`` (the reference the tests compare the boxes with).
    """
    boxes = None if use_ffprobe or media_playlist is None else _facts_from_boxes(mp4)
    if boxes is not None:
        codecs, resolution, frame_rate = boxes
        video: Any = None
    else:
        codecs, resolution, frame_rate, video = _facts_from_ffprobe(mp4, ffprobe)
    if media_playlist is not None:
        segments = _measure_playlist(media_playlist)
    else:
        segments = _estimate_from_packets(mp4, video, ffprobe, segment_seconds)
    total_s = sum(d for d, _ in segments)
    if not segments or total_s <= 0:
        raise ProcessingError(f"{mp4}: no segments to measure")
    average = math.ceil(sum(b for _, b in segments) * 8 / total_s)
    # RFC 8216: BANDWIDTH >= every segment's bitrate, a short (bursty) last segment included.
    peak = max(math.ceil(b * 8 / d) for d, b in segments)
    bandwidth = max(peak, math.ceil(average * 1.1))

    return HlsVariant(uri=playlist_uri, bandwidth=bandwidth, average_bandwidth=average, codecs=codecs,
                      resolution=resolution, frame_rate=frame_rate)  # fmt: skip


def render_master_playlist(variants: Sequence[HlsVariant]) -> str:
    """A master playlist listing ``variants`` by descending bandwidth.

    Rendered by hand, not with ``m3u8``: its renderer orders the attributes differently
    (CODECS last) and writes FRAME-RATE with ``%g`` (29.97, not 29.970); the output here is
    what players and the tests already read. The tests parse it back with ``m3u8``."""
    if not variants:
        raise ValueError("a master playlist needs at least one variant")
    # Version 7 when any variant is not H.264 (its media playlists use fMP4 segments).
    newer = any(not c.startswith(("avc1", "mp4a")) for v in variants for c in v.codecs.split(","))
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{7 if newer else 3}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.bandwidth, reverse=True):
        if not v.uri or any(c in v.uri for c in '\r\n"') or v.uri.startswith("#"):
            raise ValueError(f"invalid variant URI {v.uri!r}")
        attrs = [f"BANDWIDTH={v.bandwidth}", f"AVERAGE-BANDWIDTH={v.average_bandwidth}",
                 f'CODECS="{v.codecs}"']  # fmt: skip
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"
