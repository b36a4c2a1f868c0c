"""The `mediarunner` command, driven through typer's CliRunner against real workers."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mediarunner.cli import app
from tests.support import Stack, make_clip

runner = CliRunner(env={"COLUMNS": "250"})


def test_submit_wait_list_show_cancel_restart(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, size="640x360")
    out = stack.tmp / "outputs" / "cli"
    stack.worker("a")
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
