"""Esup-Pod task retention (esup-runner's ``CLEANUP_TASK_FILES_DAYS``): a task created more than
``ESUP_CLEANUP_DAYS`` ago, once its family ended, has its output directory removed through the
output Store and its row dropped, so Pod's ``status`` and ``result`` then answer 404 "Task not
found", as esup-runner's manager does for a task it no longer keeps. Beat runs it with the purge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from mediarunner.config import Settings
from mediarunner.models import esup


def expire_tasks(session: Session, now: datetime, settings: Settings, remove: Callable[[str, str], None],
                 limit: int = 100) -> list[str]:
    """Remove the results of one batch of expired tasks with ``remove(location, rel)`` (the output
    store's ``remove``: the location is checked against the output roots) and forget them.
    Returns the task ids forgotten."""
    gone = []
    for task in esup.expired(session, now, settings.esup_cleanup_days, limit=limit):
        out = PurePosixPath(task.output)
        if out.name == task.task_id:  # <root>/<task id>, as /esup writes it; nothing else is removed
            remove(str(out.parent), out.name)
        esup.forget(session, task.task_id)
        gone.append(task.task_id)
    return gone
