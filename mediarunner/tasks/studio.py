"""Studio edits: stage the input and every clip/image the operations name -> apply them in order
-> publish ``<output>/studio.mp4``.

With ``Client.submit_studio(..., transcode=True)`` a transcode-ladder branch (a child of this
job) reads that file and writes the ladder next to it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mediarunner.errors import InvalidInputError
from mediarunner.media import probe
from mediarunner.media.studio import apply_operations
from mediarunner.models.enums import Stage
from mediarunner.models.payloads import STUDIO_OUTPUT, StudioPayload, load
from mediarunner.models.studio import Compose, Intro, Outro, Watermark
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome
from mediarunner.tasks.transcode import artifact


def run_studio(ctx: JobContext) -> Outcome:
    p = load(StudioPayload, ctx.job.payload)
    s = ctx.settings
    io.check_output(ctx, p.output)
    src = io.stage_input(ctx, p.input)
    # Side inputs are staged up front (stage "downloading"), so apply_operations only looks them up.
    side: dict[str, Path] = {}
    for op in p.operations:
        url = op.url if isinstance(op, Intro | Outro | Compose) else op.image_url if isinstance(op, Watermark) else None
        if url is not None and url not in side:
            side[url] = io.stage_input(ctx, url)

    def resolve(url: str) -> Path:
        if url not in side:
            raise InvalidInputError(f"studio input {url} was not staged")
        return side[url]

    ctx.set_stage(Stage.PROCESSING)
    edited = apply_operations(src, p.operations, ctx.scratch / "studio", resolve=resolve, ffmpeg=s.ffmpeg_path,
                              ffprobe=s.ffprobe_path, preset=s.x264_preset, threads=s.ffmpeg_threads,
                              on_progress=ctx.span(0, 95), should_cancel=ctx.should_cancel,
                              cancel_poll=s.cancel_poll_seconds)
    info = probe(edited, ffprobe=s.ffprobe_path)
    ctx.log(f"edited: {len(p.operations)} operation(s) -> {info.width}x{info.height} {info.duration:.2f}s")
    (f,) = io.publish_output(ctx, edited, p.output, STUDIO_OUTPUT)
    mp4: dict[str, Any] = {**artifact("mp4", f.local, info.duration, "h264"), "path": f.location}
    return Outcome({"operations": [op.op for op in p.operations], "media": dataclasses.asdict(info),
                    "output": f.location, "artifacts": [mp4]})
