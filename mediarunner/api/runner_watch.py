"""One watcher per API process wakes the long polls of remote runners: it reads a cheap
signature of the due pending jobs of the remote queues every ``runner_poll_interval_seconds``
while some runner waits, and wakes every waiting request when it changes. The database sees one
small query per interval however many runners wait (not one per runner), and a runner learns of
a new job within one interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from mediarunner.config import Settings
from mediarunner.models import remote
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction

log = logging.getLogger(__name__)


class PendingWatch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = 0
        self.waiters = 0
        self.signature: Any = None
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _read(self) -> Any:
        return transaction(lambda s: remote.pending_signature(s, self.settings.remote_queues, utcnow()),
                           url=self.settings.database_url, retry_for=0)

    async def _run(self) -> None:
        while self.waiters > 0:
            try:
                signature = await run_in_threadpool(self._read)
            except Exception as exc:  # the database is away: waiting requests time out as usual
                log.warning("remote runner watch: %s", type(exc).__name__)
                signature = None
            if signature != self.signature:
                self.signature, self.version = signature, self.version + 1
                self.changed.set()
                self.changed = asyncio.Event()
            await asyncio.sleep(self.settings.runner_poll_interval_seconds)

    async def wait(self, version: int, timeout: float) -> None:
        """Until the pending jobs change after ``version`` was read, or ``timeout``."""
        if self.version != version:
            return
        self.waiters += 1
        try:
            if self.task is None or self.task.done():
                self.task = asyncio.create_task(self._run())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout)
        finally:
            self.waiters -= 1


def watch_of(request: Request) -> PendingWatch:
    watch = getattr(request.app.state, "runner_watch", None)
    if watch is None:
        watch = request.app.state.runner_watch = PendingWatch(request.app.state.settings)
    return watch
