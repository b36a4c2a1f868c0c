"""``GET /v1/jobs/{id}/stream``: the job's progress as Server-Sent Events, so a platform shows a
progress bar without polling. Events: ``progress`` (when anything in the family moved), ``done``
(the family is terminal: the full job JSON; the stream ends), and ``: keep-alive`` comments."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mediarunner.api.auth import require
from mediarunner.api.jobs import checked_id, client, read_job
from mediarunner.client import Client
from mediarunner.errors import JobNotFoundError
from mediarunner.models.schemas import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def snapshot(job: Job) -> dict[str, Any]:
    """The progress event: the family's overall progress and each member's state."""
    family = job.family
    overall = sum(100.0 if j.state.is_terminal else j.progress for j in family) / len(family)
    return {"id": job.id, "state": job.state.value, "stage": job.stage.value if job.stage else None,
            "progress": round(overall, 1), "done": job.done,
            "family": [{"id": j.id, "type": j.type.value, "state": j.state.value,
                        "stage": j.stage.value if j.stage else None, "progress": round(j.progress, 1)}
                       for j in family]}


def sse(event: str, data: Any, seq: int) -> str:
    return f"event: {event}\nid: {seq}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(request: Request, c: Client, job: Job) -> AsyncIterator[str]:
    last: dict[str, Any] | None = None
    seq, quiet_since = 0, time.monotonic()
    while True:
        snap = snapshot(job)
        if snap != last:
            seq += 1
            yield sse("progress", snap, seq)
            last, quiet_since = snap, time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if job.done:
            yield sse("done", await run_in_threadpool(read_job, request, job.id), seq + 1)
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)
        try:
            job = await run_in_threadpool(c.get, job.id)
        except JobNotFoundError as exc:  # purged meanwhile
            yield sse("error", {"detail": str(exc)}, seq + 1)
            return


@router.get("/{job_id}/stream", dependencies=[Depends(require("read"))], response_class=StreamingResponse,
            summary="Progress as Server-Sent Events until the family is terminal",
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_job(job_id: str, request: Request) -> StreamingResponse:
    c = client(request)
    job = await run_in_threadpool(c.get, checked_id(job_id))  # unknown: 404 before the stream starts
    return StreamingResponse(_events(request, c, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
