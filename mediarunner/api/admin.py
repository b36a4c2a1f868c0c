"""Fleet administration for ``admin`` keys: steer runners, registration tokens, API keys.

Everything goes through ``FleetService`` (runners, tokens) and ``ApiKeys`` (keys), exactly as
``mediarunner runners|tokens|api-keys`` do. A new token's or key's secret is in the ``201``
answer only (``Cache-Control: no-store``); lists never show one. Unknown runner, token or key:
``404``; an ambiguous runner name: ``409``; demo mode refuses changes with ``403``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from mediarunner.api.auth import require
from mediarunner.api.keys import ApiKeys
from mediarunner.fleet import FleetService, RunnerStatus, SteerResult, TokenInfo
from mediarunner.models.api_keys import NAME, SCOPES, ApiKeyInfo

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(require("admin"))])
RunnerName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
NO_STORE = {"Cache-Control": "no-store"}
CREATED: dict[int | str, dict[str, Any]] = {201: {"description": "Created; the secret is shown this once"}}


def fleet(request: Request) -> FleetService:
    return request.app.state.fleet


def keys(request: Request) -> ApiKeys:
    return request.app.state.keys


def _json(value: Any, kind: Any) -> Any:
    return TypeAdapter(kind).dump_python(value, mode="json")


def steered(result: SteerResult) -> dict[str, Any]:
    return {"hostname": result.hostname, "changed": result.changed, "acknowledged": result.acknowledged,
            "replies": _json(result.replies, dict[str, Any])}


# ------------------------------------------------------------------------------ runners

@router.post("/runners/{name}/maintenance", summary="Drain a runner: running jobs finish, no new ones")
def runner_maintenance(name: RunnerName, request: Request) -> dict[str, Any]:
    return steered(fleet(request).maintenance(name))


@router.post("/runners/{name}/enable", summary="Let a runner take jobs again")
def runner_enable(name: RunnerName, request: Request) -> dict[str, Any]:
    return steered(fleet(request).enable(name))


@router.post("/runners/{name}/disable", summary="Stop a runner from taking jobs")
def runner_disable(name: RunnerName, request: Request) -> dict[str, Any]:
    return steered(fleet(request).set_status(name, RunnerStatus.DISABLED))


class Concurrency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(ge=1, le=256, description="max concurrent jobs (kept across restarts)")


@router.put("/runners/{name}/concurrency", summary="Set a runner's max concurrent jobs and resize its pool")
def runner_concurrency(name: RunnerName, body: Concurrency, request: Request) -> dict[str, Any]:
    return steered(fleet(request).set_concurrency(name, body.concurrency))


class Priority(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int = Field(ge=-1000, le=1000, description="scheduling priority: idle runners of the lowest go first")
    weight: int | None = Field(default=None, ge=1, le=10_000,
                               description="share for RUNNER_BALANCING=weighted (default: its concurrency)")


@router.put("/runners/{name}/priority", summary="Set a runner's scheduling priority (and balancing weight)")
def runner_priority(name: RunnerName, body: Priority, request: Request) -> dict[str, Any]:
    return steered(fleet(request).set_priority(name, body.priority, weight=body.weight))


@router.post("/runners/{name}/unregister", summary="Let a runner leave: its running jobs go back to pending")
def runner_unregister(name: RunnerName, request: Request) -> dict[str, Any]:
    hostname, released = fleet(request).unregister_runner(name)
    return {"hostname": hostname, "released": released}


@router.delete("/runners/{name}", summary="Remove a stopped (offline) or unregistered runner")
def runner_remove(name: RunnerName, request: Request) -> dict[str, Any]:
    return {"hostname": fleet(request).remove_runner(name), "removed": True}


# ------------------------------------------------------------------------------ registration tokens

class NewTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$",
                      description="a label, e.g. the site or machine group")


@router.get("/tokens", summary="Runner registration tokens (never their secrets)")
def tokens_list(request: Request) -> list[dict[str, Any]]:
    return _json(fleet(request).list_tokens(), list[TokenInfo])


@router.post("/tokens", status_code=201, responses=CREATED,
             summary="Create a registration token (workers present it as MEDIARUNNER_WORKER_TOKEN)")
def tokens_create(body: NewTokenRequest, request: Request) -> JSONResponse:
    token = fleet(request).create_token(body.name)
    return JSONResponse({"id": token.id, "name": token.name, "secret": token.secret}, status_code=201,
                        headers=NO_STORE)


@router.post("/tokens/{token_id}/revoke", summary="Revoke a token: its runners are unregistered at once")
def tokens_revoke(token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{8}$")], request: Request) -> dict[str, Any]:
    return {"id": token_id, "unregistered": fleet(request).revoke_token(token_id)}


# ------------------------------------------------------------------------------ API keys

class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME.pattern, description="a unique label, e.g. the platform")
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), description=f"some of {', '.join(SCOPES)}")


def _key(info: ApiKeyInfo) -> dict[str, Any]:
    return _json(info, ApiKeyInfo)


@router.get("/api-keys", summary="API keys (never their secrets)")
def keys_list(request: Request) -> list[dict[str, Any]]:
    return [_key(k) for k in keys(request).list()]


@router.post("/api-keys", status_code=201, responses=CREATED, summary="Create an API key")
def keys_create(body: NewKeyRequest, request: Request) -> JSONResponse:
    info, key = keys(request).create(body.name, body.scopes)
    return JSONResponse({**_key(info), "key": key}, status_code=201, headers=NO_STORE)


@router.post("/api-keys/{name}/revoke", summary="Revoke an API key: requests with it get 401 at once")
def keys_revoke(name: Annotated[str, Path(pattern=NAME.pattern)], request: Request) -> dict[str, Any]:
    if not keys(request).revoke(name):
        raise HTTPException(404, f"no active API key {name!r}")
    return {"name": name, "revoked": True}
