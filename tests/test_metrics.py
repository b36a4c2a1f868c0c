"""`mediarunner metrics`: loopback by default, optional basic auth, no row counts posing as counters."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from pydantic import SecretStr

from mediarunner.config import Settings
from mediarunner.metrics import registry_for, serve
from mediarunner.models.migrate import upgrade
from tests.support import ROOT, free_port, wait_for


def _get(url: str, auth: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_basic_auth_guards_metrics() -> None:
    registry = CollectorRegistry()
    Gauge("probe_value", "a probe", registry=registry).set(7)
    port = free_port()
    server = serve(registry, "127.0.0.1", port, SecretStr("prom:s3cret"))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert _get(url)[0] == 401
        assert _get(url, "prom:wrong")[0] == 401
        assert _get(url, "prom:s3cret:x")[0] == 401
        status, body = _get(url, "prom:s3cret")
        assert status == 200 and "probe_value 7.0" in body
    finally:
        server.shutdown()
        server.server_close()


def test_failed_jobs_is_a_gauge_not_a_row_counting_counter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    text = generate_latest(registry_for(Settings(database_url=url, broker_url="memory://"))).decode()
    assert "mediarunner_job_failures_total" not in text
    assert "# TYPE mediarunner_failed_jobs gauge" in text


def test_metrics_command_binds_loopback_by_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    port = free_port()
    env = {**os.environ, "MEDIARUNNER_DATABASE_URL": url, "MEDIARUNNER_BROKER_URL": "memory://",
           "MEDIARUNNER_METRICS_BASIC_AUTH": "prom:s3cret"}
    proc = subprocess.Popen([sys.executable, "-c", "from mediarunner.cli import main; main()", "metrics",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def listening() -> list[str]:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read().decode() if proc.stdout else "metrics exited")
            return [c.laddr.ip for c in psutil.Process(proc.pid).net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port]

        assert wait_for(listening, 30, what="metrics to listen") == ["127.0.0.1"]
        assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 401
        status, body = _get(f"http://127.0.0.1:{port}/metrics", "prom:s3cret")
        assert status == 200 and "mediarunner_runners" in body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
