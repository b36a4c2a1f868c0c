"""The real server (uvicorn on a free loopback port) over HTTP (httpx): an http(s) input polled to
completion; the four job types, 401/403/404/413/422 problem documents and cursor pagination."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import Server
from tests.storage.http_server import http_files
from tests.support import make_clip, wait_for

PROBLEM = "application/problem+json"


def _problem(r: httpx.Response, status: int, says: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:mediarunner:problem:") and says in body["detail"]


def test_http_input_polled_to_completion(server: Server) -> None:
    clip = make_clip(server.stack.tmp / "served.mp4", seconds=2.0, size="320x180").read_bytes()
    server.stack.inproc_worker("http-cpu")
    out = server.stack.tmp / "outputs" / "from-http"
    with http_files(**{"clip.mp4": clip}) as files, \
            httpx.Client(base_url=server.url, headers=server.h(), timeout=30) as http:
        r = http.post("/v1/jobs/transcode", json={"input": f"{files.url}/clip.mp4", "output": str(out),
                                                  "renditions": ["240p"]})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
            return job if job["state"] in ("completed", "failed", "cancelled", "timeout") else None

        job = wait_for(finished, 120, interval=0.1, what="the http-input job to finish")
    assert job["state"] == "completed", job["error"]
    assert all(c["state"] == "completed" for c in job["children"])
    assert [a for a in job["artifacts"] if a["kind"] == "mp4"] and list(out.rglob("*.mp4"))


def test_types_problems_and_pages_over_http(server: Server) -> None:
    src = server.stack.tmp / "pending.mp4"
    src.touch()  # no worker here: every job stays pending
    out = str(server.stack.tmp / "outputs" / "types")
    bodies = {"transcode": {"input": str(src), "output": out, "renditions": ["240p"]},
              "studio": {"input": str(src), "output": out, "operations": [{"op": "cut", "start": 0, "end": 1}]},
              "live": {"input_url": "rtmp://127.0.0.1:1935/live/key", "output": out, "renditions": ["240p"]},
              "transcription": {"input": str(src), "output": out, "language": "en"}}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ids = []
        for kind, body in bodies.items():
            r = http.post(f"/v1/jobs/{kind}", json=body, headers=server.h())
            assert r.status_code == 201, (kind, r.text)
            assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
            assert http.get(r.headers["location"], headers=server.h()).json() == r.json()
            ids.append(r.json()["id"])

        _problem(http.get("/v1/jobs"), 401, "Bearer")
        _problem(http.get("/v1/jobs", headers={"Authorization": "Bearer mrk_00000000_" + "x" * 43}), 401)
        _problem(http.post("/v1/jobs/transcode", json=bodies["transcode"], headers=server.h("read")), 403, "submit")
        _problem(http.get("/v1/tokens", headers=server.h()), 403, "admin")
        _problem(http.get("/v1/jobs/0000-unknown", headers=server.h()), 404, "0000-unknown")
        as_json = {**server.h(), "Content-Type": "application/json"}
        _problem(http.post("/v1/jobs/transcode", content=b"{not json", headers=as_json), 400, "JSON")
        _problem(http.post("/v1/jobs/transcode", json={**bodies["transcode"], "renditions": ["9000p"]},
                           headers=server.h()), 422, "9000p")
        _problem(http.post("/v1/jobs/transcode", content=b"x" * (2 << 20), headers=as_json), 413)

        seen: list[str] = []
        cursor: str | None = None
        while True:  # the session's database: other tests' jobs are listed too
            params: dict[str, Any] = {"limit": 3, "roots_only": True, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/jobs", params=params, headers=server.h()).json()
            seen += [j["id"] for j in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) and [i for i in seen if i in ids] == ids[::-1]  # newest first, once
