"""A hardware request end to end on a machine without the hardware: routed to cpu with the reason
recorded, encoded in software with each rendition's encoder record saying why; a bad value refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediarunner.errors import ValidationError
from mediarunner.media.hardware import usable_encoders
from mediarunner.models.enums import JobState
from tests.media_checks import streams
from tests.support import Stack, make_clip


@pytest.mark.skipif(bool(usable_encoders()), reason="this machine has a hardware encoder: no fallback to see")
def test_nvenc_request_without_a_gpu_falls_back_with_its_reason(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a", extra_env={"MEDIARUNNER_TRANSCODE_PASSTHROUGH": "false"})  # every rung encodes
    client = stack.client()
    out = stack.tmp / "outputs" / "hw"
    job = client.submit_transcode(str(src), str(out), renditions=["360p", "240p"], hardware="nvenc")
    assert job.queue == "cpu" and "no online worker can open a nvenc encoder" in (job.routing_reason or "")
    assert "software fallback" in (job.routing_reason or "")
    job = client.wait(job.id, timeout=120)
    assert all(j.state is JobState.COMPLETED for j in job.family), [(j.state, j.error) for j in job.family]
    for j in job.family:
        record = (j.result or {})["encoder"]
        assert (record["asked"], record["used"], record["hardware"]) == ("nvenc", "libx264", None)
        assert record["reason"] == "software libx264: fallback, h264_nvenc cannot open here (hardware=nvenc)"
    assert streams(out / "240p.mp4", "video")[0]["codec_name"] == "h264"


def test_unknown_hardware_is_refused(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, size="320x180")
    client = stack.client()
    with pytest.raises(ValidationError, match="hardware"):
        client.submit_transcode(str(src), str(stack.tmp / "outputs" / "x"), hardware="cuda")
