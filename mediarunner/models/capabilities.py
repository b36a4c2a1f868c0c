"""Capability-aware routing: what a job needs and what a worker has.

A job may need a GPU, a Whisper model by name, an ffmpeg encoder (``jobs.need_*``). A worker
advertises its capabilities in its runner row (``workers.diagnostics.capabilities``: GPUs,
ffmpeg encoders, the Whisper models it has locally, ...) and claims, in rank order, only the
jobs whose needs it meets (the condition is part of the claim statement). A job no online worker
can run stays pending with a reason (``waiting_reason``, shown by ``jobs show``) written by
beat; the one fallback policy is the transcription's GPU->CPU reroute (``device="auto"`` only,
recorded in ``routing_reason``), which asks for no GPU in the first place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from mediarunner.models.base import sql_str
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.tables import JobRow


@dataclass(frozen=True)
class Needs:
    gpu: bool = False
    model: str | None = None
    encoder: str | None = None

    def columns(self) -> dict[str, Any]:
        return {"need_gpu": self.gpu, "need_model": self.model, "need_encoder": self.encoder}


@dataclass(frozen=True)
class Skills:
    """What one worker can run. ``unlimited``: anything (a worker whose capabilities are unknown,
    such as a test calling the runtime directly)."""

    gpu: bool = False
    models: tuple[str, ...] = ()
    encoders: tuple[str, ...] = ()
    unlimited: bool = False

    @classmethod
    def from_capabilities(cls, caps: Mapping[str, Any]) -> Skills:
        """From a runner's advertised capabilities (``workers.diagnostics.capabilities``): its
        GPUs, its ffmpeg's encoders and the Whisper models it has on local disk."""
        whisper = caps.get("whisper") or {}
        ffmpeg = caps.get("ffmpeg") or {}
        return cls(gpu=bool(caps.get("gpus")), models=tuple(sorted(whisper.get("models") or [])),
                   encoders=tuple(sorted(ffmpeg.get("encoders") or [])))

    @cached_property
    def _tokens(self) -> str:  # built once: a worker's ffmpeg has hundreds of encoders, and every claim binds it
        parts = [*(["gpu"] if self.gpu else []), *(f"model:{m}" for m in self.models),
                 *(f"enc:{e}" for e in self.encoders)]
        return "|" + "|".join(parts) + "|"

    def tokens(self) -> str:
        """``|gpu|model:NAME|...|enc:NAME|``: the runner row's ``skills`` column, matched in SQL."""
        return self._tokens

    @classmethod
    def from_tokens(cls, tokens: str | None) -> Skills:
        parts = [p for p in (tokens or "").split("|") if p]
        return cls(gpu="gpu" in parts, models=tuple(p[6:] for p in parts if p.startswith("model:")),
                   encoders=tuple(p[4:] for p in parts if p.startswith("enc:")))

    def missing(self, needs: Needs) -> str | None:
        """The first need this worker does not meet, in words; None: it can run the job."""
        if self.unlimited:
            return None
        if needs.model and needs.model not in self.models:
            return f"whisper model {needs.model}"
        if needs.gpu and not self.gpu:
            return "a GPU"
        if needs.encoder and needs.encoder not in self.encoders:
            return f"encoder {needs.encoder}"
        return None

    def params(self) -> dict[str, Any]:
        """Bind parameters of :func:`can_run`: one string (:meth:`tokens`), whatever the number of
        encoders and models, so the claim statement stays one cached text."""
        return {"skill_any": self.unlimited, "skill_tokens": self.tokens()}


def needs_of(row: Any) -> Needs:
    return Needs(gpu=bool(getattr(row, "need_gpu", False)), model=getattr(row, "need_model", None),
                 encoder=getattr(row, "need_encoder", None))


def can_run() -> ColumnElement[bool]:
    """SQL: the worker whose :meth:`Skills.params` are bound meets the job row's needs."""
    tokens = bindparam("skill_tokens", type_=String)

    return or_(bindparam("skill_any", type_=Boolean), _meets(tokens, JobRow.need_model, JobRow.need_gpu,
                                                             JobRow.need_encoder))


def _meets(tokens: Any, model: Any, gpu: Any, encoder: Any) -> ColumnElement[bool]:
    """SQL: the ``|``-delimited skill ``tokens`` cover the needs ``model``, ``gpu``, ``encoder``."""
    def has(token: Any) -> ColumnElement[bool]:
        return tokens.like(sql_str("%|") + token + sql_str("|%"))
    return and_(or_(model.is_(None), has(sql_str("model:") + model)),
                or_(~gpu, tokens.like(sql_str("%|gpu|%"))),
                or_(encoder.is_(None), has(sql_str("enc:") + encoder)))


def runner_can_run(skills: Any, job: Any) -> ColumnElement[bool]:
    """SQL: a runner whose ``skills`` column is ``skills`` meets the needs of the ``job`` row."""
    return _meets(skills, job.c.need_model, job.c.need_gpu, job.c.need_encoder)


def claimable(live: bool) -> list[ColumnElement[bool]]:
    """SQL: a due pending job of the rung queue (bound ``queue_``, or NULL: the queue of the job
    bound as ``job_id``) that the bound worker (:meth:`Skills.params`) can run. ``live``: live
    jobs only (their messages have long time limits), else all but live jobs."""
    queue = func.coalesce(bindparam("queue_", type_=String), select(JobRow.queue).where(
        JobRow.id == bindparam("job_id", type_=String)).scalar_subquery())
    # 'pending' inline, not bound: the planner can then use the partial ix_jobs_pending_order.
    live_type = sql_str(JobType.LIVE.value)
    return [JobRow.state == sql_str(JobState.PENDING.value), JobRow.queue == queue,
            (JobRow.type == live_type) if live else (JobRow.type != live_type), can_run(),
            or_(JobRow.run_after.is_(None), JobRow.run_after <= bindparam("now", type_=JobRow.run_after.type))]


def due_work(session: Session, queue: str | None, job_id: str | None, live: bool, skills: Skills,
             now: datetime) -> tuple[bool, bool]:
    """Whether due jobs of the queue wait that ``skills`` can run, and jobs it cannot run but
    another online worker can (no ``waiting_reason``). A read, taking no lock."""
    params = {"queue_": queue, "job_id": job_id, "now": now, **skills.params()}
    due = claimable(live)
    mine = select(JobRow.id).where(*due).limit(1)
    others = select(JobRow.id).where(*due[:-2], due[-1], ~can_run(), JobRow.waiting_reason.is_(None)).limit(1)
    return (session.execute(mine, params).first() is not None,
            not skills.unlimited and session.execute(others, params).first() is not None)


def waiting_reason(needs: Needs, online: list[Skills]) -> str | None:
    """Why a pending job waits when no online worker of its queue can run it (None: one can)."""
    if not (needs.gpu or needs.model or needs.encoder):
        return None
    missing = [s.missing(needs) for s in online]
    if any(m is None for m in missing):
        return None
    what = next((m for m in missing if m), None) or Skills().missing(needs)
    return f"waiting: no online worker has {what}"
