"""The remote runner's :class:`~mediarunner.tasks.lease.Lease`: the job's record and files through
the HTTP API, with its job token. Handlers run unchanged on top of it."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from mediarunner.config import Settings
from mediarunner.errors import MediarunnerError, StaleAttemptError, TransientError
from mediarunner.models.enums import JobState, Stage
from mediarunner.models.locations import Direction, parse_location
from mediarunner.models.schemas import Job
from mediarunner.runner.api import JOB_TOKEN, CutOff, RunnerApi, check, retry_after
from mediarunner.storage.layout import DEFAULT_LAST, Published, safe_name, tree_files
from mediarunner.storage.transfer import Report

TRIES = 5  # per transfer, resuming where the last try stopped


class HttpLease:
    finalize_in_completion = False  # runner.serve._finish: after the server recorded the completion

    def __init__(self, api: RunnerApi, job_id: str, job_token: str, chunk_bytes: int) -> None:
        self.api, self.job_id, self.job_token, self.chunk_bytes = api, job_id, job_token, chunk_bytes
        self.cut_off: str | None = None
        #: set once the server recorded the completion: the attempt's finishing writes (a master
        #: playlist, removing joined parts) are still fenced by the server on the job token
        self.completed = False

    def call(self, method: str, action: str, **kw: Any) -> Any:
        return self.api.job(method, self.job_id, action, self.job_token, **kw)

    def touch(self, job: Job, *, progress: float, stage: Stage | None, result: dict[str, Any] | None) -> bool:
        body = {"progress": progress, "stage": stage.value if stage else None, "result": result}
        try:
            self.call("POST", "update", json=body)
            return True
        except StaleAttemptError:
            return False
        except CutOff as exc:
            self.cut_off = str(exc)
            return False

    def state(self, job: Job, *, retry_for: float = 60.0) -> tuple[JobState, int] | None:
        try:
            got = self.call("GET", "state")
        except (StaleAttemptError, CutOff):
            return None
        state = JobState(got["state"])
        if self.completed and state is JobState.COMPLETED:
            state = JobState.RUNNING  # this attempt's own finishing writes (see `completed`)
        return state, int(got["attempt"])

    def idle_slots(self, queue: str, settings: Settings) -> int | None:
        """Asked of the server (None when it cannot answer, an older server included: the planner
        then keeps one job per rung)."""
        try:
            return int(self.call("GET", "idle-slots", params={"queue": queue})["idle"])
        except (MediarunnerError, KeyError, TypeError, ValueError):
            return None

    def prune_children(self, job: Job, keep: set[str]) -> list[str]:
        return list(self.call("POST", "prune", json={"keep": sorted(keep)})["dropped"])

    def record_part_encoded(self, job: Job, *, retry_for: float = 60.0,
                            result: dict[str, Any] | None = None) -> Job | None:
        try:
            return Job.model_validate(self.call("POST", "part-encoded", json={"result": result})["family"])
        except StaleAttemptError:
            return None

    def open_store(self, location: str, settings: Settings, direction: Direction, report: Report | None) -> ApiStore:
        return ApiStore(self, location, direction, report)


class ApiStore:
    """A :class:`~mediarunner.storage.store.Store` whose bytes go through the API: the server
    opens the real store (local roots, S3, SFTP, FTP) with its own credentials."""

    def __init__(self, lease: HttpLease, location: str, direction: Direction, report: Report | None) -> None:
        self.lease, self.url, self.report = lease, location, report
        self.location = parse_location(location, direction)
        self.local_path: Path | None = None

    def _download(self, action: str, params: dict[str, str], dst: Path) -> Path:
        """Through the API, or from the short-lived presigned URL it redirects to (an S3 input:
        the bytes do not flow through the API); resumed with a range after a dropped connection
        (a fresh URL each try: an expired one is not fatal)."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        http = self.lease.api.http
        for attempt in range(TRIES):
            have = dst.stat().st_size if dst.exists() else 0
            ranged = {"Range": f"bytes={have}-"} if have else {}
            try:
                with http.stream("GET", f"/v1/runner/jobs/{self.lease.job_id}/{action}", params=params,
                                 headers={JOB_TOKEN: self.lease.job_token, **ranged}) as r:
                    if r.has_redirect_location:
                        url = r.headers["location"]
                    else:
                        self._receive(r, dst, have, api=True)
                        return dst
                # A fresh request with none of our headers: the runner and job tokens stay with the API.
                with httpx.stream("GET", url, headers=ranged, timeout=http.timeout) as r:
                    self._receive(r, dst, have, api=False)
                return dst
            except (httpx.TransportError, TransientError):
                if attempt == TRIES - 1:
                    raise
        return dst

    def _receive(self, r: httpx.Response, dst: Path, have: int, *, api: bool) -> None:
        if r.status_code == 416:  # nothing left to send
            return
        if r.status_code >= 300:
            r.read()
            if r.status_code == 429 and api:  # the rate limit of this runner token: wait, then go on
                time.sleep(retry_after(r))
            if not api:  # the presigned URL expired or the object store hiccuped: ask the API again
                raise TransientError(f"presigned download: HTTP {r.status_code}")
            check(r)
        total = have + int(r.headers.get("content-length", 0))
        with dst.open("ab" if r.status_code == 206 else "wb") as f:
            for block in r.iter_bytes(1 << 20):
                f.write(block)
                if self.report:
                    self.report(f.tell(), total)

    def stage_in(self, scratch: Path, rel: str = "") -> Path:
        name = safe_name(Path(self.location.path).name or "input")
        return self._download("input", {"location": self.url}, scratch / name)

    def fetch(self, rel: str, scratch: Path) -> Path:
        return self._download("output", {"location": self.url, "rel": rel}, scratch / safe_name(rel))

    def list_files(self, rel: str = "") -> list[str]:
        return list(self.lease.call("GET", "list", params={"location": self.url, "rel": rel})["files"])

    def remove(self, rel: str = "") -> None:
        self.lease.call("POST", "remove", json={"location": self.url, "rel": rel})

    def free_space(self) -> int | None:
        return None

    def publish(self, local: Path, rel: str = "", *, last: Sequence[str] = DEFAULT_LAST) -> list[Published]:
        local = Path(local)
        files = {local.name: local} if local.is_file() else {p: local / p for p in tree_files(local)}
        upload_id = uuid.uuid4().hex
        total, done = sum(p.stat().st_size for p in files.values()), 0
        digests = {}
        for path, src in files.items():
            digests[path] = self._upload(upload_id, path, src, done, total)
            done += src.stat().st_size
        got = self.lease.call("POST", "publish", json={
            "location": self.url, "rel": rel, "upload_id": upload_id, "file": local.name if local.is_file() else None,
            "sha256": digests, "last": list(last)})
        return [Published(files.get(p["path"], local), p["location"]) for p in got["published"]]

    def _upload(self, upload_id: str, path: str, src: Path, done: int, total: int) -> str:
        """Send ``src`` in chunks; after a dropped connection, ask how much arrived and go on from there."""
        where = f"uploads/{upload_id}/{path}"
        size, offset, failures = src.stat().st_size, 0, 0
        h = hashlib.sha256()
        with src.open("rb") as f:
            while True:
                f.seek(offset)
                chunk = f.read(self.lease.chunk_bytes)
                try:
                    offset = self.lease.call("PUT", where, params={"offset": offset}, content=chunk)["size"]
                except (TransientError, StaleAttemptError, httpx.TransportError):
                    failures += 1
                    if failures >= TRIES * 4:
                        raise
                    offset = self.lease.call("GET", where)["size"]  # 409 here: the token is stale
                    continue
                if self.report:
                    self.report(done + offset, total)
                if offset >= size:
                    break
        with src.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
