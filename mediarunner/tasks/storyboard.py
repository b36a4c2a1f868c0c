"""The ``storyboard`` job (a child of a transcode): previews of the video.

Output layout under the job's output directory::

    storyboard/storyboard.jpg   sprite sheet (or .webp: the job's ``image``, else the STORYBOARD_IMAGE setting)
    storyboard/storyboard.vtt   WebVTT thumbnails track, cues ``storyboard.jpg#xywh=x,y,w,h``
    thumbnails/thumb_NNN.jpg    N preview images, when ``thumbnails`` > 0
    thumbnails/poster.jpg       the poster (with thumbnails)
"""

from __future__ import annotations

from typing import Any

from mediarunner.errors import InvalidInputError
from mediarunner.media import MediaInfo, probe
from mediarunner.media.storyboard import grid_plan, make_storyboard, make_thumbnails, plan_storyboard
from mediarunner.models.enums import Stage
from mediarunner.models.payloads import StoryboardPayload, load
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome
from mediarunner.tasks.transcode import artifact


def run_storyboard(ctx: JobContext) -> Outcome:
    p = load(StoryboardPayload, ctx.job.payload)
    s = ctx.settings
    io.check_output(ctx, p.output)
    parent = ctx.parent
    known = (parent.result or {}).get("media") if parent is not None else None
    if known is not None and not known.get("has_video"):  # refused before anything is staged or published
        raise InvalidInputError("a storyboard or thumbnails need a video stream; the input is audio only")
    src = io.stage_input(ctx, p.input)
    ctx.set_stage(Stage.PROCESSING)
    info = MediaInfo(**known) if known is not None else probe(src, ffprobe=s.ffprobe_path)
    result: dict[str, Any] = {}
    artifacts: list[dict[str, Any]] = []
    if p.storyboard:
        if p.sprites is not None:  # the caller's geometry (a PeerTube storyboard job)
            plan = grid_plan(info, **p.sprites.model_dump())
        else:
            plan = plan_storyboard(info, tile_width=s.storyboard_tile_width, max_tiles=s.storyboard_max_tiles,
                                   min_interval=s.storyboard_min_interval_seconds, columns=s.storyboard_columns)
        board = make_storyboard(src, ctx.scratch / "storyboard", info, plan, image=p.image or s.storyboard_image,
                                ffmpeg=s.ffmpeg_path, on_progress=ctx.span(0, 60), should_cancel=ctx.should_cancel)
        for f in io.publish_output(ctx, board.sprite.parent, p.output, "storyboard"):
            kind = "storyboard_vtt" if f.local.suffix == ".vtt" else "storyboard_sprite"
            artifacts.append({**artifact(kind, f.local), "path": f.location})
        result["storyboard"] = {"tiles": plan.count, "interval": round(plan.interval, 3), "columns": plan.columns,
                                "rows": plan.rows, "tile_width": plan.tile_width, "tile_height": plan.tile_height}
        ctx.log(f"storyboard: {plan.count} tiles every {plan.interval:.2f}s ({plan.columns}x{plan.rows})")
    if p.thumbnails:
        ctx.progress(60)
        shots = make_thumbnails(src, ctx.scratch / "thumbnails", info, p.thumbnails, width=s.thumbnail_width,
                                poster_width=s.poster_width, ffmpeg=s.ffmpeg_path, should_cancel=ctx.should_cancel)
        for f in io.publish_output(ctx, shots[0].parent, p.output, "thumbnails"):
            kind = "poster" if f.local.name == "poster.jpg" else "thumbnail"
            artifacts.append({**artifact(kind, f.local), "path": f.location})
        result["thumbnails"] = p.thumbnails
    result["artifacts"] = artifacts
    return Outcome(result)
