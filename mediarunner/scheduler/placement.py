"""Beat's side of capability routing (``mediarunner.models.capabilities``), as a plain function
of (session, now, settings).

A pending job that needs something (a Whisper model, a GPU, an encoder) which no online runner
of its queue has gets a ``waiting_reason`` ("waiting: no online worker has whisper model
large-v3"), shown by ``jobs show``; workers do not pass its message around meanwhile. When a
runner that can run it comes online, the reason is cleared and the job's message is published
again at once (``dispatched_at`` unset: the outbox of the same tick publishes it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mediarunner.config import Settings
from mediarunner.models.capabilities import Skills, needs_of, waiting_reason
from mediarunner.models.enums import JobState, RunnerStatus
from mediarunner.models.tables import JobRow, RunnerRow


def online_skills(session: Session, now: datetime, settings: Settings) -> list[tuple[tuple[str, ...], Skills]]:
    """(queues, skills) of every registered, enabled runner whose heartbeat is recent."""
    since = now - timedelta(seconds=settings.runner_offline_after_seconds)
    rows = session.execute(select(RunnerRow.queues, RunnerRow.skills).where(
        RunnerRow.unregistered_at.is_(None), RunnerRow.offline_at.is_(None), RunnerRow.status == RunnerStatus.ENABLED,
        RunnerRow.last_heartbeat_at >= since)).all()
    return [(tuple(queues or ()), Skills.from_tokens(skills)) for queues, skills in rows]


def explain_waiting(session: Session, now: datetime, settings: Settings, limit: int = 1000) -> dict[str, str | None]:
    """Write (or clear) the waiting reason of pending jobs with needs; returns the changes."""
    jobs = session.execute(select(JobRow).where(
        JobRow.state == JobState.PENDING,
        or_(JobRow.need_gpu, JobRow.need_model.is_not(None), JobRow.need_encoder.is_not(None)),
    ).order_by(JobRow.created_at).limit(limit)).scalars().all()
    if not jobs:
        return {}
    runners = online_skills(session, now, settings)
    changed: dict[str, str | None] = {}
    for job in jobs:
        reason = waiting_reason(needs_of(job), [skills for queues, skills in runners if job.queue in queues])
        if reason == job.waiting_reason:
            continue
        values: dict[str, object] = {"waiting_reason": reason, "updated_at": now}
        if reason is None:  # a runner that can run it is here: publish its message again now
            values.update(dispatched_at=None, redispatches=0)
        session.execute(update(JobRow).where(JobRow.id == job.id, JobRow.state == JobState.PENDING)
                        .values(**values).execution_options(synchronize_session=False))
        changed[job.id] = reason
    return changed
