"""One lazily (re)opened remote filesystem, and the retries (tenacity) that run transfer steps on it.

Error mapping (see :mod:`mediarunner.errors`):

* missing remote object, refused credentials, unknown host key, access denied -> the permanent
  :class:`InvalidInputError` / :class:`InvalidOutputError` (by direction), never retried;
* local scratch disk full -> :class:`InsufficientResourcesError` (another worker may have room);
* connection refused/reset, timeouts, S3 5xx/throttling and anything unrecognised are retried
  ``transfer_retries`` times with exponential backoff (capped at ``transfer_backoff_max_seconds``),
  each time on a fresh connection, then raised as :class:`StorageError` (transient).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from mediarunner.config.settings import Settings
from mediarunner.errors import InsufficientResourcesError, MediarunnerError, StorageError
from mediarunner.models.locations import Direction, Location, problem
from mediarunner.storage.classify import Kind, classify, describe
from mediarunner.storage.openers import close_filesystem, open_filesystem

__all__ = ["Connection"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Transient(Exception):
    """A failure worth another try (on a fresh connection); carries the original error."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Connection:
    """A remote filesystem for one location, opened on first use and reopened after a failure."""

    def __init__(self, settings: Settings, loc: Location, direction: Direction) -> None:
        self.settings = settings
        self.loc = loc
        self.direction = direction
        self.where = f"{loc.scheme}://{loc.host}"
        self._fs: Any = None

    def fs(self) -> Any:
        if self._fs is None:
            self._fs = open_filesystem(self.settings, self.loc, self.direction)
        return self._fs

    def reset(self) -> None:
        fs, self._fs = self._fs, None
        if fs is None:
            return
        try:
            close_filesystem(fs, self.loc.scheme)
        except Exception:  # closing a broken connection may fail in many ways
            log.debug("closing %s connection failed", self.loc.scheme, exc_info=True)

    close = reset

    def run(self, what: str, step: Callable[[Any], T], *, retries: int | None = None) -> T:
        """Run ``step(fs)``, reconnecting and retrying transient failures; map errors to the taxonomy."""
        attempts = (self.settings.transfer_retries if retries is None else retries) + 1
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=lambda state: self._log_retry(what, attempts, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, what, step)
        except _Transient as t:
            raise StorageError(
                f"{what}: failed after {attempts} attempt(s) on {self.where}: {describe(t.cause)}"
            ) from t.cause

    def _attempt(self, what: str, step: Callable[[Any], T]) -> T:
        try:
            return step(self.fs())
        except MediarunnerError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is Kind.TRANSIENT:
                self.reset()
                raise _Transient(exc) from exc
            raise self._permanent(kind, what, exc) from exc

    def _permanent(self, kind: Kind, what: str, exc: Exception) -> MediarunnerError:
        if kind is Kind.MISSING:
            return problem(self.direction, f"{what}: not found on {self.where}: {describe(exc)}")
        if kind is Kind.DENIED:
            return problem(self.direction, f"{what}: refused by {self.where}: {describe(exc)}")
        if self.direction == "input":  # our scratch disk: another worker may have room
            return InsufficientResourcesError(f"{what}: scratch disk full: {describe(exc)}")
        return StorageError(f"{what}: destination full on {self.where}: {describe(exc)}")

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff from ``transfer_backoff_seconds``, capped, with +-20 % jitter."""
        s = self.settings
        backoff = wait_exponential(multiplier=s.transfer_backoff_seconds, max=s.transfer_backoff_max_seconds)
        return float(backoff(state)) * random.uniform(0.8, 1.2)

    def _log_retry(self, what: str, attempts: int, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.cause if isinstance(exc, _Transient) else exc
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed on %s (%s); retry %d/%d in %.1fs", what, self.where,
                    describe(cause) if cause else "?", state.attempt_number, attempts - 1, delay)
