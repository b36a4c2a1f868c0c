"""Transcription end to end: espeak-ng speech -> extract_audio (cpu) -> transcribe, on real workers
with the real tiny.en model (faster-whisper, int8, CPU)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mediarunner.models.enums import JobState, JobType
from mediarunner.speech import wer
from tests.support import Stack, make_clip
from tests.transcribe.conftest import SPEECH_TEXT, WER_BOUND

DONE = JobState.COMPLETED
CUE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[.,](\d{3}) --> (\d{2}):(\d{2}):(\d{2})[.,](\d{3})$")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    wav = d / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    mp4 = d / "speech.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=128x72:r=10", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(mp4)], check=True)
    return mp4


def cue_times(text: str) -> list[tuple[float, float]]:
    out = []
    for line in text.splitlines():
        m = CUE.match(line.strip())
        if m:
            g = [int(x) for x in m.groups()]
            out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000))
    return out


def test_speech_to_subtitles_with_cpu_fallback(stack: Stack, speech: Path) -> None:
    stack.inproc_worker("cpu1", queues="cpu")
    client = stack.client()
    out = stack.tmp / "outputs" / "speech"
    job = client.submit_transcription(str(speech), str(out), language="en")
    (child,) = job.children
    assert child.type is JobType.TRANSCRIBE and child.queue == "cpu"
    assert child.routing_reason == "no gpu worker online: cpu fallback"
    job = client.wait(job.id, timeout=240)
    assert [j.state for j in job.family] == [DONE, DONE], [(j.state, j.error) for j in job.family]
    result = job.children[0].result or {}
    assert result["ran_on"]["queue"] == "cpu" and "fallback" in result["ran_on"]["why"]
    assert result["engine"] == "faster-whisper" and result["device"] == "cpu" and result["realtime_factor"] > 0

    vtt = (out / "transcript.vtt").read_text()
    srt = (out / "transcript.srt").read_text()
    data = json.loads((out / "transcript.json").read_text())
    assert vtt.startswith("WEBVTT")
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                     str(speech)], capture_output=True, text=True, check=True).stdout)
    for times in (cue_times(vtt), cue_times(srt)):
        assert times, "no cues"
        flat = [t for pair in times for t in pair]
        assert flat == sorted(flat) and all(s < e for s, e in times)
        assert flat[-1] <= duration + 0.05
    hypothesis = " ".join(s["text"] for s in data["segments"])
    assert wer(SPEECH_TEXT, hypothesis) <= WER_BOUND, hypothesis
    assert data["language"] == "en"
    assert not (out / "transcript.audio.wav").exists()  # the handover audio is removed
    assert result["model_loaded"] is True

    # The same worker process keeps its model: the next job does not load it again.
    again = client.wait(client.submit_transcription(str(speech), str(stack.tmp / "outputs" / "again")).id,
                        timeout=240)
    assert again.children[0].state is DONE and again.children[0].result["model_loaded"] is False  # type: ignore[index]


def test_routes_to_gpu_when_a_gpu_worker_is_online(stack: Stack, speech: Path) -> None:
    stack.inproc_worker("cpu1", queues="cpu")
    stack.inproc_worker("gpu1", queues="gpu")  # a GPU-queue worker (CPU engine here: no GPU in CI)
    client = stack.client()
    job = client.submit_transcription(str(speech), str(stack.tmp / "outputs" / "g"))
    assert job.children[0].queue == "gpu" and job.children[0].routing_reason == "a gpu worker is online"
    job = client.wait(job.id, timeout=240)
    assert job.children[0].state is DONE and job.children[0].worker.startswith("gpu1@")  # type: ignore[union-attr]


def test_no_audio_silence_and_corrupt(stack: Stack, tmp_path: Path) -> None:
    mute = make_clip(tmp_path / "mute.mp4", seconds=2.0, size="160x120", audio=False)
    silent = tmp_path / "silent.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3",
                    str(silent)], check=True)
    bad = tmp_path / "bad.mp4"
    bad.write_text("garbage" * 100)
    stack.inproc_worker("cpu1", queues="cpu")
    client = stack.client()
    ids = {name: client.submit_transcription(str(src), str(stack.tmp / "outputs" / name), device="cpu").id
           for name, src in (("mute", mute), ("silent", silent), ("bad", bad))}
    for name in ("mute", "silent"):
        job = client.wait(ids[name], timeout=240)
        assert [j.state for j in job.family] == [DONE, DONE], (name, [j.error for j in job.family])
        assert job.children[0].result["segments"] == 0  # type: ignore[index]
        assert (stack.tmp / "outputs" / name / "transcript.vtt").read_text().strip() == "WEBVTT"
    job = client.wait(ids["bad"], timeout=60)
    assert (job.state, job.attempt, job.error_kind) == (JobState.FAILED, 1, "permanent")
    assert "bad.mp4" in (job.error or "")
    assert job.children[0].state is JobState.PARENT_FAILED


def test_transcode_with_transcription_branch(stack: Stack, speech: Path) -> None:
    stack.inproc_worker("cpu1", queues="cpu")
    client = stack.client()
    out = stack.tmp / "outputs" / "both"
    job = client.submit_transcode(str(speech), str(out), renditions=["240p"], transcribe=True, language="en",
                                  transcribe_device="cpu")
    job = client.wait(job.id, timeout=240)
    assert all(j.state is DONE for j in job.family), [(j.type, j.state, j.error) for j in job.family]
    assert {j.type for j in job.family} == {JobType.TRANSCODE, JobType.EXTRACT_AUDIO, JobType.TRANSCRIBE}
    assert list(out.glob("*p.mp4")) and (out / "transcript.vtt").exists()  # 72p: never upscaled
