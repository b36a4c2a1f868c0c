"""Submissions refused at the edge, before a row or a message exists: one clear ValidationError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.errors import ValidationError


@pytest.fixture
def client(tmp_path: Path) -> Client:
    # Nothing is reachable here on purpose: a refusal must not need the database or the broker.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'none' / 'x.db'}", broker_url="redis://127.0.0.1:1/0",
                        output_roots=[tmp_path])
    return Client(settings)


@pytest.mark.parametrize("queue", ["scheduler", "gpu2", "", "CPU"])
def test_only_job_queues_are_accepted(client: Client, tmp_path: Path, queue: str) -> None:
    with pytest.raises(ValidationError, match="unknown job queue"):
        client.submit_noop(queue=queue)
    with pytest.raises(ValidationError, match="unknown job queue"):
        client.submit_transcode(str(tmp_path / "in.mp4"), str(tmp_path / "out"), queue=queue)
    assert not (tmp_path / "none").exists()  # no database was even created


def test_deeply_nested_metadata_is_a_validation_error(client: Client) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested too deeply"):
        client.submit_noop(metadata={"x": deep})


def test_scheduler_can_never_be_a_job_queue(tmp_path: Path) -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="beat's ticks"):
        Settings(job_queues=["cpu", "scheduler"])
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", job_queues=["cpu", "batch"])
    with pytest.raises(ValidationError, match="unknown job queue 'gpu'"):
        Client(settings).submit_noop(queue="gpu")
