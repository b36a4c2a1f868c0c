"""Read models: what the API returns. Frozen, detached from the ORM session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediarunner.models.enums import JobState, JobType, Stage
from mediarunner.models.tables import JobRow


class Artifact(BaseModel):
    """One published output file."""

    model_config = ConfigDict(frozen=True)

    kind: str  # mp4 | audio | hls_playlist | hls_master | vtt | srt | json | ...
    path: str
    size: int
    duration: float | None = None
    codec: str | None = None
    checksum: str | None = None  # sha256 of the bytes


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: JobType
    state: JobState
    stage: Stage | None
    progress: float
    queue: str
    routing_reason: str | None
    priority: int
    priority_class: str
    rank: int | None  # position in its queue while pending (1 = next), from the rank tick
    parent_id: str | None
    root_id: str
    attempt: int
    failures: int
    max_attempts: int
    aborts: int = 0  # times it lost its worker (not failures: see MAX_ABORTS)
    payload: dict[str, Any]
    meta: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    error_kind: str | None
    log_tail: str | None
    worker: str | None
    celery_task_id: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    need_gpu: bool = False  # what a worker must have to run it (models.capabilities)
    need_model: str | None = None
    need_encoder: str | None = None
    waiting_reason: str | None = None  # while pending: why no online worker can take it
    children: tuple[Job, ...] = ()

    @classmethod
    def from_row(cls, row: JobRow | Any, children: tuple[Job, ...] = (), *, rank: int | None = None) -> Job:
        """``rank``: from ``job_ranks``; kept only while the job is pending (a rank row outlives
        its job's claim until the next rank tick)."""
        data = {name: getattr(row, name) for name in cls.model_fields if name not in ("children", "rank")}
        return cls(**data, children=children, rank=rank if row.state is JobState.PENDING else None)

    @property
    def artifacts(self) -> list[Artifact]:
        return [Artifact(**a) for a in (self.result or {}).get("artifacts", [])]

    @property
    def family(self) -> list[Job]:
        """This job and all its descendants, depth first."""
        out: list[Job] = [self]
        for child in self.children:
            out.extend(child.family)
        return out

    @property
    def done(self) -> bool:
        """True when this job and every descendant reached a terminal state."""
        return all(j.state.is_terminal for j in self.family)
