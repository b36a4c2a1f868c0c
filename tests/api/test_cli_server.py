"""`mediarunner api` serves the app (uvicorn in its own process); compose runs it with a healthcheck."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.support import ROOT, Stack, free_port, wait_for


def test_mediarunner_api_serves(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    cmd = [sys.executable, "-c", "from mediarunner.cli import main; main()", "api", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **stack.env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        wait_for(up, 60, what="`mediarunner api` to answer /healthz")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "mediarunner"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/stats").status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)


def test_compose_runs_the_api() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    api = services["api"]
    assert api["command"][:2] == ["mediarunner", "api"] and "healthz" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the API signs nothing itself but refuses notify_url without the secret; beat delivers: both
    # mount it as a compose secret file (/run/secrets/webhook_secret) and require it
    for name in ("api", "beat"):
        svc = services[name]
        mounted = [x if isinstance(x, str) else x["source"] for x in svc["secrets"]]
        assert "webhook_secret" in mounted, name
        assert "webhook_secret" in svc["environment"]["MEDIARUNNER_REQUIRED_SECRETS"], name
