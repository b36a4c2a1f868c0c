"""A protocol-faithful fake of PeerTube's remote-runner API (server 6.3.3, or the newest: ``version``),
for the connector's tests.

Modelled on PeerTube's source: ``server/core/controllers/api/runners/{manage-runners,jobs,jobs-files}.ts``,
the validators in ``server/core/middlewares/validators/runners/`` and
``server/core/helpers/custom-validators/runners/jobs.ts``, the job states of
``packages/models/src/runners/runner-job-state.model.ts`` and the ``/runners`` socket.io namespace of
``server/core/lib/peertube-socket.ts`` (auth: ``runnerToken``; event ``available-jobs``).

What it checks as PeerTube does, in the same order, with the same statuses and error codes:
register (404 bad registration token, 400 name taken), request (404 ``unknown_runner_token``),
accept (404 unknown job, 400 not pending, 404 unknown runner token; 409 on a race), the
``jobOfRunner`` validator of update/abort/error/success/file downloads (tokens from a JSON or a
multipart body; 404 "Unknown runner job"; 400 ``runner_job_not_in_processing_state``), each body's
fields (progress 0-100 integer, message / reason 1-5000 characters, the ``payload[...]`` files of each
job type's success validator, an empty update payload for VOD jobs). It also runs PeerTube's
stalled-job watchdog (a PROCESSING VOD job not updated for ``stalled_vod_seconds`` goes back to
pending; a live one not updated for ``stalled_live_seconds`` errors) and the admin's cancel / delete.
Live updates (chunks and playlists): ``fake_live.py``.

``version`` (``GET /api/v1/config`` ``serverVersion``): "6.3.3" (the default) or :data:`NEWEST`, whose
validators (upstream ``develop`` with the storyboard runner job) differ: ``register`` and
``jobs/request`` validate an optional ``version`` (``isStableOrUnstableVersionValid``: 400 unless
``X.Y.Z`` or ``X.Y.Z-alpha|beta|rc.N``), ``jobs/request`` an optional ``jobTypes`` array that filters
the jobs offered, and there is the ``generate-video-storyboard`` job type, whose success carries
``payload[storyboardFile]``, an image (the upload filter adds the image MIME types).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from tests.peertube.fake_live import LIVE, live_update

PENDING, PROCESSING, COMPLETED, ERRORED, CANCELLED = 1, 2, 3, 4, 6
VOD_TYPES = {"vod-web-video-transcoding", "vod-hls-transcoding", "vod-audio-merge-transcoding"}
SUCCESS_FILES = {  # isRunnerJob*ResultPayloadValid: the files each type's success must carry
    "vod-web-video-transcoding": {"videoFile"},
    "vod-hls-transcoding": {"videoFile", "resolutionPlaylistFile"},
    "vod-audio-merge-transcoding": {"videoFile"},
    "video-studio-transcoding": {"videoFile"},
    "video-transcription": {"vttFile"},
    LIVE: set(),  # isRunnerJobLiveRTMPHLSResultPayloadValid: an empty payload
}
FILE_FIELDS = {"videoFile", "resolutionPlaylistFile", "vttFile"}  # postRunnerJobSuccessVideoFiles
MIME_OK = {"video/mp4", "video/ogg", "video/webm", "audio/mp4", "application/vnd.apple.mpegurl", "text/vtt",
           "application/x-subrip", "text/plain"}
NEWEST = "8.0.2"  # the newest release seen; its runner API as upstream develop's source reads
STORYBOARD = "generate-video-storyboard"
NEWEST_FILES = {STORYBOARD: {"storyboardFile"}}
IMAGE_MIME = {"image/png", "image/gif", "image/webp", "image/jpg", "image/jpeg"}  # MIMETYPES.IMAGE
RUNNER_VERSION = re.compile(r"^\d+\.\d+\.\d+(-(alpha|beta|rc)\.\d+)?$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class FakeJob:
    uuid: str
    type: str
    payload: dict[str, Any]
    files: dict[str, Path]  # input file name in URL -> file
    state: int = PENDING
    job_token: str | None = None
    runner: str | None = None  # runner token
    progress: int | None = None
    updated_at: float = field(default_factory=time.monotonic)
    accepted_at: float | None = None
    failures: int = 0
    error: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    aborts: list[str] = field(default_factory=list)
    stalled: int = 0
    success: dict[str, Any] | None = None  # {"fields": {...}, "files": {name: (path, filename, mime)}, "keys": [...]}
    live_files: dict[str, bytes] = field(default_factory=dict)  # a live job's output directory (fake_live.py)
    live_updates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Runner:
    id: int
    name: str
    token: str


def _fail(status: int, detail: str, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": "error", "detail": detail, "status": status}
    if code:
        body["code"] = code
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class FakePeerTube:
    def __init__(self, tmp: Path, *, stalled_vod_seconds: float = 120.0, honour_job_types: bool | None = None,
                 version: str = "6.3.3", stalled_live_seconds: float = 30.0) -> None:
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.registration_tokens = {"ptrrt-" + secrets.token_hex(16)}
        self.runners: dict[str, Runner] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.lock = threading.Lock()
        self.stalled_vod_seconds = stalled_vod_seconds
        self.version = version
        self.newest = tuple(int(x) for x in version.split("-")[0].split(".")) >= (8, 0, 0)
        # 6.3.3 has no jobTypes (every pending job is offered); 7.x and the newest filter by it
        self.honour_job_types = self.newest if honour_job_types is None else honour_job_types
        self.success_files = SUCCESS_FILES | (NEWEST_FILES if self.newest else {})
        self.file_fields = FILE_FIELDS | ({"storyboardFile"} if self.newest else set())
        self.mime_ok = MIME_OK | (IMAGE_MIME if self.newest else set())
        self.stalled_live_seconds = stalled_live_seconds  # remote_runners.stalled_jobs.live
        self.ended_sessions: set[str] = set()  # live jobs whose session PeerTube ended
        self.requests: list[dict[str, Any]] = []  # bodies of /jobs/request (tokens replaced)
        self.register_bodies: list[dict[str, Any]] = []
        self.socket_clients = 0
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.url = ""
        self._routes()

    @property
    def registration_token(self) -> str:
        return next(iter(self.registration_tokens))

    # ------------------------------------------------------------------ admin side (the test)

    def add_job(self, type: str, payload: dict[str, Any], files: dict[str, Path] | None = None, *,
                any_type: bool = False) -> FakeJob:
        """A new pending job; ``payload``'s URLs may use ``{base}`` and ``{uuid}``, filled in here.
        A type this version does not have is refused unless ``any_type`` (a server lying about it)."""
        if type == STORYBOARD and not self.newest and not any_type:
            raise ValueError(f"PeerTube {self.version} has no {type} runner job")
        uuid = str(uuidlib.uuid4())
        job = FakeJob(uuid, type, _fill(payload, base=self.url, uuid=uuid), dict(files or {}))
        with self.lock:
            self.jobs[uuid] = job
        self.ping()
        return job

    def cancel(self, uuid: str) -> None:
        """cancelRunnerJob: pending/processing -> CANCELLED; setToErrorOrCancel drops the job token,
        so the runner's next call gets 404 "Unknown runner job" (as observed on 6.3.3)."""
        with self.lock:
            self.jobs[uuid].state, self.jobs[uuid].job_token = CANCELLED, None

    def end_session(self, uuid: str) -> None:
        """The live session of a live job ends on PeerTube's side (LiveManager.hasSession is false)."""
        with self.lock:
            self.ended_sessions.add(uuid)

    def delete(self, uuid: str) -> None:
        with self.lock:
            del self.jobs[uuid]

    def delete_runner(self, name: str) -> None:  # admin deletes the runner (or its registration token)
        with self.lock:
            for tok, r in list(self.runners.items()):
                if r.name == name:
                    del self.runners[tok]

    def ping(self) -> None:
        """PeerTubeSocket.sendAvailableJobsPingToRunners."""
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self.sio.emit("available-jobs", namespace="/runners"), self.loop)

    # ------------------------------------------------------------------ server

    def start(self, port: int) -> None:
        app = socketio.ASGIApp(self.sio, other_asgi_app=self.app)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="wsproto")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.run, name="fake-peertube", daemon=True).start()
        threading.Thread(target=self._watchdog, name="fake-peertube-watchdog", daemon=True).start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake PeerTube did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    def _watchdog(self) -> None:
        """RunnerJobWatchDogScheduler: PROCESSING VOD jobs not updated for the stale time are aborted."""
        while self.server is not None and not self.server.should_exit:
            time.sleep(0.2)
            now = time.monotonic()
            with self.lock:
                for j in self.jobs.values():
                    if j.state == PROCESSING and j.type in VOD_TYPES and now - j.updated_at > self.stalled_vod_seconds:
                        j.stalled += 1
                        self._reset(j)
                    elif j.state == PROCESSING and j.type == LIVE and now - j.updated_at > self.stalled_live_seconds:
                        j.stalled += 1  # abort is not supported for live: the handler errors the job
                        j.state, j.error, j.job_token = ERRORED, "Stalled runner job", None

    def _reset(self, j: FakeJob) -> None:  # resetToPending
        j.state, j.job_token, j.runner, j.progress = PENDING, None, None, None

    # ------------------------------------------------------------------ routes

    def _routes(self) -> None:
        app = self.app = FastAPI()
        base = "/api/v1/runners"

        @self.sio.on("connect", namespace="/runners")
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
            self.loop = asyncio.get_running_loop()
            token = (auth or {}).get("runnerToken") if isinstance(auth, dict) else None
            if token not in self.runners:  # authenticateRunnerSocket
                return False
            self.socket_clients += 1
            return True

        @self.sio.on("disconnect", namespace="/runners")
        async def disconnect(sid: str, *args: Any) -> None:
            self.socket_clients -= 1

        @app.get("/api/v1/config")
        async def config() -> Response:  # the public server config; the connector reads serverVersion
            return JSONResponse({"instance": {"name": "fake"}, "serverVersion": self.version, "serverCommit": None})

        def bad_version(body: dict[str, Any]) -> bool:  # body('version').optional().custom(isStableOr...)
            return self.newest and "version" in body and \
                not (isinstance(body["version"], str) and RUNNER_VERSION.match(body["version"]))

        @app.post(base + "/register")
        async def register(request: Request) -> Response:
            body = await request.json()
            self.register_bodies.append({k: v for k, v in body.items() if k != "registrationToken"})
            name = body.get("name")
            if not isinstance(name, str) or not 1 <= len(name) <= 100 or \
                    not isinstance(body.get("registrationToken"), str):
                return _fail(400, "Incorrect request parameters: name")
            if bad_version(body):
                return _fail(400, "Incorrect request parameters: version")
            if body["registrationToken"] not in self.registration_tokens:
                return _fail(404, "Registration token is invalid")
            if any(r.name == name for r in self.runners.values()):
                return _fail(400, "This runner name already exists on this instance")
            runner = Runner(len(self.runners) + 1, name, "ptrt-" + secrets.token_hex(20))
            self.runners[runner.token] = runner
            return JSONResponse({"id": runner.id, "runnerToken": runner.token})

        @app.post(base + "/unregister")
        async def unregister(request: Request) -> Response:
            body = await request.json()
            if body.get("runnerToken") not in self.runners:
                return _fail(404, "Unknown runner token", "unknown_runner_token")
            del self.runners[body["runnerToken"]]
            return Response(status_code=204)

        @app.post(base + "/jobs/request")
        async def request_jobs(request: Request) -> Response:
            body = await request.json()
            if bad_version(body) or (self.newest and "jobTypes" in body and not isinstance(body["jobTypes"], list)):
                return _fail(400, "Incorrect request parameters")  # requestRunnerJobValidator, first
            if body.get("runnerToken") not in self.runners:
                return _fail(404, "Unknown runner token", "unknown_runner_token")
            self.requests.append({k: v for k, v in body.items() if k != "runnerToken"})
            types = body.get("jobTypes") if self.honour_job_types else None
            with self.lock:
                jobs = [{"uuid": j.uuid, "type": j.type, "payload": j.payload} for j in self.jobs.values()
                        if j.state == PENDING and (not types or j.type in types)]
            return JSONResponse({"availableJobs": jobs})

        @app.post(base + "/jobs/{uuid}/accept")
        async def accept(uuid: str, request: Request) -> Response:
            body = await request.json()
            with self.lock:
                j = self.jobs.get(uuid) if UUID.match(uuid) else None
                if j is None:
                    return _fail(404, "Unknown runner job")
                if j.state != PENDING:
                    return _fail(400, "This runner job is not in pending state")
                if body.get("runnerToken") not in self.runners:
                    return _fail(404, "Unknown runner token", "unknown_runner_token")
                j.state, j.job_token, j.runner = PROCESSING, "ptrjt-" + secrets.token_hex(20), body["runnerToken"]
                j.updated_at = j.accepted_at = time.monotonic()
                return JSONResponse({"job": {"uuid": j.uuid, "type": j.type, "state": {"id": PROCESSING},
                                             "payload": j.payload, "failures": j.failures, "progress": None,
                                             "jobToken": j.job_token}})

        async def job_of_runner(uuid: str, request: Request, allowed: set[int]) -> tuple[FakeJob | None, Any, Any]:
            """jobOfRunnerGetValidatorFactory: (job, body fields, form) or (None, error response, None)."""
            form = None
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                form = await request.form()
                fields: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            else:
                fields = await request.json()
            rt, jt = fields.get("runnerToken"), fields.get("jobToken")
            if not UUID.match(uuid) or not isinstance(rt, str) or not rt or not isinstance(jt, str) or \
                    not 1 <= len(jt) <= 1000:
                return None, _fail(400, "Incorrect request parameters"), None
            j = self.jobs.get(uuid)
            if j is None or j.job_token != jt or j.runner != rt or rt not in self.runners:
                return None, _fail(404, "Unknown runner job"), None
            if j.state not in allowed:
                return None, _fail(400, 'Job is not in "processing" state', "runner_job_not_in_processing_state"), None
            return j, fields, form

        @app.post(base + "/jobs/{uuid}/update")
        async def update(uuid: str, request: Request) -> Response:
            j, fields, form = await job_of_runner(uuid, request, {PROCESSING, COMPLETED})
            if j is None:
                return fields
            if j.type == LIVE:
                return await live_update(self, j, fields, form)
            if form is None and j.type == "video-transcription":  # the live validator reads req.files
                return _fail(500, "Cannot read properties of undefined (reading 'payload[resolutionPlaylistFile]')")
            progress = fields.get("progress")
            if progress is not None and (not re.fullmatch(r"\d+", str(progress)) or not 0 <= int(progress) <= 100):
                return _fail(400, "Incorrect request parameters: progress")
            if fields.get("payload") not in (None, {}):  # VOD update payloads must be empty
                return _fail(400, "Payload is invalid")
            with self.lock:
                if j.state == COMPLETED:
                    return Response(status_code=204)
                if progress:
                    j.progress = int(progress)
                j.updated_at = time.monotonic()
                j.updates.append({"at": j.updated_at, "progress": progress})
            return Response(status_code=204)

        @app.post(base + "/jobs/{uuid}/error")
        async def error(uuid: str, request: Request) -> Response:
            j, fields, _ = await job_of_runner(uuid, request, {PROCESSING})
            if j is None:
                return fields
            msg = fields.get("message")
            if not isinstance(msg, str) or not 1 <= len(msg) <= 5000:
                return _fail(400, "Incorrect request parameters: message")
            with self.lock:
                j.failures += 1
                j.state, j.error = ERRORED, msg  # (PeerTube retries VOD jobs up to 5 failures; the test reads this)
            return Response(status_code=204)

        @app.post(base + "/jobs/{uuid}/abort")
        async def abort(uuid: str, request: Request) -> Response:
            j, fields, _ = await job_of_runner(uuid, request, {PROCESSING})
            if j is None:
                return fields
            reason = fields.get("reason")
            if not isinstance(reason, str) or not 1 <= len(reason) <= 5000:
                return _fail(400, "Incorrect request parameters: reason")
            with self.lock:
                j.aborts.append(reason)
                self._reset(j)
            self.ping()
            return Response(status_code=204)

        @app.post(base + "/jobs/{uuid}/success")
        async def success(uuid: str, request: Request) -> Response:
            j, fields, form = await job_of_runner(uuid, request, {PROCESSING})
            if j is None:
                return fields
            files: dict[str, tuple[Path, str, str]] = {}
            texts = {k[8:-1]: v for k, v in fields.items() if k.startswith("payload[") and k.endswith("]")}
            for key, value in (form.multi_items() if form is not None else []):
                if isinstance(value, str):
                    continue
                name = key[8:-1] if key.startswith("payload[") and key.endswith("]") else None
                if name not in self.file_fields:  # multer .fields(): an unexpected file field is an error
                    return _fail(400, f"Unexpected field {key}")
                if name in files:
                    return _fail(400, f"Too many files for {key}")
                ctype = value.content_type or ""
                if ctype not in self.mime_ok:  # generateReqFilename has no extension for it
                    return _fail(400, f"Unknown mimetype {ctype} for {key}")
                dest = self.tmp / f"{uuid}-{name}-{value.filename}"
                dest.write_bytes(await value.read())
                files[name] = (dest, value.filename or "", ctype)
            if set(files) != self.success_files.get(j.type, set()):  # stricter than multer: no extra file either
                return _fail(400, "Payload is invalid")
            if j.type == LIVE and texts:  # the live success payload must be empty
                return _fail(400, "Payload is invalid")
            if j.type == "video-transcription" and not texts.get("inputLanguage"):  # TranscriptionJobHandler uses it
                return _fail(400, "Payload is invalid")
            with self.lock:
                keys = [k for k, _ in form.multi_items()] if form is not None else list(fields)
                j.success = {"fields": texts, "files": files, "keys": keys}  # keys: every part's name, in order
                j.state, j.progress = COMPLETED, None
            return Response(status_code=204)

        @app.post(base + "/jobs/{uuid}/files/videos/{video_id}/{name:path}")
        async def job_file(uuid: str, video_id: str, name: str, request: Request) -> Response:
            j, fields, _ = await job_of_runner(uuid, request, {PROCESSING})
            if j is None:
                return fields
            path = j.files.get(name)
            if path is None:
                return _fail(404, "Video file not found")
            return FileResponse(path)


def _fill(value: Any, **subs: str) -> Any:
    if isinstance(value, str):
        return value.format(**subs)
    if isinstance(value, dict):
        return {k: _fill(v, **subs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, **subs) for v in value]
    return value


def file_url(name: str) -> str:
    """A job file URL as PeerTube's runner-urls.ts builds them (``{base}``/``{uuid}`` filled by add_job)."""
    return "{base}/api/v1/runners/jobs/{uuid}/files/videos/42/" + name
