"""``mediarunner peertube serve``: one loop per registered PeerTube instance, one thread per job.

An instance loop listens on PeerTube's socket.io namespace ``/runners`` (auth: the runner token)
for ``available-jobs`` pings and otherwise polls every ``peertube_poll_seconds``. On a ping or a
poll it requests jobs, accepts the first supported one while the instance has a free slot
(``concurrency``) and hands it to a :class:`JobWork` thread, which downloads the inputs into the
staging directory, submits the mediarunner job family (with the instance's priority class),
watches it and reports:

* ``update`` with the family's progress every ``peertube_update_seconds`` from acceptance to the
  end, whatever mediarunner does inside (retries, failover to another worker), so PeerTube's
  stalled-job watchdog (2 min for VOD) never fires;
* ``success`` (multipart, the fields of ``jobs.success_body``) when the family completed;
* ``error`` with the mediarunner error when it failed for good;
* ``abort`` when the connector stops (SIGTERM): PeerTube offers the job again.

A job cancelled or deleted on PeerTube answers ``update`` with 404 / 400 "not in processing
state": its mediarunner family is cancelled. An unknown runner token (registration revoked,
runner deleted) stops that instance: one log line, one activity-log entry, state ``stopped``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import socketio

from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.connectors.peertube import jobs as kinds
from mediarunner.connectors.peertube import live
from mediarunner.connectors.peertube.protocol import PeerTubeError, RunnerAPI
from mediarunner.connectors.peertube.versions import ServerProfile, parse_version, runner_version
from mediarunner.errors import MediarunnerError, ValidationError
from mediarunner.models import peertube as records
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.peertube import Instance
from mediarunner.models.schemas import Job

log = logging.getLogger(__name__)


def _suffix(url: str) -> str:
    """The file extension of an input URL's path (``.png`` of a watermark), else ``.bin``."""
    suffix = PurePosixPath(urlsplit(url).path).suffix
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".bin"


def check_staging(settings: Settings) -> Path:
    """The staging directory, which workers must read (input root) and write (output root)."""
    staging = settings.peertube_staging_dir.resolve()
    for what, roots in (("INPUT_ROOTS", settings.input_roots), ("OUTPUT_ROOTS", settings.output_roots)):
        if not any(staging.is_relative_to(r.resolve()) for r in roots):
            raise ValidationError(f"PEERTUBE_STAGING_DIR {staging} must lie inside one of {what}")
    staging.mkdir(parents=True, exist_ok=True)
    return staging


@dataclass
class Connector:
    """Every active instance of the database, served until :meth:`shutdown`."""

    settings: Settings
    client: Client
    stop: threading.Event = field(default_factory=threading.Event)
    loops: dict[str, InstanceLoop] = field(default_factory=dict)

    def serve(self, *, rescan_seconds: float = 5.0) -> None:
        staging = check_staging(self.settings)
        while not self.stop.is_set():
            active = transaction(lambda s: records.list_instances(s, active_only=True), url=self.settings.database_url)
            for inst in active:
                if inst.name not in self.loops or not self.loops[inst.name].is_alive():
                    loop = InstanceLoop(inst, self.settings, self.client, staging, self.stop)
                    self.loops[inst.name] = loop
                    loop.start()
            self.stop.wait(rescan_seconds)
        for loop in self.loops.values():
            loop.join(timeout=60)

    def shutdown(self, reason: str = "mediarunner connector stopped") -> None:
        for loop in self.loops.values():
            loop.reason = reason
        self.stop.set()
        for loop in self.loops.values():
            loop.wake.set()  # not waiting out the poll period


class InstanceLoop(threading.Thread):
    def __init__(self, inst: Instance, settings: Settings, client: Client, staging: Path,
                 stop: threading.Event) -> None:
        super().__init__(name=f"peertube-{inst.name}", daemon=True)
        self.inst, self.settings, self.client, self.staging, self.global_stop = inst, settings, client, staging, stop
        self.api = RunnerAPI(inst.url, inst.runner_token)
        self.wake = threading.Event()
        self.halt = threading.Event()  # this instance only (revoked)
        self.reason = "mediarunner connector stopped"
        self.work: dict[str, JobWork] = {}
        self.sio: socketio.Client | None = None
        self.profile, self.profile_at = ServerProfile(None), -1e9  # the server's protocol, read every 10 min

    @property
    def stopping(self) -> bool:
        return self.global_stop.is_set() or self.halt.is_set()

    def run(self) -> None:
        log.info("PeerTube %s (%s): serving job types %s, concurrency %d", self.inst.name, self.inst.url,
                 ", ".join(self.inst.job_types), self.inst.concurrency)
        self._resume_orphans()
        self._connect_socket()
        while not self.stopping:
            self.wake.clear()
            try:
                self._take_jobs()
            except PeerTubeError as exc:
                if exc.unknown_runner:
                    self.revoked()
                    break
                log.warning("PeerTube %s: job request failed: %s", self.inst.name, exc)
            except Exception:  # the database, a bug: logged, and the loop goes on
                log.exception("PeerTube %s: cannot take jobs", self.inst.name)
            if self.global_stop.wait(0) or self.wake.wait(self.settings.peertube_poll_seconds):
                continue
        self._wind_down()

    def _connect_socket(self) -> None:
        sio = socketio.Client(reconnection=True, reconnection_delay=1, reconnection_delay_max=30)
        sio.on("available-jobs", lambda *_: self.wake.set(), namespace="/runners")
        sio.on("connect", lambda *_: self.wake.set(), namespace="/runners")
        try:
            sio.connect(self.inst.url, namespaces=["/runners"], auth={"runnerToken": self.inst.runner_token},
                        transports=["websocket"], socketio_path="socket.io", wait_timeout=10)
            self.sio = sio
        except Exception as exc:  # no socket: polling alone still works
            log.warning("PeerTube %s: no socket.io ping (%s); polling every %gs", self.inst.name,
                        type(exc).__name__, self.settings.peertube_poll_seconds)

    def _server_profile(self) -> ServerProfile:
        """The server's protocol (``versions.py``), from its ``serverVersion``, read again every 10 minutes
        (an upgraded server offers its new job types without a connector restart)."""
        if time.monotonic() - self.profile_at > 600:
            profile = ServerProfile(parse_version(self.api.server_version()))
            if profile.version is None and self.profile.version is not None:
                return self.profile  # no answer this time: the version known holds, asked again next time
            if profile != self.profile or self.profile_at < 0:
                log.info("PeerTube %s: server version %s; job types taken: %s", self.inst.name, profile.label,
                         ", ".join(profile.job_types(self.inst.job_types)) or "none")
            self.profile, self.profile_at = profile, time.monotonic()
        return self.profile

    def _request(self) -> list[dict[str, Any]]:
        """Offered jobs this instance takes: of its enabled types that this server version has, supported."""
        p = self._server_profile()
        types = p.job_types(self.inst.job_types)  # none left: still asked (the runner's contact, a revoked token)
        offered = self.api.request(types, send_types=p.filters_job_types and bool(types),
                                   version=runner_version() if p.takes_runner_version else None)
        return [j for j in offered if kinds.supported(j, types)]

    def _take_jobs(self) -> None:
        self.work = {k: w for k, w in self.work.items() if w.is_alive()}
        while len(self.work) < self.inst.concurrency and not self.stopping:
            offered = self._request()
            taken = False
            for job in offered:
                try:
                    accepted = self.api.accept(str(job["uuid"]))
                except PeerTubeError as exc:
                    if exc.unknown_runner:
                        raise
                    continue  # taken by another runner meanwhile (409) or gone
                self._start(accepted)
                taken = True
                break
            if not taken:
                return

    def _start(self, job: dict[str, Any]) -> None:
        uuid, kind = str(job["uuid"]), str(job["type"])
        try:
            transaction(lambda s: records.track_job(s, uuid=uuid, instance=self.inst.name, type=kind,
                                                    job_token=str(job["jobToken"]), now=utcnow()),
                        url=self.settings.database_url)
        except Exception:  # never keep a job PeerTube thinks we run without tracking it
            with contextlib.suppress(PeerTubeError):
                self.api.abort(uuid, str(job["jobToken"]), "mediarunner cannot record the job")
            raise
        w = JobWork(self, uuid, kind, dict(job.get("payload") or {}), str(job["jobToken"]))
        self.work[uuid] = w
        w.start()
        log.info("PeerTube %s: accepted job %s (%s)", self.inst.name, uuid, kind)

    def _resume_orphans(self) -> None:
        """Jobs a previous connector process accepted and never finished: PeerTube gets them back
        (``abort``) and their mediarunner families are cancelled."""
        for t in transaction(lambda s: records.active_jobs(s, self.inst.name), url=self.settings.database_url):
            if t.job_id:
                self._cancel(t.job_id)
            with contextlib.suppress(PeerTubeError):
                self.api.abort(t.uuid, t.job_token, "mediarunner connector restarted")
            transaction(functools.partial(records.set_job, uuid=t.uuid, state="aborted", now=utcnow()),
                        url=self.settings.database_url)

    def _cancel(self, job_id: str) -> None:
        try:
            self.client.cancel(job_id)
        except MediarunnerError as exc:
            log.warning("could not cancel job %s: %s", job_id, exc)

    def revoked(self) -> None:
        """The runner token is unknown to PeerTube: stop this instance (once)."""
        if self.halt.is_set():
            return
        self.halt.set()
        reason = "PeerTube does not know this runner's token (registration revoked or runner deleted)"
        log.error("PeerTube %s (%s): %s; stopping this instance (register it again to resume)",
                  self.inst.name, self.inst.url, reason)
        transaction(lambda s: records.stop_instance(s, self.inst.name, reason, utcnow()),
                    url=self.settings.database_url)

    def _wind_down(self) -> None:
        for w in list(self.work.values()):
            w.join(timeout=60)
        if self.sio is not None:
            with contextlib.suppress(Exception):  # already closed
                self.sio.disconnect()
        self.api.close()


class JobWork(threading.Thread):
    """One accepted PeerTube job: stage, submit, watch, report."""

    def __init__(self, loop: InstanceLoop, uuid: str, kind: str, payload: dict[str, Any], job_token: str) -> None:
        super().__init__(name=f"peertube-job-{uuid[:8]}", daemon=True)
        self.loop, self.uuid, self.kind, self.payload, self.job_token = loop, uuid, kind, payload, job_token
        self.dir = loop.staging / loop.inst.name / uuid
        self.job_id: str | None = None
        self.progress = 0
        self.gone: str | None = None  # why PeerTube no longer wants this job
        self.ended = threading.Event()

    @property
    def db(self) -> str:
        return self.loop.settings.database_url

    def run(self) -> None:
        if self.kind != live.LIVE:  # a live job's updates carry its chunks (live.LiveRelay)
            threading.Thread(target=self._heartbeat, name=f"{self.name}-updates", daemon=True).start()
        try:
            outcome, message = live.work(self) if self.kind == live.LIVE else self._work()
        except Exception as exc:  # a bug or an unexpected answer: PeerTube hears of it as an error
            log.exception("PeerTube job %s failed", self.uuid)
            outcome, message = "error", f"mediarunner connector error: {type(exc).__name__}: {exc}"
        finally:
            self.ended.set()
        self._report(outcome, message)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _work(self) -> tuple[str, str]:
        """(outcome, message): outcome ``success`` / ``error`` / ``abort`` / ``gone``."""
        (self.dir / "in").mkdir(parents=True, exist_ok=True)
        (self.dir / "out").mkdir(exist_ok=True)
        (self.dir / "work").mkdir(exist_ok=True)
        staged: dict[str, Path] = {}
        for name, url in kinds.input_urls(self.kind, self.payload).items():
            if self._interrupted():
                return self._interruption()
            try:
                staged[name] = self.loop.api.download(url, self.job_token, self.dir / "in" / f"{name}{_suffix(url)}")
            except PeerTubeError as exc:
                if exc.unknown_runner or (exc.job_gone and not self._still_ours()):
                    self._mark_gone(exc)
                    return self._interruption()
                return "error", f"cannot download the input: {exc}"  # e.g. its video was deleted
        meta = {"peertube": {"instance": self.loop.inst.name, "job": self.uuid, "type": self.kind}}
        try:
            job = kinds.submit(self.loop.client, self.kind, self.payload, staged, self.dir / "out",
                               priority_class=self.loop.inst.priority_class, meta=meta)
        except MediarunnerError as exc:
            return "error", f"mediarunner refused the job: {exc}"
        self.job_id = job.id
        transaction(lambda s: records.set_job(s, self.uuid, state="running", job_id=job.id), url=self.db)
        done = self._watch(job.id)
        if done is None:
            return self._interruption()
        if all(j.state is JobState.COMPLETED for j in done.family):
            return self._success(done)
        failed = next((j for j in done.family if j.state is not JobState.COMPLETED and j.error), done)
        return "error", f"mediarunner job {failed.id} {failed.state.value}: {failed.error or 'no error recorded'}"

    def _still_ours(self) -> bool:
        """Whether PeerTube still has this job processing by us (a 404 on a download may be the
        job's, or only its video's: deleted videos leave their runner jobs behind)."""
        try:
            self.loop.api.update(self.uuid, self.job_token, self.progress)
        except PeerTubeError:
            return False
        return True

    def _watch(self, job_id: str) -> Job | None:
        client = self.loop.client
        while True:
            if self._interrupted():
                return None
            job = client.get(job_id)
            family = job.family
            self.progress = int(sum(j.progress for j in family) / len(family))
            if job.done:
                return job
            time.sleep(0.5)

    def _success(self, job: Job) -> tuple[str, str]:
        s = self.loop.settings
        try:
            body = kinds.success_body(self.kind, self.payload, job, self.dir / "out", self.dir / "work",
                                      ffmpeg=s.ffmpeg_path, segment_seconds=s.hls_segment_seconds)
        except MediarunnerError as exc:
            return "error", f"cannot build the result: {exc}"
        refused = self.post_end(lambda: self.loop.api.success(self.uuid, self.job_token, body.fields, body.files),
                                "the result")
        return refused or ("success", f"posted {', '.join(sorted(body.files))} to PeerTube")

    def post_end(self, post: Callable[[], Any], what: str) -> tuple[str, str] | None:
        """Post the job's end (``success``) to PeerTube: None when it was taken, else what to report
        (``gone``: the job or this runner is no longer known there)."""
        try:
            post()
        except PeerTubeError as exc:
            if exc.job_gone or exc.unknown_runner:
                self._mark_gone(exc)
                return "gone", self.gone or str(exc)
            return "error", f"PeerTube refused {what}: {exc}"
        return None

    def _interrupted(self) -> bool:
        return self.gone is not None or self.loop.stopping

    def _interruption(self) -> tuple[str, str]:
        if self.gone is not None:
            return "gone", self.gone
        return "abort", self.loop.reason

    def _mark_gone(self, exc: PeerTubeError) -> None:
        if exc.unknown_runner:
            self.loop.revoked()
        if self.gone is None:
            self.gone = f"no longer processing on PeerTube ({exc})"

    def _heartbeat(self) -> None:
        every, wait = self.loop.settings.peertube_update_seconds, 0.0  # the first at once
        while not self.ended.wait(wait):
            wait = every
            try:
                self.loop.api.update(self.uuid, self.job_token, self.progress)
            except PeerTubeError as exc:
                if exc.job_gone or exc.unknown_runner:
                    self._mark_gone(exc)
                    return
                log.warning("PeerTube job %s: update failed: %s", self.uuid, exc)

    def _report(self, outcome: str, message: str) -> None:
        api, name = self.loop.api, self.loop.inst.name
        if outcome in ("gone", "abort") and self.job_id:
            self.loop._cancel(self.job_id)
        call: Callable[[], None] | None = {
            "error": lambda: api.error(self.uuid, self.job_token, message),
            "abort": lambda: api.abort(self.uuid, self.job_token, message),
        }.get(outcome)
        if call is not None and not (self.gone or self.loop.halt.is_set()):
            try:
                call()
            except PeerTubeError as exc:
                log.warning("PeerTube job %s: %s failed: %s", self.uuid, outcome, exc)
        state = {"success": "done", "error": "failed", "abort": "aborted", "gone": "gone"}[outcome]
        level = logging.INFO if outcome == "success" else logging.WARNING
        log.log(level, "PeerTube %s: job %s (%s) %s: %s", name, self.uuid, self.kind, state, message)

        def write(s: Any) -> None:
            records.set_job(s, self.uuid, state=state, message=message, now=utcnow())
            records.log(s, f"peertube_job_{state}", f"PeerTube {name} job {self.uuid} ({self.kind}): {message}",
                        utcnow(), job_id=self.job_id)
        transaction(write, url=self.db)
