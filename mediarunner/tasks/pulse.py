"""One heartbeat scheduler per process: it keeps every running job's row fresh and notices a
cancel or a failover while the job's handler does anything at all (a long download, a model load).

A job registers when it starts and leaves when it ends; nothing else happens until its first
beat is due (one period after it started), so a job shorter than a period costs a dictionary
insert and removal, never a thread hand-off. A beat that is due runs on a pool thread, so a slow
database write for one job never delays another job's beat; a job never has two beats in flight.

Keyed by pid: a forked pool process never uses threads that stayed in its parent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Beat:
    """A registered job: ``beat()`` is called every ``period`` seconds until it leaves or returns False."""

    beat: Callable[[], bool]
    period: float
    due: float
    running: Future[None] | None = field(default=None)


class Pulser:
    """The scheduler thread (started on first use) and the pool that runs due beats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: set[Beat] = set()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="heartbeat")
        self._idle_wait = 1.0
        threading.Thread(target=self._loop, name="heartbeat-scheduler", daemon=True).start()

    def register(self, beat: Callable[[], bool], period: float) -> Beat:
        entry = Beat(beat, period, time.monotonic() + period)
        with self._lock:
            # Due one period from now: never earlier than what the scheduler sleeps towards, and
            # its idle sleep is never longer than a period, so it needs no wake-up call.
            self._idle_wait = min(self._idle_wait, period)
            self._beats.add(entry)
        return entry

    def leave(self, entry: Beat, timeout: float) -> bool:
        """Stop beating ``entry``; wait for a beat under way to finish. False: it did not in time."""
        with self._lock:
            self._beats.discard(entry)
            running = entry.running
        if running is None:
            return True
        try:
            running.result(timeout=timeout)
        except TimeoutError:
            return False
        return True

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [b for b in self._beats if b.due <= now and b.running is None]
                for b in due:
                    b.running = self._pool.submit(self._run, b)
                waiting = [b.due for b in self._beats if b.running is None]
                wait = min(waiting, default=now + self._idle_wait) - now
            time.sleep(max(0.001, min(wait, self._idle_wait)))

    def _run(self, entry: Beat) -> None:
        try:
            alive = entry.beat()
        except Exception as exc:  # the beat itself logs and survives; this only guards the scheduler
            log.warning("heartbeat failed (%s); will try again", type(exc).__name__)
            alive = True
        with self._lock:
            entry.running = None
            entry.due = time.monotonic() + entry.period
            if not alive:
                self._beats.discard(entry)


_PULSERS: dict[int, Pulser] = {}
_CREATE = threading.Lock()


def pulser() -> Pulser:
    """This process's heartbeat scheduler."""
    pid = os.getpid()
    found = _PULSERS.get(pid)
    if found is None:
        with _CREATE:
            found = _PULSERS.get(pid) or _PULSERS.setdefault(pid, Pulser())
    return found
