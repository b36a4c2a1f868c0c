"""``/v1/runner/``: the protocol of remote (HTTP) runners, modelled on PeerTube's.

A runner registers with a registration token (``mediarunner tokens create``) and gets a runner
token (``Authorization: Bearer mrr_...``). It asks for jobs with a long poll (answered as soon as
a job is pending on a remote queue: no polling latency on the runner's side), accepts one (a
job token bound to the job's attempt: a second accept gets 409), reports progress with
``update`` (the heartbeat), and ends the attempt with ``success``, ``error`` or ``abort``. Every
job-scoped call carries the job token (``Mediarunner-Job-Token``): a stale one (the attempt was
failed over, cancelled or aborted) gets 409 and the runner drops the work. Files move through
:mod:`mediarunner.api.runner_files`. State changes go through ``models.transitions``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediarunner.api.auth import CHALLENGE, bearer
from mediarunner.api.jobs import checked_id
from mediarunner.api.runner_limits import RateLimiter, retry_after
from mediarunner.api.runner_schemas import Capabilities
from mediarunner.api.runner_watch import watch_of
from mediarunner.config import Settings
from mediarunner.errors import PermanentError, TransientError
from mediarunner.models import remote, runners, transitions
from mediarunner.models.balancing import Balance
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType, Stage
from mediarunner.models.fleet_queries import queue_idle_slots
from mediarunner.models.health import HealthThresholds
from mediarunner.models.queries import get_job, load_job
from mediarunner.models.retry import RetryPolicy, decide
from mediarunner.models.schemas import Job
from mediarunner.models.tables import JobRow, RunnerRow

router = APIRouter(prefix="/v1/runner", tags=["remote runners"])
T = TypeVar("T")
JOB_TOKEN = "Mediarunner-Job-Token"


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def tx(request: Request, fn: Callable[[Session], T]) -> T:
    return transaction(fn, url=settings_of(request).database_url)


def runner_auth(request: Request,
                credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> remote.RemoteRunner:
    """The runner holding the bearer runner token; 401 when unknown, unregistered or cut off."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send the runner token as `Authorization: Bearer mrr_...`", headers=CHALLENGE)
    runner = tx(request, lambda s: remote.authenticate(s, credentials.credentials, utcnow()))
    if runner is None:
        raise HTTPException(401, "this runner is not registered (unknown runner token, unregistered, or its "
                                 "registration token was revoked)", headers=CHALLENGE)
    wait = limiter_of(request).take(runner.id, time.monotonic())
    if wait > 0:
        raise HTTPException(429, f"too many requests from this runner (RUNNER_RATE_PER_SECOND "
                                 f"{settings_of(request).runner_rate_per_second:g}): retry in {wait:.2f} s",
                            headers={"Retry-After": retry_after(wait)})
    return runner


def limiter_of(request: Request) -> RateLimiter:
    limiter = getattr(request.app.state, "runner_limiter", None)
    if limiter is None:
        settings = settings_of(request)
        limiter = request.app.state.runner_limiter = RateLimiter(settings.runner_rate_per_second,
                                                                 settings.runner_rate_burst)
    return limiter


Runner = Annotated[remote.RemoteRunner, Depends(runner_auth)]
JobToken = Annotated[str, Header(alias=JOB_TOKEN, min_length=8, max_length=200)]


def attempt_of(request: Request, runner: remote.RemoteRunner, job_id: str, job_token: str, *,
               finished_ok: bool = False) -> int:
    """The attempt ``job_token`` stands for, if it is still this runner's live one (or, with
    ``finished_ok``, the completed one: files it publishes after completing). 404: not this
    runner's token for this job; 409: stale."""
    checked_id(job_id)
    check = tx(request, lambda s: remote.check_job_token(s, runner, job_id, job_token))
    if not check.owned:
        raise HTTPException(404, f"no job {job_id[:40]!r} accepted by this runner with this job token")
    if not (check.current if finished_ok else check.running):
        raise HTTPException(409, f"stale job token: the job is {check.state} and attempt {check.attempt} is over; "
                                 "drop the work")
    return check.attempt


def attempt_scratch(settings: Settings, kind: str, job_id: str, attempt: int) -> Path:
    """Where the server keeps an attempt's files in transit (``remote-uploads``, ``remote-inputs``...)."""
    return Path(settings.scratch_dir) / kind / f"{job_id}-{attempt}"


def drop_uploads(settings: Settings, job_id: str, attempt: int) -> None:
    """The attempt ended without completing: what it uploaded but never published goes."""
    shutil.rmtree(attempt_scratch(settings, "remote-uploads", job_id, attempt), ignore_errors=True)


# --------------------------------------------------------------------------- registration

Concurrency = Field(default=None, ge=1, le=256)


class Registration(BaseModel):
    registration_token: str = Field(min_length=8, max_length=200)
    name: str = Field(pattern=remote.NAME.pattern)
    capabilities: Capabilities | None = None  # what it can run (encoders, GPUs, Whisper models)
    concurrency: int | None = Concurrency


@router.post("/register", status_code=201, summary="Exchange a registration token for a runner token")
def register(body: Registration, request: Request) -> dict[str, Any]:
    caps = body.capabilities.stored() if body.capabilities else None
    got = tx(request, lambda s: remote.register(s, body.registration_token, body.name, utcnow(),
                                                settings_of(request).remote_queues, caps, body.concurrency or 1))
    if got is None:
        raise HTTPException(401, "unknown or revoked registration token", headers=CHALLENGE)
    runner, secret = got
    return {"id": runner.id, "name": runner.name, "hostname": runner.hostname, "runner_token": secret,
            **limits(settings_of(request))}


def limits(settings: Settings) -> dict[str, Any]:
    """What a runner must know of the server: the largest upload chunk, the remote queues, the
    limits of its token."""
    return {"max_chunk_bytes": max(1024, settings.api_max_body_bytes - 1024), "queues": settings.remote_queues,
            "max_upload_bytes": settings.runner_max_upload_bytes,
            "max_job_upload_bytes": settings.runner_max_job_upload_bytes,
            "rate_per_second": settings.runner_rate_per_second, "rate_burst": settings.runner_rate_burst}


@router.post("/unregister", summary="Unregister this runner (its running jobs go back to pending)")
def unregister(runner: Runner, request: Request) -> dict[str, Any]:
    aborted = tx(request, lambda s: remote.unregister(s, runner, utcnow()))
    return {"unregistered": runner.id, "aborted_jobs": aborted}


@router.get("/me", summary="This runner and the server's limits")
def me(runner: Runner, request: Request) -> dict[str, Any]:
    return {"id": runner.id, "name": runner.name, "hostname": runner.hostname, **limits(settings_of(request))}


# --------------------------------------------------------------------------- asking for and accepting jobs

class JobRequest(BaseModel):
    job_types: list[JobType] = Field(default_factory=list, max_length=20)  # empty: any
    queues: list[str] = Field(default_factory=list, max_length=20)  # empty: every remote queue
    timeout: float = Field(default=20.0, ge=0, le=60)
    # Sent when they change (a runner sends them with its first request): routing reads them.
    capabilities: Capabilities | None = None
    concurrency: int | None = Concurrency


@router.post("/jobs/request", summary="Pending jobs this runner may accept (a long poll)")
async def request_jobs(body: JobRequest, runner: Runner, request: Request) -> dict[str, Any]:
    settings = settings_of(request)
    allowed = settings.remote_queues
    queues = [q for q in body.queues if q in allowed] if body.queues else allowed
    if body.queues and not queues:
        raise HTTPException(422, f"remote runners take jobs from the queues {', '.join(allowed)} only")
    if body.capabilities is not None or body.concurrency is not None:
        await run_in_threadpool(tx, request, lambda s: _advertise(s, runner, body))
    deadline = time.monotonic() + min(body.timeout, settings.runner_poll_max_seconds)
    watch, balance = watch_of(request), Balance.from_settings(settings)
    while True:
        version = watch.version
        found = await run_in_threadpool(tx, request, lambda s: remote.offers(
            s, runner, queues, body.job_types, utcnow(), classes=settings.priority_classes, balance=balance)
            if remote.accepting(s, runner) else [])
        left = deadline - time.monotonic()
        if found or left <= 0 or await request.is_disconnected():
            break
        await watch.wait(version, min(left, 1.0))  # at least once a second: a runner that hung up
    return {"jobs": [{"id": i, "attempt": a, "type": t.value} for i, a, t in found]}


def _advertise(s: Session, runner: remote.RemoteRunner, body: JobRequest) -> None:
    caps = body.capabilities.stored() if body.capabilities is not None else None
    if caps is None:  # concurrency only: keep what it advertised
        caps = runners_capabilities(s, runner.hostname)
    remote.advertise(s, runner, caps, body.concurrency or runners_concurrency(s, runner.hostname), utcnow())


def runners_capabilities(s: Session, hostname: str) -> dict[str, Any]:
    return dict(s.scalar(select(RunnerRow.capabilities).where(RunnerRow.hostname == hostname)) or {})


def runners_concurrency(s: Session, hostname: str) -> int:
    return int(s.scalar(select(RunnerRow.concurrency).where(RunnerRow.hostname == hostname)) or 1)


class Accept(BaseModel):
    attempt: int = Field(ge=1)


@router.post("/jobs/{job_id}/accept", summary="Accept a pending job: its job token, payload and parent")
def accept(job_id: str, body: Accept, runner: Runner, request: Request) -> dict[str, Any]:
    checked_id(job_id)

    balance = Balance.from_settings(settings_of(request))

    def claim(s: Session) -> tuple[Job, Job | None, str] | str | None:
        now = utcnow()
        why = remote.lacks(s, runner, job_id, now, balance)
        if why is not None:
            return why
        job = transitions.runner_accept(s, job_id, body.attempt, runner.hostname, runner.id, now)
        if job is None:
            return None
        if balance.method == "round_robin":
            remote.stamp_claim(s, runner, now)
        token = remote.issue_job_token(s, runner, job.id, job.attempt, now)
        return job, load_job(s, job.parent_id) if job.parent_id else None, token

    got = tx(request, claim)
    if isinstance(got, str):
        raise HTTPException(409, f"job {job_id[:40]!r} is not for this runner: {got}")
    if got is None:
        raise HTTPException(409, f"job {job_id[:40]!r} attempt {body.attempt} is not pending (taken, cancelled, "
                                 "superseded or not due)")
    job, parent, token = got
    return {"job_token": token, "job": job.model_dump(mode="json"),
            "parent": parent.model_dump(mode="json") if parent else None}


# --------------------------------------------------------------------------- the running attempt

class Update(BaseModel):
    progress: float | None = Field(default=None, ge=0, le=100)
    stage: Stage | None = None
    result: dict[str, Any] | None = None  # interim facts (bytes moved, part encoded)
    log_tail: str | None = Field(default=None, max_length=20_000)


@router.post("/jobs/{job_id}/update", summary="Progress and stage: the attempt's heartbeat")
def update(job_id: str, body: Update, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)
    ok = tx(request, lambda s: transitions.touch(s, job_id, attempt, utcnow(), progress=body.progress,
                                                 stage=body.stage, result=body.result, log_tail=body.log_tail))
    if not ok:
        raise HTTPException(409, "stale job token: the attempt is over; drop the work")
    return {"ok": True}


@router.get("/jobs/{job_id}/state", summary="The job's state and attempt (a fence before publishing)")
def state(job_id: str, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt_of(request, runner, job_id, job_token, finished_ok=True)
    job = tx(request, lambda s: get_job(s, job_id, with_children=False))
    return {"state": job.state.value, "attempt": job.attempt}


@router.get("/jobs/{job_id}/family", summary="The job's family as committed (its root with descendants)")
def family(job_id: str, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt_of(request, runner, job_id, job_token, finished_ok=True)

    def read(s: Session) -> Job:
        return get_job(s, get_job(s, job_id, with_children=False).root_id)

    return {"family": tx(request, read).model_dump(mode="json")}


class Success(BaseModel):
    result: dict[str, Any] = Field(default_factory=dict)
    stage: Stage | None = None


@router.post("/jobs/{job_id}/success", summary="The attempt completed; the family as committed")
def success(job_id: str, body: Success, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)

    def complete(s: Session) -> Job | None:
        now = utcnow()
        job = get_job(s, job_id, with_children=False)
        transitions.lock_family(s, job.root_id, now)
        if not transitions.complete(s, job_id, attempt, body.result, now, worker=runner.hostname, stage=body.stage,
                                    count=True):
            return None
        # Children for Celery queues (e.g. a transcription branch) were never published with a
        # chain: the outbox publishes them at its next tick.
        celery_children = s.scalars(select(JobRow.id).where(
            JobRow.parent_id == job_id, JobRow.state == JobState.PENDING,
            JobRow.queue.not_in(settings_of(request).remote_queues))).all()
        transitions.clear_dispatched(s, celery_children)
        return get_job(s, job.root_id)

    root = tx(request, complete)
    if root is None:
        raise HTTPException(409, "stale job token: the attempt is over; its result was discarded")
    return {"family": root.model_dump(mode="json")}


class Failure(BaseModel):
    message: str = Field(max_length=4000)
    kind: Literal["transient", "permanent"] = "transient"
    log_tail: str | None = Field(default=None, max_length=20_000)


@router.post("/jobs/{job_id}/error", summary="The attempt failed: retried (transient) or failed for good")
def error(job_id: str, body: Failure, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)
    settings = settings_of(request)
    exc = PermanentError(body.message) if body.kind == "permanent" else TransientError(body.message)
    policy = RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)

    def end(s: Session) -> str | None:
        now = utcnow()
        decision = decide(exc, get_job(s, job_id, with_children=False), policy)
        if decision.retry:
            run_after = now + timedelta(seconds=decision.delay)
            outcome, ok = "retrying", transitions.requeue(s, job_id, attempt, body.message, run_after, now)
        else:
            outcome, ok = "failed", transitions.fail(s, job_id, attempt, body.message, decision.kind, now,
                                                     log_tail=body.log_tail)
        if ok:
            runners.count_outcome(s, runner.hostname, completed=False)
        return outcome if ok else None

    outcome = tx(request, end)
    if outcome is None:
        raise HTTPException(409, "stale job token: the attempt is over")
    drop_uploads(settings, job_id, attempt)
    return {"outcome": outcome}


class Abort(BaseModel):
    reason: str = Field(default="aborted by the runner", max_length=500)


@router.post("/jobs/{job_id}/abort", summary="Give the job back (pending again; no failure spent)")
def abort(job_id: str, body: Abort, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)
    if not tx(request, lambda s: transitions.runner_abort(s, job_id, attempt, body.reason, utcnow())):
        raise HTTPException(409, "stale job token: the attempt is over")
    drop_uploads(settings_of(request), job_id, attempt)
    return {"state": JobState.PENDING.value}


class Prune(BaseModel):
    keep: list[str] = Field(max_length=10_000)


@router.post("/jobs/{job_id}/prune", summary="Drop waiting children the job decided not to run")
def prune(job_id: str, body: Prune, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)
    return {"dropped": tx(request, lambda s: transitions.prune_children(s, job_id, attempt, set(body.keep)))}


@router.get("/jobs/{job_id}/idle-slots", summary="Slots of a queue that would start a job now, besides this one")
def idle_slots(job_id: str, runner: Runner, job_token: JobToken, request: Request,
               queue: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]) -> dict[str, Any]:
    """What the transcode planner reads to lay a ladder out (see ``fleet_queries.queue_idle_slots``)."""
    attempt_of(request, runner, job_id, job_token)
    thresholds = HealthThresholds.from_settings(settings_of(request))
    return {"idle": tx(request, lambda s: queue_idle_slots(s, queue, utcnow(), thresholds))}


class PartEncoded(BaseModel):
    result: dict[str, Any] | None = None  # the interim result to record instead (a ladder's published rungs)


@router.post("/jobs/{job_id}/part-encoded", summary="A split rendition's part is encoded: the family so far")
def part_encoded(job_id: str, runner: Runner, job_token: JobToken, request: Request,
                 body: PartEncoded | None = None) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token)

    def record(s: Session) -> Job | None:
        job = get_job(s, job_id, with_children=False)
        return transitions.record_part_encoded(s, job_id, attempt, job.root_id, utcnow(),
                                               body.result if body is not None else None)

    family = tx(request, record)
    if family is None:
        raise HTTPException(409, "stale job token: the attempt is over")
    return {"family": family.model_dump(mode="json")}
