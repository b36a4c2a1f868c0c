"""Demo mode (MEDIARUNNER_DEMO_MODE=true) makes the jobs CLI read-only too: submit (every type),
cancel, restart and purge exit 2 with one line saying so, and change nothing; reading still works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediarunner.cli import app as cli
from mediarunner.config import get_settings
from tests.support import RedisServer, make_stack


@pytest.fixture
def demo(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, Path]]:
    with make_stack(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", redis_server.url) as stack:
        src = tmp_path / "in.mp4"
        src.touch()
        job = stack.client().submit_transcode(str(src), str(tmp_path / "outputs" / "a"), ["240p"])
        stack.client().cancel(job.id)
        import os

        os.environ["MEDIARUNNER_DEMO_MODE"] = "true"
        get_settings.cache_clear()
        try:
            yield job.id, src
        finally:
            os.environ.pop("MEDIARUNNER_DEMO_MODE", None)
            get_settings.cache_clear()


def test_demo_mode_refuses_job_changes(demo: tuple[str, Path], tmp_path: Path) -> None:
    job_id, src = demo
    out = str(tmp_path / "outputs" / "b")
    ops = tmp_path / "ops.json"
    ops.write_text('[{"op": "cut", "start": 0, "end": 1}]')
    for args in (["submit", "transcode", str(src), out], ["submit", "transcription", str(src), out],
                 ["submit", "studio", str(src), out, "--operations", str(ops)],
                 ["submit", "live", "srt://127.0.0.1:9000", out], ["jobs", "cancel", job_id],
                 ["jobs", "restart", job_id], ["purge"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "demo mode (MEDIARUNNER_DEMO_MODE) is read-only" in result.output, args
    listed = CliRunner().invoke(cli, ["jobs", "ls", "--json"])
    assert listed.exit_code == 0 and listed.output.count('"type": "transcode"') == 1, listed.output  # none added
    assert '"state": "cancelled"' in CliRunner().invoke(cli, ["jobs", "show", job_id, "--json"]).output
