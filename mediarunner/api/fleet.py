"""``/v1/runners``, ``/v1/runners/{name}``, ``/v1/stats``, ``/v1/activity``: the runner fleet,
read-only (``read`` scope), through ``FleetService``. Changes are ``admin`` routes (:mod:`.admin`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import TypeAdapter

from mediarunner.api.auth import require
from mediarunner.fleet import FleetService, RunnerDetail

router = APIRouter(prefix="/v1", tags=["fleet"], dependencies=[Depends(require("read"))])


def fleet(request: Request) -> FleetService:
    return request.app.state.fleet


@router.get("/runners", summary="Runners with health, status, queues and job counts")
def runners(request: Request, include_unregistered: bool = False) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in fleet(request).list_runners(include_unregistered=include_unregistered)]


@router.get("/runners/{name}", summary="A runner with capabilities, diagnostics, health and recent activity")
def runner(request: Request, name: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
           ) -> dict[str, Any]:
    """``name``: a full name (``cpu1@host``), its name part (``cpu1``) or a unique prefix."""
    return TypeAdapter(RunnerDetail).dump_python(fleet(request).runner_detail(name), mode="json")


@router.get("/stats", summary="The eight dashboard numbers")
def stats(request: Request) -> dict[str, Any]:
    return asdict(fleet(request).stats())


@router.get("/activity", summary="The activity log, newest last (URLs masked)")
def activity(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
             kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None) -> list[dict[str, Any]]:
    return [{"at": e.at.isoformat(), "kind": e.kind, "runner": e.runner, "job_id": e.job_id, "message": e.message}
            for e in fleet(request).events(kind=kind, limit=limit)]
