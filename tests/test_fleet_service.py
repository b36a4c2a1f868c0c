"""``FleetService`` called directly, as an HTTP API or web admin would (no CLI, no live worker)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from mediarunner.config import Settings
from mediarunner.fleet import (
    ActivityEvent,
    AmbiguousRunner,
    FleetService,
    FleetStats,
    Gpu,
    Health,
    NewToken,
    ReadOnlyFleet,
    RunnerNotFound,
    RunnerStatus,
    TokenNotFound,
)
from mediarunner.models import runners
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.runners import RunnerInfo
from mediarunner.models.tables import RunnerRow
from mediarunner.models.transitions import record_event
from tests.support import RedisServer

CAPS = {"ffmpeg": {"version": "6.1", "encoders": ["libx264", "zlib", "h264_nvenc"], "hwaccels": ["cuda"]},
        "gpus": [{"index": 0, "name": "NVIDIA L4", "memory_total_mb": 22491}], "celery": "5.4", "python": "3.11"}


@pytest.fixture
def settings(db_url: str, redis_server: RedisServer) -> Settings:
    return Settings(database_url=db_url, broker_url=redis_server.url)


def add_runner(url: str, host: str, token_id: str | None = None) -> None:
    info = RunnerInfo(hostname=host, queues=("cpu",), concurrency=2, version="0.1.0", capabilities=CAPS)
    transaction(lambda s: runners.register(s, info, token_id, utcnow()), url=url)
    diag = {"load_1m": 0.1, "cpu_count": 4, "disk_free_mb": 90_000, "ffmpeg_ok": True,
            "gpus": [{"index": 0, "name": "NVIDIA L4", "memory_total_mb": 22491, "memory_used_mb": 512,
                      "utilization_percent": 12}]}
    transaction(lambda s: runners.heartbeat(s, host, diag, 2, utcnow()), url=url)


def test_tokens_runners_steering_and_activity(settings: Settings) -> None:
    made: list[Settings] = []

    def factory(s: Settings) -> Celery:
        made.append(s)
        return Celery("t", broker=s.broker_url, set_as_current=False)

    fleet = FleetService(settings, app=factory, reply_timeout=0.2)
    token = fleet.create_token("site-a")
    assert isinstance(token, NewToken) and token.secret.startswith("mrt_") and token.name == "site-a"
    assert [(t.id, t.runners) for t in fleet.list_tokens()] == [(token.id, 0)]
    add_runner(settings.database_url, "cpu1@box", token.id)
    add_runner(settings.database_url, "cpu2@box")
    assert fleet.resolve("cpu1") == "cpu1@box" and not made  # no broker needed to read
    with pytest.raises(AmbiguousRunner, match="cpu1@box, cpu2@box"):
        fleet.resolve("cpu")
    with pytest.raises(RunnerNotFound):
        fleet.get_runner("gpu")

    detail = fleet.runner_detail("cpu1@box")
    assert detail.notable_encoders == ("libx264", "h264_nvenc") and detail.ffmpeg_version == "6.1"
    assert detail.gpus == (Gpu(0, "NVIDIA L4", 22491),) and detail.gpu_usage[0].utilization_percent == 12
    assert [e.kind for e in detail.events] == ["runner_registered"]
    assert fleet.health("cpu1").health is Health.HEALTHY

    res = fleet.maintenance("cpu2")  # stored; no worker answers
    assert res.hostname == "cpu2@box" and res.changed and not res.acknowledged and made == [settings]
    assert not fleet.maintenance("cpu2@box").changed
    assert transaction(lambda s: s.get(RunnerRow, "cpu2@box").status, url=settings.database_url) is (
        RunnerStatus.MAINTENANCE)
    assert fleet.set_concurrency("cpu2", 3).replies == {}
    assert [p.ok for p in fleet.ping(["cpu1"], timeout=0.2)] == [False]

    assert fleet.revoke_token(token.id) == ["cpu1@box"]
    with pytest.raises(TokenNotFound):
        fleet.revoke_token(token.id)
    assert [r.hostname for r in fleet.list_runners()] == ["cpu2@box"]
    assert len(fleet.list_runners(include_unregistered=True)) == 2

    transaction(lambda s: record_event(s, "job_failed", utcnow(), "could not read ftp://u:pw9999@h/x",
                                       runner="cpu2@box"), url=settings.database_url)
    (event,) = fleet.events(runner="cpu2", kind="job_failed")
    assert isinstance(event, ActivityEvent) and event.message == "could not read ftp://u:***@h/x"


def test_demo_mode_refuses_every_change_but_reads(settings: Settings) -> None:
    fleet = FleetService(settings.model_copy(update={"demo_mode": True}), reply_timeout=0.2)
    add_runner(settings.database_url, "w@h")
    changes: list[Any] = [lambda: fleet.create_token("x"), lambda: fleet.revoke_token("abc"),
                          lambda: fleet.maintenance("w@h"), lambda: fleet.enable("w@h"),
                          lambda: fleet.disable("w@h"), lambda: fleet.set_concurrency("w@h", 2)]
    for change in changes:
        with pytest.raises(ReadOnlyFleet, match="read-only"):
            change()
    assert [r.hostname for r in fleet.list_runners()] == ["w@h"] and fleet.list_tokens() == []
    stats = fleet.stats()
    assert isinstance(stats, FleetStats) and (stats.runners_online, stats.runners_total) == (1, 1)
    snap = fleet.metrics_snapshot()
    assert [r.hostname for r in snap.runners] == ["w@h"] and snap.jobs_by_state == []
