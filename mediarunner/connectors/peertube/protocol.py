"""PeerTube's remote-runner HTTP protocol (``/api/v1/runners``), as its server (6.3 to 8.x) and its
own ``peertube-runner`` speak it:

* ``POST /register`` ``{registrationToken, name, description}`` -> ``{id, runnerToken}``;
  ``POST /unregister`` ``{runnerToken}``;
* ``POST /jobs/request`` ``{runnerToken, jobTypes?, version?}`` -> ``{availableJobs: [{uuid, type, payload}]}``
  (the fields each server version takes: ``versions.py``; the list is filtered here too);
* ``GET /api/v1/config`` -> ``{serverVersion, ...}``: which protocol the server speaks;
* ``POST /jobs/<uuid>/accept`` ``{runnerToken}`` -> ``{job: {..., jobToken}}``;
* ``POST /jobs/<uuid>/abort|error`` (JSON) and multipart ``/update`` and ``/success`` with
  ``runnerToken`` and ``jobToken``; a job no longer this runner's answers 404 "Unknown runner job"
  (cancelled, deleted, aborted by the watchdog: the job token is gone) or 400
  ``runner_job_not_in_processing_state`` (a state change in between);
* input files: ``POST <file url>`` with the JSON body ``{runnerToken, jobToken}``.

Tokens travel in request bodies only; no message or exception here ever contains one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

#: PeerTube's tokens (registration ``ptrrt-``, runner ``ptrt-``, job ``ptrjt-``): masked in every log record
TOKEN = re.compile(r"\bptr(?:r|j)?t-[A-Za-z0-9-]+")
UNKNOWN_RUNNER_TOKEN = "unknown_runner_token"
NOT_PROCESSING = "runner_job_not_in_processing_state"
NOT_PENDING = "runner_job_not_in_pending_state"
MIME = {".mp4": "video/mp4", ".m3u8": "application/vnd.apple.mpegurl", ".vtt": "text/vtt", ".jpg": "image/jpeg",
        ".webp": "image/webp"}


class TokenFilter(logging.Filter):
    """Masks PeerTube tokens in a log record's message and traceback (a database error quoting a
    row, an HTTP library's debug line...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem
            return True
        record.msg, record.args = TOKEN.sub("***", message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = TOKEN.sub("***", record.exc_text)
        return True


class PeerTubeError(Exception):
    """A PeerTube answer other than success: ``status`` (0: no answer), ``code`` (PeerTube's
    ``ServerErrorCode`` when given) and its message (PeerTube's, never a token)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"PeerTube answered {status}: {message}" if status else message)
        self.status, self.code, self.detail = status, code, message

    @property
    def unknown_runner(self) -> bool:
        return self.code == UNKNOWN_RUNNER_TOKEN

    @property
    def job_gone(self) -> bool:
        """The job is no longer this runner's to process (cancelled, deleted, errored, aborted; or, on
        newer servers, a success answered 409: the job left PROCESSING meanwhile)."""
        return self.status in (404, 409) or (self.status == 400 and self.code == NOT_PROCESSING)


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    code, message = None, resp.reason_phrase or "error"
    try:
        body = resp.json()
        if isinstance(body, Mapping):
            code = body.get("code") if isinstance(body.get("code"), str) else None
            message = str(body.get("detail") or body.get("error") or body.get("title") or message)[:500]
    except (ValueError, json.JSONDecodeError):
        pass
    raise PeerTubeError(resp.status_code, message, code)


class RunnerAPI:
    """One PeerTube instance, as a registered runner (``runner_token``; empty to register)."""

    def __init__(self, url: str, runner_token: str = "", *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._token = runner_token
        self._http = httpx.Client(base_url=self.url + "/api/v1/runners", timeout=timeout, transport=transport,
                                  follow_redirects=False)

    def __repr__(self) -> str:
        return f"RunnerAPI({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Mapping[str, Any] | None = None, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.post(path, json=body, **kw) if body is not None else self._http.post(path, **kw)
        except httpx.HTTPError as exc:
            raise PeerTubeError(0, f"cannot reach {self.url}: {type(exc).__name__}") from None
        _raise_for(resp)
        return resp

    # ---------------------------------------------------------------- registration

    def register(self, registration_token: str, name: str, description: str | None = None,
                 version: str | None = None) -> tuple[int | None, str]:
        body: dict[str, Any] = {"registrationToken": registration_token, "name": name}
        if description:
            body["description"] = description
        if version:
            body["version"] = version  # newer servers show it; older ones ignore unknown fields
        data = self._post("/register", body).json()
        token = data.get("runnerToken")
        if not isinstance(token, str) or not token:
            raise PeerTubeError(200, "the register answer holds no runner token")
        rid = data.get("id")
        self._token = token
        return (rid if isinstance(rid, int) else None), token

    def unregister(self) -> None:
        self._post("/unregister", {"runnerToken": self._token})

    # ---------------------------------------------------------------- jobs

    def server_version(self) -> str | None:
        """``serverVersion`` of the public ``GET /api/v1/config`` (None: no answer or none given)."""
        try:
            resp = self._http.get(self.url + "/api/v1/config")
            data = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        version = data.get("serverVersion") if isinstance(data, Mapping) else None
        return version[:50] if isinstance(version, str) else None

    def request(self, job_types: Sequence[str], *, send_types: bool = True,
                version: str | None = None) -> list[dict[str, Any]]:
        """Pending jobs of ``job_types`` (the only ones returned, whatever the server offers).
        ``send_types``: send ``jobTypes`` (7.0+); ``version``: the runner's (8.0+)."""
        body: dict[str, Any] = {"runnerToken": self._token}
        if send_types:
            body["jobTypes"] = list(job_types)
        if version:
            body["version"] = version
        data = self._post("/jobs/request", body).json()
        jobs = data.get("availableJobs") if isinstance(data, Mapping) else None
        return [dict(j) for j in jobs or [] if isinstance(j, Mapping) and j.get("type") in job_types and j.get("uuid")]

    def accept(self, uuid: str) -> dict[str, Any]:
        job = self._post(f"/jobs/{uuid}/accept", {"runnerToken": self._token}).json().get("job")
        if not isinstance(job, Mapping) or not isinstance(job.get("jobToken"), str):
            raise PeerTubeError(200, "the accept answer holds no job token")
        return dict(job)

    def _job_body(self, job_token: str, **extra: Any) -> dict[str, Any]:
        return {"runnerToken": self._token, "jobToken": job_token, **extra}

    def update(self, uuid: str, job_token: str, progress: int | None = None) -> None:
        fields = self._job_body(job_token)
        if progress is not None:
            fields["progress"] = str(max(0, min(100, int(progress))))
        # Multipart, as peertube-runner sends it: 6.3's update validator reads the files multer
        # parses, and answers a JSON update of some job types (transcription) with a 500.
        self._post(f"/jobs/{uuid}/update", files={k: (None, v) for k, v in fields.items()})

    def error(self, uuid: str, job_token: str, message: str) -> None:
        self._post(f"/jobs/{uuid}/error", self._job_body(job_token, message=(message or "error")[:5000]))

    def abort(self, uuid: str, job_token: str, reason: str) -> None:
        self._post(f"/jobs/{uuid}/abort", self._job_body(job_token, reason=(reason or "aborted")[:5000]))

    def success(self, uuid: str, job_token: str, fields: Mapping[str, str], files: Mapping[str, Path]) -> None:
        """Multipart: ``runnerToken``, ``jobToken``, ``payload[<field>]`` text fields and
        ``payload[<file field>]`` files, each with the MIME type PeerTube's upload filter knows."""
        data = self._job_body(job_token, **{f"payload[{k}]": v for k, v in fields.items()})
        handles = {f"payload[{k}]": p.open("rb") for k, p in files.items()}
        try:
            self._post(f"/jobs/{uuid}/success", data=data,
                       files={k: (files[k[8:-1]].name, fh, MIME.get(files[k[8:-1]].suffix, "application/octet-stream"))
                              for k, fh in handles.items()})
        finally:
            for fh in handles.values():
                fh.close()

    def update_live(self, uuid: str, job_token: str, fields: Mapping[str, str],
                    files: Mapping[str, tuple[str, bytes, str]]) -> None:
        """A live job's update (multipart, as peertube-runner's ``runnerJobs.update``): ``payload[<field>]``
        text fields (``type``, ``videoChunkFilename``, ``resolutionPlaylistFilename``) and files
        ``payload[<file field>]`` given as (filename, bytes, MIME type)."""
        parts: dict[str, Any] = {k: (None, v) for k, v in self._job_body(job_token).items()}
        parts |= {f"payload[{k}]": (None, v) for k, v in fields.items()}
        parts |= {f"payload[{k}]": f for k, f in files.items()}
        self._post(f"/jobs/{uuid}/update", files=parts)

    def success_live(self, uuid: str, job_token: str) -> None:
        """A live job's success: the tokens only (PeerTube requires an empty payload), multipart."""
        self._post(f"/jobs/{uuid}/success", files={k: (None, v) for k, v in self._job_body(job_token).items()})

    def download(self, url: str, job_token: str, dest: Path, *, chunk: int = 1 << 20) -> Path:
        """Fetch an input file of the job (``POST`` with the tokens) into ``dest``. Only URLs of
        this instance are followed: the tokens are never sent anywhere else."""
        if not url.startswith(self.url + "/"):
            raise PeerTubeError(0, "the job names an input file outside its PeerTube instance")
        try:
            with self._http.stream("POST", url, json=self._job_body(job_token)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for(resp)
                with dest.open("wb") as out:
                    for block in resp.iter_bytes(chunk):
                        out.write(block)
        except httpx.HTTPError as exc:
            raise PeerTubeError(0, f"download from {self.url} failed: {type(exc).__name__}") from None
        return dest
