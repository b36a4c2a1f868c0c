"""Remote (HTTP) runners: registration, authentication, job tokens, cut-off — every write to
``remote_runners`` and ``remote_job_tokens``. Job state changes go through ``transitions``.

A runner token is ``mrr_<id>_<secret>`` and a job token ``mrj_<secret>`` (256 random bits each);
only their SHA-256 is stored. A runner is valid while it is registered and the registration
token it registered with is not revoked: revoking that token cuts it off at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.orm import Session

from mediarunner.models import runners, tokens, transitions
from mediarunner.models.balancing import STAMP_CLAIMER, Balance, preferred
from mediarunner.models.capabilities import Needs, Skills, runner_can_run
from mediarunner.models.enums import JobState, JobType, RunnerStatus
from mediarunner.models.remote_tables import JobTokenRow, RemoteRunnerRow
from mediarunner.models.statements import JOBS
from mediarunner.models.tables import JobRow, RunnerRow

PREFIX, JOB_PREFIX = "mrr_", "mrj_"
_TOKEN = re.compile(r"^mrr_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SEEN_EVERY = timedelta(seconds=5)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class RemoteRunner:
    id: str
    name: str
    registration_token_id: str
    created_at: datetime
    last_seen_at: datetime | None
    unregistered_at: datetime | None

    @property
    def hostname(self) -> str:
        """The name jobs and events show for it (``jobs.worker``)."""
        return f"{self.name}@remote-{self.id[:6]}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(r: RemoteRunnerRow) -> RemoteRunner:
    return RemoteRunner(r.id, r.name, r.registration_token_id, r.created_at, r.last_seen_at, r.unregistered_at)


def register(session: Session, registration_token: str, name: str, now: datetime,
             queues: Collection[str] = (), capabilities: Mapping[str, Any] | None = None,
             concurrency: int = 1) -> tuple[RemoteRunner, str] | None:
    """Exchange a valid registration token for a runner token. None: unknown or revoked token.
    The runner also joins the fleet's ``runners`` (as ``name@remote-<id>``, instance = its id), so
    it shows, with health from its calls, wherever runners do, and obeys maintenance/disable."""
    token_id = tokens.verify_token(session, registration_token, now)
    if token_id is None:
        return None
    runner_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = RemoteRunnerRow(id=runner_id, name=name[:100], token_hash=_hash(secret), registration_token_id=token_id,
                          created_at=now, last_seen_at=now)
    session.add(row)
    session.flush()
    runner = _info(row)
    runners.register(session, runners.RunnerInfo(runner.hostname, tuple(queues), concurrency, "remote",
                                                 {**(capabilities or {}), "remote": True}, instance=runner_id),
                     token_id, now)
    return runner, f"{PREFIX}{runner_id}_{secret}"


def authenticate(session: Session, runner_token: str, now: datetime) -> RemoteRunner | None:
    """The registered runner holding ``runner_token`` whose registration token is still valid."""
    m = _TOKEN.match(runner_token)
    if m is None:
        return None
    row = session.get(RemoteRunnerRow, m.group(1))
    ok = hmac.compare_digest(row.token_hash if row is not None else _hash(""), _hash(m.group(2)))
    if row is None or not ok or row.unregistered_at is not None:
        return None
    if not tokens.is_valid(session, row.registration_token_id):
        cut_off(session, [row.id], now, f"registration token {row.registration_token_id} revoked")
        return None
    runner = _info(row)
    if row.last_seen_at is None or now - row.last_seen_at >= SEEN_EVERY:
        session.execute(update(RemoteRunnerRow).where(RemoteRunnerRow.id == row.id).values(last_seen_at=now)
                        .execution_options(synchronize_session=False))
        concurrency = session.scalar(select(RunnerRow.concurrency).where(RunnerRow.hostname == runner.hostname))
        runners.heartbeat(session, runner.hostname, {"remote": True}, concurrency or 1, now)
    return runner


def accepting(session: Session, runner: RemoteRunner) -> bool:
    """False while an operator keeps the runner in maintenance or disabled, or while it runs as
    many jobs as the operator's concurrency for it (``runners set-concurrency``): it takes no new jobs."""
    row = session.execute(select(RunnerRow.status, RunnerRow.desired_concurrency)
                          .where(RunnerRow.hostname == runner.hostname)).first()
    if row is None:
        return True
    if row[0] != RunnerStatus.ENABLED:
        return False
    if row[1] is None:
        return True
    running = session.scalar(select(func.count()).select_from(JobRow).where(
        JobRow.worker_instance == runner.id, JobRow.state == JobState.RUNNING)) or 0
    return running < row[1]


def advertise(session: Session, runner: RemoteRunner, capabilities: Mapping[str, Any], concurrency: int,
              now: datetime) -> None:
    """What the runner says it can do (its encoders, GPUs, Whisper models: ``Skills``) and how
    many jobs it runs at once: routing and balancing read them from its fleet row."""
    runners.heartbeat(session, runner.hostname, {"remote": True}, concurrency, now,
                      capabilities={**capabilities, "remote": True})


def _skills(runner: RemoteRunner) -> Any:
    """SQL: the runner's advertised skills (``|gpu|model:...|enc:...|``; ``||``: nothing yet)."""
    return func.coalesce(select(RunnerRow.skills).where(RunnerRow.hostname == runner.hostname)
                         .scalar_subquery(), literal("||"))


def lacks(session: Session, runner: RemoteRunner, job_id: str, now: datetime,
          balance: Balance | None = None) -> str | None:
    """Why ``runner`` may not accept the job (None: it may): a need it does not meet, or (with
    ``balance``) a better runner that should take it first (``models.balancing``). One read."""
    guard = preferred(balance, JOBS) if balance is not None else literal(True)
    row = session.execute(select(JobRow.need_gpu, JobRow.need_model, JobRow.need_encoder, _skills(runner),
                                 guard).where(JobRow.id == job_id),
                          {"worker_": runner.hostname, **(balance.params(now) if balance else {})}).first()
    if row is None:
        return None  # the claim itself says the job is not pending
    missing = Skills.from_tokens(row[3]).missing(Needs(gpu=bool(row[0]), model=row[1], encoder=row[2]))
    if missing is not None:
        return f"this runner lacks {missing}"
    if not row[4]:
        return "another runner is preferred for it (runner priority and balancing)"
    return None


def stamp_claim(session: Session, runner: RemoteRunner, now: datetime) -> None:
    """``round_robin`` balancing: when this runner last took a job."""
    session.execute(STAMP_CLAIMER, {"runner": runner.hostname, "now": now})


def cut_off(session: Session, runner_ids: Collection[str], now: datetime, reason: str) -> list[str]:
    """Unregister runners; their running jobs go back to pending at once (no failure spent).
    Returns the ids of the jobs given back."""
    ids = list(runner_ids)
    if not ids:
        return []
    # remote_runners before runners: the lock order of a runner's own calls (authenticate), so a
    # cut-off never deadlocks with them
    session.execute(update(RemoteRunnerRow)
                    .where(RemoteRunnerRow.id.in_(ids), RemoteRunnerRow.unregistered_at.is_(None))
                    .values(unregistered_at=now).execution_options(synchronize_session=False))
    rows = session.scalars(select(RemoteRunnerRow).where(RemoteRunnerRow.id.in_(ids))).all()
    for r in rows:
        runners.unregister(session, _info(r).hostname, now, reason)
    running = session.execute(select(JobRow.id, JobRow.attempt).where(
        JobRow.worker_instance.in_(ids), JobRow.state == JobState.RUNNING)).all()
    return [job_id for job_id, attempt in running
            if transitions.runner_abort(session, job_id, attempt, f"runner unregistered: {reason}", now)]


def unregister_by_token(session: Session, token_id: str, now: datetime) -> list[str]:
    """The registration token was revoked: cut off every runner registered with it."""
    ids = list(session.scalars(select(RemoteRunnerRow.id).where(
        RemoteRunnerRow.registration_token_id == token_id, RemoteRunnerRow.unregistered_at.is_(None))))
    return cut_off(session, ids, now, f"registration token {token_id} revoked")


def list_runners(session: Session, *, include_unregistered: bool = False) -> list[RemoteRunner]:
    stmt = select(RemoteRunnerRow).order_by(RemoteRunnerRow.created_at)
    if not include_unregistered:
        stmt = stmt.where(RemoteRunnerRow.unregistered_at.is_(None))
    return [_info(r) for r in session.scalars(stmt)]


def offers(session: Session, runner: RemoteRunner, queues: Collection[str], types: Collection[JobType],
           now: datetime, limit: int = 5, classes: Mapping[str, int] | None = None,
           balance: Balance | None = None) -> list[tuple[str, int, JobType]]:
    """Pending jobs ``runner`` may accept: (id, attempt, type), best first in the queues' rank order
    (priority class rank, priority, age: the order of beat's rank tick). Only jobs whose needs it
    meets (its advertised skills: the condition of the Celery workers' claim) and, with
    ``balance``, for which no better runner waits (runner priority, ``RUNNER_BALANCING``)."""
    last = max((classes or {}).values(), default=0) + 1
    class_rank = case(*((JobRow.priority_class == k, v) for k, v in classes.items()), else_=last) \
        if classes else literal(0)
    stmt = (select(JobRow.id, JobRow.attempt, JobRow.type)
            .where(JobRow.state == JobState.PENDING, JobRow.queue.in_(list(queues)),
                   or_(JobRow.run_after.is_(None), JobRow.run_after <= now), runner_can_run(_skills(runner), JOBS))
            .order_by(class_rank, JobRow.priority.desc(), JobRow.created_at, JobRow.id).limit(limit))
    if types:
        stmt = stmt.where(JobRow.type.in_(list(types)))
    params: dict[str, Any] = {"worker_": runner.hostname}
    if balance is not None:
        stmt, params = stmt.where(preferred(balance, JOBS)), {**params, **balance.params(now)}
    return [(r[0], r[1], r[2]) for r in session.execute(stmt, params)]


def pending_signature(session: Session, queues: Collection[str], now: datetime) -> tuple[int, datetime | None]:
    """Changes whenever a job becomes offerable on ``queues`` (submitted, released, given back, due)."""
    row = session.execute(select(func.count(), func.max(JobRow.updated_at)).where(
        JobRow.state == JobState.PENDING, JobRow.queue.in_(list(queues)),
        or_(JobRow.run_after.is_(None), JobRow.run_after <= now))).one()
    return int(row[0]), row[1]


def issue_job_token(session: Session, runner: RemoteRunner, job_id: str, attempt: int, now: datetime) -> str:
    secret = JOB_PREFIX + secrets.token_urlsafe(32)
    session.add(JobTokenRow(token_hash=_hash(secret), job_id=job_id, attempt=attempt, runner_id=runner.id,
                            created_at=now))
    return secret


@dataclass(frozen=True)
class JobTokenCheck:
    """What a job token is worth now: ``owned`` (this runner's token for this job), ``running``
    (its attempt is the job's running one), and the job's state and attempt."""

    owned: bool
    running: bool = False
    current: bool = False  # its attempt is the job's latest on this runner (running or completed)
    state: JobState | None = None
    attempt: int = 0


def check_job_token(session: Session, runner: RemoteRunner, job_id: str, job_token: str) -> JobTokenCheck:
    row = session.get(JobTokenRow, _hash(job_token))
    if row is None or row.runner_id != runner.id or row.job_id != job_id:
        return JobTokenCheck(owned=False)
    job = session.execute(select(JobRow.state, JobRow.attempt, JobRow.worker_instance)
                          .where(JobRow.id == job_id)).first()
    if job is None:
        return JobTokenCheck(owned=False)
    current = job[1] == row.attempt and job[2] == runner.id
    return JobTokenCheck(owned=True, running=current and job[0] == JobState.RUNNING,
                         current=current and job[0] in (JobState.RUNNING, JobState.COMPLETED),
                         state=job[0], attempt=row.attempt)


def unregister(session: Session, runner: RemoteRunner, now: datetime) -> list[str]:
    """The runner leaves on its own (``runner unregister``)."""
    return cut_off(session, [runner.id], now, "unregistered by the runner")
