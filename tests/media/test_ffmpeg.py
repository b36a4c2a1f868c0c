from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from mediarunner.errors import (
    InvalidInputError,
    JobCancelled,
    PermanentError,
    ProcessingError,
    UnsupportedMediaError,
)
from mediarunner.media.ffmpeg import (
    StderrTail,
    classify_failure,
    ffmpeg_version,
    list_encoders,
    run_ffmpeg,
)

# A lavfi source throttled to real time: runs ~60 s unless stopped.
_LONG = ["-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "60"]


def _pids_with(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (our own children only carry it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_version_and_encoders() -> None:
    assert ffmpeg_version()[0].isdigit()
    enc = list_encoders()
    assert {"libx264", "aac"} <= enc
    enc.clear()  # a copy: the cache is unaffected
    assert "libx264" in list_encoders()


def test_progress_monotonic_and_ends_at_one(tmp_path: Path) -> None:
    seen: list[float] = []
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2",
         "-c:v", "libx264", "-preset", "ultrafast", str(tmp_path / "o.mp4")],
        duration=2.0,
        on_progress=seen.append,
    )  # fmt: skip
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen)
    assert (tmp_path / "o.mp4").stat().st_size > 0


def test_no_progress_without_duration(tmp_path: Path) -> None:
    seen: list[float] = []
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=0.5", "-f", "null", "-"], on_progress=seen.append)
    assert seen == []


def test_cancel_kills_process_group_fast(tmp_path: Path) -> None:
    marker = f"cancel-{uuid.uuid4().hex}"
    out = tmp_path / f"{marker}.mp4"
    started: list[float] = []
    cancel_at: list[float] = []

    def should_cancel() -> bool:
        # Cancel once ffmpeg demonstrably runs (it has reported progress).
        if started and not cancel_at:
            cancel_at.append(time.monotonic())
        return bool(cancel_at)

    with pytest.raises(JobCancelled):
        run_ffmpeg(
            [*_LONG, "-c:v", "libx264", "-preset", "ultrafast", str(out)],
            duration=60,
            on_progress=lambda f: started.append(f),
            should_cancel=should_cancel,
            cancel_poll=0.2,
        )
    elapsed = time.monotonic() - cancel_at[0]
    assert elapsed < 2.0
    assert _pids_with(marker) == []


def test_cancel_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    """A child that ignores SIGTERM is SIGKILLed after the grace period; still < 2 s."""
    marker = f"stubborn-{uuid.uuid4().hex}"
    fake = tmp_path / f"ffmpeg-{marker}"  # the marker lands in the child's command line
    fake.write_text("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        run_ffmpeg([], ffmpeg=str(fake), should_cancel=lambda: True, cancel_poll=0.05)
    assert time.monotonic() - t0 < 2.0
    assert _pids_with(marker) == []


def test_timeout_is_transient() -> None:
    t0 = time.monotonic()
    with pytest.raises(ProcessingError, match="timed out"):
        run_ffmpeg([*_LONG, "-f", "null", "-"], timeout=0.5)
    assert time.monotonic() - t0 < 2.5


def test_callback_exception_kills_child(tmp_path: Path) -> None:
    marker = f"cb-{uuid.uuid4().hex}"

    def boom(_: float) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError):
        run_ffmpeg(
            [*_LONG, "-c:v", "libx264", "-preset", "ultrafast", str(tmp_path / f"{marker}.mp4")],
            duration=60,
            on_progress=boom,
        )
    assert _pids_with(marker) == []


def test_error_classification(tmp_path: Path, clips: dict[str, Path]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("just some text, not a video\n" * 20)
    truncated = tmp_path / "truncated.mp4"
    data = clips["av"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])

    def err(args: list[str]) -> Exception:
        with pytest.raises(Exception) as ei:
            run_ffmpeg(args)
        return ei.value

    e = err(["-i", str(tmp_path / "missing.mp4"), "-f", "null", "-"])
    assert isinstance(e, InvalidInputError) and "does not exist" in str(e)
    e = err(["-i", str(text), "-f", "null", "-"])
    assert isinstance(e, InvalidInputError) and str(e).startswith("ffmpeg: input is corrupt")
    e = err(["-i", str(truncated), "-f", "null", "-"])
    assert isinstance(e, InvalidInputError)
    e = err(["-i", str(clips["audio"]), "-vn", "-an", "-f", "null", "-"])
    assert isinstance(e, UnsupportedMediaError)
    e = err(["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "nosuchenc", str(tmp_path / "x.m4a")])
    assert isinstance(e, PermanentError) and "nosuchenc" in str(e)


def test_signal_and_generic_failures_are_transient(tmp_path: Path) -> None:
    killed = tmp_path / "ffmpeg-killed"
    killed.write_text("#!/bin/sh\necho about to die >&2\nkill -9 $$\n")
    failing = tmp_path / "ffmpeg-failing"
    failing.write_text("#!/bin/sh\necho 'Conversion failed!' >&2\nexit 1\n")
    for f in (killed, failing):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(ProcessingError, match="SIGKILL") as ei:
        run_ffmpeg([], ffmpeg=str(killed))
    assert "about to die" in str(ei.value)
    with pytest.raises(ProcessingError, match="exit code 1"):
        run_ffmpeg([], ffmpeg=str(failing))
    with pytest.raises(ProcessingError, match="cannot start"):
        run_ffmpeg([], ffmpeg=str(tmp_path / "no-such-ffmpeg"))


def test_output_path_problem_is_not_bad_input(tmp_path: Path) -> None:
    e = classify_failure(
        1, "/scratch/out/x.mp4: No such file or directory", ["-i", "/in.mp4", "/scratch/out/x.mp4"]
    )
    assert isinstance(e, ProcessingError)
    e = classify_failure(1, "/in.mp4: No such file or directory", ["-i", "/in.mp4", "/scratch/out/x.mp4"])
    assert isinstance(e, InvalidInputError)


def test_stderr_tail_is_bounded(tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.txt"
    noisy.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)) + b"x" * 100_000 + b"\nlast\n")
    with noisy.open("rb") as f:
        tail = StderrTail(f, maxlen=5)
        tail.join(5)
    lines = tail.lines()
    assert len(lines) == 5 and lines[-1] == "last"
    assert all(len(line) <= 1000 for line in lines)


@pytest.mark.parametrize(
    "tail, expected",
    [
        ("Could not find codec parameters for stream 0 (Video: h264, none): unspecified size\n"
         "in.mp4: could not find codec parameters", UnsupportedMediaError),
        ("Could not find codec parameters for stream 2 (Data: none (tmcd / 0x64636D74), 0 kb/s)\n"
         "Conversion failed!", ProcessingError),
        ("Decoder (codec av1) not found for input stream #0:0", UnsupportedMediaError),
        ("[h264 @ 0x1] Invalid data found when processing input\n"
         "out.mp4: No space left on device", ProcessingError),
        ("Exiting normally, received signal 15.", ProcessingError),
        ("[mov,mp4 @ 0x1] moov atom not found\nother.mp4: Invalid data found when processing input",
         InvalidInputError),
    ],
)  # fmt: skip
def test_classify_failure_table(tail: str, expected: type[Exception]) -> None:
    err = classify_failure(1, tail, ["-i", "in.mp4", "out.mp4"])
    assert type(err) is expected
    assert tail.splitlines()[-1] in str(err)  # the tail travels with the message
