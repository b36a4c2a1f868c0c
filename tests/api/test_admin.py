"""Admin routes (``admin`` keys): steer runners, registration tokens, API keys — through
``FleetService`` and ``ApiKeys``; 401/403/404/409 as problem details; secrets only in a 201."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from mediarunner.fleet import FleetService, RunnerStatus
from mediarunner.models.db import get_engine
from tests.api.conftest import Api
from tests.test_fleet_service import add_runner

PROBLEM = "application/problem+json"
ADMIN_ROUTES = [("POST", "/v1/runners/w1/maintenance", None), ("POST", "/v1/runners/w1/enable", None),
                ("POST", "/v1/runners/w1/disable", None), ("PUT", "/v1/runners/w1/concurrency", {"concurrency": 2}),
                ("GET", "/v1/tokens", None), ("POST", "/v1/tokens", {"name": "t"}),
                ("POST", "/v1/tokens/0123abcd/revoke", None), ("GET", "/v1/api-keys", None),
                ("POST", "/v1/api-keys", {"name": "k", "scopes": ["read"]}),
                ("POST", "/v1/api-keys/k/revoke", None), ("PUT", "/v1/runners/w1/priority", {"priority": 1}),
                ("POST", "/v1/runners/w1/unregister", None), ("DELETE", "/v1/runners/w1", None)]


@pytest.fixture
def admin(api: Api) -> Api:
    """The app with a fleet whose remote control waits 0.2 s for (absent) workers, and two runners."""
    api.http.app.state.fleet = FleetService(api.stack.settings(), reply_timeout=0.2)  # type: ignore[attr-defined]
    return api


def _problem(r: object, status: int, says: str) -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = r.json()  # type: ignore[attr-defined]
    assert body["status"] == status and says in str(body["detail"]), body
    return body


@pytest.mark.parametrize("method,path,body", ADMIN_ROUTES)
def test_admin_routes_need_an_admin_key(admin: Api, method: str, path: str, body: dict[str, object] | None) -> None:
    r = admin.http.request(method, path, json=body)
    _problem(r, 401, "Bearer")
    assert r.headers["www-authenticate"].startswith("Bearer")
    for who in ("read", "submit", "rw"):
        _problem(admin.http.request(method, path, json=body, headers=admin.h(who)), 403, "'admin'")


def test_steer_runners(admin: Api) -> None:
    url = admin.stack.settings().database_url
    add_runner(url, "cpu1@box")
    add_runner(url, "cpu2@box")
    shown = admin.http.get("/v1/runners/cpu1", headers=admin.h("read"))
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["runner"]["hostname"] == "cpu1@box" and detail["ffmpeg_version"] == "6.1"
    assert detail["notable_encoders"] == ["libx264", "h264_nvenc"]
    assert detail["events"][0]["kind"] == "runner_registered"

    drained = admin.http.post("/v1/runners/cpu2/maintenance", headers=admin.h("admin"))
    assert drained.status_code == 200, drained.text
    assert drained.json() == {"hostname": "cpu2@box", "changed": True, "acknowledged": False, "replies": {}}
    assert not admin.http.post("/v1/runners/cpu2@box/maintenance", headers=admin.h("admin")).json()["changed"]
    statuses = {r["hostname"]: r["status"] for r in admin.http.get("/v1/runners", headers=admin.h("read")).json()}
    assert statuses == {"cpu1@box": RunnerStatus.ENABLED.value, "cpu2@box": RunnerStatus.MAINTENANCE.value}
    assert admin.http.post("/v1/runners/cpu2/disable", headers=admin.h("admin")).json()["changed"]
    assert admin.http.post("/v1/runners/cpu2/enable", headers=admin.h("admin")).json()["changed"]
    resized = admin.http.put("/v1/runners/cpu1/concurrency", json={"concurrency": 3}, headers=admin.h("admin"))
    assert resized.status_code == 200 and resized.json()["hostname"] == "cpu1@box"

    _problem(admin.http.post("/v1/runners/gpu9/maintenance", headers=admin.h("admin")), 404, "gpu9")
    _problem(admin.http.get("/v1/runners/gpu9", headers=admin.h("read")), 404, "gpu9")
    ambiguous = _problem(admin.http.post("/v1/runners/cpu/enable", headers=admin.h("admin")), 409, "ambiguous")
    assert ambiguous["matches"] == ["cpu1@box", "cpu2@box"]
    for bad in ({"concurrency": 0}, {"concurrency": "many"}, {}, {"concurrency": 2, "x": 1}):
        _problem(admin.http.put("/v1/runners/cpu1/concurrency", json=bad, headers=admin.h("admin")), 422, "")


def test_runner_priority_unregister_and_remove(admin: Api) -> None:
    from mediarunner.fleet import FleetService

    url = admin.stack.settings().database_url
    add_runner(url, "cpu1@box")
    set_ = admin.http.put("/v1/runners/cpu1/priority", json={"priority": -5, "weight": 3}, headers=admin.h("admin"))
    assert set_.status_code == 200 and set_.json()["hostname"] == "cpu1@box" and set_.json()["changed"], set_.text
    assert FleetService(admin.stack.settings()).get_runner("cpu1").priority == -5
    for bad in ({"priority": 5000}, {"priority": 1, "weight": 0}, {}, {"priority": 1, "x": 1}):
        _problem(admin.http.put("/v1/runners/cpu1/priority", json=bad, headers=admin.h("admin")), 422, "")
    # a live runner would register again at its next heartbeat: unregister it first
    _problem(admin.http.delete("/v1/runners/cpu1", headers=admin.h("admin")), 422, "unregister")
    left = admin.http.post("/v1/runners/cpu1/unregister", headers=admin.h("admin"))
    assert left.status_code == 200 and left.json() == {"hostname": "cpu1@box", "released": []}, left.text
    gone = admin.http.delete("/v1/runners/cpu1@box", headers=admin.h("admin"))
    assert gone.status_code == 200 and gone.json() == {"hostname": "cpu1@box", "removed": True}, gone.text
    _problem(admin.http.get("/v1/runners/cpu1", headers=admin.h("read")), 404, "cpu1")
    _problem(admin.http.post("/v1/runners/gpu9/unregister", headers=admin.h("admin")), 404, "gpu9")


def test_registration_tokens(admin: Api) -> None:
    created = admin.http.post("/v1/tokens", json={"name": "site-a"}, headers=admin.h("admin"))
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    token = created.json()
    assert token["secret"].startswith("mrt_") and token["name"] == "site-a"
    add_runner(admin.stack.settings().database_url, "cpu1@box", token["id"])
    listed = admin.http.get("/v1/tokens", headers=admin.h("admin"))
    assert [(t["id"], t["runners"], t["revoked_at"]) for t in listed.json()] == [(token["id"], 1, None)]
    assert token["secret"] not in listed.text

    revoked = admin.http.post(f"/v1/tokens/{token['id']}/revoke", headers=admin.h("admin"))
    assert revoked.json() == {"id": token["id"], "unregistered": ["cpu1@box"]}
    assert admin.http.get("/v1/runners", headers=admin.h("read")).json() == []
    _problem(admin.http.post(f"/v1/tokens/{token['id']}/revoke", headers=admin.h("admin")), 404, token["id"])
    _problem(admin.http.post("/v1/tokens/ffffffff/revoke", headers=admin.h("admin")), 404, "ffffffff")
    _problem(admin.http.post("/v1/tokens", json={"name": ""}, headers=admin.h("admin")), 422, "name")


def test_api_keys(admin: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = admin.http.post("/v1/api-keys", json={"name": "peertube", "scopes": ["read", "submit"]},
                              headers=admin.h("admin"))
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    info = created.json()
    key, secret = info["key"], info["key"].split("_", 2)[2]
    assert info["name"] == "peertube" and info["scopes"] == ["read", "submit"] and info["revoked_at"] is None
    assert admin.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = admin.http.get("/v1/api-keys", headers=admin.h("admin"))
    assert "peertube" in {k["name"] for k in listed.json()} and secret not in listed.text
    assert all("key" not in k and "key_hash" not in k for k in listed.json())
    with get_engine(admin.stack.settings().database_url).connect() as conn:
        assert secret not in repr(conn.execute(text("SELECT * FROM api_keys")).all())

    _problem(admin.http.post("/v1/api-keys", json={"name": "peertube", "scopes": ["read"]},
                             headers=admin.h("admin")), 422, "exists")
    _problem(admin.http.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]},
                             headers=admin.h("admin")), 422, "scopes")
    _problem(admin.http.post("/v1/api-keys", json={"name": "bad name!", "scopes": ["read"]},
                             headers=admin.h("admin")), 422, "name")

    assert admin.http.post("/v1/api-keys/peertube/revoke", headers=admin.h("admin")).json()["revoked"]
    _problem(admin.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}), 401, "revoked")
    _problem(admin.http.post("/v1/api-keys/peertube/revoke", headers=admin.h("admin")), 404, "peertube")
    assert secret not in caplog.text
    assert secret not in admin.http.get("/v1/activity?limit=1000", headers=admin.h("admin")).text


def test_demo_mode_refuses_fleet_changes_with_403(admin: Api) -> None:
    settings = admin.stack.settings()
    add_runner(settings.database_url, "w@h")
    admin.http.app.state.fleet = FleetService(  # type: ignore[attr-defined]
        settings.model_copy(update={"demo_mode": True}), reply_timeout=0.2)
    for method, path, body in ADMIN_ROUTES:
        if "/runners/" in path or (path == "/v1/tokens" and method == "POST"):
            _problem(admin.http.request(method, path.replace("w1", "w"), json=body, headers=admin.h("admin")),
                     403, "read-only")
    assert admin.http.get("/v1/runners/w", headers=admin.h("read")).status_code == 200
