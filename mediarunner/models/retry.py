"""Retry policy: a pure function of (error, job). No I/O, no clock; jitter comes from ``rng``."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pydantic

from mediarunner.errors import MediarunnerError
from mediarunner.models.enums import ErrorKind
from mediarunner.models.schemas import Job


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 600.0
    jitter: float = 0.25  # +/- fraction of the delay, so retried jobs don't stampede together


@dataclass(frozen=True)
class Decision:
    retry: bool
    kind: ErrorKind
    delay: float  # seconds before the next attempt may start
    reason: str


def classify(error: BaseException) -> ErrorKind:
    if isinstance(error, MediarunnerError):
        return ErrorKind.PERMANENT if error.permanent else ErrorKind.TRANSIENT
    if isinstance(error, pydantic.ValidationError | ValueError | TypeError | KeyError):
        return ErrorKind.PERMANENT  # malformed payload: retrying the same bytes cannot help
    return ErrorKind.TRANSIENT  # OSError, lost connections, killed processes, ...


def decide(error: BaseException, job: Job, policy: RetryPolicy = RetryPolicy(),
           rng: random.Random | None = None) -> Decision:
    kind = classify(error)
    if kind is ErrorKind.PERMANENT:
        return Decision(False, kind, 0.0, "permanent error: not retried")
    if job.failures + 1 >= job.max_attempts:
        return Decision(False, kind, 0.0, f"gave up after {job.failures + 1} attempt(s)")
    delay = min(policy.max_seconds, policy.base_seconds * 2 ** job.failures)
    if policy.jitter:
        delay *= 1 + (rng or random.Random()).uniform(-policy.jitter, policy.jitter)
    return Decision(True, kind, delay, f"transient error: retry {job.failures + 2}/{job.max_attempts}")


def decide_abort(job: Job, max_aborts: int) -> Decision:
    """The job's worker was lost (killed, silent) while running it: not the job's error, so it
    goes back to pending without spending a failure, unless this is its ``max_aborts``-th lost
    worker: a job that keeps killing its workers is a poison job and fails for good."""
    if job.aborts + 1 >= max_aborts:
        return Decision(False, ErrorKind.PERMANENT, 0.0,
                        f"poison job: it lost its worker {job.aborts + 1} time(s) (MAX_ABORTS={max_aborts}); "
                        "not run again")
    return Decision(True, ErrorKind.TRANSIENT, 0.0, f"worker lost {job.aborts + 1}/{max_aborts} time(s): "
                    "back to pending, no failure counted")
