"""Hardware encoders: the selection logic and the NVENC/QSV/VAAPI command lines, checked on CPU; a
real encode on every family whose 1-frame test encode opens here (skipped where none does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediarunner.config.settings import DEFAULT_LADDER
from mediarunner.media import encode_rendition, list_encoders, plan_ladder, probe
from mediarunner.media.encode import rendition_args
from mediarunner.media.encoders import HARDWARE_ENCODERS, HW_BITRATE_FACTOR
from mediarunner.media.hardware import choose_encoder, probe_encode_args, route_hardware, usable_encoders

PAIRS = [(kind, codec) for kind, table in HARDWARE_ENCODERS.items() for codec in table]


def _args(clip: Path, hardware: str, codec: str = "h264", fps: float | None = None) -> list[str]:
    info = probe(clip)
    if fps is not None:
        info = info.__class__(**{**info.__dict__, "fps": fps})
    (r,) = plan_ladder(info, DEFAULT_LADDER, ["240p"], codecs=(codec,))
    return rendition_args(clip, Path("/tmp/out.mp4"), r, info, preset=None, threads=0, segment_seconds=2.0, start=0.0,
                          duration=None, hardware=hardware)  # fmt: skip


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_choose_encoder() -> None:
    assert choose_encoder("none", "h264", {"h264_nvenc"}) == (None, "software libx264 (no hardware asked for)")
    assert choose_encoder("nvenc", "h264", {"h264_nvenc"})[0] == "nvenc"
    assert choose_encoder("auto", "hevc", {"hevc_vaapi", "hevc_qsv"})[0] == "qsv"  # nvenc, qsv, vaapi in order
    kind, why = choose_encoder("nvenc", "h264", set())
    assert kind is None and why == "software libx264: fallback, h264_nvenc cannot open here (hardware=nvenc)"
    assert choose_encoder("nvenc", "av1", {"h264_nvenc"}) == (None, "software libsvtav1: no nvenc encoder for av1")


def test_route_hardware_to_a_capable_online_worker() -> None:
    runners = [("cpu@a", ["cpu"], []), ("gpu@b", ["cpu", "gpu"], ["h264_nvenc", "hevc_nvenc"])]
    assert route_hardware("nvenc", ["h264"], runners) == ("gpu", "hardware=nvenc: gpu@b can open h264_nvenc")
    assert route_hardware("auto", ["av1", "hevc"], runners) == ("gpu", "hardware=auto: gpu@b can open hevc_nvenc")
    queue, why = route_hardware("vaapi", ["h264"], runners)
    assert queue == "cpu" and "no online worker can open a vaapi encoder" in why and "software fallback" in why
    assert route_hardware("nvenc", ["h264"], runners, allowed=("cpu",))[0] == "cpu"  # gpu is not a job queue here


def test_nvenc_command_line_decodes_and_scales_on_the_gpu(clips: dict[str, Path]) -> None:
    args = _args(clips["av"], "nvenc")
    assert args.index("-hwaccel") < args.index("-i") and _value(args, "-hwaccel") == "cuda"
    assert _value(args, "-hwaccel_output_format") == "cuda"
    assert "scale_cuda=format=yuv420p:h=240:w=426" in _value(args, "-filter_complex")
    assert (_value(args, "-c:v"), _value(args, "-preset"), _value(args, "-rc")) == ("h264_nvenc", "p5", "vbr")
    assert _value(args, "-forced-idr") == "1" and _value(args, "-no-scenecut") == "1"
    assert _value(args, "-force_key_frames") == "expr:gte(t,n_forced*2)"
    assert _value(args, "-maxrate") == f"{round(400 * HW_BITRATE_FACTOR)}k"  # parity: more bits than x264's cap
    hevc = _args(clips["av"], "nvenc", "hevc")
    assert (_value(hevc, "-c:v"), _value(hevc, "-tag:v")) == ("hevc_nvenc", "hvc1")


def test_nvenc_falls_back_to_software_filters_when_the_rate_must_drop(clips: dict[str, Path]) -> None:
    args = _args(clips["av"], "nvenc", fps=120.0)  # fps=60 is a software filter: decode on the CPU
    assert "-hwaccel" not in args and "fps=60" in _value(args, "-filter_complex")
    assert "scale=flags=bicubic:h=240:w=426" in _value(args, "-filter_complex")


def test_qsv_and_vaapi_command_lines(clips: dict[str, Path]) -> None:
    qsv = _args(clips["av"], "qsv")
    assert _value(qsv, "-init_hw_device") == "qsv=hw"
    assert "hwupload=extra_hw_frames=64" in _value(qsv, "-filter_complex")
    assert (_value(qsv, "-c:v"), _value(qsv, "-look_ahead")) == ("h264_qsv", "0")
    vaapi = _args(clips["av"], "vaapi", "vp9")
    assert _value(vaapi, "-vaapi_device") == "/dev/dri/renderD128" and _value(vaapi, "-hwaccel") == "vaapi"
    assert "scale_vaapi=format=nv12:h=240:w=426" in _value(vaapi, "-filter_complex")
    assert (_value(vaapi, "-c:v"), _value(vaapi, "-rc_mode")) == ("vp9_vaapi", "QVBR")


def test_usable_means_a_test_encode_opened() -> None:
    assert probe_encode_args("nvenc", "h264_nvenc")[-7:] == ["-frames:v", "1", "-c:v", "h264_nvenc", "-f", "null", "-"]
    vaapi = probe_encode_args("vaapi", "h264_vaapi", vaapi_device="/dev/dri/renderD129")
    assert _value(vaapi, "-vaapi_device") == "/dev/dri/renderD129" and _value(vaapi, "-vf") == "format=nv12,hwupload"
    usable = usable_encoders()
    listed = list_encoders()
    assert usable <= listed
    # Debian's build lists NVENC everywhere; without a GPU the test encode fails and it is not usable.
    if "h264_nvenc" in listed and not Path("/dev/nvidia0").exists():
        assert "h264_nvenc" not in usable


@pytest.mark.parametrize(("kind", "codec"), PAIRS)
def test_real_hardware_encode_where_present(kind: str, codec: str, clips: dict[str, Path], tmp_path: Path) -> None:
    if HARDWARE_ENCODERS[kind][codec] not in usable_encoders():
        pytest.skip(f"{HARDWARE_ENCODERS[kind][codec]} does not open on this machine")
    info = probe(clips["av"])
    (r,) = plan_ladder(info, DEFAULT_LADDER, ["240p"], codecs=(codec,))
    encode_rendition(clips["av"], tmp_path / "hw.mp4", r, info, segment_seconds=1.0, hardware=kind)
    out = probe(tmp_path / "hw.mp4")
    assert (out.video_codec, out.width, out.height) == (codec, 426, 240)
