"""CLI parity with the API: ``submit transcription|studio|live`` and ``--version``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mediarunner.models.base import utcnow
from mediarunner.scheduler import webhooks
from tests.api.conftest import Api, Receiver


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
    hooked = run(app, ["submit", "transcode", api.input, out + "/w", "-r", "240p", "--priority-class", "staff",
                       "--notify-url", "http://127.0.0.1:9/hook"])
    assert hooked.exit_code == 0, hooked.output
    (listed,) = api.http.get("/v1/jobs?type=transcode&roots_only=true", headers=api.h()).json()["items"]
    job = api.http.get(f"/v1/jobs/{listed['id']}", headers=api.h()).json()
    assert job["priority_class"] == "staff" and job["webhook"]["state"] == "waiting"
    refused = run(app, ["submit", "transcode", api.input, out + "/x", "--notify-url", "http://10.1.2.3/x"])
    assert refused.exit_code == 2 and "10.1.2.3" in refused.output
    version = run(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("mediarunner ")


def test_jobs_ls_and_show_json_match_the_api(api: Api, receiver: Receiver) -> None:
    from mediarunner.cli import app

    run = CliRunner().invoke
    r = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/j", "renditions": ["240p"], "notify_url": receiver.url})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    plain = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/p", "renditions": ["240p"]}).json()["id"]

    shown = run(app, ["jobs", "show", job_id, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()
    assert json.loads(shown.output)["webhook"]["state"] == "waiting"

    listed = run(app, ["jobs", "ls", "--json", "-n", "500"])
    assert listed.exit_code == 0, listed.output
    items = api.http.get("/v1/jobs?limit=500", headers=api.h()).json()["items"]
    assert json.loads(listed.output) == items and {job_id, plain} <= {j["id"] for j in items}


def test_jobs_show_prints_the_webhook_delivery(api: Api, receiver: Receiver) -> None:
    from mediarunner.cli import app

    run = CliRunner().invoke
    receiver.statuses = [500]
    job_id = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/w", "renditions": ["240p"],
        "notify_url": receiver.url + "?token=hush"}).json()["id"]
    assert "webhook" not in run(app, ["jobs", "show", api.http.post(
        "/v1/jobs/transcode", headers=api.h(),
        json={"input": api.input, "output": api.outputs + "/n"}).json()["id"]]).output
    waiting = run(app, ["jobs", "show", job_id])
    assert waiting.exit_code == 0 and "webhook waiting" in waiting.output and "hush" not in waiting.output
    assert api.http.post(f"/v1/jobs/{job_id}/cancel", headers=api.h()).status_code == 200
    settings = api.stack.settings()
    webhooks.enqueue_finished(settings, utcnow())
    webhooks.deliver_due(settings, utcnow())
    retrying = run(app, ["jobs", "show", job_id[:8]])
    assert retrying.exit_code == 0, retrying.output
    assert "1 attempt(s), last status 500" in retrying.output and "next attempt at" in retrying.output
