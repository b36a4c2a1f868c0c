"""A non-Python client: a short Node script (``node_client.mjs``, global ``fetch``) submits a
transcode to the real server with an API key, polls it until it is terminal and prints its state."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import Server
from tests.support import make_clip

SCRIPT = Path(__file__).with_name("node_client.mjs")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_fetch_client_submits_and_waits(server: Server) -> None:
    clip = make_clip(server.stack.tmp / "node-in.mp4", seconds=2.0, size="640x360")
    server.stack.inproc_worker("node-cpu")
    env = {**os.environ, "MR_URL": server.url, "MR_KEY": server.keys["rw"], "MR_INPUT": str(clip),
           "MR_OUTPUT": str(server.stack.tmp / "outputs" / "node")}
    done = subprocess.run(["node", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("submitted ") and "(pending)" in lines[0]
    assert lines[-1].startswith("final state: completed children: ") and not lines[-1].endswith("artifacts: 0")
    job_id = lines[0].split()[1]
    job = server.stack.client().get(job_id)
    assert job.meta == {"client": "node"} and all(j.state.value == "completed" for j in job.family)
