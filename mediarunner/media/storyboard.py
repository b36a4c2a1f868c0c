"""Storyboards (one sprite sheet + a WebVTT thumbnails track) and preview images (N thumbnails + a poster).

The storyboard is PeerTube's ``generate-video-storyboard``: tiles taken at a fixed interval (at
least ``min_interval`` seconds, at most ``max_tiles`` of them, so a long video gets a longer
interval), laid out ``columns`` wide in one JPEG or WebP image, and a WebVTT track whose cue for
``[k x interval, (k+1) x interval)`` is ``sprite.jpg#xywh=x,y,w,h`` (the Media Fragments spatial
form players such as video.js and Vidstack read for seek previews).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mediarunner.errors import InvalidInputError, ValidationError
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import file_input_options, option_args
from mediarunner.media.probe import MediaInfo
from mediarunner.storage.local import remove_quietly

__all__ = ["Storyboard", "StoryboardPlan", "grid_plan", "make_storyboard", "make_thumbnails", "plan_storyboard",
           "render_vtt"]

_CODEC = {"jpg": ["-c:v", "mjpeg", "-q:v", "4"], "webp": ["-c:v", "libwebp", "-quality", "75"], "png": ["-c:v", "png"]}


@dataclass(frozen=True)
class StoryboardPlan:
    count: int  # tiles
    interval: float  # seconds between two tiles
    columns: int
    rows: int
    tile_width: int
    tile_height: int


@dataclass(frozen=True)
class Storyboard:
    plan: StoryboardPlan
    sprite: Path
    vtt: Path


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def _need_video(info: MediaInfo, what: str) -> tuple[int, int]:
    if not info.has_video or not info.width or not info.height:
        raise InvalidInputError(f"{what} needs a video stream; the input has none (audio only)")
    if info.duration <= 0:
        raise InvalidInputError(f"{what} needs a video with a known, positive duration")
    return info.width, info.height


def plan_storyboard(info: MediaInfo, *, tile_width: int = 192, max_tiles: int = 100, min_interval: float = 1.0,
                    columns: int = 10) -> StoryboardPlan:  # fmt: skip
    """The tiles of ``info``'s storyboard: as many as ``min_interval`` allows, at most ``max_tiles``."""
    if tile_width < 16 or max_tiles < 1 or min_interval <= 0 or columns < 1:
        raise ValidationError("storyboard: tile_width >= 16, max_tiles >= 1, min_interval > 0, columns >= 1")
    width, height = _need_video(info, "a storyboard")
    count = max(1, min(max_tiles, math.floor(info.duration / min_interval)))
    cols = min(columns, count)
    return StoryboardPlan(count=count, interval=info.duration / count, columns=cols, rows=math.ceil(count / cols),
                          tile_width=_even(tile_width), tile_height=_even(tile_width * height / width))  # fmt: skip


def grid_plan(info: MediaInfo, *, tile_width: int, tile_height: int, columns: int, rows: int,
              interval: float) -> StoryboardPlan:  # fmt: skip
    """A storyboard of the geometry the caller gives (PeerTube computes it server-side): a tile every
    ``interval`` seconds from 0, as many as the video has, at most ``columns`` x ``rows``; the
    image is always ``columns`` x ``rows`` tiles (cells past the last tile stay black)."""
    if min(tile_width, tile_height) < 8 or columns < 1 or rows < 1 or interval <= 0:
        raise ValidationError("storyboard grid: tiles >= 8 pixels, columns and rows >= 1, interval > 0")
    _need_video(info, "a storyboard")
    count = max(1, min(columns * rows, math.ceil(info.duration / interval - 1e-6)))
    return StoryboardPlan(count=count, interval=interval, columns=columns, rows=rows, tile_width=tile_width,
                          tile_height=tile_height)


def _timestamp(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def render_vtt(plan: StoryboardPlan, sprite_uri: str, duration: float) -> str:
    """The WebVTT thumbnails track: one cue per tile, pointing into the sprite with ``#xywh``."""
    lines = ["WEBVTT", ""]
    for k in range(plan.count):
        x, y = (k % plan.columns) * plan.tile_width, (k // plan.columns) * plan.tile_height
        end = duration if k == plan.count - 1 else (k + 1) * plan.interval
        lines += [f"{_timestamp(k * plan.interval)} --> {_timestamp(end)}",
                  f"{sprite_uri}#xywh={x},{y},{plan.tile_width},{plan.tile_height}", ""]  # fmt: skip
    return "\n".join(lines)


def _src(src: Path, seek: float | None = None) -> list[str]:
    return [*option_args(file_input_options()), *(["-ss", f"{seek:.3f}"] if seek is not None else []),
            "-i", "file:" + str(src.resolve())]  # fmt: skip


def make_storyboard(src: Path, out_dir: Path, info: MediaInfo, plan: StoryboardPlan, *, image: str = "jpg",
                    ffmpeg: str = "ffmpeg", on_progress: Callable[[float], None] | None = None,
                    should_cancel: Callable[[], bool] | None = None) -> Storyboard:  # fmt: skip
    """Write ``out_dir/storyboard.<image>`` (the sprite) and ``out_dir/storyboard.vtt``."""
    if image not in _CODEC:
        raise ValidationError(f"storyboard image must be one of {sorted(_CODEC)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    sprite, vtt = out_dir / f"storyboard.{image}", out_dir / "storyboard.vtt"
    graph = (f"fps=1/{plan.interval:.6f},scale={plan.tile_width}:{plan.tile_height}:flags=bicubic,setsar=1,"
             f"tile={plan.columns}x{plan.rows}")  # fmt: skip
    args = [*_src(src), "-map", "0:V:0", "-vf", graph, "-frames:v", "1", *_CODEC[image], "-an", "-sn", "-dn",
            "-f", "image2", "-update", "1", "file:" + str(sprite.resolve())]  # fmt: skip
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=info.duration, on_progress=on_progress, should_cancel=should_cancel)
    except BaseException:
        remove_quietly(sprite)
        raise
    vtt.write_text(render_vtt(plan, sprite.name, info.duration), encoding="utf-8")
    return Storyboard(plan=plan, sprite=sprite, vtt=vtt)


def make_thumbnails(src: Path, out_dir: Path, info: MediaInfo, count: int, *, width: int = 320,
                    poster_width: int = 1280, ffmpeg: str = "ffmpeg",
                    should_cancel: Callable[[], bool] | None = None) -> list[Path]:  # fmt: skip
    """``count`` JPEG thumbnails evenly spread (the middle of each of ``count`` equal spans) as
    ``thumb_000.jpg``..., and ``poster.jpg`` (a frame at a quarter of the video, at most
    ``poster_width`` wide, never upscaled). Returns the thumbnails, then the poster."""
    src_w, src_h = _need_video(info, "thumbnails")
    if count < 0:
        raise ValidationError("thumbnails must be >= 0")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = [(out_dir / f"thumb_{k:03d}.jpg", info.duration * (k + 0.5) / count, width) for k in range(count)]
    shots.append((out_dir / "poster.jpg", info.duration / 4, min(poster_width, src_w)))
    for path, t, w in shots:
        args = [*_src(src, t), "-map", "0:V:0", "-frames:v", "1",
                "-vf", f"scale={_even(w)}:{_even(w * src_h / src_w)}:flags=bicubic,setsar=1",
                *_CODEC["jpg"], "-an", "-f", "image2", "-update", "1", "file:" + str(path.resolve())]  # fmt: skip
        try:
            run_ffmpeg(args, ffmpeg=ffmpeg, should_cancel=should_cancel)
        except BaseException:
            for p, _, _ in shots:
                remove_quietly(p)
            raise
    return [p for p, _, _ in shots]
