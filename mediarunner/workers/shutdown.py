"""A warm shutdown gives running jobs back at once, instead of leaving them to heartbeat failover.

Stopping a worker (SIGTERM, Ctrl-C, ``docker stop``, a deploy) is not the job's fault: its jobs go
back to pending through ``transitions.release`` with no failure and no abort counted, keeping their
age (their rank), and beat's outbox publishes them again at its next tick.

* The main process (``worker_shutting_down``, sent from Celery's SIGTERM/SIGINT handler, warm or
  cold): releases every job this worker instance runs. A pool process still running one notices
  within ``cancel_poll_seconds`` (its attempt changed), stops its ffmpeg and drops its results.
* A prefork pool process that gets the SIGTERM itself (the signal sent to the process group, as a
  terminal or systemd does): :class:`WorkerShuttingDown` is raised inside the running job, so the
  ffmpeg it runs is stopped at once (``run_ffmpeg`` terminates it on any exception) and the runtime
  takes it as a superseded attempt (no failure); once the task returns, the pool process releases
  the job itself, fenced by the attempt (a no-op when the main process was first). A pool process
  with no job keeps running: the warm shutdown ends it.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_shutting_down

from mediarunner.errors import StaleAttemptError
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.names import TASK_NAMES

log = logging.getLogger(__name__)
_JOB_TASKS = frozenset(TASK_NAMES.values())


class WorkerShuttingDown(StaleAttemptError):
    """Raised inside a running job when its pool process is told to stop (SIGTERM)."""


class _PoolProcess:
    """What a pool process runs now, and whether it was told to stop."""

    job: tuple[str, int] | None = None
    stopping: bool = False


def _on_sigterm(signum: int, frame: Any) -> None:
    _PoolProcess.stopping = True
    if _PoolProcess.job is not None:
        raise WorkerShuttingDown("the worker is shutting down")


@worker_process_init.connect
def _install_pool_handler(**_: Any) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)


@task_prerun.connect
def _job_started(sender: Any = None, args: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) in _JOB_TASKS and args and len(args) >= 2:
        _PoolProcess.job = (str(args[0]), int(args[1]))


@task_postrun.connect
def _job_ended(sender: Any = None, **_: Any) -> None:
    job, _PoolProcess.job = _PoolProcess.job, None
    if job is None or not _PoolProcess.stopping:
        return
    job_id, attempt = job
    try:
        if transaction(lambda s: transitions.release(s, job_id, attempt, "worker shutting down", utcnow(),
                                                     aborted=False), retry_for=2):
            log.warning("job %s attempt %s released: the worker is shutting down", job_id, attempt)
    except Exception as exc:  # the main process releases it too; failover is the last resort
        log.warning("job %s: could not release it on shutdown (%s)", job_id, type(exc).__name__)


@worker_shutting_down.connect
def _release_on_shutdown(sender: Any = None, how: str = "Warm", **_: Any) -> None:
    from mediarunner.workers.fleet import AGENTS

    agent = AGENTS.get(str(sender))
    if agent is not None:
        agent.release_jobs(f"worker {how.lower()} shutdown")
