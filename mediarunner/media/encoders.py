"""The encoder policy, declared once: H.264 (x264), HEVC (x265), AV1 (SVT-AV1), VP9 (libvpx) + AAC.

Every encode takes its codec settings from :data:`POLICY`: a VOD rung (:mod:`.encode`), the
live ladder (:mod:`.live`) and each studio step (:mod:`.studio`). The functions here return
ffmpeg *output options* as an ordered mapping (``{"c:v": "libx264"}`` is ``-c:v libx264``; a
``None`` value is a bare flag such as ``-sn``), ready for ``ffmpeg.output(..., **options)`` or,
through :func:`to_args`, for a plain argument list.

Keyframe alignment: keyframes are forced every ``segment_seconds`` with scene-cut detection off,
and the GOP limit (in frames) is loose enough never to fire between two forced keyframes, so
an HLS packager cutting every ``segment_seconds`` always cuts on a keyframe.

Across codecs (one master playlist with an H.264, an HEVC, an AV1 and a VP9 ladder, so that a
player may switch between them) every codec gets its keyframes on the same grid: x264, x265 and
libvpx honour the forced keyframes (closed GOPs: x265 with ``forced-idr``, no open GOP); SVT-AV1
1.4 (Debian's) ignores forced keyframes, so its keyframe interval is fixed to exactly
``fps x segment_seconds`` frames (exact whenever that product is a whole number of frames, as it is
for integer rates; for 29.97 fps the AV1 grid drifts by less than a frame per segment).
Per-codec settings (see :data:`CODECS`): constant quality (CRF) capped at the rung's bitrate,
speed from a setting (``x264_preset``, ``x265_preset``, ``svtav1_preset``, ``vp9_cpu_used``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mediarunner.config.settings import Settings
from mediarunner.errors import ValidationError

__all__ = [
    "CODECS",
    "HARDWARE_ENCODERS",
    "HW_BITRATE_FACTOR",
    "MP4_OUTPUT",
    "POLICY",
    "CodecSpec",
    "EncoderPolicy",
    "Options",
    "codec_spec",
    "codec_speed",
    "codec_video_options",
    "copy_tag_options",
    "h264_level",
    "hardware_input_options",
    "hardware_scale",
    "hardware_video_options",
    "keyframe_options",
    "live_audio_options",
    "live_video_options",
    "rung_audio_options",
    "rung_fps",
    "rung_video_options",
    "still_image_options",
    "studio_options",
    "threads_option",
    "to_args",
]

Options = dict[str, str | None]


@dataclass(frozen=True)
class EncoderPolicy:
    """H.264 (High profile, yuv420p) + AAC, as every web player plays it."""

    video_codec: str = "libx264"
    profile: str = "high"
    pix_fmt: str = "yuv420p"
    rung_crf: int = 23  # VOD quality target; the ladder's bitrate is a cap (maxrate), not a target
    bufsize_factor: int = 2  # VBV buffer = this x maxrate
    default_fps: float = 30.0  # a source whose rate is unknown
    max_fps: float = 60.0  # higher source rates are reduced to this: no web player benefits from more
    gop_slack: int = 2  # GOP limit = this x the frames between two forced keyframes
    audio_codec: str = "aac"
    audio_rate: int = 48_000
    audio_channels: int = 2  # at most: web players play stereo
    audio_bitrate_k: int = 128  # a rung that names no audio bitrate
    studio_audio_bitrate_k: int = 192  # studio steps are intermediates: keep audio generous
    cover_fps: float = 25.0  # an audio file + cover image: the still is looped at this rate


POLICY = EncoderPolicy()

# The MP4 container: no metadata, chapters, subtitles or data streams carried over; the moov
# atom first (progressive download).
MP4_OUTPUT: Options = {
    "map_metadata": "-1",
    "map_chapters": "-1",
    "sn": None,
    "dn": None,
    "max_muxing_queue_size": "1024",
    "movflags": "+faststart",
    "f": "mp4",
}

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


def to_args(options: Mapping[str, str | None]) -> list[str]:
    """``{"c:v": "libx264", "sn": None}`` -> ``["-c:v", "libx264", "-sn"]`` (order kept)."""
    args: list[str] = []
    for key, value in options.items():
        args += [f"-{key}"] if value is None else [f"-{key}", value]
    return args


def threads_option(threads: int) -> Options:
    """``-threads N`` when a limit is set (0: ffmpeg's default)."""
    return {"threads": str(threads)} if threads > 0 else {}


def rung_fps(source_fps: float | None, policy: EncoderPolicy = POLICY) -> float:
    """The output frame rate of a VOD rung: the source's, at most ``max_fps``."""
    return min(source_fps or policy.default_fps, policy.max_fps)


def keyframe_options(segment_seconds: float, fps: float, policy: EncoderPolicy = POLICY) -> Options:
    """Keyframes exactly every ``segment_seconds`` and nowhere else: forced ones, no scene cuts,
    and a GOP limit (``fps`` is the highest rate the output can have) that never fires first."""
    return {
        "force_key_frames": f"expr:gte(t,n_forced*{segment_seconds:g})",
        "sc_threshold": "0",
        "g": str(max(1, math.ceil(fps * segment_seconds * policy.gop_slack))),
    }


def rung_video_options(
    width: int,
    height: int,
    fps: float,
    bitrate_k: int,
    *,
    preset: str,
    segment_seconds: float,
    policy: EncoderPolicy = POLICY,
) -> Options:
    """One VOD rung's video: constant quality, capped at ``bitrate_k``, keyframes on the segment grid."""
    maxrate, bufsize = bitrate_k, policy.bufsize_factor * bitrate_k
    return {
        "c:v": policy.video_codec,
        "preset": preset,
        "profile:v": policy.profile,
        "level:v": h264_level(width, height, fps, maxrate, bufsize),
        "crf": str(policy.rung_crf),
        "maxrate": f"{maxrate}k",
        "bufsize": f"{bufsize}k",
        **keyframe_options(segment_seconds, fps, policy),
    }


def rung_audio_options(
    bitrate_k: int | None, source_channels: int | None, policy: EncoderPolicy = POLICY
) -> Options:
    """One VOD rung's audio: AAC at the rung's bitrate, stereo at most, resampled to ``audio_rate``."""
    channels = min(source_channels or policy.audio_channels, policy.audio_channels)
    return {
        "c:a": policy.audio_codec,
        "b:a": f"{bitrate_k or policy.audio_bitrate_k}k",
        "ac": str(channels),
        "ar": str(policy.audio_rate),
    }


def live_video_options(
    bitrates_k: Sequence[int], *, preset: str, segment_seconds: float, policy: EncoderPolicy = POLICY
) -> Options:
    """The live ladder's video streams (``-b:v:N`` per rung): the source rate is unknown, so the
    GOP limit assumes ``max_fps``."""
    opts: Options = {
        "c:v": policy.video_codec,
        "preset": preset,
        "profile:v": policy.profile,
        **keyframe_options(segment_seconds, policy.max_fps, policy),
    }
    for i, br in enumerate(bitrates_k):
        opts |= {f"b:v:{i}": f"{br}k", f"maxrate:v:{i}": f"{br}k", f"bufsize:v:{i}": f"{policy.bufsize_factor * br}k"}
    return opts


def live_audio_options(bitrates_k: Sequence[int | None], policy: EncoderPolicy = POLICY) -> Options:
    """The live ladder's audio streams (``-b:a:N`` per rung), stereo."""
    opts: Options = {"c:a": policy.audio_codec, "ac": str(policy.audio_channels), "ar": str(policy.audio_rate)}
    for j, br in enumerate(bitrates_k):
        opts[f"b:a:{j}"] = f"{br or policy.audio_bitrate_k}k"
    return opts


def studio_options(preset: str, crf: int, *, audio: bool, policy: EncoderPolicy = POLICY) -> Options:
    """One studio step: constant quality ``crf`` (no cap: the step is an intermediate or the final edit)."""
    opts: Options = {"c:v": policy.video_codec, "preset": preset, "crf": str(crf), "pix_fmt": policy.pix_fmt}
    if audio:
        opts |= {
            "c:a": policy.audio_codec,
            "b:a": f"{policy.studio_audio_bitrate_k}k",
            "ar": str(policy.audio_rate),
            "ac": str(policy.audio_channels),
        }
    return opts


# --------------------------------------------------------------------------- codecs per ladder


@dataclass(frozen=True)
class CodecSpec:
    """One video codec of a VOD ladder: its encoder, its quality target, its HLS segment type."""

    name: str  # as asked for: "h264", "hevc", "av1", "vp9" (also ffprobe's codec_name)
    encoder: str  # the software encoder
    crf: int  # constant-quality target (each encoder's own scale), capped by the rung's bitrate
    tag: str  # the MP4 sample entry players expect (hvc1, not hev1, for Safari)
    segment_type: str  # HLS segments: "mpegts" (H.264, as always) or "fmp4" (CMAF) for the newer codecs
    default_speed: str  # preset / cpu-used when no setting is given (the settings' defaults)


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("h264", "libx264", POLICY.rung_crf, "avc1", "mpegts", "veryfast"),
    "hevc": CodecSpec("hevc", "libx265", 28, "hvc1", "fmp4", "fast"),  # x265 CRF 28 ~ x264 CRF 23 (x265 docs)
    "av1": CodecSpec("av1", "libsvtav1", 35, "av01", "fmp4", "10"),
    "vp9": CodecSpec("vp9", "libvpx-vp9", 33, "vp09", "fmp4", "4"),
}


def codec_spec(codec: str) -> CodecSpec:
    try:
        return CODECS[codec]
    except KeyError:
        raise ValidationError(f"unknown video codec {codec!r}; valid: {', '.join(CODECS)}") from None


def codec_speed(settings: Settings, codec: str) -> str:
    """The speed/quality trade-off of ``codec``'s encoder, from its setting."""
    return {"h264": settings.x264_preset, "hevc": settings.x265_preset, "av1": str(settings.svtav1_preset),
            "vp9": str(settings.vp9_cpu_used)}[codec_spec(codec).name]


def still_image_options(codec: str) -> Options:
    """A looped cover image: x264's ``stillimage`` tuning (the other encoders have no such switch)."""
    return {"tune": "stillimage"} if codec_spec(codec).name == "h264" else {}


def copy_tag_options(codec: str | None) -> Options:
    """Stream-copy options that keep the sample entry players expect (``hvc1`` for HEVC)."""
    return {"tag:v": "hvc1"} if codec == "hevc" else {}


def codec_video_options(codec: str, width: int, height: int, fps: float, bitrate_k: int, *, speed: str,
                        segment_seconds: float, policy: EncoderPolicy = POLICY) -> Options:  # fmt: skip
    """One VOD rung's video in ``codec``: CRF capped at ``bitrate_k``, keyframes on the segment grid
    shared by every codec (see the module docstring)."""
    spec = codec_spec(codec)
    if spec.name == "h264":
        return rung_video_options(width, height, fps, bitrate_k, preset=speed, segment_seconds=segment_seconds,
                                  policy=policy)  # fmt: skip
    cap: Options = {"maxrate": f"{bitrate_k}k", "bufsize": f"{policy.bufsize_factor * bitrate_k}k"}
    keys = keyframe_options(segment_seconds, fps, policy)
    if spec.name == "hevc":
        params = f"log-level=error:scenecut=0:open-gop=0:keyint={keys['g']}:min-keyint=1:forced-idr=1"
        return {"c:v": spec.encoder, "preset": speed, "profile:v": "main", "crf": str(spec.crf), **cap,
                "tag:v": spec.tag, "force_key_frames": keys["force_key_frames"], "x265-params": params}
    if spec.name == "av1":  # forced keyframes are ignored: a fixed interval of one segment
        gop = max(1, round(fps * segment_seconds))
        return {"c:v": spec.encoder, "preset": speed, "crf": str(spec.crf), **cap, "g": str(gop),
                "svtav1-params": "scd=0"}
    # VP9: constrained quality (CRF with -b:v as the ceiling), multi-threaded rows.
    return {"c:v": spec.encoder, "deadline": "good", "cpu-used": speed, "row-mt": "1", "crf": str(spec.crf),
            "b:v": f"{bitrate_k}k", **cap, **keys}


# --------------------------------------------------------------------------- hardware encoders

#: The hardware encoder of each family for each codec (Debian's ffmpeg 5.1 has no AV1 hardware encoder).
HARDWARE_ENCODERS: dict[str, dict[str, str]] = {
    "nvenc": {"h264": "h264_nvenc", "hevc": "hevc_nvenc"},
    "qsv": {"h264": "h264_qsv", "hevc": "hevc_qsv", "vp9": "vp9_qsv"},
    "vaapi": {"h264": "h264_vaapi", "hevc": "hevc_vaapi", "vp9": "vp9_vaapi"},
}
#: Quality parity with x264 (PeerTube #6042): at the same cap NVENC/QSV/VAAPI give visibly less
#: quality than x264, so a hardware rung's cap (maxrate) is this much higher than the ladder's, and
#: constant-quality targets sit a little below the x264 CRF. Measure with ``bench/codecs.py --hardware``
#: on a GPU machine (BENCHMARKS.md) before changing them.
HW_BITRATE_FACTOR = 1.25
_HW_QUALITY = {"h264": 23, "hevc": 25, "vp9": 30}


def hardware_input_options(kind: str, *, gpu_decode: bool, vaapi_device: str = "/dev/dri/renderD128") -> Options:
    """Input (and global device) options: NVENC and VAAPI decode on the GPU when ``gpu_decode``
    (frames stay in GPU memory for ``scale_cuda`` / ``scale_vaapi``); QSV gets its device."""
    if kind == "nvenc":
        return {"hwaccel": "cuda", "hwaccel_output_format": "cuda"} if gpu_decode else {}
    if kind == "vaapi":
        opts: Options = {"vaapi_device": vaapi_device}
        return opts | ({"hwaccel": "vaapi", "hwaccel_output_format": "vaapi"} if gpu_decode else {})
    return {"init_hw_device": "qsv=hw", "filter_hw_device": "hw"}


def hardware_scale(kind: str, width: int, height: int, *, gpu_decode: bool) -> list[tuple[str, dict[str, str]]]:
    """The scaling filters (name, arguments) for a hardware encode: on the GPU after a GPU decode,
    else in software and uploaded where the encoder wants GPU frames (VAAPI, QSV)."""
    if kind == "nvenc" and gpu_decode:
        return [("scale_cuda", {"w": str(width), "h": str(height), "format": "yuv420p"})]
    if kind == "vaapi" and gpu_decode:
        return [("scale_vaapi", {"w": str(width), "h": str(height), "format": "nv12"})]
    soft = [("scale", {"w": str(width), "h": str(height), "flags": "bicubic"}), ("setsar", {"r": "1"})]
    if kind == "nvenc":
        return [*soft, ("format", {"pix_fmts": POLICY.pix_fmt})]
    upload = {"extra_hw_frames": "64"} if kind == "qsv" else {}
    return [*soft, ("format", {"pix_fmts": "nv12"}), ("hwupload", upload)]


def hardware_video_options(kind: str, codec: str, fps: float, bitrate_k: int, *, segment_seconds: float,
                           policy: EncoderPolicy = POLICY) -> Options:  # fmt: skip
    """One VOD rung's video on a hardware encoder: constant quality capped at ``HW_BITRATE_FACTOR`` x
    the rung's bitrate, IDR keyframes forced on the segment grid shared with the software codecs."""
    encoder = HARDWARE_ENCODERS[kind].get(codec)
    if encoder is None:
        raise ValidationError(f"no {kind} encoder for {codec}")
    cap = round(bitrate_k * HW_BITRATE_FACTOR)
    keys = keyframe_options(segment_seconds, fps, policy)
    common: Options = {"c:v": encoder, "maxrate": f"{cap}k", "bufsize": f"{policy.bufsize_factor * cap}k",
                       "force_key_frames": keys["force_key_frames"], "g": keys["g"],
                       **({"tag:v": "hvc1"} if codec == "hevc" else {})}  # fmt: skip
    quality = str(_HW_QUALITY[codec])
    if kind == "nvenc":  # p5 + hq: the quality end of NVENC's presets at well above real time
        return {**common, "preset": "p5", "tune": "hq", "rc": "vbr", "cq": quality, "b:v": "0",
                "profile:v": "high" if codec == "h264" else "main", "forced-idr": "1", "no-scenecut": "1",
                "spatial-aq": "1", "bf": "3"}  # fmt: skip
    if kind == "qsv":
        return {**common, "preset": "medium", "global_quality": quality, "look_ahead": "0"}
    return {**common, "rc_mode": "QVBR", "global_quality": quality, "b:v": f"{cap}k"}  # VAAPI
