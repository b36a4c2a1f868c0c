"""(8) Codecs side by side: encode speed (x realtime) and bitrate at equal PSNR, per codec, on the 30 s clip.

``python -m bench.codecs [--smoke] [--json out.json] [--seconds 30] [--size 1280x720] [--hardware]``

Each codec (libx264, libx265, SVT-AV1, libvpx-vp9; with ``--hardware`` also every NVENC/QSV/VAAPI
encoder whose 1-frame test encode opens here) encodes the clip's video at the clip's size with the
production policy of ``media/encoders.py`` (speed settings, keyframes on the 4 s grid) at three
constant-quality points around its default CRF, uncapped, so that the points trace its
rate-quality curve. Speed is the clip's duration / the wall time of the default point; quality is
PSNR against the source (``media/quality.py``, every 5th frame). "Bitrate at equal PSNR" is each
codec's bitrate, interpolated (log-bitrate linear in PSNR) at the PSNR x264 reaches at its
default CRF, so the codecs are compared at the same quality.
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, bench_tmp, cached_clip, cli
from mediarunner.config.settings import Settings
from mediarunner.media import probe
from mediarunner.media.encoders import (
    CODECS,
    HARDWARE_ENCODERS,
    codec_spec,
    codec_speed,
    codec_video_options,
    hardware_video_options,
    to_args,
)
from mediarunner.media.hardware import usable_encoders
from mediarunner.media.quality import measure_quality

NAME = "codecs"
TITLE = "Codecs: encode speed (x realtime) and bitrate at equal PSNR"
SEGMENT = 4.0
STEP = {"h264": 4, "hevc": 4, "av1": 8, "vp9": 6}  # CRF steps around the default (scales differ)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="clip length (default 30, smoke 1)")
    parser.add_argument("--size", help="clip size (default 1280x720, smoke 320x180)")
    parser.add_argument("--hardware", action="store_true", help="also the hardware encoders that open here")


def _options(name: str, crf: int, fps: float, settings: Settings) -> dict[str, str | None]:
    """The policy's options at constant quality ``crf``, uncapped."""
    if "_" in name:  # a hardware encoder, e.g. "h264_nvenc"
        codec, kind = name.split("_", 1)
        opts = hardware_video_options(kind, codec, fps, 100_000, segment_seconds=SEGMENT)
        key = {"nvenc": "cq", "qsv": "global_quality", "vaapi": "global_quality"}[kind]
        return {k: v for k, v in opts.items() if k not in ("maxrate", "bufsize")} | {key: str(crf)}
    opts = codec_video_options(name, 64, 64, fps, 100_000, speed=codec_speed(settings, name), segment_seconds=SEGMENT)
    opts = {k: v for k, v in opts.items() if k not in ("maxrate", "bufsize", "level:v")} | {"crf": str(crf)}
    return opts | ({"b:v": "0"} if name == "vp9" else {})


def _encode(src: Path, out: Path, opts: dict[str, str | None], size: tuple[int, int], threads: int) -> float:
    args = ["ffmpeg", "-hide_banner", "-v", "error", "-y", "-i", str(src), "-map", "0:V:0", "-an",
            "-vf", f"scale={size[0]}:{size[1]}:flags=bicubic,setsar=1,format=yuv420p", *to_args(opts),
            *(["-threads", str(threads)] if threads else []), "-f", "mp4", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def _at_psnr(points: list[dict[str, float]], target: float) -> float:
    """Bitrate at ``target`` PSNR, log-linear between (or beyond) the two nearest points."""
    pts = sorted(points, key=lambda p: p["psnr"])
    lo, hi = (pts[0], pts[1]) if target <= pts[0]["psnr"] else (pts[-2], pts[-1])
    for a, b in itertools.pairwise(pts):
        if a["psnr"] <= target <= b["psnr"]:
            lo, hi = a, b
    if hi["psnr"] == lo["psnr"]:
        return lo["kbps"]
    t = (target - lo["psnr"]) / (hi["psnr"] - lo["psnr"])
    return math.exp(math.log(lo["kbps"]) + t * (math.log(hi["kbps"]) - math.log(lo["kbps"])))


def _curve(name: str, src: Path, tmp: Path, info: Any, settings: Settings, smoke: bool) -> list[dict[str, float]]:
    codec = name.split("_")[0]
    base = codec_spec(codec).crf
    step = STEP[codec]
    points = []
    for crf in ((base, base + step) if smoke else (base - step, base, base + step)):
        out = tmp / f"{name}-{crf}.mp4"
        wall = _encode(src, out, _options(name, crf, info.fps, settings), (info.width, info.height),
                       settings.ffmpeg_threads)
        q = measure_quality(out, src, info, every=5)
        kbps = out.stat().st_size * 8 / info.duration / 1000
        points.append({"crf": crf, "seconds": wall, "kbps": kbps, "psnr": q["psnr"], "ssim": q["ssim"]})
    return points


def run(smoke: bool = False, seconds: float | None = None, size: str | None = None,
        hardware: bool = False) -> BenchResult:
    seconds = seconds or (1.0 if smoke else 30.0)
    size = size or ("320x180" if smoke else "1280x720")
    settings = Settings() if not smoke else Settings(x264_preset="ultrafast", x265_preset="ultrafast",
                                                     svtav1_preset=12, vp9_cpu_used=8)
    names = list(CODECS) + ([e for t in HARDWARE_ENCODERS.values() for e in t.values() if e in usable_encoders()]
                            if hardware else [])
    res = BenchResult(NAME, TITLE, smoke, params={
        "clip": f"{seconds:g} s {size} 25 fps (testsrc2)", "encoders": names, "psnr_sample": "every 5th frame",
        "speed": {c: codec_speed(settings, c) for c in CODECS}, "threads": settings.ffmpeg_threads or "auto"})
    src = cached_clip(seconds, size)
    info = probe(src)
    with bench_tmp(NAME) as tmp:
        curves = {name: _curve(name, src, tmp, info, settings, smoke) for name in names}
    default = {name: next(p for p in pts if p["crf"] == codec_spec(name.split("_")[0]).crf)
               for name, pts in curves.items()}
    target = default["h264"]["psnr"]
    reference = _at_psnr(curves["h264"], target)
    for name, pts in curves.items():
        at, d = _at_psnr(pts, target), default[name]
        inside = min(p["psnr"] for p in pts) <= target <= max(p["psnr"] for p in pts)
        res.add(f"{name}: speed", seconds / d["seconds"], "x realtime",
                note=f"CRF {d['crf']}: {d['kbps']:.0f} kbit/s, PSNR {d['psnr']:.2f} dB, SSIM {d['ssim']:.4f}")
        res.add(f"{name}: bitrate at equal PSNR", at, "kbit/s",
                note=f"at {target:.2f} dB (x264's default CRF){'' if inside else ', extrapolated'}")
        res.add(f"{name}: bitrate vs x264", 100 * at / reference, "%")
    res.details["curves"] = curves
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
