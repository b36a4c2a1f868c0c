"""Thin Celery tasks: one per job type, each hands (job id, attempt) to the runtime.

The payload argument is what a worker is allowed to see; the runtime reads the job row
anyway (the database is the source of truth), so the message copy is informational.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from mediarunner.config import get_settings
from mediarunner.models.enums import JobType
from mediarunner.models.names import TASK_NAMES
from mediarunner.tasks.handlers import HANDLERS
from mediarunner.tasks.runtime import RunStatus, execute
from mediarunner.workers.app import app


def _make_task(job_type: JobType) -> Task:
    handler = HANDLERS[job_type]

    def run(self: Task, job_id: str, attempt: int, payload: dict[str, Any] | None = None) -> str:
        status = execute(handler, job_id, attempt, worker=self.request.hostname or "unknown",
                         task_id=self.request.id)
        if status != RunStatus.COMPLETED:
            # Acknowledge without running the chain's next links (children): the database
            # decides what runs next, and a retry is re-published by the scheduler.
            raise Ignore()
        return status

    run.__name__ = f"run_{job_type.value}"
    settings = get_settings()
    # A live job lasts as long as its stream: it has its own (long) limit.
    limit = settings.live_time_limit_seconds if job_type is JobType.LIVE else settings.job_time_limit_seconds
    # Celery's own limits back up the scheduler's timeout scan: the soft limit raises inside the
    # job (-> `timeout`), the hard one kills a process that ignores it.
    return app.task(bind=True, name=TASK_NAMES[job_type], soft_time_limit=limit, time_limit=limit + 30)(run)


TASKS: dict[JobType, Task] = {t: _make_task(t) for t in HANDLERS}
