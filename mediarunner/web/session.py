"""Who is looking: the admin's login session and CSRF tokens.

The session cookie (``mr_admin``: HttpOnly, SameSite=Strict, Secure over https, path ``/admin``)
holds the API key the operator logged in with, and every request verifies it with
:class:`~mediarunner.api.keys.ApiKeys` exactly as the HTTP API verifies a Bearer key: a revoked key
logs its sessions out at once, and nothing about sessions is stored server-side (any number of
``mediarunner api`` processes, restarts included). A key with the ``admin`` scope may act; any
other valid key (``read``, ``submit``) only looks.

CSRF: every form carries ``csrf``, an HMAC of the session's key (so it needs no storage and is
useless without the cookie), checked on every POST; the login form uses a random double-submit
cookie instead, since there is no session yet.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from mediarunner.api.keys import ApiKeys

COOKIE = "mr_admin"
LOGIN_CSRF_COOKIE = "mr_login_csrf"
PATH = "/admin"
MAX_AGE = 12 * 3600  # seconds a login lasts (the key's revocation ends it sooner)


@dataclass(frozen=True)
class Viewer:
    name: str
    scopes: tuple[str, ...]
    csrf: str
    demo: bool

    @property
    def can_act(self) -> bool:
        """Admin scope and not demo mode: the page shows enabled action buttons."""
        return "admin" in self.scopes and not self.demo


class LoginRequired(Exception):
    """Raised by :func:`viewer`: the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def csrf_of(key: str) -> str:
    return hmac.new(key.encode(), b"mediarunner-admin-csrf", hashlib.sha256).hexdigest()[:40]


def keys(request: Request) -> ApiKeys:
    return request.app.state.keys


def viewer(request: Request) -> Viewer:
    """A dependency: the logged-in viewer, or a redirect to the login page."""
    key = request.cookies.get(COOKIE)
    info = keys(request).verify(key) if key else None
    if info is None or key is None:
        raise LoginRequired(request.url.path)
    return Viewer(info.name, info.scopes, csrf_of(key), request.app.state.settings.demo_mode)


def check_csrf(request: Request, who: Viewer, token: str) -> None:
    if not hmac.compare_digest(who.csrf.encode(), token.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")


def acting(request: Request, who: Viewer, token: str) -> Viewer:
    """Checks for a POST that changes something: CSRF, then admin scope, then demo mode."""
    check_csrf(request, who, token)
    if request.app.state.settings.demo_mode:
        raise HTTPException(403, "demo mode (MEDIARUNNER_DEMO_MODE) is read-only: actions are disabled")
    if "admin" not in who.scopes:
        raise HTTPException(403, f"the key {who.name!r} may only look (it lacks the admin scope)")
    return who


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def log_in(request: Request, key: str, next_path: str) -> Response:
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(COOKIE, key, max_age=MAX_AGE, path=PATH, httponly=True, samesite="strict",
                        secure=secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PATH)
    return response


def log_out() -> Response:
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


def login_csrf(request: Request) -> str:
    """The login form's token: the double-submit cookie's value, or a new one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=PATH, httponly=True, samesite="strict",
                        secure=secure(request))


def safe_next(path: str | None) -> str:
    """Only a path inside the admin (no open redirect)."""
    if path and path.startswith(f"{PATH}/") and not path.startswith("//") and "\\" not in path:
        return path
    return f"{PATH}/"
