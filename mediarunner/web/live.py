"""Live regions over Server-Sent Events: ``GET /admin/live/{region}`` re-renders the region's
partial template (the very one the page includes) about once a second and sends it whenever it
changed; ``static/admin.js`` swaps it in. A job's region ends with an ``end`` event once its
family is terminal (so the browser does not reconnect)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mediarunner.web import session, views
from mediarunner.web.render import render_fragment
from mediarunner.web.session import PATH, Viewer

router = APIRouter(prefix=PATH, include_in_schema=False)
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
REVERIFY_SECONDS = 30.0  # an open stream re-checks its session's key this often (revocation ends it)

#: region -> (partial template, context reader)
REGIONS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "dashboard": ("_dashboard.html", views.dashboard),
    "runners": ("_runners.html", views.runners),
    "activity": ("_activity.html", views.activity),
    "job": ("_job.html", views.job),
}


def event(name: str, html: str) -> str:
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in html.split("\n")) + "\n"


async def _stream(request: Request, who: Viewer, region: str, job_id: str | None) -> AsyncIterator[str]:
    template, read = REGIONS[region]
    args = (job_id,) if region == "job" else ()
    last, quiet_since, verified = None, time.monotonic(), time.monotonic()
    while not await request.is_disconnected():
        if time.monotonic() - verified > REVERIFY_SECONDS:
            if not await run_in_threadpool(_still_valid, request):
                yield event("end", "")
                return
            verified = time.monotonic()
        ctx = await run_in_threadpool(read, request, *args)
        html = render_fragment(template, {"who": who, "demo": who.demo, "request": request, **ctx})
        if html != last:
            yield event("update", html)
            last, quiet_since = html, time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if region == "job" and ctx["job"].done:
            yield event("end", "")
            return
        await asyncio.sleep(POLL_SECONDS)


def _still_valid(request: Request) -> bool:
    key = request.cookies.get(session.COOKIE)
    return bool(key) and session.keys(request).verify(key or "") is not None


@router.get("/live/{region}")
async def live(request: Request, region: str, who: Annotated[Viewer, Depends(session.viewer)],
               job: Annotated[str | None, Query(max_length=36)] = None) -> StreamingResponse:
    if region not in REGIONS or (region == "job") != (job is not None):
        raise HTTPException(404, f"no live region {region[:40]!r}")
    if job is not None:
        await run_in_threadpool(views.job, request, job)  # unknown: 404 before the stream starts
    return StreamingResponse(_stream(request, who, region, job), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})
