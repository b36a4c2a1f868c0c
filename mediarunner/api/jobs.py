"""``/v1/jobs``: submit (through ``Client.submit_*``), read, list, cancel, restart, events.

Endpoints are plain ``def``: ``Client`` blocks, so FastAPI runs them in its threadpool; each
checks its key there first (:func:`~mediarunner.api.auth.authorize`: one thread hop per request).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mediarunner.api.auth import BearerKey, authorize
from mediarunner.api.schemas import LiveRequest, StudioRequest, Submission, TranscodeRequest, TranscriptionRequest
from mediarunner.client import Client
from mediarunner.models import queries, webhooks
from mediarunner.models.db import transaction
from mediarunner.models.enums import RESTARTABLE_STATES, JobState, JobType
from mediarunner.models.schemas import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JOB_ID = re.compile(r"^[0-9A-Za-z-]{1,36}$")
JobJSON = dict[str, Any]


def client(request: Request) -> Client:
    return request.app.state.client


def checked_id(job_id: str) -> str:
    """An unknown job is a 404, whatever the id looks like (nothing odd reaches the database)."""
    if not JOB_ID.match(job_id):
        raise HTTPException(404, f"no job with id {job_id[:80]!r}")
    return job_id


def job_json(job: Job, database_url: str) -> JobJSON:
    """The JSON of ``GET /v1/jobs/{id}`` (also ``mediarunner jobs show --json``): the job, with the
    family's webhook delivery (attempts, state, last error) if any."""
    delivery = transaction(lambda s: webhooks.delivery_of(s, job.root_id), url=database_url)
    return with_delivery(job, delivery)


def with_delivery(job: Job, delivery: webhooks.Delivery | None) -> JobJSON:
    return {**webhooks.job_document(job), "webhook": delivery.public() if delivery else None}


def read_job(request: Request, job_id: str) -> JobJSON:
    """The job and its family's delivery, read in one transaction."""
    checked_id(job_id)

    def read(session: Session) -> JobJSON:
        job = queries.get_job(session, job_id)
        return with_delivery(job, webhooks.delivery_of(session, job.root_id))

    return transaction(read, url=client(request).settings.database_url)


def _submit(body: Submission, call: Callable[..., Job]) -> JSONResponse:
    """``Client.submit_*`` with the body's arguments (the subscription to ``notify_url`` is part of
    its transaction); the answer is built from what was written, without reading it back, and
    is sent as it is (already JSON: no second validation of the response)."""
    job = call(**body.arguments())
    url = body.notify_url
    doc = with_delivery(job, webhooks.waiting(job.id, url) if url is not None else None)
    return JSONResponse(doc, status_code=201, headers={"Location": f"/v1/jobs/{job.id}"})


CREATED: dict[int | str, dict[str, Any]] = {201: {"description": "The job, as `GET /v1/jobs/{id}` shows it"}}


@router.post("/transcode", status_code=201, responses=CREATED,
             summary="Submit a transcode (HLS + MP4 ladder)")
def submit_transcode(body: TranscodeRequest, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    return _submit(body, client(request).submit_transcode)


@router.post("/studio", status_code=201, responses=CREATED, summary="Submit a studio edit")
def submit_studio(body: StudioRequest, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    return _submit(body, client(request).submit_studio)


@router.post("/live", status_code=201, responses=CREATED, summary="Submit a live transcode")
def submit_live(body: LiveRequest, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    return _submit(body, client(request).submit_live)


@router.post("/transcription", status_code=201, responses=CREATED,
             summary="Submit a transcription")
def submit_transcription(body: TranscriptionRequest, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    return _submit(body, client(request).submit_transcription)


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ValueError(job_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise HTTPException(400, "invalid cursor: pass next_cursor from the previous page as it is") from None
    return when, job_id


@router.get("", summary="List jobs, newest first (cursor pagination)")
def list_jobs(request: Request, key: BearerKey, state: JobState | None = None, type: JobType | None = None,
              priority_class: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
              roots_only: bool = False, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              cursor: Annotated[str | None, Query(max_length=300)] = None) -> dict[str, Any]:
    authorize(request, key, "read")
    after = decode_cursor(cursor) if cursor else None
    jobs = transaction(lambda s: queries.list_jobs_page(s, state=state, type=type, priority_class=priority_class,
                                                        roots_only=roots_only, limit=limit + 1, after=after),
                       url=client(request).settings.database_url)
    page = jobs[:limit]
    return {"items": [webhooks.job_document(j) for j in page],
            "next_cursor": encode_cursor(page[-1]) if len(jobs) > limit else None}


@router.get("/{job_id}", summary="A job with its children, progress, artifacts and webhook")
def get_job(job_id: str, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "read")
    return JSONResponse(read_job(request, job_id))


@router.post("/{job_id}/cancel", summary="Cancel a job and its unfinished descendants")
def cancel_job(job_id: str, request: Request, key: BearerKey) -> JobJSON:
    authorize(request, key, "submit")
    client(request).cancel(checked_id(job_id))
    return read_job(request, job_id)


@router.post("/{job_id}/restart", summary="Run a failed or cancelled job again")
def restart_job(job_id: str, request: Request, key: BearerKey) -> JobJSON:
    authorize(request, key, "submit")
    c = client(request)
    job = c.get(checked_id(job_id))
    if job.state not in RESTARTABLE_STATES:
        raise HTTPException(409, f"job {job_id} is {job.state.value}; only failed, timed-out or cancelled jobs "
                                 "can be restarted")
    c.restart(job_id)
    return read_job(request, job_id)


@router.get("/{job_id}/events", summary="The job's activity log, oldest first")
def job_events(job_id: str, request: Request, key: BearerKey,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[Any]:
    authorize(request, key, "read")
    client(request).get(checked_id(job_id))
    return [{"at": e.at.isoformat(), "kind": e.kind, "runner": e.runner, "job_id": e.job_id, "message": e.message}
            for e in request.app.state.fleet.events(job=job_id, limit=limit)]
