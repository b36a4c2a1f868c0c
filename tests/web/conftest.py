"""Fixtures of the web admin tests: the API app with the admin mounted, on a fresh SQLite
database (TestClient), and the real server (uvicorn on a free loopback port, in a thread)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import API_ENV, _keys
from tests.support import RedisServer, Stack, free_port, make_stack, wait_for

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_in(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field in the page"
    return m.group(1)


@dataclass
class Admin:
    stack: Stack
    http: TestClient
    keys: dict[str, str] = field(default_factory=dict)  # who -> key (read, submit, rw, admin)

    def login(self, who: str = "admin") -> str:
        """Log in through the form; returns the session's CSRF token."""
        self.http.cookies.clear()
        page = self.http.get("/admin/login")
        r = self.http.post("/admin/login", data={"api_key": self.keys[who], "csrf": csrf_in(page.text),
                                                 "next": "/admin/jobs"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin/jobs", r.text
        return csrf_in(self.http.get("/admin/").text)

    def pending_job(self) -> Any:
        src = self.stack.tmp / "pending.mp4"
        src.touch()  # never read: no worker runs here
        return self.stack.client().submit_transcode(str(src), str(self.stack.tmp / "outputs" / "p"), ["240p"])


def web_app(settings: Any, stack: Stack) -> Any:
    from mediarunner.web import create_app

    return create_app(settings, client=stack.client())


@pytest.fixture
def admin(tmp_path: Any, redis_server: RedisServer) -> Iterator[Admin]:
    """The admin on a fresh SQLite database and the session's Redis (no worker: jobs stay pending)."""
    import redis

    redis_server.ping() or redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, f"sqlite:///{tmp_path / 'mediarunner.db'}", redis_server.url, **API_ENV) as stack:
        settings = stack.settings()
        with TestClient(web_app(settings, stack), raise_server_exceptions=False) as http:
            yield Admin(stack, http, _keys(settings))


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` on uvicorn on a free loopback port, in a thread (as tests/api's ``server``); yields its URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                        timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, 20, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
