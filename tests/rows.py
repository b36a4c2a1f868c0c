"""Shorthands for tests that build job rows by hand (production code submits through ``Client``
and claims through ``transitions.claim_job``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from mediarunner.models.transitions import NewJob, claim_job, insert_jobs


def create_jobs(session: Session, jobs: Sequence[NewJob], now: datetime) -> list[str]:
    """Insert a family (roots ``pending``, children ``waiting_for_parent``); their ids in order."""
    insert_jobs(session, jobs, now)
    return [j.id for j in jobs]


def claim(session: Session, job_id: str, attempt: int, worker: str, task_id: str | None, now: datetime) -> bool:
    """pending -> running for exactly this attempt; False when this message loses."""
    return claim_job(session, job_id, attempt, worker, task_id, now, family=False) is not None
