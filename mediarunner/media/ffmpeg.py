"""Run ffmpeg as a cancellable, time-limited child process with progress reporting.

Callbacks (``on_progress``, ``should_cancel``) always run in the *calling* thread: the reader
threads only move data into a queue, so callers may touch thread-bound resources (DB sessions).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import IO

from mediarunner.config.redact import mask_secrets
from mediarunner.errors import (
    InvalidInputError,
    JobCancelled,
    MediarunnerError,
    PermanentError,
    ProcessingError,
    UnsupportedMediaError,
)

__all__ = ["StderrTail", "classify_failure", "ffmpeg_version", "list_encoders", "run_ffmpeg"]

STDERR_TAIL_LINES = 30
_MAX_LINE_CHARS = 1000  # one pathological line must not blow the bounded tail
_KILL_GRACE = 1.0  # SIGTERM lets ffmpeg exit cleanly; SIGKILL after this many seconds


class StderrTail:
    """Drains a pipe in a daemon thread, keeping only the last ``maxlen`` lines."""

    def __init__(self, stream: IO[bytes], maxlen: int = STDERR_TAIL_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        partial = False  # inside an over-long line whose head was already kept
        with stream:
            while chunk := stream.readline(_MAX_LINE_CHARS):
                complete = chunk.endswith(b"\n")
                if not partial:
                    line = chunk.decode("utf-8", "replace").rstrip("\r\n")
                    with self._lock:
                        self._lines.append(line)
                partial = not complete

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines())


def _parse_out_time(block: dict[str, str]) -> float | None:
    """Seconds of output written so far, from a ``-progress`` block (values may be ``N/A``)."""
    # out_time_ms is microseconds too (a long-standing ffmpeg quirk), hence the same divisor.
    for key in ("out_time_us", "out_time_ms"):
        raw = block.get(key)
        if raw is not None:
            try:
                return int(raw) / 1_000_000
            except ValueError:
                pass
    raw = block.get("out_time")
    if raw:
        m = re.fullmatch(r"(-?)(\d+):(\d+):(\d+(?:\.\d+)?)", raw.strip())
        if m:
            secs = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            return -secs if m.group(1) else secs
    return None


# One item per -progress block: (out_time in seconds or None when N/A,). None marks stdout EOF.
_ProgressItem = tuple[float | None] | None


def _read_progress(stream: IO[bytes], q: queue.Queue[_ProgressItem]) -> None:
    """Turn ``-progress`` key=value blocks (each ends with ``progress=...``) into queue items."""
    block: dict[str, str] = {}
    with stream:
        for raw in stream:
            key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not sep:
                continue
            if key == "progress":
                q.put((_parse_out_time(block),))
                block = {}
            else:
                block[key] = value
    q.put(None)


def _input_urls(args: Sequence[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-i"]


# (stderr regex, error class, one-line explanation). First match wins; input-specific
# messages are checked against the real input names so an *output* path problem is not
# mistaken for bad input.
_GENERIC_RULES: tuple[tuple[re.Pattern[str], type[MediarunnerError], str], ...] = (
    (
        re.compile(r"moov atom not found"),
        InvalidInputError,
        "input is not a valid MP4 (moov atom missing: truncated or unfinished)",
    ),
    (
        re.compile(r"Output file #\d+ does not contain any stream"),
        UnsupportedMediaError,
        "input has no stream usable for this output",
    ),
    (re.compile(r"does not contain any stream"), UnsupportedMediaError, "input has no usable stream"),
    (
        # Only audio/video: data tracks (timecode...) trigger it harmlessly in many files.
        re.compile(r"[Cc]ould not find codec parameters for stream \d+ \((?:Video|Audio)"),
        UnsupportedMediaError,
        "input stream parameters cannot be determined (unknown codec or 0x0 video)",
    ),
    (
        re.compile(r"Decoder \(?codec [^)]*\)? ?not found|Decoder .* not found"),
        UnsupportedMediaError,
        "input uses a codec this ffmpeg cannot decode",
    ),
    (
        re.compile(r"Unknown encoder '([^']*)'"),
        PermanentError,
        "this ffmpeg build lacks a required encoder (worker misconfigured)",
    ),
    (
        re.compile(r"Invalid data found when processing input"),
        InvalidInputError,
        "input is corrupt or not a media file",
    ),
)

# The input allow-lists (mediarunner.media.formats) refused a demuxer or a protocol: checked before
# the per-input rules, whose "Invalid argument" line says less.
_REFUSAL_RULES: tuple[tuple[re.Pattern[str], type[MediarunnerError], str], ...] = (
    (
        re.compile(r"\[(\w+) @ [^\]]*\] Format not on whitelist"),
        InvalidInputError,
        "input container is not an allowed media format",
    ),
    (
        re.compile(r"Protocol '?([\w+.-]*)'? not on whitelist"),
        InvalidInputError,
        "input refers to another file or URL through a protocol that is not allowed",
    ),
)

# Conditions of the machine, not of the input: they win over any input complaint in the tail
# (a corrupt-frame warning must not turn a full disk into a permanent failure).
_TRANSIENT_MARKERS = (
    "No space left on device",
    "Cannot allocate memory",
    "Resource temporarily unavailable",
    "Input/output error",
    "Exiting normally, received signal",
)

_INPUT_RULES: tuple[tuple[str, type[MediarunnerError], str], ...] = (
    ("No such file or directory", InvalidInputError, "input file does not exist"),
    ("Invalid data found when processing input", InvalidInputError, "input is corrupt or not a media file"),
    ("Invalid argument", InvalidInputError, "input cannot be opened (invalid argument)"),
    ("Permission denied", InvalidInputError, "input is not readable (permission denied)"),
)


def classify_failure(returncode: int, stderr_tail: str, args: Sequence[str]) -> MediarunnerError:
    """Map a failed ffmpeg run to the error taxonomy (permanent = bad input, else transient), with
    the secrets of its URLs masked (ffmpeg's stderr echoes them: stream keys, SRT passphrases)."""
    err = _classify(returncode, stderr_tail, args)
    return type(err)(mask_secrets(err.message, list(args)))


def _classify(returncode: int, stderr_tail: str, args: Sequence[str]) -> MediarunnerError:
    tail = stderr_tail.strip() or "(no stderr)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return ProcessingError(f"ffmpeg was killed by signal {name}\n{tail}")
    for marker in _TRANSIENT_MARKERS:
        if marker in stderr_tail:
            return ProcessingError(f"ffmpeg failed: {marker.lower()}\n{tail}")
    lines = stderr_tail.splitlines()
    for pattern, cls, what in _REFUSAL_RULES:
        for line in lines:
            if m := pattern.search(line):
                return cls(f"ffmpeg: {what} ({m.group(1)})\n{tail}")
    for url in _input_urls(args):
        for line in lines:
            if not line.startswith(f"{url}: "):
                continue
            for needle, cls, what in _INPUT_RULES:
                if needle in line:
                    return cls(f"ffmpeg: {what}: {url}\n{tail}")
    for pattern, cls, what in _GENERIC_RULES:
        for line in lines:
            m = pattern.search(line)
            if m:
                detail = f" ({m.group(1)})" if m.groups() else ""
                return cls(f"ffmpeg: {what}{detail}\n{tail}")
    return ProcessingError(f"ffmpeg failed with exit code {returncode}\n{tail}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, SIGKILL it after a grace period, and reap."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(_KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _die_with_parent() -> None:
    """Runs in the child before exec: if the worker is SIGKILLed, the kernel kills ffmpeg too
    (its own session keeps it out of the worker's process group, so nothing else would)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _spawn(ffmpeg: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", *args]
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group: cancel kills everything it spawned
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:  # missing binary is a worker problem; another worker may have it
        raise ProcessingError(f"cannot start {ffmpeg}: {exc}") from exc


class _Fractions:
    """Turns ``out_time`` seconds into non-decreasing fractions of ``duration`` below 1.0.

    progress=end is not trusted for 1.0: a run can print it and still fail while finalising the
    output, so 1.0 is reported only after a successful exit (by run_ffmpeg)."""

    def __init__(self, duration: float | None, on_progress: Callable[[float], None] | None) -> None:
        self.duration = duration if duration and duration > 0 else None
        self.on_progress = on_progress
        self.last = -1.0

    def report(self, out_time: float | None) -> None:
        if self.on_progress is None or self.duration is None or out_time is None:
            return
        fraction = min(max(out_time / self.duration, 0.0), 0.999)
        if fraction > self.last:
            self.last = fraction
            self.on_progress(fraction)


def _supervise(
    proc: subprocess.Popen[bytes],
    progress_q: queue.Queue[_ProgressItem],
    stderr: StderrTail,
    fractions: _Fractions,
    *,
    should_cancel: Callable[[], bool] | None,
    cancel_poll: float,
    timeout: float | None,
) -> None:
    """Relay progress until ffmpeg exits; stop it on cancellation (JobCancelled) or timeout."""
    start = time.monotonic()
    deadline = start + timeout if timeout is not None else None
    next_poll = start + cancel_poll
    stdout_done = False
    while True:
        now = time.monotonic()
        if should_cancel is not None and now >= next_poll:
            cancelled = should_cancel()
            next_poll = time.monotonic() + cancel_poll  # a slow check must not run back to back
            if cancelled:
                _terminate(proc)
                raise JobCancelled("ffmpeg cancelled")
        if deadline is not None and now >= deadline:
            _terminate(proc)
            stderr.join(1.0)
            raise ProcessingError(mask_secrets(f"ffmpeg timed out after {timeout:g} s\n{stderr.text()}"))
        if stdout_done and proc.poll() is not None:
            return
        waits = [1.0]
        if should_cancel is not None:
            waits.append(next_poll - now)
        if deadline is not None:
            waits.append(deadline - now)
        if stdout_done:  # stdout closed: wait for the exit status itself (no polling delay)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, min(waits)))
            continue
        try:
            item = progress_q.get(timeout=max(0.0, min(waits)))
        except queue.Empty:
            continue
        if item is None:
            stdout_done = True
        else:
            fractions.report(item[0])


def run_ffmpeg(
    args: Sequence[str],
    *,
    ffmpeg: str = "ffmpeg",
    duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
    timeout: float | None = None,
) -> None:
    """Run ``ffmpeg <args>`` to completion; raise from the error taxonomy on failure.

    ``args`` must not write to stdout (it carries ``-progress``). ``on_progress`` receives a
    non-decreasing fraction in [0, 1] (only when ``duration`` is known) and 1.0 on success.
    """
    proc = _spawn(ffmpeg, args)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = StderrTail(proc.stderr)
    progress_q: queue.Queue[_ProgressItem] = queue.Queue()
    reader = threading.Thread(target=_read_progress, args=(proc.stdout, progress_q), daemon=True)
    reader.start()
    fractions = _Fractions(duration, on_progress)
    try:
        _supervise(proc, progress_q, stderr, fractions, should_cancel=should_cancel, cancel_poll=cancel_poll,
                   timeout=timeout)  # fmt: skip
    finally:
        _terminate(proc)  # no-op after a normal exit; kills on any exception (incl. callbacks)
    stderr.join(2.0)
    reader.join(1.0)
    if proc.returncode != 0:
        raise classify_failure(proc.returncode, stderr.text(), args)
    if on_progress is not None and fractions.duration is not None:
        on_progress(1.0)


def _run_capture(cmd: Sequence[str], timeout: float = 30) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"cannot run {cmd[0]}: {exc}") from exc
    if res.returncode != 0:
        raise ProcessingError(mask_secrets(f"{' '.join(cmd)} failed: {res.stderr.strip()[-2000:]}", list(cmd)))
    return res.stdout


@lru_cache(maxsize=8)
def ffmpeg_version(ffmpeg: str = "ffmpeg") -> str:
    """The version token of ``ffmpeg -version`` (e.g. ``5.1.6-0+deb12u1``)."""
    first = _run_capture([ffmpeg, "-hide_banner", "-version"]).splitlines()[0]
    m = re.match(r"\S+ version (\S+)", first)
    return m.group(1) if m else first.strip()


def list_encoders(ffmpeg: str = "ffmpeg") -> set[str]:
    """Names of the encoders this ffmpeg build offers (``libx264``, ``aac``, ...)."""
    return set(_encoders(ffmpeg))  # a copy: callers must not be able to mutate the cache


@lru_cache(maxsize=8)
def _encoders(ffmpeg: str) -> frozenset[str]:
    names: set[str] = set()
    listing = False
    for line in _run_capture([ffmpeg, "-hide_banner", "-encoders"]).splitlines():
        if line.strip().startswith("------"):
            listing = True
        elif listing:
            parts = line.split()
            if len(parts) >= 2:
                names.add(parts[1])
    return frozenset(names)
