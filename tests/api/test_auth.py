"""API keys: 401 without a valid key, 403 without the scope; secrets never stored, logged or shown."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def test_no_unknown_malformed_or_revoked_key_is_401(api: Api) -> None:
    key = api.keys["read"]
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {key}"},
                    {"Authorization": "Bearer mrk_00000000_" + "x" * 43}, {"Authorization": "Bearer nonsense"},
                    {"Authorization": f"Bearer {key[:-1]}{'A' if key[-1] != 'A' else 'B'}"}):
        r = api.http.get("/v1/jobs", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert set(r.json()) >= {"type", "title", "status", "detail"}
    from mediarunner.api.keys import ApiKeys

    (name,) = [k.name for k in ApiKeys(api.stack.settings()).list() if k.name.startswith("test-read-")]
    assert ApiKeys(api.stack.settings()).revoke(name)
    assert api.http.get("/v1/jobs", headers=api.h("read")).status_code == 401
    assert not ApiKeys(api.stack.settings()).revoke(name)  # already revoked


def test_scopes(api: Api) -> None:
    body = {"input": api.input, "output": api.outputs + "/a", "renditions": ["240p"]}
    assert api.http.post("/v1/jobs/transcode", json=body, headers=api.h("read")).status_code == 403
    created = api.http.post("/v1/jobs/transcode", json=body, headers=api.h("submit"))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    for path in (f"/v1/jobs/{job_id}", "/v1/jobs", "/v1/runners", "/v1/stats", "/v1/activity",
                 f"/v1/jobs/{job_id}/events"):
        r = api.http.get(path, headers=api.h("submit"))
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, path
        assert "read" in r.json()["detail"]
        assert api.http.get(path, headers=api.h("read")).status_code == 200, path
        assert api.http.get(path, headers=api.h("admin")).status_code == 200, path
    assert api.http.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("read")).status_code == 403
    assert api.http.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("admin")).status_code == 200


def test_secrets_are_never_stored_shown_or_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    from mediarunner.cli import app
    from mediarunner.models.db import get_engine

    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    created = runner.invoke(app, ["api-keys", "create", "cli-key", "--scope", "read", "--scope", "submit"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("mrk_") and " " not in key
    secret = key.split("_", 2)[2]
    assert api.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = runner.invoke(app, ["api-keys", "ls"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "cli-key" in listed.output and secret not in listed.output
    with get_engine(api.stack.settings().database_url).connect() as conn:
        dump = repr(conn.execute(text("SELECT * FROM api_keys")).all()) + \
            repr(conn.execute(text("SELECT * FROM events")).all())
    assert secret not in dump and key not in dump
    for who, other in api.keys.items():
        assert other.split("_", 2)[2] not in dump, who
    assert secret not in caplog.text
    r = api.http.get("/v1/activity?limit=1000", headers={"Authorization": f"Bearer {key}"})
    assert secret not in r.text
    assert runner.invoke(app, ["api-keys", "create", "cli-key", "--scope", "read"]).exit_code != 0  # unique
    assert runner.invoke(app, ["api-keys", "create", "bad", "--scope", "root"]).exit_code != 0
    assert runner.invoke(app, ["api-keys", "revoke", "cli-key"]).exit_code == 0
    assert api.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert runner.invoke(app, ["api-keys", "revoke", "cli-key"]).exit_code != 0
