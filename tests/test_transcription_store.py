"""Transcription through the output store: extract_audio (a cpu worker) and transcribe (a gpu-queue
worker) on workers that share no scratch directory, reading from and writing to S3 (moto)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarunner.models.enums import JobState, JobType
from mediarunner.speech import wer
from tests.storage.servers import moto_server
from tests.support import Stack, wait_for
from tests.test_storage_e2e import Remote, s3_objects, s3_remote
from tests.test_transcription_e2e import cue_times
from tests.transcribe.conftest import SPEECH_TEXT, WER_BOUND

DONE = JobState.COMPLETED


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(s3_endpoint: str) -> Remote:
    return s3_remote(s3_endpoint)


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("talk")
    wav = d / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    mp4 = d / "talk.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=128x72:r=10", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(mp4)], check=True)
    return mp4


def empty(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


def test_transcription_to_s3_on_workers_that_share_no_scratch(stack: Stack, s3: Remote, talk: Path,
                                                              tmp_path: Path) -> None:
    s3.client.upload_file(str(talk), s3.bucket, "in/talk.mp4")
    scratch = {"cpu": tmp_path / "scratch-cpu", "gpu": tmp_path / "scratch-gpu"}
    for q in ("cpu", "gpu"):  # a gpu-queue worker (CPU engine here: no GPU in CI)
        stack.worker(f"{q}1", queues=q, extra_env={**s3.env, "MEDIARUNNER_SCRATCH_DIR": str(scratch[q])})
    client = stack.client()
    job = client.submit_transcription(f"{s3.prefix}/in/talk.mp4", f"{s3.prefix}/subs/talk", language="en",
                                      device="gpu")
    assert [(j.type, j.queue) for j in job.family] == [(JobType.EXTRACT_AUDIO, "cpu"), (JobType.TRANSCRIBE, "gpu")]
    job = client.wait(job.id, timeout=240)
    assert [j.state for j in job.family] == [DONE, DONE], [(j.type, j.error) for j in job.family]
    (child,) = job.children
    assert job.worker and job.worker.startswith("cpu1@") and child.worker and child.worker.startswith("gpu1@")

    objects = s3_objects(s3, "subs/talk/")
    # The audio travelled through the bucket and the transcribe step removed it after success.
    assert sorted(objects) == ["transcript.json", "transcript.srt", "transcript.vtt"]
    vtt = objects["transcript.vtt"].decode()
    assert vtt.startswith("WEBVTT") and cue_times(vtt), vtt
    hypothesis = " ".join(s["text"] for s in json.loads(objects["transcript.json"])["segments"])
    assert wer(SPEECH_TEXT, hypothesis) <= WER_BOUND, hypothesis
    assert sorted(a.path for a in child.artifacts) == sorted(f"{s3.prefix}/subs/talk/{k}" for k in objects)
    assert (child.result or {})["audio_duration"] > 0
    # Each worker used its own scratch directory (and cleaned it up).
    wait_for(lambda: empty(scratch["cpu"]) and empty(scratch["gpu"]), 10, what="scratch to be cleaned")


@pytest.mark.parametrize("output", ["s3://bucket/subs", "sftp://media.example:2222/srv/subs",
                                    "ftp://media.example/subs"])
def test_remote_transcription_outputs_are_accepted(stack: Stack, output: str) -> None:
    client = stack.client()
    job = client.submit_transcription("s3://bucket/in.mp4", output, device="cpu")
    assert [j.payload["output"] for j in job.family] == [output, output]
    client.cancel(job.id)
    job = client.submit_transcode("s3://bucket/in.mp4", output, renditions=["240p"], transcribe=True,
                                  transcribe_device="cpu")
    assert {j.type for j in job.family} == {JobType.TRANSCODE, JobType.EXTRACT_AUDIO, JobType.TRANSCRIBE}
    client.cancel(job.id)
