"""Encode one rendition to a web MP4 and package it as an HLS VOD stream (stream copy).

Keyframes are forced every ``segment_seconds`` with scene-cut detection off, so packaging
with the same ``segment_seconds`` cuts every segment exactly on a keyframe.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ffmpeg as ffpy  # ffmpeg-python builds the encode arguments; run_ffmpeg runs them

from mediarunner.errors import ValidationError
from mediarunner.media.cover import image_demuxer
from mediarunner.media.encoders import (
    MP4_OUTPUT,
    POLICY,
    Options,
    codec_spec,
    codec_video_options,
    copy_tag_options,
    h264_level,
    hardware_input_options,
    hardware_scale,
    hardware_video_options,
    rung_audio_options,
    rung_fps,
    still_image_options,
    threads_option,
    to_args,
)
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import CONCAT_FORMATS, IMAGE_FORMATS, file_input_options, option_args
from mediarunner.media.hls import HlsVariant, describe_variant, render_master_playlist
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.probe import MediaInfo
from mediarunner.storage.local import remove_quietly

__all__ = [
    "HlsVariant",
    "concat_parts",
    "describe_variant",
    "encode_rendition",
    "encode_renditions",
    "h264_level",
    "package_hls",
    "render_master_playlist",
]

_JOIN_PART = "part_{:03d}.mp4"


def _check_rendition(r: PlannedRendition, info: MediaInfo, segment_seconds: float) -> None:
    if segment_seconds <= 0:
        raise ValidationError("segment_seconds must be positive")
    if r.has_video and (not info.has_video or not (r.width and r.height and r.video_bitrate_k)):
        raise ValidationError(f"rendition {r.name!r} needs video the source/plan does not provide")
    if r.has_audio and not info.has_audio:
        raise ValidationError(f"rendition {r.name!r} needs audio but the source has none")
    if not (r.has_video or r.has_audio):
        raise ValidationError(f"rendition {r.name!r} has neither audio nor video")


def _picture(source: Any, cover: Path | None, info: MediaInfo) -> Any:
    """The video to scale: the source's first real video stream (0:V excludes cover art, as probe()
    does), or a cover image looped at the policy's rate (an audio file + cover image)."""
    if cover is None:
        return source["V:0"]
    still = ffpy.input("file:" + str(cover.resolve()), loop=1, framerate=f"{info.fps or POLICY.cover_fps:g}",
                       f=image_demuxer(cover), **file_input_options(IMAGE_FORMATS))  # one still, never a sequence
    return still["v:0"]


def output_fps(r: PlannedRendition, info: MediaInfo) -> tuple[float, bool]:
    """The rendition's output frame rate and whether an ``fps`` filter must make it: the rate the
    rendition asks for (``r.fps``, e.g. PeerTube's payload), else the source's at most ``max_fps``."""
    if r.fps is not None:
        return r.fps, not info.fps or abs(info.fps - r.fps) > 0.01
    return rung_fps(info.fps), bool(info.fps and info.fps > POLICY.max_fps)


def _at_rung_rate(picture: Any, r: PlannedRendition, info: MediaInfo) -> tuple[Any, float]:
    """``picture`` at the rung's output frame rate (:func:`output_fps`), through an ``fps`` filter
    when the source's rate is not it, and that rate (the codec's keyframe grid counts frames by it).
    Every path (one rung, several rungs from one decode, hardware) sets a rung's rate here."""
    fps, refilter = output_fps(r, info)
    return (picture.filter("fps", f"{fps:g}") if refilter else picture), fps


def _hardware_video(source: Any, r: PlannedRendition, info: MediaInfo, hardware: str, segment_seconds: float,
                    gpu_decode: bool) -> tuple[Any, Options]:  # fmt: skip
    """The video stream and options of a hardware encode (see :func:`.encoders.hardware_scale`)."""
    assert r.width and r.height and r.video_bitrate_k
    video, fps = _at_rung_rate(source["V:0"], r, info)  # a software filter: only without GPU decode
    for name, kwargs in hardware_scale(hardware, r.width, r.height, gpu_decode=gpu_decode):
        video = video.filter(name, **kwargs)
    return video, hardware_video_options(hardware, r.codec, fps, r.video_bitrate_k,
                                         segment_seconds=segment_seconds)


def _software_video(picture: Any, r: PlannedRendition, fps: float, speed: str | None,
                    segment_seconds: float) -> tuple[Any, Options]:
    """A software-encoded rung's video: ``picture`` scaled to the rung, square pixels, the policy's
    pixel format; and its codec options (``speed``: None for the codec's default)."""
    assert r.width and r.height and r.video_bitrate_k  # checked by _check_rendition
    video = picture.filter("scale", r.width, r.height, flags="bicubic").filter("setsar", 1) \
        .filter("format", POLICY.pix_fmt)
    return video, codec_video_options(r.codec, r.width, r.height, fps, r.video_bitrate_k,
                                      speed=speed or codec_spec(r.codec).default_speed,
                                      segment_seconds=segment_seconds)


def _with_audio(source: Any, r: PlannedRendition, info: MediaInfo, streams: list[Any],
                opts: Options) -> tuple[list[Any], Options]:
    """The rung's audio stream and options added to ``streams`` / ``opts`` (``-an`` without audio)."""
    if not r.has_audio:
        return streams, opts | {"an": None}
    return [*streams, source["a:0"]], opts | rung_audio_options(r.audio_bitrate_k, info.audio_channels)


def rendition_args(src: Path, dst_mp4: Path, r: PlannedRendition, info: MediaInfo, *, preset: str | None, threads: int,
                   segment_seconds: float, start: float, duration: float | None, cover: Path | None = None,
                   hardware: str | None = None, vaapi_device: str = "/dev/dri/renderD128") -> list[str]:  # fmt: skip
    """The ffmpeg arguments of :func:`encode_rendition`, built with ffmpeg-python. ``hardware``: a
    family of :data:`.encoders.HARDWARE_ENCODERS` (not with a cover image)."""
    gpu_decode = bool(hardware) and cover is None and r.has_video and not output_fps(r, info)[1]
    hw_in = hardware_input_options(hardware, gpu_decode=gpu_decode, vaapi_device=vaapi_device) if hardware else {}
    source = ffpy.input("file:" + str(src.resolve()), **file_input_options(), **hw_in,
                        **({"ss": f"{start:.6f}"} if start > 0 else {}))
    streams: list[Any] = []
    opts: Options = {}
    if duration is not None or cover is not None:  # a looped cover runs for as long as the audio
        opts["t"] = f"{duration if duration is not None else max(0.0, info.duration - start):.6f}"
    if r.has_video and hardware and cover is None:
        video, video_opts = _hardware_video(source, r, info, hardware, segment_seconds, gpu_decode)
        streams.append(video)
        opts |= video_opts
    elif r.has_video:
        assert r.width and r.height and r.video_bitrate_k  # checked by _check_rendition
        video, fps = _at_rung_rate(_picture(source, cover, info), r, info)
        video, video_opts = _software_video(video, r, fps, preset, segment_seconds)
        streams.append(video)
        opts |= video_opts | (still_image_options(r.codec) if cover is not None else {})
    else:
        opts["vn"] = None
    streams, opts = _with_audio(source, r, info, streams, opts)
    opts |= threads_option(threads) | MP4_OUTPUT
    return list(ffpy.output(*streams, "file:" + str(dst_mp4.resolve()), **opts).get_args())


def encode_rendition(
    src: Path,
    dst_mp4: Path,
    r: PlannedRendition,
    info: MediaInfo,
    *,
    ffmpeg: str = "ffmpeg",
    preset: str | None = None,
    threads: int = 0,
    segment_seconds: float = 4.0,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
    start: float = 0.0,
    duration: float | None = None,
    cover: Path | None = None,
    hardware: str | None = None,
    vaapi_device: str = "/dev/dri/renderD128",
) -> None:
    """Encode ``src`` to a progressive-download MP4 (``r.codec`` video + AAC, or AAC only).
    ``preset``: the codec's speed setting (x264/x265 preset, SVT-AV1 preset, VP9 cpu-used);
    None: the policy's default for that codec. ``cover``: a still image that is the video (``src``
    is then audio only and ``info`` is :func:`~mediarunner.media.cover.with_cover`'s).

    ``start``/``duration``: encode only that span of the source (a part of a split rendition,
    see :mod:`mediarunner.media.parts`): the seek is frame-accurate and the output's
    timestamps start at 0, with the first keyframe grid at ``start``.
    On any failure (including cancellation) the partial output is removed.
    """
    _check_rendition(r, info, segment_seconds)
    args = rendition_args(src, dst_mp4, r, info, preset=preset, threads=threads, segment_seconds=segment_seconds,
                          start=start, duration=duration, cover=cover if r.has_video else None,
                          hardware=hardware if r.has_video else None, vaapi_device=vaapi_device)  # fmt: skip
    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=duration if duration is not None else max(0.0, info.duration - start),
                   on_progress=on_progress, should_cancel=should_cancel, cancel_poll=cancel_poll)  # fmt: skip
    except BaseException:
        remove_quietly(dst_mp4)
        raise


def renditions_args(src: Path, outputs: Sequence[tuple[PlannedRendition, Path]], info: MediaInfo, *,
                    speed: Callable[[str], str | None], threads: int, segment_seconds: float,
                    start: float = 0.0, duration: float | None = None) -> list[str]:
    """The ffmpeg arguments of :func:`encode_renditions`: one input, its video decoded once and
    ``split`` into one ``scale`` chain per video rung, one MP4 output per rung with the options
    :func:`rendition_args` gives that rung alone (``speed``: a codec's speed setting)."""
    source = ffpy.input("file:" + str(src.resolve()), **file_input_options(),
                        **({"ss": f"{start:.6f}"} if start > 0 else {}))
    n_video = sum(1 for r, _ in outputs if r.has_video)
    pictures: Any = None
    single: Any = None
    if n_video:
        single = source["V:0"]  # each rung's rate is set after the split, as its own run would
        pictures = single.filter_multi_output("split", n_video) if n_video > 1 else None
    outs: list[Any] = []
    k = 0
    for r, dst in outputs:
        streams: list[Any] = []
        opts: Options = {}
        if r.has_video:
            assert r.width and r.height and r.video_bitrate_k  # checked by _check_rendition
            picture = pictures.stream(k) if pictures is not None else single
            k += 1
            picture, fps = _at_rung_rate(picture, r, info)
            video, video_opts = _software_video(picture, r, fps, speed(r.codec), segment_seconds)
            streams.append(video)
            opts |= video_opts
        else:
            opts["vn"] = None
        streams, opts = _with_audio(source, r, info, streams, opts)
        opts |= threads_option(threads) | MP4_OUTPUT | ({"t": f"{duration:.6f}"} if duration is not None else {})
        outs.append(ffpy.output(*streams, "file:" + str(dst.resolve()), **opts))
    return list(ffpy.merge_outputs(*outs).get_args())


def encode_renditions(
    src: Path,
    outputs: Sequence[tuple[PlannedRendition, Path]],
    info: MediaInfo,
    *,
    ffmpeg: str = "ffmpeg",
    speed: Callable[[str], str | None] = lambda codec: None,
    threads: int = 0,
    segment_seconds: float = 4.0,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
    start: float = 0.0,
    duration: float | None = None,
) -> None:
    """Encode several renditions of ``src`` in one ffmpeg run (software encoders): the source is
    read and decoded once, and each ``(rendition, mp4)`` gets the MP4 :func:`encode_rendition`
    would have made alone (same filters, encoder options, keyframe grid), of the whole source or
    of the span ``start``/``duration`` (a time part, as :func:`encode_rendition` cuts it).
    ``speed(codec)``: that codec's speed setting (None: the policy's default). On any failure
    (including cancellation) every partial output is removed."""
    if not outputs:
        raise ValidationError("no renditions to encode")
    for r, _ in outputs:
        _check_rendition(r, info, segment_seconds)
    args = renditions_args(src, outputs, info, speed=speed, threads=threads, segment_seconds=segment_seconds,
                           start=start, duration=duration)
    for _, dst in outputs:
        dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        span = duration if duration is not None else max(0.0, info.duration - start)
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=span, on_progress=on_progress,
                   should_cancel=should_cancel, cancel_poll=cancel_poll)
    except BaseException:
        for _, dst in outputs:
            remove_quietly(dst)
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
    codec: str | None = None,
) -> None:
    """Join the video-only MP4 ``parts`` of a split rendition in order, with the ``audio`` track
    encoded once for the whole video (no AAC priming gaps at the joins): stream copy only, so
    the result is the MP4 :func:`encode_rendition` would have made, in seconds.

    A plain argument list, not ffmpeg-python: no filter graph, only the concat demuxer and a
    stream copy, and the list reads as the command line it is."""
    if not parts:
        raise ValidationError("no parts to join")
    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    # The list names only fixed, relative names (links to the parts, in a private directory) and
    # is read with -safe 1: no path we were given, whatever its characters, reaches the list.
    work = dst_mp4.with_name(f".{dst_mp4.stem}.join")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for i, p in enumerate(parts):
        (work / _JOIN_PART.format(i)).symlink_to(p.resolve())
    listing = work / "parts.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file {_JOIN_PART.format(i)}\n" for i in range(len(parts))))
    args = [*option_args(file_input_options(CONCAT_FORMATS)), "-f", "concat", "-safe", "1",
            "-i", "file:" + str(listing)]
    if audio is not None:
        args += [*option_args(file_input_options()), "-i", "file:" + str(audio.resolve()),
                 "-map", "0:v:0", "-map", "1:a:0"]
    else:
        args += ["-map", "0:v:0"]
    args += ["-c", "copy", *to_args(copy_tag_options(codec)), *to_args(MP4_OUTPUT), "file:" + str(dst_mp4.resolve())]
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=duration, on_progress=on_progress,
                   should_cancel=should_cancel, cancel_poll=cancel_poll)
    except BaseException:
        remove_quietly(dst_mp4)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _segment_template(out_dir: Path, ext: str) -> str:
    # The segment name is a printf-style template: a "%" in the directory must be escaped.
    return str(out_dir).replace("%", "%%") + f"/seg_%05d.{ext}"


_INIT = "init.mp4"  # the fMP4 (CMAF) initialization segment


def _hls_files(out_dir: Path) -> list[Path]:
    return [out_dir / "index.m3u8", out_dir / _INIT, *out_dir.glob("seg_*.ts"), *out_dir.glob("seg_*.m4s")]


def package_hls(
    mp4: Path,
    out_dir: Path,
    *,
    ffmpeg: str = "ffmpeg",
    segment_seconds: float = 4.0,
    should_cancel: Callable[[], bool] | None = None,
    codec: str | None = None,
) -> Path:
    """Split ``mp4`` (no re-encode) into ``out_dir/index.m3u8`` + ``seg_00000.ts``...; return the playlist.
    With a ``codec`` whose policy asks for fMP4 (HEVC, AV1, VP9): ``init.mp4`` + ``seg_00000.m4s``...

    A plain argument list, not ffmpeg-python: one input, one stream-copied output, no graph."""
    if segment_seconds <= 0:
        raise ValidationError("segment_seconds must be positive")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / "index.m3u8"
    # A previous attempt may have left more segments than this run writes.
    for stale in _hls_files(out_dir):
        remove_quietly(stale)
    fmp4 = codec is not None and codec_spec(codec).segment_type == "fmp4"
    kind = ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", _INIT] if fmp4 else \
        ["-hls_segment_type", "mpegts"]
    args = [
        *option_args(file_input_options()), "-i", "file:" + str(mp4.resolve()), "-map", "0", "-c", "copy",
        *to_args(copy_tag_options(codec)),
        "-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
        "-hls_list_size", "0", *kind, "-hls_flags", "independent_segments",
        "-hls_segment_filename", _segment_template(out_dir, "m4s" if fmp4 else "ts"),
        str(playlist),
    ]  # fmt: skip
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, should_cancel=should_cancel)
    except BaseException:
        for partial in _hls_files(out_dir):
            remove_quietly(partial)
        raise
    return playlist
