"""Bad inputs fail on the first attempt with a clear message; the worker keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler.dispatch import dispatch
from tests import rows
from tests.support import Stack, make_clip


def raw_submit(stack: Stack, payload: dict[str, Any]) -> str:
    """Insert and publish a job without the client's validation (a buggy or hostile producer)."""
    ids = transaction(lambda s: rows.create_jobs(s, [NewJob(JobType.TRANSCODE, "cpu", payload)], utcnow()))
    assert dispatch(ids[0], app=stack.client().app)
    return ids[0]


def test_bad_input_table(stack: Stack, tmp_path: Path) -> None:
    good = make_clip(tmp_path / "good.mp4", seconds=1.0, size="320x240")
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n" * 50)
    data = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov (at the end) is lost
    (tmp_path / "zero_size.y4m").write_bytes(b"YUV4MPEG2 W0 H0 F25:1 Ip A1:1 C420jpeg\nFRAME\n")
    out = str(stack.tmp / "outputs" / "bad")
    ladder = [{"name": "240p", "height": 240, "video_bitrate_k": 400, "audio_bitrate_k": 64}]
    client = stack.client()
    stack.inproc_worker("a")

    cases: dict[str, tuple[str, str]] = {}
    for name, expect in [("zero.mp4", "empty"), ("text.mp4", "text.mp4"), ("truncated.mp4", "truncated.mp4"),
                         ("zero_size.y4m", "zero_size.y4m")]:
        cases[name] = (client.submit_transcode(str(tmp_path / name), out).id, expect)
    with pytest.raises(ValidationError, match=r"missing\.mp4"):  # a missing local input is refused at submit
        client.submit_transcode(str(tmp_path / "missing.mp4"), out)
    cases["unknown scheme"] = (client.submit_transcode("gopher://example/x.mp4", out).id, "scheme")
    base = {"input": str(good), "output": out, "formats": ["hls"], "ladder": ladder}
    cases["output escapes roots"] = (raw_submit(stack, {**base, "output": "/etc/mediarunner-out"}), "escapes")
    cases["output with .."] = (raw_submit(stack, {**base, "output": f"{out}/../../x"}), "..")
    cases["ill-typed payload"] = (raw_submit(stack, {**base, "input": 123}), "input")
    cases["oversized payload"] = (raw_submit(stack, {**base, "input": "x" * 10_000}), "input")
    cases["unexpected field"] = (raw_submit(stack, {**base, "shell": "rm -rf /"}), "shell")

    for label, (job_id, expect) in cases.items():
        job = client.wait(job_id, timeout=60)
        assert job.state is JobState.FAILED, (label, job.state)
        assert (job.attempt, job.failures, job.error_kind) == (1, 0, "permanent"), (label, job.error)
        assert expect.lower() in (job.error or "").lower(), (label, job.error)
        assert all(c.state is JobState.PARENT_FAILED for c in job.children)

    ok = client.wait(client.submit_transcode(str(good), str(stack.tmp / "outputs" / "ok")).id, timeout=60)
    assert ok.state is JobState.COMPLETED
    assert not (stack.tmp / "outputs" / "bad").exists()
    assert "Traceback" not in "".join(
        client.get(i).error or "" for i, _ in cases.values()), "errors should be one clear line, not a traceback"
