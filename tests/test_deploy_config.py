"""Deployment configuration: secrets read from files (compose ``secrets:``), required secrets, where
each setting came from, stable runner names across container recreation, and pruning old runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mediarunner.config import Settings
from mediarunner.models import runners
from mediarunner.models.db import transaction
from mediarunner.models.migrate import upgrade
from mediarunner.models.runners import RunnerInfo
from mediarunner.models.tables import EventRow, RunnerRow
from mediarunner.scheduler.fleet import check_runners
from tests.support import ROOT, Stack, create_pg_database, drop_pg_database, wait_for

CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()"]
_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("MEDIARUNNER_")}
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, env={**_CLEAN, "COLUMNS": "1000", **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "mediarunner_webhook_secret").write_text("whsec-from-file-1234\n")  # compose files end in a newline
    (folder / "mediarunner_database_password").write_text("pg-pass-from-file\n")
    (folder / "mediarunner_sftp_credentials").write_text('{"sftp.example:22": {"username": "u", "password": "sp-1"}}')
    (folder / "mediarunner_ftp_credentials").write_text("")  # compose needs a file per secret: empty is unset
    (folder / "mediarunner_s3_access_key_id").write_text("\n")
    for k in [k for k in os.environ if k.startswith("MEDIARUNNER_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("MEDIARUNNER_SECRETS_DIR", str(folder))
    return folder


def test_secrets_come_from_files_and_the_environment_wins(secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(database_url="postgresql+psycopg://mediarunner@postgres:5432/mediarunner")
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "whsec-from-file-1234"
    assert s.database_url == "postgresql+psycopg://mediarunner:pg-pass-from-file@postgres:5432/mediarunner"
    assert s.sftp_credentials["sftp.example:22"].password.get_secret_value() == "sp-1"  # type: ignore[union-attr]
    assert s.ftp_credentials == {} and s.s3_access_key_id is None
    # a URL with its own password keeps it; the environment beats a file
    assert Settings(database_url="postgresql+psycopg://u:own@h/db").database_url == "postgresql+psycopg://u:own@h/db"
    monkeypatch.setenv("MEDIARUNNER_WEBHOOK_SECRET", "from-env-5678")
    assert Settings().webhook_secret.get_secret_value() == "from-env-5678"  # type: ignore[union-attr]


def test_a_missing_required_secret_refuses_to_start_in_one_line(secrets: Path) -> None:
    env = {"MEDIARUNNER_SECRETS_DIR": str(secrets),
           "MEDIARUNNER_REQUIRED_SECRETS": '["database_password", "webhook_secret", "flower_basic_auth"]'}
    for command in (["settings"], ["worker", "-Q", "cpu"], ["beat"]):
        res = cli(env, *command)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert res.stderr.strip().splitlines() == [
            f"error: required secret MEDIARUNNER_FLOWER_BASIC_AUTH is missing: put it in "
            f"{secrets / 'mediarunner_flower_basic_auth'} or set MEDIARUNNER_FLOWER_BASIC_AUTH"], command
    (secrets / "mediarunner_flower_basic_auth").write_text("admin:flower-pass-1")
    assert cli(env, "settings").returncode == 0


def test_settings_say_where_each_secret_came_from_without_showing_it(secrets: Path) -> None:
    res = cli({"MEDIARUNNER_SECRETS_DIR": str(secrets), "MEDIARUNNER_METRICS_BASIC_AUTH": "prom:metrics-pass-9",
               "MEDIARUNNER_DATABASE_URL": "postgresql+psycopg://mediarunner@db/mediarunner"}, "settings")
    assert res.returncode == 0, res.stderr
    rows = {cells[0]: cells[1:] for line in res.stdout.splitlines()
            if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 3}
    assert rows["MEDIARUNNER_WEBHOOK_SECRET"] == ["***", f"file {secrets / 'mediarunner_webhook_secret'}"]
    assert rows["MEDIARUNNER_DATABASE_PASSWORD"] == ["***", f"file {secrets / 'mediarunner_database_password'}"]
    assert rows["MEDIARUNNER_DATABASE_URL"] == ["postgresql+psycopg://mediarunner:***@db/mediarunner", "env"]
    assert rows["MEDIARUNNER_METRICS_BASIC_AUTH"] == ["***", "env"]
    assert rows["MEDIARUNNER_S3_SECRET_ACCESS_KEY"] == ["", "default"]
    for secret in ("whsec-from-file-1234", "pg-pass-from-file", "metrics-pass-9", "sp-1"):
        assert secret not in res.stdout + res.stderr


# ------------------------------------------------------------------------------ runner identity

@pytest.fixture
def pg() -> Iterator[str]:
    url = create_pg_database()
    upgrade(url)
    yield url
    drop_pg_database(url)


def _claim(url: str, holder: str, now: datetime) -> str:
    return transaction(lambda s: runners.claim_name(s, "cpu@worker-cpu-{n}", holder, now,
                                                    live_since=now - timedelta(seconds=30), ttl=150), url=url)


def _register(url: str, name: str, now: datetime) -> None:
    info = RunnerInfo(hostname=name, queues=("cpu",), concurrency=2)
    transaction(lambda s: runners.register(s, info, None, now), url=url)


def test_a_recreated_container_takes_its_old_name_back(pg: str) -> None:
    # three replicas start together: distinct names, even before any of them registered
    names = [_claim(pg, f"container-{i}", NOW) for i in range(3)]
    assert names == ["cpu@worker-cpu-1", "cpu@worker-cpu-2", "cpu@worker-cpu-3"]
    for n in names:
        _register(pg, n, NOW)
    # replica 2 is recreated: a clean stop, then a new container (new hostname) starts
    later = NOW + timedelta(seconds=40)
    for n in names:
        if n != names[1]:
            transaction(lambda s, n=n: runners.heartbeat(s, n, {}, 2, later), url=pg)
    transaction(lambda s: runners.mark_stopped(s, names[1], later), url=pg)
    assert _claim(pg, "container-new", later + timedelta(seconds=1)) == "cpu@worker-cpu-2"
    # a crashed replica (no clean stop) is reused once its heartbeat is older than the offline threshold
    assert _claim(pg, "container-4", later + timedelta(seconds=2)) == "cpu@worker-cpu-4"
    _register(pg, "cpu@worker-cpu-4", later + timedelta(seconds=2))
    much_later = later + timedelta(seconds=200)
    assert _claim(pg, "container-5", much_later) == "cpu@worker-cpu-1"


def test_runners_offline_too_long_are_pruned_with_their_history_kept(pg: str) -> None:
    _register(pg, "cpu@old", NOW)
    _register(pg, "cpu@fresh", NOW)
    transaction(lambda s: runners.mark_stopped(s, "cpu@old", NOW), url=pg)
    s = Settings(database_url=pg, runner_offline_after_seconds=30, runner_prune_after_seconds=3600)
    day = NOW + timedelta(seconds=3601)
    transaction(lambda x: runners.heartbeat(x, "cpu@fresh", {}, 2, day), url=pg)
    assert transaction(lambda x: check_runners(x, day, s), url=pg).pruned == ["cpu@old"]
    assert transaction(lambda x: x.scalars(select(RunnerRow.hostname)).all(), url=pg) == ["cpu@fresh"]
    kinds = transaction(lambda x: x.scalars(select(EventRow.kind).where(EventRow.runner == "cpu@old")
                                            .order_by(EventRow.id)).all(), url=pg)
    assert kinds == ["runner_registered", "runner_stopped", "runner_pruned"]
    off = Settings(database_url=pg, runner_prune_after_seconds=0)
    transaction(lambda x: runners.mark_stopped(x, "cpu@fresh", day), url=pg)
    assert transaction(lambda x: check_runners(x, day + timedelta(days=365), off), url=pg).pruned == []


def _worker(stack: Stack, tag: str) -> tuple[subprocess.Popen[bytes], Path]:
    name_file = stack.tmp / f"{tag}.name"
    with (stack.tmp / f"{tag}.log").open("wb") as out:
        proc = subprocess.Popen([*CLI, "worker", "-Q", "cpu", "-c", "1", "--name", "cpu@stable-{n}",
                                 "--name-file", str(name_file)], cwd=ROOT, env={**os.environ, **stack.env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, name_file


def _online(url: str) -> set[str]:
    """This test's runners not offline (the session's PostgreSQL database holds other tests' runners)."""
    return set(transaction(lambda s: s.scalars(select(RunnerRow.hostname).where(
        RunnerRow.offline_at.is_(None), RunnerRow.hostname.like("cpu@stable-%"))).all(), url=url))


def test_mediarunner_worker_takes_a_stable_name_back_after_recreation(stack: Stack) -> None:
    url = stack.env["MEDIARUNNER_DATABASE_URL"]
    procs = []
    try:
        (a, a_name), (b, b_name) = _worker(stack, "a"), _worker(stack, "b")
        procs += [a, b]
        wait_for(lambda: _online(url) == {"cpu@stable-1", "cpu@stable-2"}, 90, what="two runners registered")
        first = a if a_name.read_text().strip() == "cpu@stable-1" else b
        assert {a_name.read_text().strip(), b_name.read_text().strip()} == {"cpu@stable-1", "cpu@stable-2"}
        os.killpg(first.pid, signal.SIGTERM)  # `docker compose up` recreating the container: a warm stop
        first.wait(60)
        assert _online(url) == {"cpu@stable-2"}
        c, c_name = _worker(stack, "c")
        procs.append(c)
        wait_for(lambda: _online(url) == {"cpu@stable-1", "cpu@stable-2"}, 90, what="the recreated runner")
        assert c_name.read_text().strip() == "cpu@stable-1"
        assert transaction(lambda s: s.scalar(select(func.count()).select_from(RunnerRow).where(
            RunnerRow.hostname.like("cpu@stable-%"))), url=url) == 2
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
