"""How a running attempt reaches its job's record and files: the seam between the handlers and
the transport. Celery workers use :class:`DatabaseLease` (the database, stores opened with the
worker's own credentials); remote runners (``mediarunner.runner``) a lease over the HTTP API,
holding no database, broker or storage credentials. Handlers see neither: they call
:class:`~mediarunner.tasks.context.JobContext` and ``mediarunner.tasks.io``."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select

from mediarunner.config import Settings
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import one_statement, transaction
from mediarunner.models.enums import JobState, Stage
from mediarunner.models.fleet_queries import queue_idle_slots
from mediarunner.models.health import HealthThresholds
from mediarunner.models.locations import Direction
from mediarunner.models.schemas import Job
from mediarunner.models.tables import JobRow
from mediarunner.storage.store import Store, open_store
from mediarunner.storage.transfer import Report


class Lease(Protocol):
    #: True when an ``Outcome.finalize`` step runs inside the transaction that recorded the
    #: completion (so that transaction, having matched this attempt under the family lock, is the
    #: fence: the step needs no read of its own); False when it runs after it (remote runners).
    finalize_in_completion: bool

    def touch(self, job: Job, *, progress: float, stage: Stage | None, result: dict[str, Any] | None) -> bool:
        """Heartbeat with progress; False once the attempt may no longer run."""
        ...

    def state(self, job: Job, *, retry_for: float = 60.0) -> tuple[JobState, int] | None:
        """The job's state and attempt as recorded now (None: gone); an outage is waited out ``retry_for``."""
        ...

    def prune_children(self, job: Job, keep: set[str]) -> list[str]:
        ...

    def record_part_encoded(self, job: Job, *, retry_for: float = 60.0,
                            result: dict[str, Any] | None = None) -> Job | None:
        """Say this split-rendition part is encoded (or record the interim ``result``), under the
        family lock; the family as committed so far (None: lost)."""
        ...

    def open_store(self, location: str, settings: Settings, direction: Direction, report: Report | None) -> Store:
        ...

    def idle_slots(self, queue: str, settings: Settings) -> int | None:
        """Slots of ``queue`` that would start a job now besides this one (None: not known here)."""
        ...


class DatabaseLease:
    """The Celery worker's lease: transitions on the database, stores opened here."""

    finalize_in_completion = True  # tasks.runtime._complete

    # A heartbeat is one guarded UPDATE and a fence one SELECT, on PostgreSQL's claim lane, each sent without
    # BEGIN/COMMIT (one round trip instead of three; see models.db.one_statement).
    def touch(self, job: Job, *, progress: float, stage: Stage | None, result: dict[str, Any] | None) -> bool:
        return one_statement(lambda s: transitions.touch(s, job.id, job.attempt, utcnow(), progress=progress,
                                                         stage=stage, result=result), recoverable=True)

    def state(self, job: Job, *, retry_for: float = 60.0) -> tuple[JobState, int] | None:
        query = select(JobRow.state, JobRow.attempt).where(JobRow.id == job.id)
        row = one_statement(lambda s: s.execute(query).first(), retry_for=retry_for, recoverable=True)
        return (row[0], row[1]) if row is not None else None

    def prune_children(self, job: Job, keep: set[str]) -> list[str]:
        return transaction(lambda s: transitions.prune_children(s, job.id, job.attempt, keep))

    def record_part_encoded(self, job: Job, *, retry_for: float = 60.0,
                            result: dict[str, Any] | None = None) -> Job | None:
        return transaction(lambda s: transitions.record_part_encoded(s, job.id, job.attempt, job.root_id, utcnow(),
                                                                     result), retry_for=retry_for)

    def open_store(self, location: str, settings: Settings, direction: Direction, report: Report | None) -> Store:
        return open_store(location, settings, direction, report)

    def idle_slots(self, queue: str, settings: Settings) -> int | None:
        thresholds = HealthThresholds.from_settings(settings)
        return transaction(lambda s: queue_idle_slots(s, queue, utcnow(), thresholds))
