"""What each page shows, read through the fleet service, ``Client`` and the API's job serializer.
Pages (:mod:`~mediarunner.web.pages`) and live regions (:mod:`~mediarunner.web.live`) both call these,
so a live update renders exactly what a reload would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, Request

from mediarunner.api.jobs import checked_id, decode_cursor, encode_cursor, job_json
from mediarunner.api.stream import snapshot
from mediarunner.client import Client
from mediarunner.fleet import FleetService
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import RESTARTABLE_STATES, JobState, JobType
from mediarunner.models.queries import list_jobs_page

PAGE = 50
AGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
#: activity kinds -> colour class (anything else: neutral)
KIND_CLASS = {"failed": "bad", "timeout": "bad", "offline": "bad", "revoked": "bad", "abort": "bad",
              "completed": "good", "registered": "good", "online": "good", "created": "good",
              "cancel": "warn", "maintenance": "warn", "disabled": "warn", "restart": "warn", "retry": "warn"}


def fleet(request: Request) -> FleetService:
    return request.app.state.fleet


def client(request: Request) -> Client:
    return request.app.state.client


def kind_class(kind: str) -> str:
    return next((cls for word, cls in KIND_CLASS.items() if word in kind), "info")


def dashboard(request: Request) -> dict[str, Any]:
    return {"d": fleet(request).dashboard()}


def runners(request: Request) -> dict[str, Any]:
    return {"runners": fleet(request).list_runners(), "now": utcnow()}


def activity(request: Request, limit: int = 50) -> dict[str, Any]:
    events = fleet(request).events(limit=limit)
    return {"events": list(reversed(events)), "kind_class": kind_class, "now": utcnow()}


def job(request: Request, job_id: str) -> dict[str, Any]:
    c = client(request)
    found = c.get(checked_id(job_id))
    doc = job_json(found, c.settings.database_url)
    events = fleet(request).events(job=job_id, limit=100)
    return {"job": found, "doc": doc, "events": events, "overall": snapshot(found)["progress"],
            "kind_class": kind_class, "now": utcnow(), "restartable": found.state in RESTARTABLE_STATES,
            "cancellable": not found.done}


@dataclass(frozen=True)
class JobFilter:
    state: JobState | None = None
    type: JobType | None = None
    priority_class: str | None = None
    queue: str | None = None
    age: str | None = None

    def query(self) -> dict[str, Any]:
        """The filter as query-string pairs (what links and the bulk form carry)."""
        pairs = {"state": self.state, "type": self.type, "priority_class": self.priority_class,
                 "queue": self.queue, "age": self.age}
        return {k: str(v.value if hasattr(v, "value") else v) for k, v in pairs.items() if v}

    def page(self, request: Request, limit: int | None = None, cursor: str | None = None,
             ) -> tuple[list[Any], str | None]:
        """One page of jobs (``PAGE`` unless told), newest first, and the cursor of the next (the
        API's list query)."""
        limit = limit or PAGE
        if self.age is not None and self.age not in AGES:
            raise HTTPException(422, f"age must be one of {', '.join(AGES)}")
        since = utcnow() - AGES[self.age] if self.age else None
        after = decode_cursor(cursor) if cursor else None
        jobs = transaction(lambda s: list_jobs_page(
            s, state=self.state, type=self.type, priority_class=self.priority_class, queue=self.queue,
            created_after=since, limit=limit + 1, after=after), url=client(request).settings.database_url)
        page = jobs[:limit]
        return page, encode_cursor(page[-1]) if len(jobs) > limit else None
