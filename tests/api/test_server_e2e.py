"""The real server (uvicorn on a free loopback port) driven over HTTP with httpx, with a real
worker and beat: submit, follow the SSE progress stream, poll to completion, receive the signed
webhook that beat's tick sends to a local receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.conftest import SECRET, Receiver, Server
from tests.support import make_clip, wait_for


def _sse(lines: list[str]) -> list[tuple[str, Any]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line[6:])))
    return events


def test_transcode_stream_poll_and_webhook(server: Server, receiver: Receiver) -> None:
    from mediarunner.scheduler.webhooks import verify

    clip = make_clip(server.stack.tmp / "in.mp4", seconds=4)
    server.stack.worker("cpu1", "cpu")
    server.stack.worker("sched", "scheduler", beat=True)
    with httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        r = http.post("/v1/jobs/transcode", json={
            "input": str(clip), "output": str(server.stack.tmp / "outputs" / "talk"), "renditions": ["360p", "240p"],
            "notify_url": receiver.url, "metadata": {"video_id": 7}})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        with http.stream("GET", f"/v1/jobs/{job_id}/stream", timeout=120) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = _sse(list(stream.iter_lines()))
        kinds = [k for k, _ in events]
        assert kinds[-1] == "done" and kinds.count("progress") >= 2, kinds
        progress = [d["progress"] for k, d in events if k == "progress"]
        assert progress == sorted(progress) and progress[-1] == 100.0
        done = events[-1][1]
        assert done["state"] == "completed" and {a["kind"] for a in done["artifacts"]} >= {"mp4"}
        job = wait_for(lambda: (j := http.get(f"/v1/jobs/{job_id}").json())["webhook"]["state"] == "delivered"
                       and j, 60, what="the webhook to be delivered")
        assert job["state"] == "completed" and all(c["state"] == "completed" for c in job["children"])
        assert job["webhook"]["attempts"] == 1
    (got,) = receiver.received
    assert verify(SECRET, got.headers["Mediarunner-Signature"], got.body)
    body = json.loads(got.body)
    assert body["event"] == "job.completed" and body["job"]["id"] == job_id and body["job"]["meta"] == {"video_id": 7}
    assert got.headers["Idempotency-Key"] == job["webhook"]["id"]


def test_cancel_over_http_ends_the_stream(server: Server) -> None:
    src = server.stack.tmp / "pending.mp4"
    src.touch()  # never read: no worker runs here, the job stays pending until it is cancelled
    with httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as http:
        job = http.post("/v1/jobs/transcode", json={
            "input": str(src), "output": str(server.stack.tmp / "outputs" / "x"), "renditions": ["240p"]}).json()
        with http.stream("GET", f"/v1/jobs/{job['id']}/stream", timeout=60) as stream:
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["state"] == "pending"
            assert http.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
            rest = _sse(["event: progress", first, *lines])
        assert rest[-1][0] == "done" and rest[-1][1]["state"] == "cancelled"
        assert http.get("/v1/jobs", params={"limit": 1}).json()["items"][0]["id"] == job["id"]
        assert http.get("/v1/jobs").status_code == 200
    assert httpx.get(f"{server.url}/v1/jobs").status_code == 401
