"""Beat as a thread of the scheduler worker, so ``mediarunner beat`` is one process.

``celery worker -B`` forks beat into a process of its own, and the prefork pool forks the process
that runs the ticks: three Python processes of ~80 MiB each (mostly the same imports) for a
scheduler whose ticks are short database transactions. ``mediarunner beat`` instead runs
``celery worker -P solo --beat-thread``: the ticks run in the worker's main process (the solo
pool) and beat sends them from a thread of that process (Celery's own threaded embedded beat,
``celery.beat.EmbeddedService(thread=True)``). Nothing else changes: the same tasks, schedule,
queue and lease; two of them still take over from each other through the lease.
"""

from __future__ import annotations

from typing import Any

import click
from celery import Celery, bootsteps
from celery.exceptions import ImproperlyConfigured

OPTION = "--beat-thread"
# The worker arguments of the scheduler: the ticks in the main process, beat in a thread of it.
SCHEDULER_WORKER_ARGS = ("-P", "solo", OPTION)


class ThreadedBeat(bootsteps.StartStopStep):
    """Worker bootstep: with ``--beat-thread``, beat runs as a thread of the worker process."""

    label = "ThreadedBeat"
    conditional = True

    def __init__(self, w: Any, beat_thread: bool = False, beat: bool = False, **kwargs: Any) -> None:
        if beat_thread and beat:
            raise ImproperlyConfigured(f"{OPTION} and -B both embed beat: pass one of them")
        self.enabled = bool(beat_thread)
        super().__init__(w, **kwargs)

    def create(self, w: Any) -> Any:
        from celery.beat import EmbeddedService

        return EmbeddedService(w.app, schedule_filename=w.schedule_filename, scheduler_cls=w.scheduler, thread=True)


def install(app: Celery) -> None:
    app.user_options["worker"].add(click.Option([OPTION], is_flag=True, default=False,
                                                help="Run beat as a thread of this worker (mediarunner beat)."))
    app.steps["worker"].add(ThreadedBeat)
