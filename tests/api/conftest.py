"""Fixtures of the HTTP API tests: an app on a fresh SQLite database (TestClient), keys per scope,
the real server (uvicorn on a free loopback port, in a thread) and a webhook receiver."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from tests.support import RedisServer, Stack, free_port, make_stack, wait_for

if TYPE_CHECKING:
    from tests.api.remote_support import Remote

SECRET = "whsec-test-1234567890"
API_ENV = {
    "MEDIARUNNER_WEBHOOK_SECRET": SECRET,
    "MEDIARUNNER_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "MEDIARUNNER_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "MEDIARUNNER_GPU_PROBE_TIMEOUT_SECONDS": "0.2",
}


@dataclass
class Api:
    stack: Stack
    http: TestClient
    keys: dict[str, str] = field(default_factory=dict)  # scope set name -> key

    def h(self, who: str = "rw") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    @property
    def outputs(self) -> str:
        return str(self.stack.tmp / "outputs")

    @property
    def input(self) -> str:
        """A local input that exists (submissions refuse missing local inputs)."""
        path = self.stack.tmp / "inputs" / "in.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return str(path)


def _keys(settings: Any) -> dict[str, str]:
    from mediarunner.api.keys import ApiKeys

    keys, tag = ApiKeys(settings), uuid.uuid4().hex[:8]  # unique: the PostgreSQL database is per session
    scopes = {"read": ["read"], "submit": ["submit"], "rw": ["read", "submit"], "admin": ["admin"]}
    return {who: keys.create(f"test-{who}-{tag}", s)[1] for who, s in scopes.items()}


@contextmanager
def _api(tmp_path: Any, redis_server: RedisServer, database_url: str) -> Iterator[Api]:
    import redis

    from mediarunner.api import create_app

    redis_server.ping() or redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    esup = {"MEDIARUNNER_ESUP_OUTPUT_ROOT": str(tmp_path / "outputs" / "esup")}  # /esup on (fuzzed too)
    with make_stack(tmp_path, database_url, redis_server.url, **API_ENV, **esup) as stack:
        settings = stack.settings()
        with TestClient(create_app(settings, client=stack.client()), raise_server_exceptions=False) as http:
            yield Api(stack, http, _keys(settings))


@pytest.fixture
def api(tmp_path: Any, redis_server: RedisServer) -> Iterator[Api]:
    """The app on a fresh SQLite database and the session's Redis (no worker: jobs stay pending)."""
    with _api(tmp_path, redis_server, f"sqlite:///{tmp_path / 'mediarunner.db'}") as a:
        yield a


@pytest.fixture
def pg_api(tmp_path: Any, redis_server: RedisServer, pg_url: str) -> Iterator[Api]:
    """The same on the session's PostgreSQL database (shared: jobs of other tests are there too)."""
    with _api(tmp_path, redis_server, pg_url) as a:
        yield a


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A local webhook receiver (http.server) answering with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def json(self, i: int = -1) -> Any:
        return json.loads(self.received[i].body)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    stack: Stack

    def h(self, who: str = "rw") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


#: the app each running server serves, by base URL (tests wait on its state, never on a fixed sleep)
SERVED: dict[str, Any] = {}


@contextmanager
def serving(stack: Stack, env: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """The real server: uvicorn on a free loopback port (in a thread), with ``env`` set for the
    stack and this process while it runs. Yields its base URL and its settings."""
    import os

    import uvicorn

    from mediarunner.api import create_app
    from mediarunner.config import get_settings

    stack.env.update(env)
    os.environ.update(env)
    get_settings.cache_clear()
    settings = stack.settings()
    port = free_port()
    app = SERVED[f"http://127.0.0.1:{port}"] = create_app(settings, client=stack.client())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, 20, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        srv.should_exit = True
        thread.join(10)
        SERVED.pop(f"http://127.0.0.1:{port}", None)
        for k in env:
            os.environ.pop(k, None)
        get_settings.cache_clear()


@pytest.fixture
def server(stack: Stack) -> Iterator[Server]:
    """The real server on PostgreSQL and Redis, with the test keys."""
    with serving(stack, API_ENV) as (url, settings):
        yield Server(url, _keys(settings), stack)


@pytest.fixture
def remote(stack: Stack) -> Iterator[Remote]:
    """The real server with a remote queue of the test's own (``tests/api/remote_support.py``)."""
    from tests.api.remote_support import open_remote

    with open_remote(stack) as r:
        yield r
