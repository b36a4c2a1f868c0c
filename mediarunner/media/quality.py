"""Quality numbers: PSNR and SSIM of a rendition against its source (ffmpeg's ``psnr`` and ``ssim``
filters), on a sample of the frames, so that operators can compare codecs and encoders with data.

The rendition is scaled back to the source's display size (bicubic, what a player does on a
full-size screen) and both are reduced to every ``every``-th frame at the rendition's frame rate;
PSNR is the average over Y, U and V (ffmpeg's ``average``), SSIM its ``All``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mediarunner.errors import ProcessingError
from mediarunner.media.encoders import POLICY, rung_fps
from mediarunner.media.formats import file_input_options, option_args
from mediarunner.media.probe import MediaInfo

__all__ = ["measure_quality", "quality_graph"]

_PSNR = re.compile(r"PSNR y:[\d.inf]+ u:[\d.inf]+ v:[\d.inf]+ average:([\d.]+|inf)")
_SSIM = re.compile(r"SSIM .* All:([\d.]+)")


def quality_graph(width: int, height: int, fps: float, every: int) -> str:
    """The filter graph: [0] the rendition, [1] the source; two null outputs, [psnr] and [ssim]."""
    sample = f"select='not(mod(n\\,{every}))',setpts=N/TB"
    common = f"scale={width}:{height}:flags=bicubic,setsar=1,format={POLICY.pix_fmt},{sample}"
    return (f"[0:v:0]{common},split[d1][d2];[1:V:0]fps={fps:g},{common},split[r1][r2];"
            "[d1][r1]psnr[psnr];[d2][r2]ssim[ssim]")


def measure_quality(rendition: Path, src: Path, info: MediaInfo, *, every: int = 10, ffmpeg: str = "ffmpeg",
                    timeout: float = 3600) -> dict[str, float]:  # fmt: skip
    """``{"psnr": dB, "ssim": 0..1, "every": every}`` of ``rendition`` against ``src``."""
    if not (info.has_video and info.width and info.height) or every < 1:
        raise ValueError("quality needs a video source and every >= 1")
    graph = quality_graph(info.width, info.height, rung_fps(info.fps), every)
    args = [ffmpeg, "-hide_banner", "-nostats", "-nostdin", *option_args(file_input_options()),
            "-i", "file:" + str(rendition.resolve()), *option_args(file_input_options()),
            "-i", "file:" + str(src.resolve()), "-filter_complex", graph,
            "-map", "[psnr]", "-f", "null", "-", "-map", "[ssim]", "-f", "null", "-"]  # fmt: skip
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"quality measurement failed: {exc}") from exc
    psnr, ssim = _PSNR.search(res.stderr), _SSIM.search(res.stderr)
    if res.returncode != 0 or psnr is None or ssim is None:
        raise ProcessingError(f"quality measurement failed: {res.stderr.strip()[-500:]}")
    value = float(psnr.group(1)) if psnr.group(1) != "inf" else 100.0  # identical frames
    return {"psnr": round(value, 3), "ssim": round(float(ssim.group(1)), 5), "every": every}
