"""Files of remote runners: inputs downloaded through the API (HTTP ranges: resumable), results
uploaded in chunks (resumable: ``GET`` says how much arrived) and published by the server, after
a SHA-256 check, with the same atomic ``Store.publish`` as Celery workers. The runner holds no
storage credentials: the server opens the job's real store. A runner names only locations its
job's payload names, and only while its job token is current."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from mediarunner.api.runner_limits import charge
from mediarunner.api.runner_protocol import JobToken, Runner, attempt_of, attempt_scratch, settings_of, tx
from mediarunner.models.locations import Direction
from mediarunner.models.queries import get_job
from mediarunner.models.remote import RemoteRunner
from mediarunner.storage.layout import tree_files
from mediarunner.storage.local import file_sha256
from mediarunner.storage.remote import RemoteStore
from mediarunner.storage.store import DEFAULT_LAST, Store, open_store

router = APIRouter(prefix="/v1/runner/jobs/{job_id}", tags=["remote runners"])
UPLOAD_ID = re.compile(r"^[A-Za-z0-9]{8,40}$")
PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
Location = Query(min_length=1, max_length=4096)
Rel = Query(default="", max_length=1024)
_REL_PART = re.compile(r"^[^\x00-\x1f\x7f\\]{1,255}$")


def safe_rel(rel: str) -> str:
    """A relative path below a location: no absolute path, no ``..``, no control characters or
    backslashes (stores join it to the location as given: it must not climb out)."""
    parts = rel.split("/") if rel else []
    if rel.startswith("/") or any(p in ("", ".", "..") or not _REL_PART.match(p) for p in parts):
        raise HTTPException(422, "rel must be a relative path below the location (no '..', '.', '//' or '/' first)")
    return rel


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def job_store(request: Request, runner: RemoteRunner, job_id: str, job_token: str, location: str,
              direction: Direction, *, finished_ok: bool = True) -> tuple[int, Store]:
    """(attempt, store of ``location``) when the token is current and the job's payload names ``location``."""
    attempt = attempt_of(request, runner, job_id, job_token, finished_ok=finished_ok)
    job = tx(request, lambda s: get_job(s, job_id, with_children=False))
    if location not in _strings(job.payload):
        raise HTTPException(403, "this job does not name that location")
    return attempt, open_store(location, settings_of(request), direction)


def _scratch(request: Request, job_id: str, attempt: int, kind: str) -> Path:
    return attempt_scratch(settings_of(request), kind, job_id, attempt)


def _file_response(path: Path, copied_under: Path) -> FileResponse:
    """The file (ranges supported); a copy staged for this response is removed after it."""
    cleanup = BackgroundTask(shutil.rmtree, copied_under, ignore_errors=True) if path.is_relative_to(copied_under) \
        else None
    return FileResponse(path, media_type="application/octet-stream", background=cleanup)


@router.get("/input", summary="Download an input of the job (HTTP ranges: resumable), or a redirect to a "
                           "short-lived presigned URL (S3, with RUNNER_PRESIGN_SECONDS)", response_model=None)
def download_input(job_id: str, runner: Runner, job_token: JobToken, request: Request,
                   location: str = Location) -> FileResponse | RedirectResponse:
    attempt, store = job_store(request, runner, job_id, job_token, location, "input", finished_ok=False)
    seconds = settings_of(request).runner_presign_seconds
    if seconds > 0 and isinstance(store, RemoteStore):
        url = store.presign(seconds)
        if url is not None:  # the runner reads the object store directly: no bytes through the API
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    scratch = _scratch(request, job_id, attempt, "remote-inputs") / hashlib.sha256(location.encode()).hexdigest()[:16]
    return _file_response(store.stage_in(scratch), scratch)


@router.get("/output", summary="Download an earlier output of the job's family", response_model=None)
def download_output(job_id: str, runner: Runner, job_token: JobToken, request: Request,
                    location: str = Location, rel: str = Rel) -> FileResponse:
    attempt, store = job_store(request, runner, job_id, job_token, location, "output")
    scratch = _scratch(request, job_id, attempt, "remote-fetched") / hashlib.sha256(
        f"{location}\n{rel}".encode()).hexdigest()[:16]
    return _file_response(store.fetch(safe_rel(rel), scratch), scratch)


@router.get("/list", summary="Files under an output location")
def list_files(job_id: str, runner: Runner, job_token: JobToken, request: Request,
               location: str = Location, rel: str = Rel) -> dict[str, Any]:
    _, store = job_store(request, runner, job_id, job_token, location, "output")
    return {"files": store.list_files(safe_rel(rel))}


def _upload_path(request: Request, job_id: str, attempt: int, upload_id: str, path: str) -> Path:
    parts = path.split("/")
    if not UPLOAD_ID.match(upload_id) or len(parts) > 8 or not all(PART.match(p) and p not in (".", "..")
                                                                    for p in parts):
        raise HTTPException(422, "an upload path is up to 8 components of letters, digits and ._- (no ..)")
    return _scratch(request, job_id, attempt, "remote-uploads") / upload_id / Path(*parts)


@router.get("/uploads/{upload_id}/{path:path}", summary="How many bytes of an upload arrived (to resume)")
def upload_size(job_id: str, upload_id: str, path: str, runner: Runner, job_token: JobToken,
                request: Request) -> dict[str, Any]:
    attempt = attempt_of(request, runner, job_id, job_token, finished_ok=True)
    dst = _upload_path(request, job_id, attempt, upload_id, path)
    return {"size": dst.stat().st_size if dst.is_file() else 0}


@router.put("/uploads/{upload_id}/{path:path}", summary="Upload a chunk of a result file at `offset`")
async def upload_chunk(job_id: str, upload_id: str, path: str, runner: Runner, job_token: JobToken,
                       request: Request, offset: int = Query(ge=0)) -> dict[str, Any]:
    attempt = await run_in_threadpool(attempt_of, request, runner, job_id, job_token, finished_ok=True)
    dst = _upload_path(request, job_id, attempt, upload_id, path)
    size = dst.stat().st_size if dst.is_file() else 0
    if offset != size:
        raise HTTPException(409, f"the upload has {size} bytes: send from offset {size}")
    settings = settings_of(request)
    limit, start = settings.runner_max_upload_bytes, size
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with dst.open("ab") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"a result file may be at most {limit} bytes (RUNNER_MAX_UPLOAD_BYTES)")
                f.write(chunk)
    finally:  # what arrived counts toward the attempt's total, even from a dropped connection
        _charge(request, job_id, attempt, dst, start, size)
    return {"size": size}


def _charge(request: Request, job_id: str, attempt: int, dst: Path, start: int, size: int) -> None:
    """Count the bytes a chunk added to the attempt's total; beyond RUNNER_MAX_JOB_UPLOAD_BYTES the
    chunk is cut off again (the file back at ``start``) and refused."""
    written = max(0, min(size, dst.stat().st_size if dst.is_file() else 0) - start)
    limit = settings_of(request).runner_max_job_upload_bytes
    if written and charge(_scratch(request, job_id, attempt, "remote-uploads"), written, limit) is None:
        with dst.open("r+b") as f:
            f.truncate(start)
        raise HTTPException(413, f"the results of one job may be at most {limit} bytes in all "
                                 "(RUNNER_MAX_JOB_UPLOAD_BYTES)")


class Publish(BaseModel):
    location: str = Field(min_length=1, max_length=4096)
    rel: str = Field(default="", max_length=1024)
    upload_id: str = Field(pattern=UPLOAD_ID.pattern)
    file: str | None = Field(default=None, max_length=200)  # one file (this name), else the upload is a tree
    sha256: dict[str, str] = Field(max_length=100_000)  # path in the upload -> hex digest
    last: list[str] = Field(default_factory=lambda: list(DEFAULT_LAST), max_length=100)


@router.post("/publish", summary="Publish an upload at the job's output (atomically, checked by SHA-256)")
def publish(job_id: str, body: Publish, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    attempt, store = job_store(request, runner, job_id, job_token, body.location, "output")
    root = _upload_path(request, job_id, attempt, body.upload_id, body.file or "x").parent
    arrived = tree_files(root) if root.is_dir() else []
    if sorted(arrived) != sorted(body.sha256):
        raise HTTPException(409, f"the upload has {len(arrived)} file(s), not the {len(body.sha256)} announced")
    bad = [p for p in arrived if file_sha256(root / p) != body.sha256[p].lower()]
    if bad:
        shutil.rmtree(root, ignore_errors=True)
        raise HTTPException(409, f"SHA-256 mismatch for {', '.join(bad[:5])}: upload again")
    attempt_of(request, runner, job_id, job_token, finished_ok=True)  # the last fence before it is visible
    try:
        published = store.publish(root / body.file if body.file else root, safe_rel(body.rel), last=body.last)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"published": [{"path": _which(p.location, arrived), "location": p.location} for p in published]}


def _which(location: str, arrived: list[str]) -> str | None:
    """The uploaded path a published location came from (the longest that ends it)."""
    found = [p for p in arrived if location == p or location.endswith("/" + p)]
    return max(found, key=len) if found else None


class Remove(BaseModel):
    location: str = Field(min_length=1, max_length=4096)
    rel: str = Field(default="", max_length=1024)


@router.post("/remove", summary="Delete intermediate files under the job's output")
def remove(job_id: str, body: Remove, runner: Runner, job_token: JobToken, request: Request) -> dict[str, Any]:
    _, store = job_store(request, runner, job_id, job_token, body.location, "output")
    store.remove(safe_rel(body.rel))
    return {"removed": body.rel}
