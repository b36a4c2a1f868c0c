"""The web admin over plain HTTP (TestClient): login and its cookie, redirects to the login page,
CSRF refusals, read versus admin keys, demo mode, no secret in any page, the live SSE regions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import Admin, csrf_in, web_app

PAGES = ["/admin/", "/admin/runners", "/admin/jobs", "/admin/activity", "/admin/tokens"]


def test_unauthenticated_requests_redirect_to_login(admin: Admin) -> None:
    job = admin.pending_job()
    for path in [*PAGES, f"/admin/jobs/{job.id}", "/admin/live/dashboard"]:
        r = admin.http.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/admin/login?next={path}", path
    r = admin.http.post(f"/admin/jobs/{job.id}/cancel", data={"csrf": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    assert admin.stack.client().get(job.id).state == "pending"
    r = admin.http.get("/admin/", cookies={"mr_admin": "mrk_00000000_" + "x" * 43}, follow_redirects=False)
    assert r.status_code == 303  # an unknown key is no session
    # the API itself keeps its problem+json 401, and the admin is not in its OpenAPI document
    assert admin.http.get("/v1/jobs").headers["content-type"] == "application/problem+json"
    assert not [p for p in admin.http.get("/openapi.json").json()["paths"] if p.startswith("/admin")]


def test_login_cookie_flags_logout_and_revocation(admin: Admin) -> None:
    page = admin.http.get("/admin/login")
    assert 'name="api_key"' in page.text and page.headers["content-security-policy"].startswith("default-src 'self'")
    bad = admin.http.post("/admin/login", data={"api_key": "mrk_nope", "csrf": csrf_in(page.text)})
    assert bad.status_code == 401 and "Unknown or revoked API key" in bad.text
    stale = admin.http.post("/admin/login", data={"api_key": admin.keys["admin"], "csrf": "forged"},
                            follow_redirects=False)
    assert stale.status_code == 401 and "mr_admin" not in stale.headers.get("set-cookie", "")
    r = admin.http.post("/admin/login", data={"api_key": admin.keys["admin"], "csrf": csrf_in(page.text),
                                              "next": "https://evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/"  # no open redirect
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("mr_admin="))
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/admin"} <= flags and "secure" not in flags
    csrf = csrf_in(admin.http.get("/admin/").text)
    assert admin.http.post("/admin/logout", data={"csrf": "wrong"}).status_code == 403
    out = admin.http.post("/admin/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    assert admin.http.get("/admin/", follow_redirects=False).status_code == 303
    csrf = admin.login("admin")
    name = next(k.name for k in admin.http.app.state.keys.list() if k.scopes == ("admin",))  # type: ignore[attr-defined]
    admin.http.post(f"/admin/keys/{name}/revoke", data={"csrf": csrf, "confirm": "yes"})
    assert admin.http.get("/admin/", follow_redirects=False).status_code == 303  # a revoked key ends its sessions


def test_secure_cookie_over_https(admin: Admin) -> None:
    with TestClient(admin.http.app, base_url="https://testserver") as https:
        page = https.get("/admin/login")
        r = https.post("/admin/login", data={"api_key": admin.keys["read"], "csrf": csrf_in(page.text)},
                       follow_redirects=False)
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("mr_admin="))
        assert "secure" in {f.strip().lower() for f in cookie.split(";")}


def test_csrf_refusal_and_admin_actions(admin: Admin) -> None:
    job = admin.pending_job()
    csrf = admin.login("admin")
    for token in ["", "0" * 40, csrf[:-1]]:
        r = admin.http.post(f"/admin/jobs/{job.id}/cancel", data={"csrf": token})
        assert r.status_code == 403 and "CSRF" in r.text, token
    assert admin.stack.client().get(job.id).state == "pending"
    page = admin.http.get(f"/admin/jobs/{job.id}")
    assert 'data-action="cancel"' in page.text and "disabled" not in page.text.split('data-action="cancel"')[0][-120:]
    r = admin.http.post(f"/admin/jobs/{job.id}/cancel", data={"csrf": csrf})
    assert r.status_code == 200 and admin.stack.client().get(job.id).state == "cancelled"
    assert 'data-job-state="cancelled"' in r.text
    r = admin.http.post(f"/admin/jobs/{job.id}/restart", data={"csrf": csrf})
    assert r.status_code == 200 and admin.stack.client().get(job.id).state == "pending"
    assert admin.http.post(f"/admin/jobs/{job.id}/restart", data={"csrf": csrf}).status_code == 422  # pending
    assert admin.http.post("/admin/jobs/nope/cancel", data={"csrf": csrf}).status_code == 404


def test_bulk_restart_confirms_first(admin: Admin) -> None:
    jobs = [admin.pending_job() for _ in range(3)]
    for j in jobs[:2]:
        admin.stack.client().cancel(j.id)
    csrf = admin.login("admin")
    ask = admin.http.post("/admin/jobs/restart", data={"csrf": csrf, "state": "cancelled"})
    assert ask.status_code == 200 and "Restart 2 job(s)" in ask.text and 'name="confirm" value="yes"' in ask.text
    assert [admin.stack.client().get(j.id).state for j in jobs] == ["cancelled", "cancelled", "pending"]
    done = admin.http.post("/admin/jobs/restart", data={"csrf": csrf, "state": "cancelled", "confirm": "yes"})
    assert "restarted 2 job(s)" in done.text
    assert {admin.stack.client().get(j.id).state for j in jobs} == {"pending"}
    assert admin.http.post("/admin/jobs/restart", data={"csrf": csrf, "state": "pending"}).status_code == 422


def test_read_key_only_looks(admin: Admin) -> None:
    job = admin.pending_job()
    csrf = admin.login("read")
    for path in [*PAGES, f"/admin/jobs/{job.id}"]:
        r = admin.http.get(path)
        assert r.status_code == 200 and "read only" in r.text, path
    page = admin.http.get(f"/admin/jobs/{job.id}").text
    button = re.search(r'<button[^>]*data-action="cancel"[^>]*>', page)
    assert button and "disabled" in button.group(0)
    for url, data in [(f"/admin/jobs/{job.id}/cancel", {}), ("/admin/tokens/create", {"name": "t1"}),
                      ("/admin/keys/create", {"name": "k1", "scope": "admin"}), ("/admin/runners/x/ping", {})]:
        r = admin.http.post(url, data={"csrf": csrf, **data})
        assert r.status_code == 403 and "lacks the admin scope" in r.text, url
    assert admin.stack.client().get(job.id).state == "pending"
    assert [k.name for k in admin.http.app.state.keys.list() if k.name in ("k1",)] == []  # type: ignore[attr-defined]


def test_demo_mode_disables_and_refuses_and_masks(admin: Admin) -> None:
    job = admin.pending_job()
    settings = admin.stack.settings().model_copy(update={"demo_mode": True})
    with TestClient(web_app(settings, admin.stack), raise_server_exceptions=False) as demo:
        page = demo.get("/admin/login")
        demo.post("/admin/login", data={"api_key": admin.keys["admin"], "csrf": csrf_in(page.text)})
        html = demo.get(f"/admin/jobs/{job.id}").text
        assert "data-demo" in html and re.search(r'<button[^>]*disabled[^>]*data-action="cancel"', html)
        csrf = csrf_in(html)
        for url, data in [(f"/admin/jobs/{job.id}/cancel", {}), ("/admin/tokens/create", {"name": "t"}),
                          ("/admin/keys/create", {"name": "k", "scope": "read"})]:
            r = demo.post(url, data={"csrf": csrf, **data})
            assert r.status_code == 403 and "demo mode" in r.text, url
        assert admin.stack.client().get(job.id).state == "pending"


def test_no_secret_in_pages(admin: Admin) -> None:
    admin.pending_job()
    csrf = admin.login("admin")
    made = admin.http.post("/admin/tokens/create", data={"csrf": csrf, "name": "site-a"})
    secret = re.search(r"<pre class=\"secret\" data-secret>([^<]+)</pre>", made.text).group(1)  # type: ignore[union-attr]
    key_page = admin.http.post("/admin/keys/create", data={"csrf": csrf, "name": "ci", "scope": ["read", "submit"]})
    new_key = re.search(r"data-secret>([^<]+)</pre>", key_page.text).group(1)  # type: ignore[union-attr]
    assert new_key.startswith("mrk_") and admin.http.app.state.keys.verify(new_key).scopes == ("read", "submit")  # type: ignore[attr-defined]
    pages = [admin.http.get(p).text for p in [*PAGES, "/admin/login"]]
    for text in pages:
        for value in [*admin.keys.values(), secret, new_key, new_key.split("_")[-1], secret[:16]]:
            assert value not in text
    assert "site-a" in pages[4] and "ci" in pages[4]


def test_dashboard_numbers_equal_mediarunner_stats(admin: Admin) -> None:
    import json

    from typer.testing import CliRunner

    from mediarunner.cli import app as cli

    jobs = [admin.pending_job() for _ in range(2)]
    admin.stack.client().cancel(jobs[0].id)
    admin.login("read")
    html = admin.http.get("/admin/").text
    shown = dict(re.findall(r'data-stat="(\w+)">([^<]*)<', html))
    stats = json.loads(CliRunner().invoke(cli, ["stats", "--json"]).output)
    assert len(shown) == 8 and shown == {k: str(stats[k]) for k in shown}
    assert shown["pending_tasks"] == "1" and stats["jobs_pending"] == 1
    assert shown["total_servers"] == str(stats["runners_total"])
    assert 'data-unserved="cpu"' in html  # a pending job and no runner online for its queue
    assert html.count("<svg class=\"chart\"") == 2


@pytest.mark.timeout(60)
def test_live_region_streams_until_the_job_is_done(admin: Admin) -> None:
    job = admin.pending_job()
    admin.login("read")
    assert admin.http.get("/admin/live/nope").status_code == 404
    assert admin.http.get("/admin/live/job?job=0000").status_code == 404
    admin.stack.client().cancel(job.id)
    with admin.http.stream("GET", f"/admin/live/job?job={job.id}") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = list(stream.iter_lines())
    events = [line[7:] for line in lines if line.startswith("event: ")]
    assert events == ["update", "end"]
    assert any('data-job-state="cancelled"' in line for line in lines)


def test_storage_test_connection(admin: Admin, tmp_path: Any) -> None:
    from pydantic import SecretStr

    from mediarunner.config.settings import HostCredentials
    from tests.storage.servers import FTPServer
    from tests.support import free_port

    (tmp_path / "ftp-root").mkdir()
    server = FTPServer(tmp_path / "ftp-root", "bob", "s3cret").start()
    try:
        good = f"ftp://127.0.0.1:{server.port}/out/"
        settings = admin.stack.settings().model_copy(update={
            "ftp_credentials": {"127.0.0.1": HostCredentials(username="bob", password=SecretStr("s3cret"))},
            "admin_storage_locations": [good]})
        with TestClient(web_app(settings, admin.stack), raise_server_exceptions=False) as http:
            admin.http = http
            csrf = admin.login("admin")
            page = http.get("/admin/storage").text
            assert good in page and 'data-action="test connection"' in page and "s3cret" not in page
            ok = http.post("/admin/storage/test", data={"csrf": csrf, "location": good}).text
            assert 'data-probe="ok"' in ok and ok.count('data-ok="true"') == 5
            assert not list((tmp_path / "ftp-root").rglob("probe.txt"))
            closed = http.post("/admin/storage/test", data={"csrf": csrf,
                                                            "location": f"ftp://127.0.0.1:{free_port()}/x/"}).text
            assert 'data-probe="failed"' in closed and 'data-step="list" data-ok="false"' in closed
            csrf = admin.login("read")
            assert http.post("/admin/storage/test", data={"csrf": csrf, "location": good}).status_code == 403
    finally:
        server.stop()


def _add_runner(settings: Any, host: str) -> None:
    from mediarunner.models import runners
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.models.runners import RunnerInfo

    info = RunnerInfo(hostname=host, queues=("cpu",), concurrency=2, version="0.1.0",
                      capabilities={"ffmpeg": {"version": "5.1.6", "encoders": ["libx264", "aac"]},
                                    "whisper": {"engines": ["faster-whisper"], "models": ["tiny.en"]}})
    transaction(lambda s: runners.register(s, info, None, utcnow()), url=settings.database_url)
    transaction(lambda s: runners.heartbeat(s, host, {"cpu_count": 4, "load_1m": 0.5, "disk_free_mb": 100,
                                                      "mem_available_mb": 2048}, 2, utcnow()),
                url=settings.database_url)


def test_runner_pages_and_steering(admin: Admin) -> None:
    from mediarunner.fleet import FleetService

    settings = admin.stack.settings()
    _add_runner(settings, "cpu7@secret-host.internal")
    admin.http.app.state.fleet.reply_timeout = 0.2  # type: ignore[attr-defined]  # no live worker answers here
    csrf = admin.login("admin")
    table = admin.http.get("/admin/runners").text
    assert 'data-runner="cpu7@secret-host.internal"' in table and "health-warning" in table  # low disk
    page = admin.http.get("/admin/runners/cpu7").text  # a unique name part is enough
    assert "5.1.6" in page and "tiny.en" in page and "data-problems" in page and "free scratch" in page.lower()
    r = admin.http.post("/admin/runners/cpu7/status", data={"csrf": csrf, "status": "maintenance"})
    assert r.status_code == 200 and "changed" in r.text
    r = admin.http.post("/admin/runners/cpu7@secret-host.internal/concurrency", data={"csrf": csrf,
                                                                                      "concurrency": "5"})
    assert r.status_code == 200
    runner = FleetService(settings).get_runner("cpu7")
    assert runner.status == "maintenance" and runner.desired_concurrency == 5
    r = admin.http.post("/admin/runners/cpu7/priority", data={"csrf": csrf, "priority": "-3"})
    assert r.status_code == 200 and "Priority set to -3" in r.text
    assert FleetService(settings).get_runner("cpu7").priority == -3
    assert admin.http.post("/admin/runners/cpu7/priority", data={"csrf": csrf, "priority": "5000"}).status_code == 422
    assert admin.http.post("/admin/runners/cpu7/priority", data={"csrf": "forged", "priority": "1"}).status_code == 403
    assert "no answer" in admin.http.post("/admin/runners/cpu7/ping", data={"csrf": csrf}).text
    assert admin.http.post("/admin/runners/cpu7/status", data={"csrf": csrf, "status": "gone"}).status_code == 422
    assert admin.http.get("/admin/runners/nobody").status_code == 404
    ask = admin.http.post("/admin/runners/cpu7/remove", data={"csrf": csrf})
    assert "Remove runner cpu7?" in ask.text and FleetService(settings).list_runners()
    gone = admin.http.post("/admin/runners/cpu7/remove", data={"csrf": csrf, "confirm": "yes"})
    assert gone.status_code == 200 and "stopped consuming: cpu" in gone.text
    assert FleetService(settings).list_runners() == []
    assert "runner_unregistered" in [e.kind for e in FleetService(settings).events(runner="cpu7@secret-host.internal")]
    _add_runner(settings, "cpu7@secret-host.internal")  # a worker registering again (for the demo part)
    demo_settings = settings.model_copy(update={"demo_mode": True})
    with TestClient(web_app(demo_settings, admin.stack), raise_server_exceptions=False) as demo:
        admin.http = demo
        admin.login("read")
        for path in ["/admin/runners", "/admin/runners/cpu7", "/admin/activity"]:
            html = demo.get(path).text
            assert "secret-host" not in html and "cpu7@***" in html, path


@pytest.mark.timeout(60)
def test_live_stream_ends_when_the_key_is_revoked(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    from mediarunner.web import live

    monkeypatch.setattr(live, "REVERIFY_SECONDS", 0.0)
    admin.login("read")
    name = next(k.name for k in admin.http.app.state.keys.list() if k.scopes == ("read",))  # type: ignore[attr-defined]
    with admin.http.stream("GET", "/admin/live/activity") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: update"
        assert admin.http.app.state.keys.revoke(name)  # type: ignore[attr-defined]
        rest = list(lines)
    assert "event: end" in rest


def test_jobs_list_filters_and_pages(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    from mediarunner.web import views

    monkeypatch.setattr(views, "PAGE", 2)
    jobs = [admin.pending_job() for _ in range(3)]
    admin.stack.client().cancel(jobs[1].id)
    admin.login("read")

    def ids(html: str) -> list[str]:
        return re.findall(r'<tr data-job="([^"]+)"', html)

    first = admin.http.get("/admin/jobs").text
    assert ids(first) == [jobs[2].id, jobs[1].id] and 'rel="next"' in first
    cursor = re.search(r'cursor=([^"&]+)"', first).group(1)  # type: ignore[union-attr]
    assert ids(admin.http.get(f"/admin/jobs?cursor={cursor}").text) == [jobs[0].id]
    assert ids(admin.http.get("/admin/jobs?state=cancelled").text) == [jobs[1].id]
    assert len(ids(admin.http.get("/admin/jobs?state=pending&type=transcode&queue=cpu&age=1h").text)) == 2
    assert ids(admin.http.get("/admin/jobs?queue=gpu").text) == []
    assert ids(admin.http.get("/admin/jobs?priority_class=staff").text) == []
    for bad in ["state=nope", "age=3y", "queue=a%20b", "cursor=%%%"]:
        r = admin.http.get(f"/admin/jobs?{bad}")
        assert r.status_code in (400, 422) and "data-error" in r.text, bad


def test_unexpected_errors_are_an_html_page(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    from mediarunner.web import views

    def boom(request: Any) -> Any:
        raise RuntimeError("kaboom internals")

    monkeypatch.setattr(views, "activity", boom)
    admin.login("read")
    r = admin.http.get("/admin/activity")
    assert r.status_code == 500 and "an internal error occurred" in r.text and "kaboom" not in r.text
    assert r.headers["content-type"].startswith("text/html")
    assert admin.http.get("/v1/jobs/x").headers["content-type"] == "application/problem+json"


def test_remote_runners_show_their_kind_health_and_capabilities(admin: Admin) -> None:
    from mediarunner.fleet import FleetService

    fleet = FleetService(admin.stack.settings())
    token = fleet.create_token("web-remote")
    caps = {"gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_mb": 143771}],
            "ffmpeg": {"version": "7.1", "encoders": ["libx264", "h264_nvenc"], "hardware_usable": ["h264_nvenc"]},
            "whisper": {"engines": ["faster-whisper"], "models": ["large-v3"]}, "python": "3.11.7"}
    reg = admin.http.post("/v1/runner/register", json={"registration_token": token.secret, "name": "gpubox",
                                                       "capabilities": caps, "concurrency": 2})
    assert reg.status_code == 201, reg.text
    bare = admin.http.post("/v1/runner/register", json={"registration_token": token.secret, "name": "bare"}).json()
    _add_runner(admin.stack.settings(), "cpu8@host")
    admin.login("admin")
    table = admin.http.get("/admin/runners").text
    row = table[table.index(f'data-runner="{reg.json()["hostname"]}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-kind="remote"' in row and "remote (HTTP)" in row and "health-healthy" in row
    assert "1 GPU" in row and "h264_nvenc" in row and "whisper large-v3" in row
    assert "/ping" not in row  # a remote runner has no broker to ping through
    bare_row = table[table.index(f'data-runner="{bare["hostname"]}"'):]
    assert "not advertised" in bare_row[:bare_row.index("</tr>")]
    celery_row = table[table.index('data-runner="cpu8@host"'):]
    assert 'data-kind="celery"' in celery_row[:celery_row.index("</tr>")]
    page = admin.http.get(f"/admin/runners/{reg.json()['hostname']}").text
    assert "NVIDIA H200" in page and "large-v3" in page and "remote runner over HTTP" in page and "/ping" not in page
    assert reg.json()["runner_token"] not in table + page
