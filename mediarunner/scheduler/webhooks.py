"""Webhook delivery, run by beat's webhook tick: enqueue the finished families' webhooks, then POST
the due ones, signed.

A family submitted by Esup-Pod (``/esup``, ``models.esup``) gets Pod's notify body instead
(``{"task_id", "status", "error_message", "script_output"}``, event ``esup.<status>``), sent with
``Authorization: Bearer <the key Pod submitted with>`` as Pod's ``notify_task_end`` requires (and
esup-runner's manager does); the same queue, backoff and give-up apply, except after a read
timeout: Pod downloads and imports the result before it answers, so a request that timed out
while waiting for the answer counts as delivered (esup-runner's manager does not retry it either).

``Mediarunner-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` with
``MEDIARUNNER_WEBHOOK_SECRET``; ``Idempotency-Key`` (also ``Mediarunner-Delivery``) is the same on
every attempt of one delivery, so a receiver can drop duplicates. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from mediarunner.config import Settings
from mediarunner.errors import JobNotFoundError, ValidationError
from mediarunner.models import esup, webhooks
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.esup import EsupTask
from mediarunner.models.queries import get_job
from mediarunner.models.schemas import Job
from mediarunner.models.webhooks import Backoff, Delivery

SIGNATURE_HEADER = "Mediarunner-Signature"


def sign(secret: str, body: bytes, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute the HMAC, compare in constant time, refuse stale stamps."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError):
        return False
    fresh = abs((time.time() if now is None else now) - t) <= tolerance
    return fresh and hmac.compare_digest(sign(secret, body, t), f"t={t},v1={fields.get('v1', '')}")


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the HTTP answer, None when there was none
    error: str | None  # None: delivered
    permanent: bool = False  # no retry can help (the URL is no longer allowed)


ESUP_EVENT = "esup."


def _esup_headers(delivery: Delivery, settings: Settings) -> dict[str, str] | None:
    """Pod's headers (its own Bearer key); None when the task's row is gone (purged)."""
    token = transaction(lambda s: esup.token_of_root(s, delivery.job_id), url=settings.database_url)
    if token is None:
        return None
    return {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "mediarunner-webhooks",
            "Authorization": f"Bearer {token}", "Idempotency-Key": delivery.id}


def post(delivery: Delivery, settings: Settings) -> Outcome:
    """One attempt: POST the delivery's body, signed now (an Esup-Pod task's: with Pod's key)."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    esup_headers = _esup_headers(delivery, settings) if (delivery.event or "").startswith(ESUP_EVENT) else None
    if (delivery.event or "").startswith(ESUP_EVENT) and esup_headers is None:
        return Outcome(None, "the Esup-Pod task of this family is gone", permanent=True)
    if secret is None and esup_headers is None:
        return Outcome(None, "MEDIARUNNER_WEBHOOK_SECRET is not set; webhooks are not sent unsigned")
    try:  # again at send time: the name may resolve elsewhere now
        webhooks.check_notify_url(delivery.url, settings.allowed_networks)
    except ValidationError as exc:
        return Outcome(None, str(exc), permanent=True)
    body = (delivery.body or "").encode()
    headers = esup_headers or {
        "Content-Type": "application/json", "User-Agent": "mediarunner-webhooks",
        SIGNATURE_HEADER: sign(secret or "", body, int(time.time())), "Idempotency-Key": delivery.id,
        "Mediarunner-Delivery": delivery.id, "Mediarunner-Event": delivery.event or ""}
    import httpx  # here, not at import: beat's processes load it only once a webhook is sent

    try:
        res = httpx.post(delivery.url, content=body, headers=headers, timeout=settings.webhook_timeout_seconds,
                         follow_redirects=False)
    except httpx.ReadTimeout as exc:
        if esup_headers is not None:  # sent; Pod imports the result before it answers: not sent twice
            return Outcome(None, None)  # (esup-runner's manager does the same: a second import is not safe)
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= res.status_code < 300:
        return Outcome(res.status_code, None)
    return Outcome(res.status_code, f"HTTP {res.status_code}")


def enqueue_finished(settings: Settings, now: datetime) -> int:
    """Fix the body of every waiting webhook whose family is now terminal; returns how many."""
    url = settings.database_url
    roots = transaction(lambda s: webhooks.finished_subscriptions(s), url=url)
    for root in roots:
        try:
            job = transaction(lambda s, r=root: get_job(s, r), url=url)  # type: ignore[misc]
        except JobNotFoundError:  # purged meanwhile: the row went with it
            continue
        event, body = _body(job, transaction(lambda s, r=root: esup.of_root(s, r), url=url))  # type: ignore[misc]
        transaction(lambda s, r=root, e=event, b=body: webhooks.enqueue(s, r, e, b, now),  # type: ignore[misc]
                    url=url)
    return len(roots)


def _body(job: Job, task: EsupTask | None) -> tuple[str, str]:
    """The event and body of a finished family's webhook: mediarunner's, or Pod's for its tasks."""
    if task is None:
        event = webhooks.family_event(job)
        return event, json.dumps({"event": event, "job": webhooks.job_document(job)}, separators=(",", ":"))
    status = esup.status(job)
    doc = {"task_id": task.task_id, "status": status, "error_message": esup.error_message(job),
           "script_output": f"mediarunner job {job.id}: {status}"}
    return ESUP_EVENT + status, json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def deliver_due(settings: Settings, now: datetime,
                send: Callable[[Delivery, Settings], Outcome] = post) -> dict[str, str]:
    """Send every due delivery (a few at once) and record the outcomes; returns id -> new state."""
    url = settings.database_url
    batch = transaction(lambda s: webhooks.due(s, now), url=url)
    if not batch:
        return {}
    backoff = Backoff(settings.webhook_retry_base_seconds, settings.webhook_retry_max_seconds,
                      settings.webhook_give_up_after_seconds)
    with ThreadPoolExecutor(max_workers=min(8, len(batch))) as pool:
        outcomes = list(pool.map(lambda d: send(d, settings), batch))
    states: dict[str, str] = {}
    for delivery, out in zip(batch, outcomes, strict=True):
        states[delivery.id] = transaction(lambda s, d=delivery, o=out: webhooks.record_attempt(  # type: ignore[misc]
            s, d, utcnow(), o.status, o.error, backoff, permanent=o.permanent), url=url)
    return states
