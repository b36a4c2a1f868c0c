"""``Authorization: Bearer KEY`` with scopes: ``read`` (jobs and fleet), ``submit`` (create, cancel,
restart jobs), ``admin`` (everything). No, unknown or revoked key: 401; a key without the scope: 403."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mediarunner.models.api_keys import ApiKeyInfo

bearer = HTTPBearer(auto_error=False, description="an API key from `mediarunner api-keys create`")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mediarunner"'}


def require(scope: str) -> Callable[..., ApiKeyInfo]:
    """A dependency admitting keys with ``scope`` (or ``admin``)."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> ApiKeyInfo:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "send an API key as `Authorization: Bearer KEY`", headers=CHALLENGE)
        key = request.app.state.keys.verify(credentials.credentials)
        if key is None:
            raise HTTPException(401, "unknown or revoked API key", headers=CHALLENGE)
        if scope not in key.scopes and "admin" not in key.scopes:
            raise HTTPException(403, f"this key lacks the {scope!r} scope (it has: {', '.join(key.scopes)})")
        request.state.api_key = key.name
        return key

    check.__name__ = f"require_{scope}"
    return check
