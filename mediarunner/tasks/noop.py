"""A job that does (almost) nothing: for control-plane benchmarks and fault tests.

Payload (``NoopPayload``): ``duration`` seconds of interruptible work, and an optional
``output`` file (any output location) published atomically with the job id and attempt.
"""

from __future__ import annotations

import time
from typing import Any

from mediarunner.errors import JobCancelled, ProcessingError
from mediarunner.models.enums import Stage
from mediarunner.models.payloads import NoopPayload
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome


def run_noop(ctx: JobContext) -> Outcome:
    p = NoopPayload.model_validate(ctx.job.payload)
    ctx.set_stage(Stage.PROCESSING)
    if ctx.job.attempt <= p.fail_attempts:
        raise ProcessingError(f"simulated transient failure on attempt {ctx.job.attempt}")
    deadline = time.monotonic() + p.duration
    while (left := deadline - time.monotonic()) > 0:
        if ctx.should_cancel():
            raise JobCancelled("cancelled")
        ctx.progress(100.0 * (1 - left / p.duration))
        time.sleep(min(left, ctx.settings.cancel_poll_seconds))  # simulated work, polled for cancel
    result: dict[str, Any] = {"noop": True}
    if p.output:
        ctx.set_stage(Stage.UPLOADING)
        f = io.publish_text(ctx, f"{ctx.job.id} {ctx.job.attempt}\n", p.output)
        result["artifacts"] = [{"kind": "text", "path": f.location, "size": f.local.stat().st_size}]
    return Outcome(result)
