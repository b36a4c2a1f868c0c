"""The `mediarunner` command, driven through typer's CliRunner against real workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediarunner.cli import app
from mediarunner.config import get_settings
from tests.support import Stack, make_clip

runner = CliRunner(env={"COLUMNS": "250"})


def test_submit_wait_list_show_cancel_restart(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, size="640x360")
    out = stack.tmp / "outputs" / "cli"
    stack.inproc_worker("a")
    res = runner.invoke(app, ["submit", "transcode", str(src), str(out), "-r", "360p", "-r", "240p", "--wait",
                              "--timeout", "120"])
    assert res.exit_code == 0, res.output
    assert "completed" in res.output and "master.m3u8" not in res.output
    assert (out / "360p.mp4").exists() and (out / "240p.mp4").exists()
    job_id = res.output.split("submitted ")[1].split()[0]

    res = runner.invoke(app, ["jobs", "ls", "--state", "completed"])
    assert res.exit_code == 0 and job_id[:8] in res.output
    res = runner.invoke(app, ["jobs", "show", job_id])
    assert res.exit_code == 0 and "360p.mp4" in res.output and "routed to cpu" in res.output

    res = runner.invoke(app, ["jobs", "restart", job_id])
    assert res.exit_code == 2 and "only failed" in res.output  # completed jobs are not restartable
    res = runner.invoke(app, ["jobs", "show", "no-such-job"])
    assert res.exit_code == 2 and "no job" in res.output


def test_invalid_submission_is_a_clear_error(stack: Stack) -> None:
    res = runner.invoke(app, ["submit", "transcode", "in.mp4", "/etc/nope", "-r", "720p"])
    assert res.exit_code == 2 and "escapes" in res.output


def test_cancel_and_restart_through_cli(stack: Stack) -> None:
    from mediarunner.client import Client

    job = Client().submit_noop(duration=60)  # no worker: stays pending
    res = runner.invoke(app, ["jobs", "cancel", job.id])
    assert res.exit_code == 0 and "cancelled" in res.output
    res = runner.invoke(app, ["jobs", "restart", job.id])
    assert res.exit_code == 0 and "pending (attempt 2)" in res.output


def test_purge_dry_run(stack: Stack) -> None:
    res = runner.invoke(app, ["purge", "--dry-run"])
    assert res.exit_code == 0 and "would purge 0" in res.output


def _settings_table(output: str) -> dict[str, str]:
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if "│" in line)
    return {c[0]: c[1] for c in cells if len(c) == 3 and c[0].startswith("MEDIARUNNER_")}  # setting, value, from


def test_settings_show_urls_as_given_and_mask_only_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DATABASE_URL": "sqlite:////srv/x.db", "BROKER_URL": "redis://:brokerpw@127.0.0.1:1/0",
                        "RESULT_BACKEND": "db+postgresql://u:resultpw@db/x", "SFTP_HOST_KEY_POLICY": "auto_add",
                        "S3_SECRET_ACCESS_KEY": "s3secretvalue", "WORKER_TOKEN": "mrt_tokenvalue"}.items():
        monkeypatch.setenv(f"MEDIARUNNER_{name}", value)
    get_settings.cache_clear()
    try:
        res = runner.invoke(app, ["settings"])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    shown = _settings_table(res.output)
    assert shown["MEDIARUNNER_DATABASE_URL"] == "sqlite:////srv/x.db"  # not sqlite://srv/x.db
    assert shown["MEDIARUNNER_SFTP_HOST_KEY_POLICY"] == "auto_add"  # a policy, not a secret
    assert shown["MEDIARUNNER_BROKER_URL"] == "redis://:***@127.0.0.1:1/0"
    assert shown["MEDIARUNNER_RESULT_BACKEND"] == "db+postgresql://u:***@db/x"
    assert shown["MEDIARUNNER_S3_SECRET_ACCESS_KEY"] == shown["MEDIARUNNER_WORKER_TOKEN"] == "***"
    for secret in ("brokerpw", "resultpw", "s3secretvalue", "mrt_tokenvalue"):
        assert secret not in res.output
