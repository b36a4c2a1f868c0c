"""Beat logic for the fleet, as plain functions of (session, now, settings).

A runner whose heartbeat thread went silent for ``runner_offline_after_seconds`` is marked
offline and its running jobs fail over at once, instead of waiting for each job's own heartbeat
to go stale (``failover_after_seconds``). Job state still changes only through ``transitions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from mediarunner.config import Settings
from mediarunner.models import runners
from mediarunner.models.enums import JobState
from mediarunner.models.queries import get_job
from mediarunner.models.tables import EventRow, JobRow, RunnerRow
from mediarunner.scheduler.ticks import FailoverResult, WorkerLost, fail_over_job

# Another worker may start the job at once: no backoff for a lost runner.


@dataclass(frozen=True)
class RunnerCheck:
    offline: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def fail_over_runner(session: Session, hostname: str, now: datetime, reason: str, *, max_aborts: int | None,
                     instance: str | None = None, other_than: str | None = None,
                     silent_since: datetime | None = None) -> FailoverResult:
    """Every job running on ``hostname`` goes back to pending (attempt+1) without spending a
    failure. ``max_aborts``: the runner was lost (an abort; the ``max_aborts``-th fails a job as
    poison); None: it was let go on purpose (shutdown, revocation, unregistering): nothing counted.
    The attempt fence makes a still-alive worker drop its results.

    ``instance``: only the jobs of that worker process; ``other_than``: only those of other
    processes (a worker starting never fails over its own jobs), and with ``silent_since`` only
    those whose heartbeat stopped before then (a live namesake's jobs keep beating)."""
    requeued: list[str] = []
    failed: list[str] = []
    where = [JobRow.state == JobState.RUNNING, JobRow.worker == hostname]
    if instance is not None:
        where.append(JobRow.worker_instance == instance)
    if other_than is not None:
        where.append(or_(JobRow.worker_instance.is_(None), JobRow.worker_instance != other_than))
    if silent_since is not None:
        where.append(or_(JobRow.heartbeat_at.is_(None), JobRow.heartbeat_at < silent_since))
    ids = session.scalars(select(JobRow.id).where(*where)).all()
    for job_id in ids:
        job = get_job(session, job_id, with_children=False)
        outcome = fail_over_job(session, job, WorkerLost(f"runner {hostname}: {reason}"), now, max_aborts=max_aborts)
        (requeued if outcome == "requeued" else failed if outcome == "failed" else []).append(job.id)
    return FailoverResult(requeued, failed, [])


def check_runners(session: Session, now: datetime, settings: Settings) -> RunnerCheck:
    """Mark silent runners offline (once) and fail over their running jobs."""
    silent_since = now - timedelta(seconds=settings.runner_offline_after_seconds)
    silent = session.scalars(select(RunnerRow.hostname).where(
        RunnerRow.unregistered_at.is_(None), RunnerRow.offline_at.is_(None),
        RunnerRow.last_heartbeat_at < silent_since)).all()
    result = RunnerCheck()
    for hostname in silent:
        if runners.mark_offline(session, hostname, silent_since, now):
            result.offline.append(hostname)
            fo = fail_over_runner(session, hostname, now, "heartbeat lost", max_aborts=settings.max_aborts)
            result.requeued.extend(fo.requeued)
            result.failed.extend(fo.failed)
    if settings.runner_prune_after_seconds > 0:
        gone_since = now - timedelta(seconds=settings.runner_prune_after_seconds)
        result.pruned.extend(runners.prune(session, gone_since, now))
    return result


def purge_runner_events(session: Session, now: datetime, settings: Settings) -> int:
    """Runner-only events (no job) older than ``purge_after_days``; job events go with their jobs."""
    if settings.purge_after_days <= 0:
        return 0
    cutoff = now - timedelta(days=settings.purge_after_days)
    res = session.execute(delete(EventRow).where(EventRow.job_id.is_(None), EventRow.at < cutoff)
                          .execution_options(synchronize_session=False))
    return int(res.rowcount)  # type: ignore[attr-defined]
