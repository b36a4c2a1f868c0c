"""What a worker and ``mediarunner beat`` load at start: every module imported before the prefork pool
forks costs each process its memory (issue 19: worker < 150 MiB, beat < 200 MiB), so the web stack,
remote-storage backends and speech engines load only in a process that uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from celery.exceptions import ImproperlyConfigured

from mediarunner.workers.clock import ThreadedBeat
from tests.support import ROOT

# Never at a worker's or beat's start (each is imported where it is used: the API server, the CLI, the
# s3/sftp/ftp/http openers, the transcription engines).
NOT_AT_START = {"fastapi", "starlette", "uvicorn", "jinja2", "typer", "rich", "prometheus_client", "httpx",
                "s3fs", "aiobotocore", "botocore", "boto3", "paramiko", "faster_whisper", "ctranslate2", "numpy"}
LOADED = """
import json, sys
import mediarunner.workers.app as a
a.app.loader.import_default_modules()  # what `celery worker` imports before it starts (its task modules)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _loaded(role: str | None) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "MEDIARUNNER_WORKER_ROLE"}
    if role:
        env["MEDIARUNNER_WORKER_ROLE"] = role
    out = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("role", [None, "scheduler"])
def test_a_worker_and_beat_start_without_the_web_stack_remote_storage_or_speech(role: str | None) -> None:
    loaded = _loaded(role)
    assert "mediarunner" in loaded and "celery" in loaded  # it did load the app
    assert not loaded & NOT_AT_START, sorted(loaded & NOT_AT_START)


def test_beat_is_embedded_once() -> None:
    with pytest.raises(ImproperlyConfigured, match="-B"):
        ThreadedBeat(SimpleNamespace(), beat_thread=True, beat=True)
    assert ThreadedBeat(SimpleNamespace(), beat_thread=True).enabled
    assert not ThreadedBeat(SimpleNamespace()).enabled
