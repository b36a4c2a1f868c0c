"""`mediarunner api` serves the web admin too (the CLI serves ``mediarunner.web.create_app``), and
stops promptly on Ctrl-C while a browser holds a live region's event stream open."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.conftest import _keys
from tests.support import ROOT, Stack, free_port, wait_for


def test_mediarunner_api_serves_the_admin_and_stops_with_a_stream_open(stack: Stack, tmp_path: Path) -> None:
    key = _keys(stack.settings())["admin"]
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    cmd = [sys.executable, "-c", "from mediarunner.cli import main; main()", "api", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **stack.env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        wait_for(up, 60, what="`mediarunner api` to answer /healthz")
        with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as http:
            page = http.get("/admin/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            assert http.post("/admin/login", data={"api_key": key, "csrf": csrf}).status_code == 200
            assert 'data-stat="total_servers"' in http.get("/admin/").text
            with http.stream("GET", "/admin/live/dashboard") as stream:
                assert next(stream.iter_lines()) == "event: update"
                proc.send_signal(signal.SIGINT)
                t0 = time.monotonic()
                proc.wait(20)
        assert time.monotonic() - t0 < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
