"""Encode one rendition to a web MP4 and package it as an HLS VOD stream (stream copy).

Keyframes are forced every ``segment_seconds`` with scene-cut detection off, so packaging
with the same ``segment_seconds`` cuts every segment exactly on a keyframe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from mediarunner.errors import ValidationError
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.hls import HlsVariant, describe_variant, render_master_playlist
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.probe import MediaInfo
from mediarunner.storage.local import remove_quietly

__all__ = [
    "HlsVariant",
    "concat_parts",
    "describe_variant",
    "encode_rendition",
    "h264_level",
    "package_hls",
    "render_master_playlist",
]

MAX_FPS = 60.0  # higher source rates are halved-ish to 60: no web player benefits from more
AUDIO_SAMPLE_RATE = 48_000
CRF = 23  # quality target; the bitrate from the ladder is a cap (maxrate), not a target

# H.264 levels (Table A-1): (level_idc, max frame size in macroblocks, max macroblocks/s,
# max bitrate and CPB in kbit/s for High profile = 1.25 x the Baseline/Main figures).
_LEVELS: tuple[tuple[int, int, int, int, int], ...] = (
    (30, 1_620, 40_500, 12_500, 12_500),
    (31, 3_600, 108_000, 17_500, 17_500),
    (32, 5_120, 216_000, 25_000, 25_000),
    (40, 8_192, 245_760, 25_000, 31_250),
    (41, 8_192, 245_760, 62_500, 78_125),
    (42, 8_704, 522_240, 62_500, 78_125),
    (50, 22_080, 589_824, 168_750, 168_750),
    (51, 36_864, 983_040, 300_000, 300_000),
    (52, 36_864, 2_073_600, 300_000, 300_000),
    (60, 139_264, 4_177_920, 300_000, 300_000),
    (61, 139_264, 8_355_840, 600_000, 600_000),
    (62, 139_264, 16_711_680, 1_000_000, 1_000_000),
)


def h264_level(width: int, height: int, fps: float, maxrate_k: int, bufsize_k: int) -> str:
    """Smallest High-profile level (at least 3.0, which every device plays) that fits."""
    frame_mbs = math.ceil(width / 16) * math.ceil(height / 16)
    mbps = frame_mbs * fps
    for idc, max_fs, max_mbps, max_br, max_cpb in _LEVELS:
        if frame_mbs <= max_fs and mbps <= max_mbps and maxrate_k <= max_br and bufsize_k <= max_cpb:
            return f"{idc // 10}.{idc % 10}"
    raise ValidationError(f"{width}x{height}@{fps:g} at {maxrate_k} kbit/s exceeds every H.264 level")


def _audio_args(r: PlannedRendition, info: MediaInfo) -> list[str]:
    channels = min(info.audio_channels or 2, 2)  # web players: stereo at most
    return ["-c:a", "aac", "-b:a", f"{r.audio_bitrate_k or 128}k", "-ac", str(channels),
            "-ar", str(AUDIO_SAMPLE_RATE)]  # fmt: skip


def _video_args(r: PlannedRendition, info: MediaInfo, preset: str, segment_seconds: float) -> list[str]:
    assert r.width and r.height and r.video_bitrate_k  # checked by the caller
    fps = min(info.fps or 30.0, MAX_FPS)
    filters = [f"scale={r.width}:{r.height}:flags=bicubic", "setsar=1", "format=yuv420p"]
    if info.fps and info.fps > MAX_FPS:
        filters.insert(0, f"fps={MAX_FPS:g}")
    maxrate, bufsize = r.video_bitrate_k, 2 * r.video_bitrate_k
    s = f"{segment_seconds:g}"
    return [
        "-vf", ",".join(filters),
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high",
        "-level:v", h264_level(r.width, r.height, fps, maxrate, bufsize),
        "-crf", str(CRF), "-maxrate", f"{maxrate}k", "-bufsize", f"{bufsize}k",
        # Keyframes exactly every S seconds and nowhere else: forced ones, no scene cuts, and
        # a GOP limit (in frames) loose enough never to fire between two forced keyframes.
        "-force_key_frames", f"expr:gte(t,n_forced*{s})", "-sc_threshold", "0",
        "-g", str(max(1, math.ceil(fps * segment_seconds * 2))),
    ]  # fmt: skip


def encode_rendition(
    src: Path,
    dst_mp4: Path,
    r: PlannedRendition,
    info: MediaInfo,
    *,
    ffmpeg: str = "ffmpeg",
    preset: str = "veryfast",
    threads: int = 0,
    segment_seconds: float = 4.0,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
    start: float = 0.0,
    duration: float | None = None,
) -> None:
    """Encode ``src`` to a progressive-download MP4 (H.264 High + AAC, or AAC only).

    ``start``/``duration``: encode only that span of the source (a part of a split rendition,
    see :mod:`mediarunner.media.parts`): the seek is frame-accurate and the output's
    timestamps start at 0, with the first keyframe grid at ``start``.
    On any failure (including cancellation) the partial output is removed.
    """
    if segment_seconds <= 0:
        raise ValidationError("segment_seconds must be positive")
    if r.has_video and (not info.has_video or not (r.width and r.height and r.video_bitrate_k)):
        raise ValidationError(f"rendition {r.name!r} needs video the source/plan does not provide")
    if r.has_audio and not info.has_audio:
        raise ValidationError(f"rendition {r.name!r} needs audio but the source has none")
    if not (r.has_video or r.has_audio):
        raise ValidationError(f"rendition {r.name!r} has neither audio nor video")

    # 0:V excludes cover art; the maps match the streams probe() describes.
    span = ["-ss", f"{start:.6f}"] if start > 0 else []
    args = [*span, "-i", "file:" + str(src.resolve()), "-map_metadata", "-1", "-map_chapters", "-1"]
    if duration is not None:
        args += ["-t", f"{duration:.6f}"]
    if r.has_video:
        args += ["-map", "0:V:0", *_video_args(r, info, preset, segment_seconds)]
    else:
        args += ["-vn"]
    if r.has_audio:
        args += ["-map", "0:a:0", *_audio_args(r, info)]
    else:
        args += ["-an"]
    if threads > 0:
        args += ["-threads", str(threads)]
    args += ["-sn", "-dn", "-max_muxing_queue_size", "1024", "-movflags", "+faststart", "-f", "mp4",
             "file:" + str(dst_mp4.resolve())]  # fmt: skip

    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_ffmpeg(
            args,
            ffmpeg=ffmpeg,
            duration=duration if duration is not None else max(0.0, info.duration - start),
            on_progress=on_progress,
            should_cancel=should_cancel,
            cancel_poll=cancel_poll,
        )
    except BaseException:
        remove_quietly(dst_mp4)
        raise


def concat_parts(
    parts: list[Path],
    audio: Path | None,
    dst_mp4: Path,
    *,
    ffmpeg: str = "ffmpeg",
    duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
) -> None:
    """Join the video-only MP4 ``parts`` of a split rendition in order, with the ``audio`` track
    encoded once for the whole video (no AAC priming gaps at the joins): stream copy only, so
    the result is the MP4 :func:`encode_rendition` would have made, in seconds."""
    if not parts:
        raise ValidationError("no parts to join")
    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    listing = dst_mp4.with_name(dst_mp4.name + ".parts.txt")
    # The concat demuxer's quoting: a quote inside a path is written as '\''.
    listing.write_text("".join("file '" + str(p.resolve()).replace("'", "'\\''") + "'\n" for p in parts))
    args = ["-f", "concat", "-safe", "0", "-i", "file:" + str(listing)]
    if audio is not None:
        args += ["-i", "file:" + str(audio.resolve()), "-map", "0:v:0", "-map", "1:a:0"]
    else:
        args += ["-map", "0:v:0"]
    args += ["-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
             "-max_muxing_queue_size", "1024", "-movflags", "+faststart", "-f", "mp4",
             "file:" + str(dst_mp4.resolve())]  # fmt: skip
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=duration, on_progress=on_progress,
                   should_cancel=should_cancel, cancel_poll=cancel_poll)
    except BaseException:
        remove_quietly(dst_mp4)
        raise
    finally:
        remove_quietly(listing)


def _segment_template(out_dir: Path) -> str:
    # The segment name is a printf-style template: a "%" in the directory must be escaped.
    return str(out_dir).replace("%", "%%") + "/seg_%05d.ts"


def package_hls(
    mp4: Path,
    out_dir: Path,
    *,
    ffmpeg: str = "ffmpeg",
    segment_seconds: float = 4.0,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """Split ``mp4`` (no re-encode) into ``out_dir/index.m3u8`` + ``seg_00000.ts``...; return the playlist."""
    if segment_seconds <= 0:
        raise ValidationError("segment_seconds must be positive")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / "index.m3u8"
    # A previous attempt may have left more segments than this run writes.
    for stale in [playlist, *out_dir.glob("seg_*.ts")]:
        remove_quietly(stale)
    args = [
        "-i", "file:" + str(mp4.resolve()), "-map", "0", "-c", "copy",
        "-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
        "-hls_list_size", "0", "-hls_segment_type", "mpegts",
        "-hls_segment_filename", _segment_template(out_dir),
        str(playlist),
    ]  # fmt: skip
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, should_cancel=should_cancel)
    except BaseException:
        for partial in [playlist, *out_dir.glob("seg_*.ts")]:
            remove_quietly(partial)
        raise
    return playlist
