"""CLI parity with the API: ``submit transcription|studio|live`` and ``--version``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.api.conftest import Api


def test_submit_the_other_types_and_version(api: Api) -> None:
    from mediarunner.cli import app

    run = CliRunner().invoke
    out = api.outputs
    ops = api.stack.tmp / "ops.json"
    ops.write_text(json.dumps([{"op": "cut", "start": 0, "end": 1}]))
    for args in (["transcription", api.input, out + "/t", "--language", "en", "--priority-class", "staff"],
                 ["studio", api.input, out + "/s", "--operations", str(ops), "--transcode", "-r", "240p"],
                 ["live", "rtmp://127.0.0.1:1935/live/k", out + "/l", "-r", "240p", "--priority-class", "staff"]):
        r = run(app, ["submit", *args])
        assert r.exit_code == 0 and "submitted" in r.output, (args, r.output)
    jobs = api.http.get("/v1/jobs?roots_only=true", headers=api.h()).json()["items"]
    assert {j["type"] for j in jobs} == {"extract_audio", "studio", "live"}
    assert run(app, ["submit", "live", "rtmp://x/y", "/etc/nope"]).exit_code != 0
    version = run(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("mediarunner ")
