"""Signed completion webhooks: enqueued when the family is terminal, delivered by beat's tick
functions, signed (HMAC-SHA256 over "<t>.<body>"), retried with backoff, recorded on the job."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any

from mediarunner.models.base import utcnow
from mediarunner.scheduler import webhooks
from tests.api.conftest import SECRET, Api, Receiver
from tests.support import wait_for


def _verify(header: str, body: bytes) -> bool:
    """The README's receiver-side check, written out."""
    fields = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


def _cancelled_job(api: Api, url: str) -> str:
    r = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/w", "renditions": ["480p", "240p"], "notify_url": url})
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    settings = api.stack.settings()
    assert webhooks.enqueue_finished(settings, utcnow()) == 0  # the family is not finished yet
    assert api.http.post(f"/v1/jobs/{job_id}/cancel", headers=api.h()).status_code == 200
    assert webhooks.enqueue_finished(settings, utcnow()) == 1
    assert webhooks.enqueue_finished(settings, utcnow()) == 0  # once
    return job_id


def test_signed_delivery(api: Api, receiver: Receiver) -> None:
    job_id = _cancelled_job(api, receiver.url)
    states = webhooks.deliver_due(api.stack.settings(), utcnow())
    assert list(states.values()) == ["delivered"]
    (got,) = receiver.received
    assert got.path == "/hook" and got.headers["Content-Type"] == "application/json"
    assert _verify(got.headers["Mediarunner-Signature"], got.body)
    assert webhooks.verify(SECRET, got.headers["Mediarunner-Signature"], got.body)
    assert not webhooks.verify(SECRET, got.headers["Mediarunner-Signature"], got.body + b" ")
    assert not webhooks.verify("other", got.headers["Mediarunner-Signature"], got.body)
    assert got.headers["Idempotency-Key"] == next(iter(states))
    payload = json.loads(got.body)
    assert payload["event"] == "job.cancelled" and payload["job"]["id"] == job_id
    assert payload["job"]["state"] == "cancelled" and len(payload["job"]["children"]) == 1
    shown = api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]
    assert shown["state"] == "delivered" and shown["attempts"] == 1 and shown["last_status"] == 200
    assert webhooks.deliver_due(api.stack.settings(), utcnow()) == {}  # nothing left to send


def test_retries_with_backoff_then_delivers(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    job_id = _cancelled_job(api, receiver.url)
    settings = api.stack.settings()

    def attempt() -> bool:
        webhooks.deliver_due(settings, utcnow())
        return api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]["state"] == "delivered"

    first = api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]
    assert first["state"] == "pending" and first["attempts"] == 0
    webhooks.deliver_due(settings, utcnow())
    after_one = api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]
    assert after_one["state"] == "pending" and after_one["attempts"] == 1 and after_one["last_status"] == 500
    assert after_one["last_error"] == "HTTP 500"
    assert datetime.fromisoformat(after_one["next_attempt_at"]) > utcnow()  # backoff: not due at once
    wait_for(attempt, 20, what="the webhook to be delivered on its third attempt")
    done = api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]
    assert done["attempts"] == 3 and done["last_status"] == 200 and done["last_error"] is None
    keys = {r.headers["Idempotency-Key"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(keys) == 1  # one idempotency id for every attempt
    assert all(_verify(r.headers["Mediarunner-Signature"], r.body) for r in receiver.received)


def test_gives_up_after_the_deadline_and_rechecks_the_url(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    job_id = _cancelled_job(api, receiver.url)
    settings = api.stack.settings().model_copy(update={"webhook_give_up_after_seconds": 0.1})
    webhooks.deliver_due(settings, utcnow())
    shown = api.http.get(f"/v1/jobs/{job_id}", headers=api.h()).json()["webhook"]
    assert shown["state"] == "failed" and shown["attempts"] == 1 and shown["next_attempt_at"] is None
    # A URL no longer allowed at send time fails at once, without a request.
    other = _cancelled_job(api, receiver.url)
    sent = len(receiver.received)
    webhooks.deliver_due(api.stack.settings().model_copy(update={"allowed_networks": []}), utcnow())
    shown = api.http.get(f"/v1/jobs/{other}", headers=api.h()).json()["webhook"]
    assert shown["state"] == "failed" and "127.0.0.1" in shown["last_error"] and len(receiver.received) == sent


def test_notify_url_needs_a_secret(api: Api) -> None:
    from fastapi.testclient import TestClient

    from mediarunner.api import create_app

    settings = api.stack.settings().model_copy(update={"webhook_secret": None})
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        r = http.post("/v1/jobs/transcode", headers=api.h(), json={
            "input": "/a", "output": api.outputs, "notify_url": "http://127.0.0.1:9/x"})
    assert r.status_code == 422 and "MEDIARUNNER_WEBHOOK_SECRET" in r.json()["detail"]


def test_the_readme_verifier_accepts_our_signature_only() -> None:
    """The 10-line receiver in README.md, run as printed, against what beat's sender signs."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify(" in b]
    assert len(code.strip().splitlines()) <= 10
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    verify: Any = scope["verify"]
    body, now = b'{"event": "job.completed", "job": {"id": "x"}}', int(time.time())
    assert verify(SECRET, webhooks.sign(SECRET, body, now), body)
    assert not verify(SECRET, webhooks.sign(SECRET, body, now), body + b" ")
    assert not verify("other-secret", webhooks.sign(SECRET, body, now), body)
    assert not verify(SECRET, webhooks.sign(SECRET, body, now - 3600), body)


def test_client_subscribes_in_the_submission_transaction(api: Api) -> None:
    """``Client.submit_*(notify_url=...)``: the delivery row is written with the jobs (one commit), its
    id derived from the root job's, so the API answers without reading it back."""
    import pytest

    from mediarunner.errors import ValidationError
    from mediarunner.models import webhooks as rows
    from mediarunner.models.db import transaction

    client = api.stack.client()
    url = api.stack.settings().database_url
    job = client.submit_transcription(api.input, api.outputs + "/c", notify_url="http://127.0.0.1:9/hook")
    stored = transaction(lambda s: rows.delivery_of(s, job.id), url=url)
    assert stored == rows.waiting(job.id, "http://127.0.0.1:9/hook") and stored.id == rows.delivery_id(job.id)
    with pytest.raises(ValidationError, match=r"10\.0\.0\.1"):
        client.submit_live("rtmp://127.0.0.1:1935/live/k", api.outputs + "/l", notify_url="http://10.0.0.1/x")
    unsigned = type(client)(api.stack.settings().model_copy(update={"webhook_secret": None}))
    with pytest.raises(ValidationError, match="MEDIARUNNER_WEBHOOK_SECRET"):
        unsigned.submit_transcode(api.input, api.outputs + "/u", notify_url="http://127.0.0.1:9/hook")
    assert {j.root_id for j in client.list()} == {job.id}  # the refused submissions wrote nothing
