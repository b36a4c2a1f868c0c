"""The PeerTube connector against the fake PeerTube runner API, with real workers and ffmpeg.

Each success body is checked field by field against what PeerTube 6.3.3's validators and job
handlers need (``payload[videoFile]``, ``payload[resolutionPlaylistFile]``, ``payload[vttFile]`` +
``payload[inputLanguage]``; nothing else), and the files against what its handlers do with them:
the resolution (short side) and fps the payload asked for, an HLS playlist of byte ranges into one
fragmented MP4 named ``<uuid>-<resolution>-fragmented.mp4`` (``renameVideoFileInPlaylist``), video
only with ``separatedAudio``, audio only at resolution 0. Tests marked with ``VERSIONS`` run against
the fake as 6.3.3 and as the newest PeerTube (``fake.NEWEST``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mediarunner import __version__
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from tests.peertube.conftest import VERSIONS, register, start_connector
from tests.peertube.fake import COMPLETED, ERRORED, PENDING, FakeJob, FakePeerTube, file_url
from tests.support import Stack, make_clip, wait_for

FRAGMENTED = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(\d+)-fragmented\.mp4$")


def streams(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    kinds = {s["codec_type"]: s for s in data["streams"]}
    return {"video": kinds.get("video"), "audio": kinds.get("audio"), "format": data["format"]}


def fps(stream: dict[str, Any]) -> float:
    num, den = stream["avg_frame_rate"].split("/")
    return int(num) / int(den)


def vod(resolution: int, rate: int, *, separated_audio: bool | None = None, audio_url: bool = False) -> dict[str, Any]:
    output: dict[str, Any] = {"resolution": resolution, "fps": rate}
    if separated_audio is not None:
        output["separatedAudio"] = separated_audio
    return {"input": {"videoFileUrl": file_url("max-quality"),
                      "separatedAudioFileUrl": [file_url("max-quality/audio")] if audio_url else []},
            "output": output}


def done(fake: FakePeerTube, job: FakeJob, timeout: float = 120) -> FakeJob:
    wait_for(lambda: job.state in (COMPLETED, ERRORED), timeout=timeout, what=f"PeerTube job {job.type} to end")
    assert job.state == COMPLETED, job.error
    assert job.success is not None
    return job


@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)
def test_vod_web_video_and_hls_outputs_are_peertubes(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    stack.inproc_worker("cpu1", queues="cpu", concurrency=2)
    register(stack, peertube)
    running = start_connector(stack)
    try:
        wait_for(lambda: peertube.socket_clients == 1, timeout=20, what="the socket.io connection")
        t0 = time.monotonic()
        web = peertube.add_job("vod-web-video-transcoding", vod(240, 24), {"max-quality": clip})
        wait_for(lambda: web.accepted_at is not None, timeout=10, what="the ping to start the job")
        assert web.accepted_at - t0 < 3.0  # the socket.io ping, not the 30 s poll
        hls = peertube.add_job("vod-hls-transcoding", vod(360, 25, separated_audio=False), {"max-quality": clip})
        for j in (web, hls):
            done(peertube, j)
    finally:
        running.stop()

    assert web.success is not None and hls.success is not None
    assert web.success["fields"] == {} and set(web.success["files"]) == {"videoFile"}
    path, _, mime = web.success["files"]["videoFile"]
    info = streams(path)
    assert mime == "video/mp4" and info["video"]["height"] == 240 and abs(fps(info["video"]) - 24) < 0.1
    assert info["audio"] is not None
    assert web.updates and web.updates[0]["at"] - web.accepted_at < 2  # an update at once, then regularly

    assert hls.success["fields"] == {} and set(hls.success["files"]) == {"videoFile", "resolutionPlaylistFile"}
    video, video_name, vmime = hls.success["files"]["videoFile"]
    playlist, _, pmime = hls.success["files"]["resolutionPlaylistFile"]
    assert (vmime, pmime) == ("video/mp4", "application/vnd.apple.mpegurl")
    m = FRAGMENTED.match(video_name)
    assert m and m.group(1) == "360", video_name
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-BYTERANGE" in text and "#EXT-X-ENDLIST" in text
    assert f'#EXT-X-MAP:URI="{video_name}"' in text  # relative, the name PeerTube rewrites
    assert {line for line in text.splitlines() if line and not line.startswith("#")} == {video_name}
    info = streams(video)
    assert info["video"]["height"] == 360 and abs(fps(info["video"]) - 25) < 0.1 and info["audio"] is not None


def test_hls_separated_audio_and_audio_only_variants(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    video_only = make_clip(stack.tmp / "video-only.mp4", seconds=3.0, size="640x360", audio=False)
    audio_only = make_clip(stack.tmp / "audio-only.m4a", seconds=3.0, video=False)
    stack.inproc_worker("cpu1", queues="cpu", concurrency=2)
    register(stack, peertube)
    running = start_connector(stack)
    try:
        files = {"max-quality": video_only, "max-quality/audio": audio_only}
        video = peertube.add_job("vod-hls-transcoding", vod(240, 25, separated_audio=True, audio_url=True), files)
        audio = peertube.add_job("vod-hls-transcoding", vod(0, 0, separated_audio=True, audio_url=True), files)
        web_audio = peertube.add_job("vod-web-video-transcoding", vod(0, 0), {"max-quality": clip})
        for j in (video, audio, web_audio):
            done(peertube, j)
    finally:
        running.stop()
    assert video.success is not None and audio.success is not None and web_audio.success is not None
    v = streams(video.success["files"]["videoFile"][0])
    assert v["video"]["height"] == 240 and v["audio"] is None  # separated: the video stream only
    name = audio.success["files"]["videoFile"][1]
    assert FRAGMENTED.match(name) and FRAGMENTED.match(name).group(1) == "0"  # type: ignore[union-attr]
    a = streams(audio.success["files"]["videoFile"][0])
    assert a["video"] is None and a["audio"] is not None
    w = streams(web_audio.success["files"]["videoFile"][0])
    assert w["video"] is None and w["audio"] is not None


def test_audio_merge(stack: Stack, peertube: FakePeerTube) -> None:
    audio = make_clip(stack.tmp / "song.m4a", seconds=3.0, video=False)
    preview = stack.tmp / "preview.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=850x480:rate=1",
                    "-frames:v", "1", str(preview)], check=True)
    stack.inproc_worker("cpu1", queues="cpu")
    register(stack, peertube)
    running = start_connector(stack)
    try:
        payload = {"input": {"audioFileUrl": file_url("max-quality"),
                             "previewFileUrl": file_url("previews/max-quality")},
                   "output": {"resolution": 480, "fps": 25}}
        job = peertube.add_job("vod-audio-merge-transcoding", payload,
                               {"max-quality": audio, "previews/max-quality": preview})
        done(peertube, job)
    finally:
        running.stop()
    assert job.success is not None and set(job.success["files"]) == {"videoFile"} and job.success["fields"] == {}
    info = streams(job.success["files"]["videoFile"][0])
    assert info["video"]["height"] == 480 and abs(fps(info["video"]) - 25) < 0.1 and info["audio"] is not None


def test_cancel_on_peertube_cancels_the_mediarunner_job(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    # No worker: the mediarunner job stays pending while the connector keeps PeerTube updated.
    register(stack, peertube)
    running = start_connector(stack)
    client = stack.client()
    try:
        cancelled = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
        deleted = peertube.add_job("vod-web-video-transcoding", vod(360, 25), {"max-quality": clip})
        ids = {}
        for j in (cancelled, deleted):
            ids[j.uuid] = wait_for(lambda j=j: _mediarunner_job(stack, j.uuid), timeout=30, what="the submission")
        peertube.cancel(cancelled.uuid)
        peertube.delete(deleted.uuid)
        for job_id in ids.values():
            wait_for(lambda i=job_id: client.get(i).state is JobState.CANCELLED, timeout=15, what="the cancel")
        assert cancelled.error is None and not cancelled.aborts  # nothing posted to a job PeerTube dropped
    finally:
        running.stop()
    assert _tracked(stack, cancelled.uuid).state == "gone"


def test_no_watchdog_abort_while_mediarunner_waits_then_success(stack: Stack, peertube: FakePeerTube,
                                                                clip: Path) -> None:
    peertube.stalled_vod_seconds = 2.0  # PeerTube's is 120 s; the connector updates every 0.5 s here
    register(stack, peertube)
    running = start_connector(stack)
    try:
        job = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
        wait_for(lambda: _mediarunner_job(stack, job.uuid), timeout=30, what="the submission")
        time.sleep(5)  # the scenario itself: 2.5 watchdog periods with no worker running the job
        assert job.stalled == 0 and len(job.updates) >= 8
        stack.inproc_worker("cpu1", queues="cpu")
        done(peertube, job)
        gaps = [b["at"] - a["at"] for a, b in zip(job.updates, job.updates[1:], strict=False)]
        assert max(gaps) < 2.0
    finally:
        running.stop()


def test_shutdown_aborts_running_jobs(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    register(stack, peertube)
    running = start_connector(stack)
    client = stack.client()
    job = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
    job_id = wait_for(lambda: _mediarunner_job(stack, job.uuid), timeout=30, what="the submission")
    running.stop("mediarunner connector stopped (SIGTERM)")
    assert job.aborts == ["mediarunner connector stopped (SIGTERM)"] and job.state == PENDING
    assert client.get(job_id).state is JobState.CANCELLED
    # A new connector takes the job PeerTube offers again (same uuid, a new job token) and ends it.
    stack.inproc_worker("cpu1", queues="cpu")
    again = start_connector(stack)
    try:
        done(peertube, job)
    finally:
        again.stop()
    assert _tracked(stack, job.uuid).state == "done" and _mediarunner_job(stack, job.uuid) != job_id


def test_input_gone_with_the_job_still_ours_posts_error(stack: Stack, peertube: FakePeerTube) -> None:
    # A deleted video leaves its runner jobs behind: the file 404s while the job is still processing.
    register(stack, peertube)
    running = start_connector(stack)
    try:
        job = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {})
        wait_for(lambda: job.state == ERRORED, timeout=30, what="the error")
    finally:
        running.stop()
    assert job.error and "cannot download the input" in job.error


@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)
def test_unsupported_types_are_never_accepted(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    register(stack, peertube, "fleet", "vod-hls-transcoding")  # web video not enabled here
    running = start_connector(stack, peertube_poll_seconds=0.3)
    try:
        live = peertube.add_job("live-rtmp-hls-transcoding", {"input": {"rtmpUrl": "rtmp://x/live"}, "output": {
            "toTranscode": [{"resolution": 240, "fps": 25}], "segmentDuration": 2, "segmentListSize": 5}})
        web = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
        wait_for(lambda: len(peertube.requests) >= 4, timeout=20, what="several requests")
        assert live.state == PENDING and web.state == PENDING
        if peertube.version == "6.3.3":  # no jobTypes there: it offers both, the connector refuses them
            assert peertube.requests[-1] == {}
        else:  # the newest filters with jobTypes
            assert peertube.requests[-1] == {"jobTypes": ["vod-hls-transcoding"], "version": __version__}
    finally:
        running.stop()


def test_failed_work_posts_error(stack: Stack, peertube: FakePeerTube) -> None:
    junk = stack.tmp / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    stack.inproc_worker("cpu1", queues="cpu")
    register(stack, peertube)
    running = start_connector(stack)
    try:
        job = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": junk})
        wait_for(lambda: job.state == ERRORED, timeout=60, what="the error")
    finally:
        running.stop()
    assert job.error and "mediarunner" in job.error and 1 <= len(job.error) <= 5000


def test_revoked_runner_stops_the_instance(stack: Stack, peertube: FakePeerTube, clip: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from mediarunner.models import peertube as records
    from mediarunner.models.tables import EventRow

    register(stack, peertube)
    running = start_connector(stack, peertube_poll_seconds=0.3)
    try:
        wait_for(lambda: peertube.requests, timeout=20, what="a request")
        peertube.delete_runner("fleet")
        url = stack.settings().database_url
        wait_for(lambda: transaction(lambda s: records.get_instance(s, "fleet"), url=url).state == "stopped",
                 timeout=20, what="the instance to stop")
        inst = transaction(lambda s: records.get_instance(s, "fleet"), url=url)
        assert inst.state_reason and "revoked" in inst.state_reason
        events = transaction(lambda s: [e.message for e in s.query(EventRow)
                                        .filter(EventRow.kind == "peertube_stopped")], url=url)
        assert len(events) == 1 and inst.runner_token not in events[0]
        stopped = [r.getMessage() for r in caplog.records if "stopping this instance" in r.getMessage()]
        assert len(stopped) == 1 and "fleet" in stopped[0]
        assert inst.runner_token not in caplog.text
        n = len(peertube.requests)
        job = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
        time.sleep(1.5)  # the scenario: several poll periods after the stop
        assert len(peertube.requests) == n and job.state == PENDING
    finally:
        running.stop()


def _mediarunner_job(stack: Stack, uuid: str) -> str | None:
    t = _tracked(stack, uuid)
    return t.job_id if t is not None else None


def _tracked(stack: Stack, uuid: str) -> Any:
    from mediarunner.models import peertube as records

    return transaction(lambda s: records.get_job(s, uuid), url=stack.settings().database_url)


def test_transcription(stack: Stack, peertube: FakePeerTube) -> None:
    from tests.transcribe.conftest import SPEECH_TEXT

    wav = stack.tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    audio = stack.tmp / "speech.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(audio)], check=True)
    stack.inproc_worker("cpu1", queues="cpu")
    register(stack, peertube)
    running = start_connector(stack)
    try:
        job = peertube.add_job("video-transcription", {"input": {"videoFileUrl": file_url("max-quality/audio")}},
                               {"max-quality/audio": audio})
        done(peertube, job, timeout=240)
    finally:
        running.stop()
    assert job.success is not None and set(job.success["files"]) == {"vttFile"}
    assert job.success["fields"] == {"inputLanguage": "en"}
    vtt, _, mime = job.success["files"]["vttFile"]
    assert mime == "text/vtt" and vtt.read_text().startswith("WEBVTT") and "-->" in vtt.read_text()
    assert job.updates  # multipart updates (a JSON one is a 500 on 6.3.3 for this type)


def test_studio_cut_intro_watermark(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    intro = make_clip(stack.tmp / "intro.mp4", seconds=1.0, size="320x180")
    mark = stack.tmp / "mark.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=64x32", "-frames:v", "1",
                    str(mark)], check=True)
    stack.inproc_worker("cpu1", queues="cpu")
    register(stack, peertube)
    running = start_connector(stack)
    try:
        tasks = [{"name": "cut", "options": {"start": "1", "end": "3"}},  # strings, as PeerTube sends them
                 {"name": "add-intro", "options": {"file": file_url("studio/task-files/intro.mp4")}},
                 {"name": "add-watermark", "options": {"file": file_url("studio/task-files/mark.png"),
                                                       "watermarkSizeRatio": 0.1, "horitonzalMarginRatio": 0.05,
                                                       "verticalMarginRatio": 0.05}}]
        job = peertube.add_job("video-studio-transcoding", {
            "input": {"videoFileUrl": file_url("max-quality"), "separatedAudioFileUrl": []}, "tasks": tasks},
            {"max-quality": clip, "studio/task-files/intro.mp4": intro, "studio/task-files/mark.png": mark})
        unknown = peertube.add_job("video-studio-transcoding", {
            "input": {"videoFileUrl": file_url("max-quality"), "separatedAudioFileUrl": []},
            "tasks": [{"name": "add-sepia", "options": {}}]}, {"max-quality": clip})
        done(peertube, job)
        assert unknown.state == PENDING  # a task we do not know is never accepted
    finally:
        running.stop()
    assert job.success is not None and set(job.success["files"]) == {"videoFile"} and job.success["fields"] == {}
    info = streams(job.success["files"]["videoFile"][0])
    assert info["video"]["height"] == 360 and info["audio"] is not None
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.5  # 1 s intro + the 2 s cut


def test_one_process_serves_several_instances(stack: Stack, peertube: FakePeerTube, clip: Path) -> None:
    from tests.support import free_port

    other = FakePeerTube(stack.tmp / "other-received")
    other.start(free_port())
    try:
        stack.inproc_worker("cpu1", queues="cpu", concurrency=2)
        register(stack, peertube, "site-a")
        register(stack, other, "site-b")
        running = start_connector(stack)
        try:
            a = peertube.add_job("vod-web-video-transcoding", vod(240, 25), {"max-quality": clip})
            b = other.add_job("vod-hls-transcoding", vod(240, 25, separated_audio=False), {"max-quality": clip})
            done(peertube, a)
            done(other, b)
        finally:
            running.stop()
        assert a.runner in peertube.runners and b.runner in other.runners  # each with its own runner token
        assert {r.name for r in peertube.runners.values()} == {"site-a"}
    finally:
        other.stop()
