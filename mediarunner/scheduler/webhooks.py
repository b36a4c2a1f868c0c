"""Webhook delivery, run by beat's webhook tick: enqueue the finished families' webhooks, then POST
the due ones, signed.

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
from mediarunner.models import webhooks
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.queries import get_job
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


def post(delivery: Delivery, settings: Settings) -> Outcome:
    """One attempt: POST the delivery's body, signed now."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None:
        return Outcome(None, "MEDIARUNNER_WEBHOOK_SECRET is not set; webhooks are not sent unsigned")
    try:  # again at send time: the name may resolve elsewhere now
        webhooks.check_notify_url(delivery.url, settings.allowed_networks)
    except ValidationError as exc:
        return Outcome(None, str(exc), permanent=True)
    body = (delivery.body or "").encode()
    headers = {"Content-Type": "application/json", "User-Agent": "mediarunner-webhooks",
               SIGNATURE_HEADER: sign(secret, body, int(time.time())), "Idempotency-Key": delivery.id,
               "Mediarunner-Delivery": delivery.id, "Mediarunner-Event": delivery.event or ""}
    import httpx  # here, not at import: beat's processes load it only once a webhook is sent

    try:
        res = httpx.post(delivery.url, content=body, headers=headers, timeout=settings.webhook_timeout_seconds,
                         follow_redirects=False)
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
        body = json.dumps({"event": webhooks.family_event(job), "job": webhooks.job_document(job)},
                          separators=(",", ":"))
        transaction(lambda s, r=root, j=job, b=body: webhooks.enqueue(  # type: ignore[misc]
            s, r, webhooks.family_event(j), b, now), url=url)
    return len(roots)


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
