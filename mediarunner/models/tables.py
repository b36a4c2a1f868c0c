"""ORM tables. Rows are read through ``mediarunner.models.schemas.Job`` (frozen) and written
only by ``mediarunner.models.transitions`` (state) and job creation (inserts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Enum, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from mediarunner.models.base import Base, PortableJSON, utcnow
from mediarunner.models.enums import JobState, JobType, RunnerStatus, Stage


def _enum(cls: type[Any], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native PG enum: adding a state needs no ALTER TYPE.
    return Enum(
        cls, name=name, native_enum=False, length=32, validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[JobType] = mapped_column(_enum(JobType, "job_type"))
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"))
    stage: Mapped[Stage | None] = mapped_column(_enum(Stage, "job_stage"), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)

    queue: Mapped[str] = mapped_column(String(64))
    routing_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What a worker must have to claim it (mediarunner.models.capabilities), and, while no online
    # worker has it, why it waits (written by beat's routing tick).
    need_gpu: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    need_model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a whisper model name
    need_encoder: Mapped[str | None] = mapped_column(String(64), nullable=True)  # an ffmpeg encoder
    waiting_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first
    priority_class: Mapped[str] = mapped_column(String(32), default="default")

    parent_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True
    )
    root_id: Mapped[str] = mapped_column(String(36))  # family root (itself for a root job)

    attempt: Mapped[int] = mapped_column(Integer, default=1)  # fences stale workers
    failures: Mapped[int] = mapped_column(Integer, default=0)  # attempts that failed (MAX_ATTEMPTS)
    # Times the job lost its worker (killed, silent): not a failure of the job; MAX_ABORTS caps them.
    aborts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)

    payload: Mapped[dict[str, Any]] = mapped_column(PortableJSON)  # sent to workers
    private_payload: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)  # never sent
    meta: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)  # caller's metadata
    result: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)

    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The worker process (a uuid made at its start): failover of a runner touches only the jobs
    # of the process that is gone, never those of a live namesake or of the process itself.
    worker_instance: Mapped[str | None] = mapped_column(String(64), nullable=True)
    celery_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_after: Mapped[datetime | None] = mapped_column(nullable=True)  # retry backoff
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)  # last broker publish
    # Times the outbox re-published this attempt (its message presumed lost): backs off the next one.
    redispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_jobs_state_queue", "state", "queue"),
        Index("ix_jobs_parent_id", "parent_id"),
        Index("ix_jobs_root_id", "root_id"),
        Index("ix_jobs_state_heartbeat_at", "state", "heartbeat_at"),
        Index("ix_jobs_state_finished_at", "state", "finished_at"),
        # Lists newest first (the API's and the web admin's cursor pages) and the dashboard's
        # "today" / "last hour" windows read these instead of scanning the table.
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_started_at", "started_at"),
        Index("ix_jobs_finished_at", "finished_at"),
    )


# Pending jobs in queue order within each priority class: the rank tick reads it in order instead
# of sorting every pending job (partial: claimed and finished jobs are not in it).
Index("ix_jobs_pending_order", JobRow.queue, JobRow.priority_class, JobRow.priority.desc(), JobRow.created_at,
      JobRow.id, postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'"))


class RankRow(Base):
    """A pending job's position in its queue (1 = next), rewritten by beat's rank tick.

    Derived data in a narrow table of its own: a tick that shifts every rank writes only here, so
    it takes no row locks on ``jobs`` (claims never wait for it) and bloats nothing there. On
    PostgreSQL it is UNLOGGED (no WAL; after a crash it is empty until the next tick) with
    fillfactor 40, so rewriting a rank is a HOT update that touches no index."""

    __tablename__ = "job_ranks"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)


class EventRow(Base):
    """Activity log: what happened to jobs and runners, newest last."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    runner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_events_at", "at"), Index("ix_events_job_id", "job_id"),
                      Index("ix_events_runner", "runner"))


class LockRow(Base):
    """Leases for singleton work (the beat tick): two beat processes never double-dispatch."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column()


class WorkerTokenRow(Base):
    """A runner registration token. Only a SHA-256 of the secret is stored: tokens are 256-bit
    random strings, so a fast hash is enough (no password-style KDF needed)."""

    __tablename__ = "worker_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public handle: `tokens revoke ID`
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class RunnerRow(Base):
    """One Celery worker node (``name@host``), written by ``mediarunner.models.runners`` only."""

    __tablename__ = "runners"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)  # = jobs.worker
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the process last registered
    token_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[RunnerStatus] = mapped_column(_enum(RunnerStatus, "runner_status"))
    status_generation: Mapped[int] = mapped_column(Integer, default=0)  # +1 per status change (see runners)
    queues: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)  # pool size reported by the worker
    # Scheduling: lower priority is preferred (`runners set-priority`); weight for `weighted` balancing.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    weight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Its capabilities as tokens ("|gpu|model:large-v3|enc:libx264|", models.capabilities), for SQL.
    skills: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)  # round_robin balancing
    desired_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)  # set by the operator
    version: Mapped[str] = mapped_column(String(64), default="")
    capabilities: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    diagnostics: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    jobs_completed: Mapped[int] = mapped_column(Integer, default=0)
    jobs_failed: Mapped[int] = mapped_column(Integer, default=0)  # attempts that ended failed/timeout/retry
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    offline_at: Mapped[datetime | None] = mapped_column(nullable=True)  # set by beat or a clean stop
    unregistered_at: Mapped[datetime | None] = mapped_column(nullable=True)  # its token was revoked

    __table_args__ = (Index("ix_runners_token_id", "token_id"),)
