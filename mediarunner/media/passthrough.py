"""Source passthrough: a rung the source already fits is packaged by stream copy, not re-encoded.

The source fits a rung when its first video stream is of the rung's codec (H.264 at most High
profile, HEVC Main; 8-bit 4:2:0, square pixels, not rotated), has exactly the rung's picture
size, a frame rate players take (at most the policy's ``max_fps``), an average video bitrate within
the rung's cap, and a keyframe at every segment boundary (so HLS segments cut where the other
rungs' do). :func:`check_passthrough` says yes or why not; :func:`copy_rendition` does the copy
(video copied; the audio encoded as every rung's is, which costs little).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediarunner.errors import ProcessingError
from mediarunner.media.encoders import MP4_OUTPUT, POLICY, copy_tag_options, rung_audio_options, to_args
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import file_input_options, option_args
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.probe import PASSTHROUGH_ENTRIES, MediaInfo
from mediarunner.storage.local import remove_quietly

__all__ = ["Verdict", "check_passthrough", "copy_rendition"]

_PROFILES = {"h264": {"Constrained Baseline", "Baseline", "Main", "High"}, "hevc": {"Main"},
             "av1": {"Main"}, "vp9": {"Profile 0"}}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    fits: bool
    reason: str  # why (not): recorded in the job result


def _ffprobe(src: Path, ffprobe: str, entries: str) -> dict[str, Any]:
    cmd = [ffprobe, "-v", "error", *option_args(file_input_options()), "-select_streams", "V:0",
           "-show_entries", entries, "-of", "json", "file:" + str(src.resolve())]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"ffprobe failed: {exc}") from exc
    if res.returncode != 0:
        raise ProcessingError(f"ffprobe failed: {res.stderr.strip()[-500:]}")
    return dict(json.loads(res.stdout or "{}"))


def _stream_misfit(v: dict[str, Any], r: PlannedRendition, info: MediaInfo) -> str | None:
    tags, side = v.get("tags") or {}, v.get("side_data_list") or []
    if v.get("codec_name") != r.codec:
        return f"source video is {v.get('codec_name')}, the rung is {r.codec}"
    if v.get("profile") not in _PROFILES[r.codec] or v.get("pix_fmt") != POLICY.pix_fmt:
        return f"source profile {v.get('profile')} / {v.get('pix_fmt')} is not one every player decodes"
    if (int(v.get("width", 0)), int(v.get("height", 0))) != (r.width, r.height) or info.width != r.width:
        return f"source is {v.get('width')}x{v.get('height')}, the rung {r.width}x{r.height}"
    if v.get("sample_aspect_ratio") not in (None, "1:1", "0:1", "N/A") or tags.get("rotate") or \
            any("rotation" in s for s in side):  # fmt: skip
        return "source has non-square pixels or a rotation"
    if not info.fps or info.fps > POLICY.max_fps:
        return f"source frame rate {info.fps} is unknown or above {POLICY.max_fps:g}"
    if r.fps is not None and abs(info.fps - r.fps) > 0.01:
        return f"source frame rate {info.fps:g} is not the {r.fps:g} asked for"
    return None


def _probed_misfit(r: PlannedRendition, info: MediaInfo) -> str | None:
    """What the input's probe (``info``: the same first video stream) already rules out: the codec,
    the display size (a coded size, pixel aspect or rotation that differs shows here too) or the
    frame rate. Every lower rung of a ladder is decided here, without starting an ffprobe."""
    if info.video_codec != r.codec:
        return f"source video is {info.video_codec}, the rung is {r.codec}"
    if (info.width, info.height) != (r.width, r.height):
        return f"source is {info.width}x{info.height}, the rung {r.width}x{r.height}"
    if not info.fps or info.fps > POLICY.max_fps:
        return f"source frame rate {info.fps} is unknown or above {POLICY.max_fps:g}"
    return None


def _bitrate_misfit(v: dict[str, Any], r: PlannedRendition, info: MediaInfo) -> str | None:
    bps = int(v["bit_rate"]) if str(v.get("bit_rate", "")).isdigit() else info.bit_rate
    cap = (r.video_bitrate_k or 0) * 1000
    if not bps or bps > cap:
        return f"source video bitrate {bps or 'unknown'} bit/s is above the rung's cap {cap}"
    return None


def _keyframe_misfit(packets: list[dict[str, Any]], fps: float, duration: float, segment_seconds: float) -> str | None:
    keys = sorted(float(p["pts_time"]) for p in packets if "K" in p.get("flags", "") and p.get("pts_time"))
    if not keys:
        return "source has no keyframes"
    t0, tolerance = keys[0], 0.5 / fps
    for n in range(max(1, math.ceil(duration / segment_seconds - 1e-6))):
        want = t0 + n * segment_seconds
        if not any(abs(k - want) <= tolerance for k in keys):
            return f"no source keyframe at {n * segment_seconds:g}s (segments are {segment_seconds:g}s)"
    return None


def check_passthrough(src: Path, info: MediaInfo, r: PlannedRendition, *, segment_seconds: float,
                      ffprobe: str = "ffprobe") -> Verdict:  # fmt: skip
    """Whether ``src`` fits rung ``r`` as it is (see the module docstring), and why (not)."""
    if not r.has_video or not info.has_video:
        return Verdict(False, "no video to pass through")
    misfit = _probed_misfit(r, info)
    if misfit is not None:  # the input's probe already says no: no ffprobe of the source
        return Verdict(False, misfit)
    # the input's probe kept what is decided on (MediaInfo.video_stream); a MediaInfo from
    # elsewhere (an older job's result) probes the source again
    streams = [info.video_stream] if info.video_stream is not None else _ffprobe(
        src, ffprobe, f"stream={','.join(PASSTHROUGH_ENTRIES)},side_data_list:stream_tags=rotate").get("streams") or []
    if not streams:
        return Verdict(False, "source video stream not found")
    misfit = _stream_misfit(streams[0], r, info) or _bitrate_misfit(streams[0], r, info)
    if misfit is None:
        packets = _ffprobe(src, ffprobe, "packet=pts_time,flags").get("packets") or []
        misfit = _keyframe_misfit(packets, float(info.fps or POLICY.default_fps), info.duration, segment_seconds)
    return Verdict(misfit is None, misfit or f"source fits {r.name}: video stream-copied")


def copy_rendition(src: Path, dst_mp4: Path, r: PlannedRendition, info: MediaInfo, *, ffmpeg: str = "ffmpeg",
                   should_cancel: Callable[[], bool] | None = None,
                   on_progress: Callable[[float], None] | None = None) -> None:  # fmt: skip
    """The rung's MP4 with the source's video copied (and the audio encoded per the policy)."""
    args = [*option_args(file_input_options()), "-i", "file:" + str(src.resolve()), "-map", "0:V:0"]
    if r.has_audio:
        args += ["-map", "0:a:0", *to_args(rung_audio_options(r.audio_bitrate_k, info.audio_channels))]
    else:
        args += ["-an"]
    args += ["-c:v", "copy", *to_args(copy_tag_options(r.codec)), *to_args(MP4_OUTPUT),
             "file:" + str(dst_mp4.resolve())]
    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=info.duration, should_cancel=should_cancel, on_progress=on_progress)
    except BaseException:
        remove_quietly(dst_mp4)
        raise
