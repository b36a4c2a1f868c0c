"""Probe an input with ffprobe and reduce it to the few facts the pipeline needs.

The streams described are the ones the encoder maps (``0:V:0`` and ``0:a:0``): the first
real video stream (cover art and thumbnails excluded) and the first audio stream.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

from mediarunner.errors import InvalidInputError, ProcessingError, UnsupportedMediaError
from mediarunner.media.formats import MEDIA_FORMATS, SUBTITLE_FORMATS, check_format, file_input_options, option_args

__all__ = ["MediaInfo", "decodable_codecs", "media_info_from_ffprobe", "probe"]

_STDERR_CHARS = 2000
_Stream = dict[str, Any]  # one ffprobe JSON object (a stream, or the format)


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    format_name: str
    has_video: bool
    has_audio: bool
    width: int | None  # display size: rotation and non-square pixels applied
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    audio_channels: int | None
    audio_sample_rate: int | None
    bit_rate: int | None
    #: The first video stream's entries that passthrough decides on (:data:`PASSTHROUGH_ENTRIES`,
    #: ffprobe's names), so deciding needs no second ffprobe of the source. None: not known.
    video_stream: dict[str, Any] | None = field(default=None, hash=False, compare=False)


#: What :func:`mediarunner.media.passthrough.check_passthrough` reads of the source's video stream.
PASSTHROUGH_ENTRIES = ("codec_name", "profile", "pix_fmt", "width", "height", "sample_aspect_ratio", "bit_rate")


def _passthrough_facts(video: dict[str, Any]) -> dict[str, Any]:
    facts = {k: video[k] for k in PASSTHROUGH_ENTRIES if k in video}
    rotate = (video.get("tags") or {}).get("rotate")
    if rotate:
        facts["tags"] = {"rotate": rotate}
    rotations = [{"rotation": s["rotation"]} for s in video.get("side_data_list") or [] if "rotation" in s]
    if rotations:
        facts["side_data_list"] = rotations
    return facts


def _file_url(path: str) -> str:
    # "file:" stops ffmpeg reading "a:b.mp4" as protocol "a" or "-x.mp4" as an option.
    return "file:" + os.path.abspath(path)


@lru_cache(maxsize=8)
def decodable_codecs(ffprobe: str = "ffprobe") -> frozenset[str]:
    """Codec names this ffprobe/ffmpeg build can decode (flag ``D`` in ``-codecs``)."""
    try:
        res = subprocess.run(
            [ffprobe, "-hide_banner", "-codecs"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProcessingError(f"cannot list codecs with {ffprobe}: {exc}") from exc
    names: set[str] = set()
    listing = False
    for line in res.stdout.splitlines():
        if line.strip().startswith("------"):
            listing = True
            continue
        parts = line.split()
        if listing and len(parts) >= 2 and parts[0].startswith("D"):
            names.add(parts[1])
    return frozenset(names)


def _num(value: Any, kind: type[int] | type[float]) -> Any:
    """ffprobe prints numbers as strings and "N/A" when unknown."""
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _rate(value: Any) -> float | None:
    try:
        r = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(r) if r > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        rot = _num(side.get("rotation"), float)
        if rot is not None:
            return round(rot)
    return round(_num((stream.get("tags") or {}).get("rotate"), float) or 0)


def _display_size(stream: dict[str, Any]) -> tuple[int, int]:
    w = _num(stream.get("width"), int) or 0
    h = _num(stream.get("height"), int) or 0
    m = re.fullmatch(r"(\d+):(\d+)", str(stream.get("sample_aspect_ratio", "")))
    if m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and w:
        w = round(w * int(m.group(1)) / int(m.group(2)))  # anamorphic: keep height, stretch width
    if _rotation(stream) % 180 == 90:
        w, h = h, w
    return w, h


def _is_real_video(stream: dict[str, Any]) -> bool:
    disp = stream.get("disposition") or {}
    return (
        stream.get("codec_type") == "video"
        and not disp.get("attached_pic")
        and not disp.get("timed_thumbnails")
    )


def _check_codecs(name: str, video: _Stream | None, audio: _Stream | None, decodable: frozenset[str] | None) -> None:
    for kind, s in (("video", video), ("audio", audio)):
        if s is None:
            continue
        codec = s.get("codec_name")
        if not codec or codec in ("none", "unknown"):
            tag = s.get("codec_tag_string") or "?"
            raise UnsupportedMediaError(f"{name}: {kind} stream uses an unknown codec (tag {tag})")
        if decodable is not None and codec not in decodable:
            raise UnsupportedMediaError(f"{name}: {kind} codec {codec!r} cannot be decoded here")


def _duration(name: str, fmt: _Stream, video: _Stream | None, audio: _Stream | None) -> float:
    """The container's duration when it has one; else the longest stream."""
    duration = _num(fmt.get("duration"), float)
    if duration is None or duration <= 0:
        per_stream = [_num(s.get("duration"), float) for s in (video, audio) if s is not None]
        duration = max((d for d in per_stream if d is not None), default=None)
    if duration is None or duration <= 0:
        raise InvalidInputError(f"{name}: duration is unknown (a still image, or a broken file)")
    return float(duration)


def _video_facts(name: str, video: _Stream | None) -> dict[str, Any]:
    if video is None:
        return {"has_video": False, "width": None, "height": None, "fps": None, "video_codec": None,
                "video_stream": None}
    width, height = _display_size(video)
    if width <= 0 or height <= 0:
        raise UnsupportedMediaError(f"{name}: video stream has no picture size ({width}x{height})")
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    return {"has_video": True, "width": width, "height": height, "fps": fps, "video_codec": video.get("codec_name"),
            "video_stream": _passthrough_facts(video)}


def _audio_facts(audio: _Stream | None) -> dict[str, Any]:
    if audio is None:
        return {"has_audio": False, "audio_codec": None, "audio_channels": None, "audio_sample_rate": None}
    return {
        "has_audio": True,
        "audio_codec": audio.get("codec_name"),
        "audio_channels": _num(audio.get("channels"), int) or None,
        "audio_sample_rate": _num(audio.get("sample_rate"), int) or None,
    }


def media_info_from_ffprobe(
    data: dict[str, Any], name: str, decodable: frozenset[str] | None = None
) -> MediaInfo:
    """Build :class:`MediaInfo` from ``ffprobe -show_format -show_streams`` JSON.

    ``decodable`` (codec names) enables the "can we decode it" check; ``name`` is for messages.
    """
    streams: list[_Stream] = data.get("streams") or []
    fmt: _Stream = data.get("format") or {}
    video = next((s for s in streams if _is_real_video(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["none"]
        raise UnsupportedMediaError(f"{name}: no audio or video stream (found: {', '.join(kinds)})")
    _check_codecs(name, video, audio, decodable)
    video_facts = _video_facts(name, video)
    return MediaInfo(
        duration=_duration(name, fmt, video, audio),
        format_name=str(fmt.get("format_name") or ""),
        bit_rate=_num(fmt.get("bit_rate"), int),
        **video_facts,
        **_audio_facts(audio),
    )


def _explain_rejection(stderr: str) -> str:
    m = re.search(r"\[(\w+) @ [^\]]*\] Format not on whitelist", stderr)
    if m:
        return f"container {m.group(1)!r} is not an allowed media format"
    if "not on whitelist" in stderr:
        return "refers to another file or URL (not allowed)"
    if "moov atom not found" in stderr:
        return "not a valid MP4 (moov atom missing: truncated, unfinished, or not an MP4 at all)"
    if "Invalid data found when processing input" in stderr:
        return "not a media file in an allowed container, or corrupt"
    if "Permission denied" in stderr:
        return "not readable (permission denied)"
    return "rejected by ffprobe"


def probe(path: str | os.PathLike[str], *, ffprobe: str = "ffprobe", timeout: float = 60,
          formats: tuple[str, ...] = MEDIA_FORMATS) -> MediaInfo:
    """Describe a local media file; raise InvalidInputError / UnsupportedMediaError if unusable.

    Only the demuxers in ``formats`` (see :mod:`mediarunner.media.formats`) may read it, and only
    through the file protocol: a playlist, concat list or text file is refused, never followed.
    (Subtitle files are read too, to be refused for what they are: no audio or video stream.)"""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise InvalidInputError(f"input file not found: {name}") from None
    except OSError as exc:
        raise InvalidInputError(f"input file cannot be accessed: {name} ({exc.strerror})") from None
    if not os.path.isfile(name):
        raise InvalidInputError(f"input is not a regular file: {name}")
    if st.st_size == 0:
        raise InvalidInputError(f"input file is empty (0 bytes): {name}")

    cmd = [ffprobe, "-v", "error", *option_args(file_input_options(formats + SUBTITLE_FORMATS)),
           "-print_format", "json", "-show_format", "-show_streams", _file_url(name)]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProcessingError(f"ffprobe timed out after {timeout:g} s on {name}") from None
    except OSError as exc:
        raise ProcessingError(f"cannot run {ffprobe}: {exc}") from exc
    stderr = res.stderr.decode("utf-8", "replace").strip()[-_STDERR_CHARS:]
    if res.returncode < 0:  # killed (OOM, operator): not the file's fault
        raise ProcessingError(f"ffprobe was killed (signal {-res.returncode}) on {name}\n{stderr}")
    if res.returncode != 0:
        raise InvalidInputError(f"{name}: {_explain_rejection(stderr)}\n{stderr}")
    try:
        data = json.loads(res.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise ProcessingError(f"ffprobe printed invalid JSON for {name}: {exc}") from exc
    info = media_info_from_ffprobe(data, name, decodable_codecs(ffprobe))
    check_format(info.format_name, name, formats)
    return info
