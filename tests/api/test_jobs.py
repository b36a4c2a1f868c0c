"""Jobs over HTTP (TestClient, no worker): the four submissions, reads, cursor pagination, cancel,
restart, notify_url rules and problem details for every kind of bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def submit(api: Api, kind: str = "transcode", **body: Any) -> dict[str, Any]:
    body.setdefault("output", api.outputs + "/o")
    if kind != "live":
        body.setdefault("input", api.input)
    r = api.http.post(f"/v1/jobs/{kind}", json=body, headers=api.h())
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    return r.json()  # type: ignore[no-any-return]


def test_the_four_submissions(api: Api) -> None:
    t = submit(api, renditions=["480p", "240p"], priority=5, metadata={"video_id": 42})
    assert t["type"] == "transcode" and t["state"] == "pending" and t["meta"] == {"video_id": 42}
    assert [c["type"] for c in t["children"]] == ["transcode_rendition"]
    assert {"children", "rank", "progress", "stage", "artifacts", "error", "webhook"} <= set(t)
    s = submit(api, "studio", operations=[{"op": "cut", "start": 0, "end": 1}], transcode=True,
               renditions=["240p"])
    assert s["type"] == "studio" and s["children"][0]["type"] == "transcode"
    live = submit(api, "live", input_url="rtmp://127.0.0.1:1935/live/key", renditions=["240p"])
    assert live["type"] == "live"
    tr = submit(api, "transcription", language="en", priority_class="staff")
    assert tr["type"] == "extract_audio" and tr["children"][0]["type"] == "transcribe"
    got = api.http.get(f"/v1/jobs/{t['id']}", headers=api.h()).json()
    assert got["id"] == t["id"] and got["children"][0]["id"] == t["children"][0]["id"]
    events = api.http.get(f"/v1/jobs/{t['id']}/events", headers=api.h()).json()
    assert [e["kind"] for e in events] == ["job_submitted"]


def _problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:mediarunner:problem:") and body["title"]
    for w in words:
        assert w in body["detail"], body
    return body  # type: ignore[no-any-return]


def test_problem_details(api: Api) -> None:
    post, h = api.http.post, {**api.h(), "Content-Type": "application/json"}
    _problem(post("/v1/jobs/transcode", content=b'{"input": ', headers=h), 400, "not valid JSON")
    _problem(post("/v1/jobs/transcode", json={"input": "/a", "output": api.outputs, "priority": "high"},
                  headers=h), 422, "priority")
    _problem(post("/v1/jobs/transcode", json={"input": "/a"}, headers=h), 422, "output", "Field required")
    _problem(post("/v1/jobs/transcode", json={"input": "/a", "output": api.outputs, "renditions": ["9000p"]},
                  headers=h), 422, "unknown rendition", "9000p")
    _problem(post("/v1/jobs/transcode", json={"input": "/a", "output": "/etc/x"}, headers=h), 422, "allowed roots")
    _problem(post("/v1/jobs/transcode", json={"input": "/a", "output": api.outputs, "colour": 1}, headers=h),
             422, "colour")
    _problem(post("/v1/jobs/transcode", json={"input": "a\u0000b", "output": api.outputs}, headers=h), 422, "NUL")
    _problem(post("/v1/jobs/studio", json={"input": "/a", "output": api.outputs, "operations": [{"op": "x"}]},
                  headers=h), 422)
    _problem(post("/v1/jobs/transcode", content=b"[" * 50_000, headers=h), 400)
    big = b'{"input": "' + b"a" * (1 << 20) + b'"}'
    _problem(post("/v1/jobs/transcode", content=big, headers=h), 413, "larger than")
    chunks = iter([b'{"input": "', b"a" * (1 << 20), b'"}'])  # no Content-Length: counted as it streams
    _problem(post("/v1/jobs/transcode", content=chunks, headers=h), 413)
    for path in ("/v1/jobs/0b6e1c2a-0000-4000-8000-000000000000", "/v1/jobs/%00", "/v1/jobs/x/events",
                 "/v1/jobs/x/stream", "/v1/nothing"):
        _problem(api.http.get(path, headers=h), 404)
    for path in ("/v1/jobs/0b6e1c2a-0000-4000-8000-000000000000/cancel", "/v1/jobs/nope/restart"):
        _problem(post(path, headers=h), 404, "no job")
    _problem(api.http.get("/v1/jobs?cursor=bm9wZQ", headers=h), 400, "cursor")
    _problem(api.http.get("/v1/jobs?state=sleeping", headers=h), 422, "state")


def test_cursor_pagination_and_filters(api: Api) -> None:
    ids = [submit(api, renditions=["240p"], priority_class="staff" if i % 2 else "default")["id"]
           for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = api.http.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                            headers=api.h()).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
    assert cursor is None and seen == ids[::-1]  # newest first, each once
    staff = api.http.get("/v1/jobs?priority_class=staff", headers=api.h()).json()["items"]
    assert [j["id"] for j in staff] == [ids[3], ids[1]]
    assert api.http.get("/v1/jobs?state=running", headers=api.h()).json() == {"items": [], "next_cursor": None}
    assert len(api.http.get("/v1/jobs?type=transcode&state=pending", headers=api.h()).json()["items"]) == 5


def test_cancel_and_restart(api: Api) -> None:
    job = submit(api, renditions=["480p", "240p"])
    _problem(api.http.post(f"/v1/jobs/{job['id']}/restart", headers=api.h()), 409, "pending")
    cancelled = api.http.post(f"/v1/jobs/{job['id']}/cancel", headers=api.h()).json()
    assert cancelled["state"] == "cancelled"
    assert {c["state"] for c in cancelled["children"]} <= {"cancelled", "parent_cancelled"}
    restarted = api.http.post(f"/v1/jobs/{job['id']}/restart", headers=api.h()).json()
    assert restarted["state"] == "pending" and restarted["attempt"] >= 1


@pytest.mark.parametrize("url,why", [
    ("ftp://example.com/hook", "http"), ("http://127.0.0.2.nip.invalid/x", "resolve"),
    ("http://169.254.169.254/latest", "169.254.169.254"), ("http://10.1.2.3/x", "10.1.2.3"),
    ("http://[::1]:8080/x", "::1"), ("http://user:pw@example.com/x", "credentials"), ("not a url", "http"),
])
def test_notify_url_rules(api: Api, url: str, why: str) -> None:
    r = api.http.post("/v1/jobs/transcode", headers=api.h(),
                      json={"input": "/a", "output": api.outputs, "notify_url": url})
    _problem(r, 422, why)
    assert api.http.get("/v1/jobs", headers=api.h()).json()["items"] == []  # nothing was submitted


def test_loopback_allowed_by_allowed_networks(api: Api) -> None:
    job = submit(api, renditions=["240p"], notify_url="http://127.0.0.1:9/hook")
    assert job["webhook"]["state"] == "waiting" and job["webhook"]["attempts"] == 0


def test_fleet_and_health(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert api.http.get("/v1/runners", headers=api.h("read")).json() == []
    stats = api.http.get("/v1/stats", headers=api.h("read")).json()
    assert len(stats) == 9 and stats["runners_online"] == 0  # eight numbers and the runner total
    assert api.http.get("/v1/activity?limit=5", headers=api.h("read")).status_code == 200
    assert api.http.get("/v1/activity?limit=0", headers=api.h("read")).status_code == 422
    doc = api.http.get("/openapi.json").json()
    assert {"/v1/jobs/transcode", "/v1/jobs/{job_id}/stream", "/v1/runners", "/healthz"} <= set(doc["paths"])
    assert api.http.get("/docs").status_code == 200
