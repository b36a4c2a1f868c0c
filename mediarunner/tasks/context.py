"""What a job handler sees while it runs: its job, settings, scratch space, and three duties —
report progress, notice cancellation, keep the heartbeat. Handlers never touch SQL or Celery."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediarunner.config import Settings
from mediarunner.config.redact import mask_secrets
from mediarunner.errors import JobCancelled, StaleAttemptError
from mediarunner.models.enums import JobState, Stage
from mediarunner.models.locations import Direction
from mediarunner.models.schemas import Job
from mediarunner.storage.store import Store
from mediarunner.tasks.lease import DatabaseLease, Lease
from mediarunner.tasks.pulse import pulser

log = logging.getLogger(__name__)

@dataclass
class JobContext:
    job: Job
    parent: Job | None
    settings: Settings
    worker: str
    scratch_path: Path  # this attempt's private directory, created when first used (see `scratch`)
    stage: Stage | None = None
    percent: float = 0.0
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    notes: dict[str, Any] = field(default_factory=dict)
    #: the transport to the job's record and files: the database (Celery) or the HTTP API (remote runners)
    lease: Lease = field(default_factory=DatabaseLease)
    _last_write: float = field(default_factory=time.monotonic)  # the claim wrote the first heartbeat
    _lost: bool = field(default=False)
    _pulsing: bool = field(default=False)  # a heartbeat thread keeps the row fresh (see `heartbeating`)
    _due: bool = field(default=False)  # the thread writes at its next pulse (a new stage)

    @property
    def scratch(self) -> Path:
        """The attempt's scratch directory, created on first use (a no-op job never touches disk)."""
        self.scratch_path.mkdir(parents=True, exist_ok=True)
        return self.scratch_path

    @property
    def payload(self) -> dict[str, object]:
        return self.job.payload

    def log(self, message: str) -> None:
        message = mask_secrets(message, self.job.payload)  # stream keys, passphrases: never shown
        self.lines.append(message)
        log.info("job %s: %s", self.job.id, message)

    @property
    def log_tail(self) -> str:
        return mask_secrets("\n".join(self.lines), self.job.payload)

    def set_stage(self, stage: Stage) -> None:
        """Saved with the next heartbeat (at once if one is due): a job shorter than a heartbeat
        period does not pay a write per stage; completion records the last stage."""
        self.stage = stage
        self.lines.append(f"stage {stage.value}")  # in the job's log tail; the process log has it at DEBUG
        log.debug("job %s: stage %s", self.job.id, stage.value)
        if self._pulsing:  # the thread writes it: the handler never waits on the database
            self._due = True
        elif time.monotonic() - self._last_write >= self.settings.heartbeat_seconds:
            self.beat(force=True)

    def progress(self, percent: float) -> None:
        self.percent = max(self.percent, min(100.0, percent))

    def note(self, **values: Any) -> None:
        """Interim facts a percentage cannot express (e.g. seconds of a live stream processed):
        saved as the job's ``result`` with the next heartbeat, replaced by the final result."""
        self.notes.update(values)

    def transfer_report(self, direction: str) -> Callable[[int, int | None], None]:
        """Told the bytes a download or upload has moved: shown as the job's interim result
        (``result.transfer``, saved by the next heartbeat) while the job is staging or publishing."""

        def report(done: int, total: int | None) -> None:
            self.notes["transfer"] = {"direction": direction, "bytes": done, "total": total}

        return report

    def span(self, start: float, end: float) -> _Span:
        """Progress callback mapping a step's fraction 0..1 onto [start, end] percent of the job."""
        return _Span(self, start, end)

    def beat(self, *, force: bool = False) -> bool:
        """Heartbeat (throttled). Returns False once this attempt may no longer run.

        While :meth:`heartbeating` runs, the thread does the writing and checking: this only
        reads what it found (unless ``force``)."""
        if self._lost:
            return False
        if self._pulsing and not force:
            return True
        return self._check(force=force)

    def _check(self, *, force: bool) -> bool:
        """Write the heartbeat when one is due (or ``force``), else just check the attempt is ours."""
        mono = time.monotonic()
        if not force and mono - self._last_write < self.settings.heartbeat_seconds:
            return self._still_ours()
        self._last_write = mono
        ok = self.lease.touch(self.job, progress=self.percent, stage=self.stage,
                              result=dict(self.notes) if self.notes else None)
        self._lost = not ok
        return ok

    @contextmanager
    def heartbeating(self) -> Iterator[None]:
        """Keep the heartbeat and the cancel check going from this process's heartbeat scheduler
        while the handler runs, whatever it does (a long download, a model load, an upload): slow
        is not dead. The first beat is due one period after the start (the claim wrote one)."""
        period = min(self.settings.cancel_poll_seconds, self.settings.heartbeat_seconds)
        self._pulsing = True
        entry = pulser().register(self._pulse, period)
        try:
            yield
        finally:
            self._pulsing = False
            # its last write (if one is under way) ends before the outcome is recorded
            if not pulser().leave(entry, timeout=self.settings.heartbeat_seconds + 5):
                log.warning("job %s: heartbeat still writing; outcome recorded anyway", self.job.id)

    def _pulse(self) -> bool:
        """One beat from the scheduler; False once this attempt may no longer run."""
        try:
            due, self._due = self._due, False
            self._check(force=due)
        except Exception as exc:  # database unreachable past transaction()'s retries: keep working
            log.warning("job %s: heartbeat failed (%s); will try again", self.job.id, type(exc).__name__)
        return not self._lost

    def _still_ours(self) -> bool:
        row = self.lease.state(self.job)
        ok = row is not None and row[0] == JobState.RUNNING and row[1] == self.job.attempt
        self._lost = not ok
        return ok

    def fence(self) -> None:
        """Strict fence before anything irreversible (publishing, removing, rewriting a master):
        a synchronous read, not the heartbeat thread's last finding. Raises JobCancelled or
        StaleAttemptError unless this attempt still runs. Rides out a database outage for as
        long as a finished job waits to record its completion."""
        row = self.lease.state(self.job, retry_for=self.settings.completion_retry_seconds)
        if row is not None and row[0] == JobState.RUNNING and row[1] == self.job.attempt:
            return
        self._lost = True
        if row is not None and row[0] in (JobState.CANCELLED, JobState.PARENT_CANCELLED):
            raise JobCancelled("cancelled")
        raise StaleAttemptError(f"attempt {self.job.attempt} was superseded"
                                + (f" (the job is {row[0]}, attempt {row[1]})" if row is not None else ""))

    def prune_children(self, keep: set[str]) -> list[str]:
        """Drop waiting children not in ``keep`` (the parent planned less work than submitted)."""
        return self.lease.prune_children(self.job, keep)

    def idle_slots(self, queue: str) -> int | None:
        """Slots of ``queue`` that would start a job now besides this one (None: unknown)."""
        return self.lease.idle_slots(queue, self.settings)

    def record_part_encoded(self) -> Job | None:
        """This split-rendition part is encoded: returns the family as committed so far, under the
        family lock (see ``transitions.record_part_encoded``), or None when the attempt is over."""
        self.notes["part_encoded"] = True  # kept by later heartbeats too
        family = self.lease.record_part_encoded(self.job, retry_for=self.settings.completion_retry_seconds)
        self._lost = family is None
        return family

    def record_published(self, rungs: list[str]) -> Job | None:
        """Say (under the family lock) that this attempt published ``rungs``; the family as committed
        so far (None: the attempt is over). Used by ``tasks/pod.py`` to find the ladder's last job."""
        self.notes["published"] = rungs  # kept by later heartbeats too
        family = self.lease.record_part_encoded(self.job, retry_for=self.settings.completion_retry_seconds,
                                                result=dict(self.notes))
        self._lost = family is None
        return family

    def open_store(self, location: str, direction: Direction, report: Callable[[int, int | None], None] | None = None
                   ) -> Store:
        """The store of ``location`` through this attempt's lease (see ``mediarunner.tasks.io``)."""
        return self.lease.open_store(location, self.settings, direction, report)

    def should_cancel(self) -> bool:
        """Polled by long-running tools: True when the job was cancelled or failed over."""
        return not self.beat()


@dataclass
class _Span:
    ctx: JobContext
    start: float
    end: float

    def __call__(self, fraction: float) -> None:
        self.ctx.progress(self.start + (self.end - self.start) * max(0.0, min(1.0, fraction)))
