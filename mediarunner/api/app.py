"""The FastAPI application: ``create_app(settings)``; served by ``mediarunner api`` (uvicorn)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from kombu import Connection
from sqlalchemy import text

from mediarunner.api import admin, esup, fleet, jobs, problems, runner, stream
from mediarunner.api.keys import ApiKeys
from mediarunner.client import Client
from mediarunner.config import Settings, get_settings
from mediarunner.fleet import FleetService
from mediarunner.models.db import transaction

DESCRIPTION = """Submit and follow mediarunner jobs over HTTP.

Authenticate with `Authorization: Bearer KEY` (`mediarunner api-keys create NAME --scope read --scope submit`).
Errors are RFC 9457 problem details (`application/problem+json`)."""


def _database_ok(settings: Settings) -> str | None:
    try:
        transaction(lambda s: s.execute(text("SELECT 1")), url=settings.database_url, retry_for=0)
        return None
    except Exception as exc:
        return type(exc).__name__


def _broker_ok(settings: Settings) -> str | None:
    try:
        with Connection(settings.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return None
    except Exception as exc:
        return type(exc).__name__


def healthz(settings: Settings) -> JSONResponse:
    """200 when the database and the broker answer, else 503 (a problem saying which)."""
    checks: dict[str, Any] = {"database": _database_ok(settings), "broker": _broker_ok(settings)}
    down = [name for name, err in checks.items() if err]
    if down:
        return problems.problem(503, "unavailable", f"unreachable: {', '.join(down)}",
                                checks={k: v or "ok" for k, v in checks.items()})
    return JSONResponse({"status": "ok", "database": "ok", "broker": "ok"})


def create_app(settings: Settings | None = None, *, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="mediarunner", version="1", description=DESCRIPTION)
    app.state.settings = settings
    app.state.client = client or Client(settings)
    app.state.fleet = FleetService(settings)
    app.state.keys = ApiKeys(settings)
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(stream.router)
    app.include_router(fleet.router)
    app.include_router(admin.router)
    app.include_router(runner.router)
    app.include_router(esup.router)

    @app.get("/healthz", tags=["health"], summary="Database and broker reachable", response_model=None)
    def health() -> JSONResponse:
        return healthz(settings)

    app.add_middleware(problems.BodyLimit, max_bytes=settings.api_max_body_bytes)
    return app
