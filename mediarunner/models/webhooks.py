"""Completion webhooks: the ``notify_url`` check, the delivery rows' life and the job document.

A submission with a ``notify_url`` subscribes its family (:func:`subscribe`, a ``waiting`` row).
Beat's webhook tick turns the rows of finished families into ``pending`` deliveries with a fixed
body (:func:`finished_subscriptions`, :func:`enqueue`), then sends the due ones and records each
attempt (:func:`record_attempt`): ``delivered`` on a 2xx, else retried with exponential backoff
until ``give_up_after`` has passed since the first attempt, then ``failed``. Nothing here touches
the jobs' own state (``transitions``): a subscription only reads its family.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from mediarunner.errors import InvalidInputError, ValidationError
from mediarunner.models.api_tables import WebhookDeliveryRow
from mediarunner.models.enums import ACTIVE_STATES, JobState
from mediarunner.models.networks import IpNetwork, check_network_target
from mediarunner.models.schemas import Job
from mediarunner.models.tables import JobRow

MAX_URL = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DELIVERY_NS = uuid.UUID("5b0e9a4e-2f3d-4c8e-9d61-6d6564696172")  # namespace of delivery ids


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    url: str
    state: str
    event: str | None
    body: str | None
    attempts: int
    last_status: int | None
    last_error: str | None
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    def public(self) -> dict[str, Any]:
        """What ``GET /v1/jobs/{id}`` shows (not the body)."""
        return {"id": self.id, "url": self.url, "state": self.state, "event": self.event,
                "attempts": self.attempts, "last_status": self.last_status, "last_error": self.last_error,
                "next_attempt_at": _iso(self.next_attempt_at), "delivered_at": _iso(self.delivered_at)}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _delivery(r: WebhookDeliveryRow) -> Delivery:
    return Delivery(r.id, r.job_id, r.url, r.state, r.event, r.body, r.attempts, r.last_status, r.last_error,
                    r.first_attempt_at, r.next_attempt_at, r.delivered_at)


# ------------------------------------------------------------------------------ the URL check

def check_notify_url(url: str, allowed_networks: Sequence[IpNetwork]) -> str:
    """``url`` if it is an http(s) URL without credentials whose host resolves only to public
    addresses or to addresses in ``allowed_networks`` (MEDIARUNNER_ALLOWED_NETWORKS, the same rule
    as live inputs: :func:`mediarunner.models.networks.check_network_target`); else ValidationError."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise ValidationError(f"notify_url must be an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ValidationError(f"notify_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("notify_url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("notify_url must not carry credentials")
    try:
        check_network_target(url, allowed_networks, what="notify_url")
    except InvalidInputError as exc:
        raise ValidationError(str(exc)) from None
    return url


# ------------------------------------------------------------------------------ the job document

def family_event(job: Job) -> str:
    """The webhook event of a finished family, from its members' states."""
    states = {j.state for j in job.family}
    if states & {JobState.CANCELLED, JobState.PARENT_CANCELLED}:
        return "job.cancelled"
    return "job.completed" if states == {JobState.COMPLETED} else "job.failed"


def job_document(job: Job) -> dict[str, Any]:
    """The JSON of a job as the HTTP API shows it (and webhooks send it): every field, with
    ``artifacts`` and the same for each child."""
    doc = job.model_dump(mode="json", exclude={"children"})
    doc["artifacts"] = [a.model_dump(mode="json") for a in job.artifacts]
    doc["children"] = [job_document(c) for c in job.children]
    return doc


# ------------------------------------------------------------------------------ deliveries

def delivery_id(root_id: str) -> str:
    """The id of a family's delivery (one per family), also its idempotency id: derived from the
    root job's id, so that a submission knows it without reading it back."""
    return str(uuid.uuid5(_DELIVERY_NS, root_id))


def subscribe(session: Session, job_id: str, url: str, now: datetime) -> Delivery:
    """Subscribe the family rooted at ``job_id`` to its completion webhook (in the submission's
    transaction: ``Client.submit_*(notify_url=...)``); returns the delivery as written."""
    session.add(WebhookDeliveryRow(id=delivery_id(job_id), job_id=job_id, url=url, state="waiting", attempts=0,
                                   created_at=now))
    return waiting(job_id, url)


def waiting(root_id: str, url: str) -> Delivery:
    """A family's delivery as :func:`subscribe` writes it (before the family is finished)."""
    return Delivery(delivery_id(root_id), root_id, url, "waiting", None, None, 0, None, None, None, None, None)


def delivery_of(session: Session, root_id: str) -> Delivery | None:
    row = session.scalar(select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == root_id))
    return None if row is None else _delivery(row)


def finished_subscriptions(session: Session, limit: int = 100) -> list[str]:
    """Root ids of waiting subscriptions whose whole family is terminal."""
    active = exists().where(and_(JobRow.root_id == WebhookDeliveryRow.job_id, JobRow.state.in_(ACTIVE_STATES)))
    stmt = select(WebhookDeliveryRow.job_id).where(WebhookDeliveryRow.state == "waiting", ~active).limit(limit)
    return list(session.scalars(stmt))


def enqueue(session: Session, root_id: str, event: str, body: str, now: datetime) -> bool:
    """``waiting`` -> ``pending`` with its body, due now (a compare-and-set: False if already done)."""
    res = session.execute(update(WebhookDeliveryRow).where(
        WebhookDeliveryRow.job_id == root_id, WebhookDeliveryRow.state == "waiting")
        .values(state="pending", event=event, body=body, next_attempt_at=now)
        .execution_options(synchronize_session=False))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def due(session: Session, now: datetime, limit: int = 20) -> list[Delivery]:
    stmt = (select(WebhookDeliveryRow).where(WebhookDeliveryRow.state == "pending",
                                             WebhookDeliveryRow.next_attempt_at <= now)
            .order_by(WebhookDeliveryRow.next_attempt_at).limit(limit))
    return [_delivery(r) for r in session.scalars(stmt)]


@dataclass(frozen=True)
class Backoff:
    base_seconds: float
    max_seconds: float
    give_up_after_seconds: float


def record_attempt(session: Session, delivery: Delivery, now: datetime, status: int | None, error: str | None,
                   backoff: Backoff, *, permanent: bool = False) -> str:
    """Record one attempt (``status`` None: no answer); returns the delivery's new state."""
    attempts = delivery.attempts + 1
    first = delivery.first_attempt_at or now
    values: dict[str, Any] = {"attempts": attempts, "last_status": status, "first_attempt_at": first,
                              "last_error": None if error is None else error[:1000]}
    if error is None:
        values.update(state="delivered", delivered_at=now, next_attempt_at=None)
    else:
        wait = min(backoff.base_seconds * 2 ** (attempts - 1), backoff.max_seconds)
        later = now + timedelta(seconds=wait)
        gone = permanent or (later - first).total_seconds() > backoff.give_up_after_seconds
        values.update(state="failed" if gone else "pending", next_attempt_at=None if gone else later)
    session.execute(update(WebhookDeliveryRow).where(
        WebhookDeliveryRow.id == delivery.id, WebhookDeliveryRow.attempts == delivery.attempts)
        .values(**values).execution_options(synchronize_session=False))
    return str(values["state"])
