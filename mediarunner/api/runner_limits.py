"""Limits per runner token: a request rate (a token bucket per runner: ``RUNNER_RATE_PER_SECOND``
sustained, ``RUNNER_RATE_BURST`` at once; beyond, ``429`` with ``Retry-After``) and the bytes a job's
attempt may upload in all (``RUNNER_MAX_JOB_UPLOAD_BYTES``; one file: ``RUNNER_MAX_UPLOAD_BYTES``).

The buckets live in each API process (a runner talking to N processes behind a balancer gets up to N
times the rate). The upload total is a counter file beside the attempt's uploads, under a file lock:
uploads already need one scratch directory for all API processes (a result's chunks are assembled
there), so the total is right whichever process a chunk reaches."""

from __future__ import annotations

import fcntl
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

TOTAL_FILE = "uploaded.bytes"  # beside the upload ids ([A-Za-z0-9]{8,40}: never this name)


@dataclass
class Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Token buckets by key (a runner's id). ``take`` returns 0 when a request may go now, else the
    seconds until it may (the ``Retry-After``). ``now``: a monotonic clock reading."""

    rate: float
    burst: int
    buckets: dict[str, Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, now: float) -> float:
        with self.lock:
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = Bucket(float(self.burst), now)
            b.tokens, b.at = min(float(self.burst), b.tokens + (now - b.at) * self.rate), now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            if len(self.buckets) > 100_000:  # runners come and go: forget full buckets now and then
                self._forget_full(now)
            return (1.0 - b.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self.buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst]:
            del self.buckets[key]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def charge(attempt_dir: Path, n: int, limit: int) -> int | None:
    """Add ``n`` bytes to the attempt's upload total if it stays within ``limit``: the new total,
    or None (refused: nothing added)."""
    attempt_dir.mkdir(parents=True, exist_ok=True)
    with (attempt_dir / TOTAL_FILE).open("a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        f.seek(0)
        used = int(f.read() or b"0")
        if used + n > limit:
            return None
        f.seek(0)
        f.truncate()
        f.write(str(used + n).encode())
        return used + n
