"""CLI errors an operator can cause: one clear line on stderr, exit code 2, no traceback; and the
commands that used to half-succeed (tokens create --output, submit of a missing input)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobType
from mediarunner.models.migrate import upgrade
from mediarunner.models.tables import JobRow
from mediarunner.models.transitions import NewJob
from tests import rows
from tests.support import ROOT, create_pg_database, drop_pg_database

CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()"]
_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("MEDIARUNNER_")}


def cli(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, env={**_CLEAN, "COLUMNS": "250", **env}, input=input,
                          capture_output=True, text=True, timeout=120)


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'mr.db'}"
    upgrade(url)
    (tmp_path / "outputs").mkdir()
    return {"MEDIARUNNER_DATABASE_URL": url, "MEDIARUNNER_OUTPUT_ROOTS": f'["{tmp_path / "outputs"}"]',
            "MEDIARUNNER_BROKER_URL": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize("env, needles", [
    ({"MEDIARUNNER_MAX_ATTEMPTS": "abc"}, ["MEDIARUNNER_MAX_ATTEMPTS", "abc"]),
    ({"MEDIARUNNER_OUTPUT_ROOTS": "/srv/out"}, ["MEDIARUNNER_OUTPUT_ROOTS", "JSON"]),
    ({"MEDIARUNNER_DATABASE_URL": "garbage"}, ["MEDIARUNNER_DATABASE_URL"]),
    ({"MEDIARUNNER_DATABASE_URL": "postgresql+psycopg://nosuchrole:s3cretpw@127.0.0.1:5432/test"},
     ["MEDIARUNNER_DATABASE_URL", "nosuchrole"]),
])
def test_bad_settings_are_one_line(env: dict[str, str], needles: list[str]) -> None:
    line = one_line_error(cli(env, "jobs", "ls"), *needles)
    assert "s3cretpw" not in line


def test_schema_missing_names_the_command(tmp_path: Path) -> None:
    one_line_error(cli({"MEDIARUNNER_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}, "jobs", "ls"),
                   "mediarunner db upgrade")
    url = create_pg_database()
    try:
        one_line_error(cli({"MEDIARUNNER_DATABASE_URL": url}, "jobs", "ls"), "mediarunner db upgrade")
    finally:
        drop_pg_database(url)


def test_token_file_is_written_before_the_token_exists(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    one_line_error(cli(sqlite_env, "tokens", "create", "site", "--output", "/missing/dir/tok.txt"),
                   "/missing/dir/tok.txt")
    listed = cli(sqlite_env, "tokens", "ls")
    assert listed.returncode == 0 and "site" not in listed.stdout, listed.stdout
    ok = cli(sqlite_env, "tokens", "create", "site", "--output", str(tmp_path / "tok.txt"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "tok.txt").read_text().startswith("mrt_")
    assert (tmp_path / "tok.txt").stat().st_mode & 0o777 == 0o600


def test_missing_local_input_is_refused_at_submit(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    out = str(tmp_path / "outputs" / "x")
    one_line_error(cli(sqlite_env, "submit", "transcode", str(tmp_path / "missing.mp4"), out), "missing.mp4")
    assert transaction(lambda s: s.scalar(select(func.count()).select_from(JobRow)),
                       url=sqlite_env["MEDIARUNNER_DATABASE_URL"]) == 0


def test_jobs_show_and_logs_take_prefixes(sqlite_env: dict[str, str]) -> None:
    ids = ["abcd1234-0000-4000-8000-000000000001", "abcd1234-0000-4000-8000-000000000002",
           "ef012345-0000-4000-8000-000000000003"]
    transaction(lambda s: [rows.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {}, id=i)], utcnow()) for i in ids],
                url=sqlite_env["MEDIARUNNER_DATABASE_URL"])
    for cmd in (["jobs", "show", "ef012345"], ["logs", "--job", "ef012345"]):
        res = cli(sqlite_env, *cmd)
        assert res.returncode == 0, res.stderr
    assert "ef012345" in cli(sqlite_env, "jobs", "show", "ef012345").stdout
    assert "job_submitted" in cli(sqlite_env, "logs", "--job", "ef012345").stdout
    one_line_error(cli(sqlite_env, "jobs", "show", "abcd1234"), "ambiguous", ids[0], ids[1])
    one_line_error(cli(sqlite_env, "logs", "--job", "abcd"), "ambiguous")
    one_line_error(cli(sqlite_env, "jobs", "show", "no-such-job"), "no job")


def test_db_downgrade_asks_first(sqlite_env: dict[str, str]) -> None:
    url = sqlite_env["MEDIARUNNER_DATABASE_URL"]

    def jobs_table() -> bool:
        return bool(transaction(lambda s: s.connection().dialect.has_table(s.connection(), "jobs"), url=url))

    one_line_error(cli(sqlite_env, "db", "downgrade", "base", input="n\n"), "--yes")
    assert jobs_table()
    res = cli(sqlite_env, "db", "downgrade", "base", "--yes")
    assert res.returncode == 0, res.stderr
    assert not jobs_table()
