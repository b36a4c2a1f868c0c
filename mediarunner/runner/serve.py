"""``mediarunner runner serve``: N slots, each asking the API for a job (long poll), accepting
it, running its handler with an :class:`~mediarunner.runner.lease.HttpLease` and ending the
attempt (success, error or abort). Stops when told (running jobs are aborted: back to pending,
no failure spent) or when the server cuts the runner off (401: it says why)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediarunner.config import Settings
from mediarunner.config.redact import mask_secrets
from mediarunner.errors import JobCancelled, StaleAttemptError, TransientError
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.retry import classify
from mediarunner.models.schemas import Job
from mediarunner.runner.api import CutOff, RunnerApi
from mediarunner.runner.config import Registration
from mediarunner.runner.lease import HttpLease
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.handlers import HANDLERS
from mediarunner.tasks.probes import machine_capabilities
from mediarunner.tasks.runtime import Outcome

log = logging.getLogger(__name__)
#: what a remote runner can run (a live job listens on this machine's sockets: Celery workers only)
REMOTE_TYPES = tuple(t for t in JobType if t is not JobType.LIVE)


@dataclass
class Runner:
    reg: Registration
    settings: Settings
    concurrency: int = 1
    job_types: tuple[JobType, ...] = REMOTE_TYPES
    poll_seconds: float = 20.0
    stop: threading.Event = field(default_factory=threading.Event)
    cut_off: str | None = None  # why the server refused this runner
    running: dict[str, HttpLease] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    capabilities: dict[str, Any] | None = None  # probed when serving starts (encoders, GPUs, Whisper models)

    def serve(self) -> str | None:
        """Run until stopped or cut off; returns why it was cut off (None: stopped)."""
        api = RunnerApi(self.reg.url, self.reg.runner_token)
        try:
            chunk = int(api.me()["max_chunk_bytes"])
        except CutOff as exc:
            return str(exc)
        finally:
            api.close()
        if self.capabilities is None:
            self.capabilities = machine_capabilities(self.settings)
        slots = [threading.Thread(target=self._slot, args=(chunk,), name=f"slot-{i}", daemon=True)
                 for i in range(self.concurrency)]
        for t in slots:
            t.start()
        log.info("runner %s serving %s (concurrency %d)", self.reg.name, self.reg.url, self.concurrency)
        while not self.stop.wait(0.5):
            pass
        # Idle slots may sit in a long poll: not waited for. Running jobs were given back (or the
        # server cut them off): their handlers stop at their next heartbeat.
        deadline = time.monotonic() + self.settings.heartbeat_seconds + 30
        while self.running and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.cut_off

    def shutdown(self, reason: str = "runner shutting down") -> None:
        """Stop taking jobs and give the running ones back (pending again, no failure spent)."""
        self.stop.set()
        with self.lock:
            leases = list(self.running.values())
        for lease in leases:
            try:
                lease.call("POST", "abort", json={"reason": reason})
            except Exception as exc:  # stale or unreachable: beat's failover takes it
                log.warning("could not abort job %s: %s", lease.job_id, exc)

    def _slot(self, chunk: int) -> None:
        api = RunnerApi(self.reg.url, self.reg.runner_token)
        advertised = False  # what this runner can run, and how many at once: with its first request
        try:
            while not self.stop.is_set():
                try:
                    offers = api.request_jobs([t.value for t in self.job_types], self.poll_seconds,
                                              capabilities=None if advertised else self.capabilities,
                                              concurrency=None if advertised else self.concurrency)
                    advertised = True
                    for offer in offers:
                        if self.stop.is_set() or self._take(api, offer, chunk):
                            break
                except CutOff as exc:
                    self._cut(str(exc))
                except TransientError as exc:
                    log.warning("job request failed (%s); trying again", exc)
                    self.stop.wait(1.0)
                except Exception:  # a refused or odd answer: this slot keeps serving
                    log.exception("unexpected error taking a job; trying again")
                    self.stop.wait(1.0)
        finally:
            api.close()

    def _cut(self, reason: str) -> None:
        if self.cut_off is None:
            self.cut_off = reason
            log.error("the server cut this runner off: %s", reason)
        self.stop.set()

    def _take(self, api: RunnerApi, offer: dict[str, Any], chunk: int) -> bool:
        try:
            accepted = api.accept(offer["id"], int(offer["attempt"]))
        except StaleAttemptError:  # another runner (or a Celery worker) took it first
            return False
        lease = HttpLease(api, offer["id"], accepted["job_token"], chunk)
        with self.lock:
            self.running[lease.job_id] = lease
        try:
            status = run_job(lease, accepted, self.settings, self.reg.name)
            log.info("job %s: %s", lease.job_id, status)
        finally:
            with self.lock:
                self.running.pop(lease.job_id, None)
        if lease.cut_off:
            self._cut(lease.cut_off)
        return True


def run_job(lease: HttpLease, accepted: dict[str, Any], settings: Settings, worker: str) -> str:
    """One accepted attempt, start to end, through the shared handlers. Returns how it ended."""
    job = Job.model_validate(accepted["job"])
    parent = Job.model_validate(accepted["parent"]) if accepted.get("parent") else None
    scratch = Path(settings.scratch_dir) / f"remote-{job.id}-{job.attempt}"
    ctx = JobContext(job=job, parent=parent, settings=settings, worker=worker, scratch_path=scratch, lease=lease)
    try:
        with ctx.heartbeating():
            outcome = HANDLERS[job.type](ctx)
        family = lease.call("POST", "success", json={"result": outcome.result,
                                                     "stage": ctx.stage.value if ctx.stage else None})["family"]
        lease.completed = True
        ctx.log("completed")
        _finish(ctx, lease, outcome, Job.model_validate(family))
        return "completed"
    except (JobCancelled, StaleAttemptError):
        return "dropped"
    except CutOff as exc:
        lease.cut_off = str(exc)
        return "dropped"
    except Exception as exc:
        return _failed(ctx, lease, exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _finish(ctx: JobContext, lease: HttpLease, outcome: Outcome, root: Job) -> None:
    """After the completion is recorded: the family step (e.g. rewriting the HLS master) until the
    family it was written from is still the family (a rendition completing meanwhile on another
    runner is not lost: whoever writes last, read last), then the cleanup."""
    try:
        for _ in range(20):
            if outcome.finalize is None:
                break
            outcome.finalize(root)
            again = Job.model_validate(lease.call("GET", "family")["family"])
            if _completed(again) == _completed(root):
                break
            root = again
        if outcome.cleanup is not None:
            outcome.cleanup()
    except Exception as exc:  # the work is done and recorded; beat sweeps what is left
        log.warning("job %s: finishing after completion failed (%s: %s)", ctx.job.id, type(exc).__name__, exc)


def _completed(root: Job) -> set[str]:
    return {j.id for j in root.family if j.state is JobState.COMPLETED}


def _failed(ctx: JobContext, lease: HttpLease, exc: BaseException) -> str:
    message = mask_secrets(f"{type(exc).__name__}: {exc}", ctx.job.payload)
    ctx.log(f"error: {message}")
    try:
        got = lease.call("POST", "error", json={"message": message[:4000], "kind": classify(exc).value,
                                                "log_tail": ctx.log_tail[-20_000:]})
    except StaleAttemptError:
        return "dropped"
    except CutOff as cut:
        lease.cut_off = str(cut)
        return "dropped"
    return str(got["outcome"])
