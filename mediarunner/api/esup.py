"""``/esup``: Esup-Pod's Runner Manager API, so that a Pod admin adds mediarunner as a Runner
Manager (URL ``https://HOST/esup/``, token: an API key of ``submit`` scope).

The routes and shapes are those Pod's client calls (``pod/video_encode_transcript/``:
``runner_manager.py``, ``views.py``, ``admin.py``, ``management/commands/process_tasks.py``) and
esup-runner's manager serves (``manager/app/api/routes/task.py``, ``manager.py``):
``POST task/execute`` -> ``{"task_id", "status"}``; ``GET task/status/<id>``; ``GET task/result/<id>``
(the manifest; 425 until completed, 400 when failed); ``GET task/result/<id>/file/<path>``;
``GET manager/health`` (Pod's "Test connection"; ``api/health`` too, the manager's newer path).
When the family is terminal, beat's webhook tick POSTs ``{"task_id", "status", "error_message",
"script_output"}`` to Pod's ``notify_url`` with the Bearer key Pod sent (``scheduler/webhooks.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from mediarunner.api import esup_results, esup_tasks
from mediarunner.api.auth import BearerKey, authorize
from mediarunner.api.esup_tasks import TaskRequest
from mediarunner.client import Client
from mediarunner.models import esup, queries, webhooks
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Health
from mediarunner.models.esup import EsupTask
from mediarunner.models.payloads import PodPackaging
from mediarunner.models.schemas import Job

router = APIRouter(prefix="/esup", tags=["esup-pod"])
TASK_ID = r"^[0-9a-f-]{36}$"


def _client(request: Request) -> Client:
    return request.app.state.client


def _root(request: Request) -> Path:
    root = _client(request).settings.esup_output_root
    if root is None:
        raise HTTPException(503, "the Esup-Pod API is off: set MEDIARUNNER_ESUP_OUTPUT_ROOT")
    return Path(root)


def _meta(body: TaskRequest, resolutions: dict[str, str]) -> dict[str, Any]:
    keep = {k: str(body.parameters[k])[:300] for k in ("video_id", "video_slug", "video_title")
            if body.parameters.get(k) is not None}
    return {"esup": {"etab_name": body.etab_name, "resolutions": resolutions, **keep}}


def _submit(request: Request, body: TaskRequest, task: EsupTask, token: str) -> Job:
    """The task's jobs, its row and the notify subscription, in one submission transaction."""
    c = _client(request)
    notify_url = webhooks.check_notify_url(body.notify_url, c.settings.allowed_networks)

    def record(session: Any, root: Job) -> None:
        esup.add(session, replace(task, job_id=root.id), token)
        webhooks.subscribe(session, root.id, notify_url, utcnow())

    params = body.parameters
    if body.task_type == "transcription":
        return c.submit_transcription(body.source_url, task.output, esup_tasks.transcription_language(params),
                                      formats=("vtt", "json"), metadata=_meta(body, {}), on_submit=record)
    source, layout = body.source_url, list[dict[str, Any]]()
    if body.task_type == "studio":
        source, layout = esup_tasks.mediapackage(source, c.settings, params.get("presenter"))
    rungs, resolutions = esup_tasks.ladder(params)
    if rungs is None:
        resolutions = {r.name: f"{round(r.height * 8 / 9) * 2}x{r.height}" for r in c.settings.renditions}
    ops, meta = layout + esup_tasks.operations(params), _meta(body, resolutions)
    pod = PodPackaging(resolutions=resolutions, **{k: v for k, v in meta["esup"].items() if k.startswith("video_")})
    if ops:
        return c.submit_studio(source, task.output, ops, transcode=True, formats=("mp4",), ladder=rungs,
                               metadata=meta, on_submit=record, pod=pod)
    return c.submit_transcode(source, task.output, formats=("mp4",), ladder=rungs, metadata=meta, on_submit=record,
                              pod=pod)


@router.post("/task/execute", summary="Esup-Pod: run a task (encoding, transcription, studio)")
def execute(body: TaskRequest, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    task_id = str(uuid.uuid4())
    out = _root(request) / task_id
    task = EsupTask(task_id, "", body.task_type, str(out), body.notify_url, body.etab_name, body.app_name,
                    body.app_version, utcnow())
    job = _submit(request, body, task, key)
    # "running", as esup-runner answers: Pod resubmits the tasks it keeps as "pending".
    return JSONResponse({"task_id": task_id, "status": "running", "job_id": job.id})


def _task(request: Request, task_id: str) -> tuple[EsupTask, Job]:
    if len(task_id) != 36 or any(c not in "0123456789abcdef-" for c in task_id):
        raise HTTPException(404, "Task not found")

    def read(session: Any) -> tuple[EsupTask, Job] | None:
        task = esup.get(session, task_id)
        return None if task is None else (task, queries.get_job(session, task.job_id))

    settings = _client(request).settings
    found = transaction(read, url=settings.database_url)
    before = esup.cutoff(utcnow(), settings.esup_cleanup_days)
    if found is None or (before is not None and found[0].created_at < before):  # expired: as if removed
        raise HTTPException(404, "Task not found")
    return found


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


@router.get("/task/status/{task_id}", summary="Esup-Pod: a task's status")
def task_status(task_id: str, request: Request, key: BearerKey) -> dict[str, Any]:
    authorize(request, key, "submit")
    task, job = _task(request, task_id)
    family = job.family
    updated = max((j.finished_at or j.started_at or j.created_at for j in family), default=job.created_at)
    return {"task_id": task.task_id, "runner_id": "mediarunner", "status": esup.status(job),
            "etab_name": task.etab_name, "app_name": task.app_name, "app_version": task.app_version,
            "task_type": task.task_type, "notify_url": task.notify_url, "job_id": job.id,
            "progress": round(sum(j.progress for j in family) / len(family), 1),
            "created_at": _iso(task.created_at), "updated_at": _iso(updated),
            "error": esup.error_message(job), "script_output": None}


def _completed(request: Request, task_id: str) -> tuple[EsupTask, Job]:
    task, job = _task(request, task_id)
    state = esup.status(job)
    if state in ("failed", "timeout"):
        raise HTTPException(400, f"Task failed: {esup.error_message(job)}")
    if state != "completed":
        raise HTTPException(425, f"Task not completed. Status: {state}")
    return task, job


@router.get("/task/result/{task_id}", summary="Esup-Pod: a completed task's result manifest (with SHA-256)")
def task_result(task_id: str, request: Request, key: BearerKey) -> JSONResponse:
    authorize(request, key, "submit")
    task, job = _completed(request, task_id)
    body = esup_results.manifest(task, job)
    return JSONResponse(body, headers={"X-Task-ID": task.task_id})


@router.get("/task/result/{task_id}/file/{file_path:path}", summary="Esup-Pod: one result file",
            response_model=None)
def task_result_file(task_id: str, file_path: str, request: Request, key: BearerKey) -> FileResponse:
    authorize(request, key, "submit")
    task, job = _completed(request, task_id)
    path = esup_results.resolve(task, job, file_path)
    if path is None:
        raise HTTPException(404, "Result file not found")
    return FileResponse(path, media_type="application/octet-stream", filename=Path(file_path).name,
                        headers={"X-Task-ID": task.task_id})


def _health(request: Request, key: str) -> dict[str, Any]:
    authorize(request, key, "submit")
    _root(request)
    fleet = request.app.state.fleet
    online = [r for r in fleet.list_runners() if r.health is not Health.OFFLINE]
    tasks = transaction(esup.count, url=_client(request).settings.database_url)
    return {"status": "healthy", "timestamp": datetime.now(UTC).isoformat(), "runners": len(online),
            "tasks": tasks}


@router.get("/manager/health", summary="Esup-Pod: \"Test connection\" (authenticated health)")
def manager_health(request: Request, key: BearerKey) -> dict[str, Any]:
    return _health(request, key)


@router.get("/api/health", summary="Esup-Pod: the same health, at esup-runner's newer path")
def api_health(request: Request, key: BearerKey) -> dict[str, Any]:
    return _health(request, key)
