"""Tables of remote (HTTP) runners: their registrations and the job tokens of the attempts they
accepted (written by ``models.remote`` only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mediarunner.models.base import Base, utcnow


class RemoteRunnerRow(Base):
    """A runner registered over HTTP (``mediarunner runner register``). Its secret, the runner
    token ``mrr_<id>_<secret>``, is stored as a SHA-256 only (256 random bits)."""

    __tablename__ = "remote_runners"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # jobs.worker_instance of its attempts
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    registration_token_id: Mapped[str] = mapped_column(String(16))  # revoking it cuts the runner off
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(nullable=True)
    unregistered_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_remote_runners_registration_token_id", "registration_token_id"),)


class JobTokenRow(Base):
    """The job token of one accepted attempt: valid while that attempt runs on that runner."""

    __tablename__ = "remote_job_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    runner_id: Mapped[str] = mapped_column(String(16), ForeignKey("remote_runners.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_remote_job_tokens_job_id", "job_id"),)
