"""Tables of the HTTP API: API keys and webhook deliveries (written by ``models.api_keys`` and
``models.webhooks`` only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mediarunner.models.base import Base, PortableJSON, utcnow


class ApiKeyRow(Base):
    """An HTTP API key. The key is ``mrk_<id>_<secret>``; only a SHA-256 of the secret is stored
    (256 random bits: a fast hash is enough), compared in constant time."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the key
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookDeliveryRow(Base):
    """The completion webhook of one job family: ``waiting`` until the family is terminal, then
    ``pending`` (the body is fixed), retried with backoff until ``delivered`` or ``failed``.
    ``id`` is the idempotency id sent with every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting|pending|delivered|failed
    event: Mapped[str | None] = mapped_column(String(32), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)  # the exact bytes signed and sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # HTTP status of the last try
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),)


class EsupTaskRow(Base):
    """A task of Esup-Pod's Runner Manager API (``/esup``): Pod's task id for the mediarunner job
    family it became. ``client_token`` is the Bearer key Pod sent, sent back (only) to Pod's
    ``notify_url`` as Pod requires; never shown, logged or put in a job document."""

    __tablename__ = "esup_tasks"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    task_type: Mapped[str] = mapped_column(String(16))  # encoding | transcription | studio
    output: Mapped[str] = mapped_column(Text)  # the local directory the family writes to
    notify_url: Mapped[str] = mapped_column(Text)
    client_token: Mapped[str] = mapped_column(Text)
    etab_name: Mapped[str] = mapped_column(String(200))
    app_name: Mapped[str] = mapped_column(String(100))
    app_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
