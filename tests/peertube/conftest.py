"""Fixtures of the PeerTube connector tests: the fake PeerTube (tests/peertube/fake.py), a
registered instance and a running connector (in a thread of this process)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peertube.fake import NEWEST, FakePeerTube
from tests.support import Stack, free_port, make_clip

#: The server versions a test runs against with ``@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)``.
VERSIONS = ("6.3.3", NEWEST)


@contextlib.contextmanager
def running_fake(tmp_path: Path, database_url: str, **options: Any) -> Iterator[FakePeerTube]:
    """A started fake PeerTube; afterwards stopped, and the instances registered with it forgotten
    (the database outlives the test)."""
    from sqlalchemy import delete

    from mediarunner.models.db import transaction
    from mediarunner.models.peertube_tables import PeerTubeInstanceRow

    fake = FakePeerTube(tmp_path / "peertube-received", **options)
    fake.start(free_port())
    try:
        yield fake
    finally:
        fake.stop()
        transaction(lambda s: s.execute(delete(PeerTubeInstanceRow)), url=database_url)


@pytest.fixture
def peertube(stack: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakePeerTube]:
    """The fake PeerTube (6.3.3, or the version a test parametrises it with)."""
    version = getattr(request, "param", "6.3.3")
    with running_fake(tmp_path, stack.settings().database_url, stalled_vod_seconds=120.0, version=version) as fake:
        yield fake


@dataclass
class Running:
    connector: Any
    thread: threading.Thread
    name: str

    def stop(self, reason: str = "test over") -> None:
        self.connector.shutdown(reason)
        self.thread.join(timeout=90)
        assert not self.thread.is_alive(), "the connector did not stop"


def register(stack: Stack, fake: FakePeerTube, name: str = "fleet", *types: str, concurrency: int = 2) -> None:
    from typer.testing import CliRunner

    from mediarunner.cli import app

    args = ["peertube", "register", "--url", fake.url, "--registration-token", fake.registration_token,
            "--name", name, "--concurrency", str(concurrency)]
    for t in types:
        args += ["--job-type", t]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output


def start_connector(stack: Stack, **settings: Any) -> Running:
    from mediarunner.connectors.peertube.serve import Connector

    base = {"peertube_staging_dir": stack.tmp / "outputs" / "peertube", "peertube_update_seconds": 0.5,
            "peertube_poll_seconds": 30.0}
    s = stack.settings().model_copy(update={**base, **settings})
    connector = Connector(s, stack.client())
    thread = threading.Thread(target=connector.serve, kwargs={"rescan_seconds": 0.3}, daemon=True)
    thread.start()
    return Running(connector, thread, "fleet")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("ptclip") / "clip.mp4", seconds=3.0, size="640x360", rate=25)
