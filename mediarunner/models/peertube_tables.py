"""Tables of the PeerTube connector: the PeerTube instances mediarunner runs jobs for, and each
accepted PeerTube runner job with the mediarunner job doing its work (written by
``models.peertube`` only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mediarunner.models.base import Base, PortableJSON, utcnow


class PeerTubeInstanceRow(Base):
    """A PeerTube instance this fleet is registered on as a remote runner. ``runner_token`` is the
    secret PeerTube gave at registration (sent back on every call, so it is stored as is: the
    database is the trust boundary, as for the broker and S3 credentials); it never appears in a
    repr, a log line, an activity-log message or CLI output."""

    __tablename__ = "peertube_instances"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)  # also the runner name on PeerTube
    url: Mapped[str] = mapped_column(String(500))
    runner_token: Mapped[str] = mapped_column(String(1000))
    runner_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # PeerTube's id of this runner
    job_types: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    concurrency: Mapped[int] = mapped_column(Integer, default=2)
    priority_class: Mapped[str] = mapped_column(String(64), default="default")
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | stopped
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:  # the runner token stays out of every repr
        return f"PeerTubeInstanceRow(name={self.name!r}, url={self.url!r}, runner_token='***', state={self.state!r})"


class PeerTubeJobRow(Base):
    """One PeerTube runner job accepted by the connector: its job token (valid while it is
    processing on PeerTube) and the mediarunner job (root of a family) that does the work."""

    __tablename__ = "peertube_jobs"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)  # PeerTube's runner job uuid
    instance: Mapped[str] = mapped_column(String(100), ForeignKey("peertube_instances.name", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    job_token: Mapped[str] = mapped_column(String(1000))
    job_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="accepted")  # accepted|running|done|failed|gone|aborted
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_peertube_jobs_instance_state", "instance", "state"),)

    def __repr__(self) -> str:
        return f"PeerTubeJobRow(uuid={self.uuid!r}, instance={self.instance!r}, job_token='***', state={self.state!r})"
