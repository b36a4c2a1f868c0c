"""``Authorization: Bearer KEY`` with scopes: ``read`` (jobs and fleet), ``submit`` (create, cancel,
restart jobs), ``admin`` (everything). No, unknown or revoked key: 401; a key without the scope: 403.

Two ways in, one check (:func:`authorize`):

* ``dependencies=[Depends(require(scope))]``: a sync dependency, so FastAPI runs the key lookup in
  its threadpool — one more thread hop per request than the endpoint's own.
* the job routes (the busy ones) take ``key: BearerKey`` (async: the header is checked on the
  event loop, 401 before the body is read) and call ``authorize(request, key, scope)`` first thing
  in their own threadpool call. ``tests/api/test_fuzz.py`` asserts that every operation refuses a
  wrong key, so a route that forgot the call would fail it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mediarunner.models.api_keys import ApiKeyInfo

bearer = HTTPBearer(auto_error=False, description="an API key from `mediarunner api-keys create`")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mediarunner"'}


async def bearer_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
    """The key of ``Authorization: Bearer KEY`` (not yet looked up); 401 without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send an API key as `Authorization: Bearer KEY`", headers=CHALLENGE)
    return credentials.credentials


BearerKey = Annotated[str, Depends(bearer_key)]


def authorize(request: Request, key: str, scope: str) -> ApiKeyInfo:
    """The valid key ``key`` if it has ``scope`` (or ``admin``); else 401 or 403. Blocking (a read)."""
    info = request.app.state.keys.verify(key)
    if info is None:
        raise HTTPException(401, "unknown or revoked API key", headers=CHALLENGE)
    if scope not in info.scopes and "admin" not in info.scopes:
        raise HTTPException(403, f"this key lacks the {scope!r} scope (it has: {', '.join(info.scopes)})")
    request.state.api_key = info.name
    return info


def require(scope: str) -> Callable[..., ApiKeyInfo]:
    """A dependency admitting keys with ``scope`` (or ``admin``)."""

    def check(request: Request, key: BearerKey) -> ApiKeyInfo:
        return authorize(request, key, scope)

    check.__name__ = f"require_{scope}"
    return check
