"""Which queue a job goes to, and why (the reason is stored on the job for operators)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from celery import Celery

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobType, Queue

log = logging.getLogger(__name__)

# Encoding is CPU work unless hardware encoders are asked for; speech models want a GPU.
_DEFAULT: dict[JobType, Queue] = {
    JobType.TRANSCODE: Queue.CPU,
    JobType.TRANSCODE_RENDITION: Queue.CPU,
    JobType.EXTRACT_AUDIO: Queue.CPU,
    JobType.TRANSCRIBE: Queue.GPU,
    JobType.STUDIO: Queue.CPU,
    JobType.LIVE: Queue.CPU,
    JobType.STORYBOARD: Queue.CPU,
    JobType.NOOP: Queue.CPU,
}


def route(job_type: JobType, *, queue: str | None = None, allowed: Sequence[str] = ("cpu", "gpu")) -> tuple[str, str]:
    """Return (queue, reason). An explicit ``queue`` wins if it is one of ``allowed`` (the
    ``job_queues`` setting: never ``scheduler``, whose ticks a job would block); otherwise the
    job type decides."""
    if queue is not None:
        if queue not in allowed:
            raise ValidationError(f"unknown job queue {queue!r}; jobs run on one of: {', '.join(allowed)} "
                                  "(MEDIARUNNER_JOB_QUEUES)")
        return queue, f"queue {queue!r} requested"
    q = _DEFAULT[job_type]
    return q.value, f"{job_type.value} jobs run on {q.value}"


def route_transcription(device: str, gpu_online: Callable[[], bool]) -> tuple[str, str]:
    """GPU when asked for or when a GPU worker is online; otherwise CPU, saying why."""
    if device == "cpu":
        return Queue.CPU.value, "cpu requested"
    if device == "gpu":
        return Queue.GPU.value, "gpu requested"
    if gpu_online():
        return Queue.GPU.value, "a gpu worker is online"
    return Queue.CPU.value, "no gpu worker online: cpu fallback"


class QueueProbe:
    """Asks the workers (Celery remote control) which queues are consumed; cached briefly."""

    def __init__(self, app: Celery, timeout: float = 1.0, ttl: float = 5.0) -> None:
        self.app, self.timeout, self.ttl = app, timeout, ttl
        self._cached: tuple[float, set[str]] | None = None

    def consumed(self) -> set[str]:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.ttl:
            return self._cached[1]
        try:
            replies = self.app.control.inspect(timeout=self.timeout).active_queues() or {}
        except Exception as exc:  # broker down: we cannot know, assume nothing is online
            log.warning("cannot ask workers for their queues: %s", exc)
            replies = {}
        queues = {q["name"] for qs in replies.values() for q in qs}
        self._cached = (now, queues)
        return queues

    def online(self, queue: str) -> bool:
        return queue in self.consumed()

