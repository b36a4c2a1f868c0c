"""Mounting the admin on the API app: routes, static files, HTML error pages, security headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediarunner.api import create_app as create_api
from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.errors import JobNotFoundError, MediarunnerError
from mediarunner.fleet import FleetError
from mediarunner.web import actions, live, pages
from mediarunner.web.render import render
from mediarunner.web.session import COOKIE, PATH, LoginRequired

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
Handler = Callable[[Request, Exception], Awaitable[Response]]


def create_app(settings: Settings | None = None, *, client: Client | None = None) -> FastAPI:
    """The HTTP API with the web admin at ``/admin/`` (what ``mediarunner api`` serves)."""
    app = create_api(settings, client=client)
    mount(app)
    return app


def _is_admin(request: Request) -> bool:
    return request.url.path == PATH or request.url.path.startswith(f"{PATH}/")


def _error_page(request: Request, status: int, detail: str) -> Response:
    has_session = COOKIE in request.cookies
    return render(request, "error.html", {"status": status, "detail": detail, "who": None,
                                          "has_session": has_session}, status=status)


def _html_or(previous: Handler) -> Handler:
    """Errors on admin pages are HTML pages; the API's keep their problem+json."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not _is_admin(request):
            return await previous(request, exc)
        if isinstance(exc, StarletteHTTPException):
            return _error_page(request, exc.status_code, str(exc.detail))
        if isinstance(exc, RequestValidationError):
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()[:5])
            return _error_page(request, 422, f"invalid form or query: {fields}")
        if isinstance(exc, JobNotFoundError) or (isinstance(exc, FleetError) and isinstance(exc, LookupError)):
            return _error_page(request, 404, str(exc))
        if isinstance(exc, MediarunnerError):
            return _error_page(request, 422, str(exc))
        log.exception("internal error on %s", request.url.path, exc_info=exc)
        return _error_page(request, 500, "an internal error occurred; it was logged")

    return handle


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    response = RedirectResponse(f"{PATH}/login?next={exc.next_path}", status_code=303)
    if COOKIE in request.cookies:  # a stale or revoked key: forget it
        response.delete_cookie(COOKIE, path=PATH)
    return response


class SecurityHeaders:
    """CSP (scripts, styles and connections from this origin only), nosniff and no-store on admin pages."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PATH or path.startswith(f"{PATH}/")):
            await self.app(scope, receive, send)
            return
        extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                 (b"referrer-policy", b"same-origin")]
        if not path.startswith(f"{PATH}/static/"):
            extra.append((b"cache-control", b"no-store"))

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def mount(app: FastAPI) -> None:
    """Add the admin to an API app made by :func:`mediarunner.api.create_app`."""
    handlers: dict[Any, Handler] = app.exception_handlers  # type: ignore[assignment]
    for exc_type in (StarletteHTTPException, RequestValidationError, MediarunnerError, Exception):
        app.add_exception_handler(exc_type, _html_or(handlers[exc_type]))
    app.add_exception_handler(LoginRequired, _to_login)
    app.mount(f"{PATH}/static", StaticFiles(directory=STATIC), name="admin-static")
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(live.router)

    @app.get(PATH, include_in_schema=False)
    def admin_root() -> RedirectResponse:
        return RedirectResponse(f"{PATH}/", status_code=307)

    app.add_middleware(SecurityHeaders)

