"""Errors as RFC 9457 problem details (``application/problem+json``), and the request body limit.

Every error the API answers with has ``type``, ``title``, ``status`` and a ``detail`` that says
what to fix. User input never reaches a 5xx: what the handlers below do not map is a bug.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediarunner.errors import JobNotFoundError, MediarunnerError, ValidationError
from mediarunner.fleet import AmbiguousRunner, FleetError, ReadOnlyFleet

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: problem type slug -> title
TYPES = {
    "malformed-json": "Malformed JSON", "invalid-request": "Invalid request", "not-found": "Not found",
    "unauthorized": "Missing or invalid API key", "forbidden": "Insufficient scope",
    "payload-too-large": "Request body too large", "conflict": "Conflict",
    "unavailable": "Service unavailable", "internal": "Internal error",
}


def problem(status: int, slug: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    title = TYPES.get(slug) or HTTPStatus(status).phrase
    body = {"type": f"urn:mediarunner:problem:{slug}", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _slug(status: int) -> str:
    return {400: "invalid-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 409: "conflict",
            413: "payload-too-large", 422: "invalid-request", 503: "unavailable"}.get(status, "http-error")


def _location(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        e = errors[0]
        return problem(400, "malformed-json", f"the body is not valid JSON: {e.get('ctx', {}).get('error', '')} "
                       f"at position {e['loc'][-1]}")
    shown = [{"loc": _location(e["loc"]), "msg": str(e["msg"]), "type": str(e["type"])} for e in errors[:20]]
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in shown)
    return problem(422, "invalid-request", detail, errors=shown)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return problem(status, _slug(status), detail, headers=dict(exc.headers or {}))


async def _mediarunner(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, JobNotFoundError):
        return problem(404, "not-found", str(exc))
    if isinstance(exc, AmbiguousRunner):
        return problem(409, "conflict", str(exc), matches=exc.matches)
    if isinstance(exc, FleetError) and isinstance(exc, LookupError):
        return problem(404, "not-found", str(exc))
    if isinstance(exc, ReadOnlyFleet):
        return problem(403, "forbidden", str(exc))
    if isinstance(exc, ValidationError | FleetError):
        return problem(422, "invalid-request", str(exc))
    log.error("unmapped %s: %s", type(exc).__name__, exc)
    return problem(422, "invalid-request", str(exc))


async def _internal(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error", exc_info=exc)
    return problem(500, "internal", "an internal error occurred; it was logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(MediarunnerError, _mediarunner)
    app.add_exception_handler(Exception, _internal)


class BodyLimit:
    """413 for a body over ``max_bytes``: at once from Content-Length, else while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await problem(400, "invalid-request", "Content-Length is not a number")(scope, receive, send)
                return
            if int(length) > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    def _too_large(self) -> JSONResponse:
        return problem(413, "payload-too-large", self._detail(), headers={"Connection": "close"})
