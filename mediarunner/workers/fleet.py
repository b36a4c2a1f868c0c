"""The worker's side of the fleet: token check, registration, heartbeats, self-steering.

Wired into every worker by :func:`install` (called from ``mediarunner.workers.app``):

* ``worker_init`` (before any broker connection): check ``MEDIARUNNER_WORKER_TOKEN``. A missing
  token (when ``MEDIARUNNER_REQUIRE_WORKER_TOKEN`` is true), an unknown or a revoked one stops
  the process with exit code 78 and a message saying what to fix. Nothing is consumed.
* a consumer bootstep, after the task consumer exists and before the event loop runs: register
  the runner (retried with backoff while the database is down, for up to
  ``worker_register_timeout_seconds``; then the worker exits with code 75 and says why: it never
  consumes unregistered), and if the operator left it in maintenance/disabled, cancel its queues
  before a single message is fetched; then start the heartbeat thread.
* every worker process has an instance id (a uuid made at start), stored on its runner row and
  on every job it claims: a worker starting fails over only the jobs of *other*, silent
  processes under its name, and a warm shutdown only its own; never a live namesake's.
* the heartbeat thread (not a task: a task could queue behind a long job) publishes diagnostics
  every ``runner_heartbeat_seconds`` and applies the answer: stop consuming when the runner is in
  maintenance, disabled or unregistered; consume again when enabled. It steers through Celery
  remote control addressed to itself, so the consumer changes on the worker's own event loop.
* ``worker_shutting_down`` (SIGTERM, Ctrl-C): release its running jobs at once, without counting a
  failure (``mediarunner.workers.shutdown``); ``worker_shutdown`` (after the pool drained): release
  jobs a cold shutdown killed, mark the runner offline.
* logging: every handler gets a filter that masks this process's secrets.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from celery import Celery, bootsteps
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_shutdown
from celery.worker.control import inspect_command

from mediarunner import __version__
from mediarunner.config import Settings, get_settings
from mediarunner.config.redact import install_log_redaction, secret_values
from mediarunner.models import runners, tokens
from mediarunner.models.base import utcnow
from mediarunner.models.capabilities import Skills
from mediarunner.models.db import transaction
from mediarunner.models.runners import Directive, RunnerInfo
from mediarunner.scheduler.fleet import fail_over_runner
from mediarunner.tasks import runtime
from mediarunner.workers.diagnostics import capabilities, diagnostics

log = logging.getLogger(__name__)
EX_CONFIG = 78  # sysexits.h: configuration error (a supervisor should not restart in a loop)
EX_TEMPFAIL = 75  # sysexits.h: temporary failure (the database stayed unreachable at start)


class RegistrationRefused(Exception):
    pass


def check_token(settings: Settings) -> str | None:
    """The id of the presented token; None when none is presented and none is required."""
    secret = settings.worker_token.get_secret_value().strip() if settings.worker_token else ""
    if not secret:
        if settings.require_worker_token:
            raise RegistrationRefused(
                "no registration token. Set MEDIARUNNER_WORKER_TOKEN to a token made with "
                "`mediarunner tokens create` (required because MEDIARUNNER_REQUIRE_WORKER_TOKEN is true).")
        return None
    try:
        token_id = transaction(lambda s: tokens.verify_token(s, secret, utcnow()), retry_for=10)
    except Exception as exc:
        raise RegistrationRefused(f"cannot check the registration token: database unavailable "
                                  f"({type(exc).__name__})") from None
    if token_id is None:
        raise RegistrationRefused(
            "the registration token in MEDIARUNNER_WORKER_TOKEN is invalid or revoked. Create a new one "
            "with `mediarunner tokens create` and restart the worker.")
    return token_id


class FleetAgent:
    """One per worker process: registration state and the heartbeat thread."""

    def __init__(self, hostname: str, settings: Settings, token_id: str | None) -> None:
        self.hostname = hostname
        self.settings = settings
        self.token_id = token_id
        self.instance = uuid.uuid4().hex
        self.consumer: Any = None
        self.app: Celery | None = None
        self.queues: tuple[str, ...] = ()
        self.registered = False
        self.unregistered = False
        self.generation = -1  # the status generation last acted on
        self.capabilities_sent = False
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ on the consumer's thread

    def attach(self, consumer: Any) -> None:
        """Consumer (re)started. First time: register, apply the operator's wishes, start beating."""
        self.consumer, self.app = consumer, consumer.app
        if self._thread is not None:
            return
        self.queues = tuple(sorted(consumer.app.amqp.queues.consume_from))
        directive = self._register(retry_for=self.settings.worker_register_timeout_seconds)
        if directive is None:  # never consume unregistered: our jobs could not be told from orphans
            print(f"mediarunner: worker {self.hostname} could not register: the database stayed unreachable for "
                  f"{self.settings.worker_register_timeout_seconds:g}s (MEDIARUNNER_WORKER_REGISTER_TIMEOUT_SECONDS); "
                  "check MEDIARUNNER_DATABASE_URL and start it again", file=sys.stderr, flush=True)
            raise SystemExit(EX_TEMPFAIL)
        if directive is not None:
            self.generation = directive.generation
            if not directive.consume:  # before the event loop: not one message gets fetched
                for q in self.queues:
                    consumer.cancel_task_queue(q)
                log.warning("runner %s is %s: not consuming %s", self.hostname,
                            "unregistered" if directive.unregistered else directive.status, ",".join(self.queues))
            if directive.desired_concurrency and directive.desired_concurrency != self.pool_size():
                self._resize_now(directive.desired_concurrency)
        self._thread = threading.Thread(target=self._loop, name="mediarunner-heartbeat", daemon=True)
        self._thread.start()

    def _resize_now(self, target: int) -> None:
        c = self.consumer
        diff = target - self.pool_size()
        if diff == 0 or c.controller.autoscaler:
            return
        if not hasattr(c.pool, "grow"):  # the solo pool (mediarunner beat) is one process, not resizable
            log.warning("runner %s: its pool cannot be resized; keeping %s", self.hostname, self.pool_size())
            return
        if diff > 0:
            c.pool.grow(diff)
        else:
            c.pool.shrink(-diff)
        c._update_prefetch_count(diff)
        log.info("runner %s: pool resized to %s (operator setting)", self.hostname, target)

    # ------------------------------------------------------------------ heartbeat thread

    def _register(self, retry_for: float = 5.0) -> Directive | None:
        # Capabilities (ffmpeg probes, model scans: ~0.5 s) come with the first heartbeat, off the
        # start-up path (registration only tells the worker whether it may consume), and a worker
        # crash-looping faster than one heartbeat does not spend them at all.
        info = RunnerInfo(hostname=self.hostname, queues=self.queues, concurrency=self.pool_size(),
                          version=__version__, instance=self.instance)
        try:
            directive = transaction(lambda s: self._register_tx(s, info), retry_for=retry_for)
        except Exception as exc:
            log.error("runner %s could not register (%s); retrying with the next heartbeat", self.hostname,
                      type(exc).__name__)
            return None
        self.registered, self.unregistered = True, directive.unregistered
        self.capabilities_sent = False
        return directive

    def _register_tx(self, session: Any, info: RunnerInfo) -> Directive:
        if self.token_id is not None and not tokens.is_valid(session, self.token_id):
            return Directive(runners.R.DISABLED, None, unregistered=True)  # revoked while starting
        # Jobs of another process under this name whose heartbeats stopped were orphaned by a
        # previous incarnation (killed, then restarted before beat noticed). Never our own jobs
        # (registering again after the database came back), never a live namesake's (it beats).
        now = utcnow()
        quiet = max(3 * self.settings.heartbeat_seconds, 5.0)
        fail_over_runner(session, self.hostname, now, "worker restarted", max_aborts=self.settings.max_aborts,
                         other_than=self.instance,
                         silent_since=now - timedelta(seconds=min(quiet, self.settings.failover_after_seconds)))
        return runners.register(session, info, self.token_id, utcnow())

    def _loop(self) -> None:
        interval = max(0.2, self.settings.runner_heartbeat_seconds)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # never let the thread die: the next beat may succeed
                log.exception("runner %s: heartbeat failed", self.hostname)

    def beat(self) -> Directive | None:
        if self.unregistered:
            self._reconcile(Directive(runners.R.DISABLED, None, unregistered=True))
            return None
        if not self.registered:
            directive = self._register()
        else:
            caps = None if self.capabilities_sent else capabilities(self.settings)
            diag = diagnostics(self.settings)
            diag["active_jobs"] = _active_jobs()
            diag["uptime_seconds"] = round(time.monotonic() - self.started, 1)
            directive = transaction(lambda s: runners.heartbeat(s, self.hostname, diag, self.pool_size(), utcnow(),
                                                                capabilities=caps), retry_for=1)
            self.capabilities_sent = directive is not None
            if directive is None:  # the row was deleted: register again
                self.registered = False
                directive = self._register()
        if directive is not None:
            self._reconcile(directive)
        return directive

    def _reconcile(self, directive: Directive) -> None:
        if directive.unregistered:
            if not self.unregistered:
                self.unregistered = True
                log.error("runner %s was unregistered (`mediarunner runners unregister`, or its registration token "
                          "was revoked): it takes no more jobs until it is started again (with a valid "
                          "MEDIARUNNER_WORKER_TOKEN when tokens are required).", self.hostname)
            for q in self.consuming():
                self._control("cancel_consumer", queue=q)
            return
        if directive.generation == self.generation:
            return  # already acted on (remote control from the CLI usually got there first)
        self.generation = directive.generation
        consuming = self.consuming()
        if directive.consume:
            for q in self.queues:
                if q not in consuming:
                    self._control("add_consumer", queue=q)
        else:
            for q in consuming:
                self._control("cancel_consumer", queue=q)

    def _control(self, command: str, **arguments: Any) -> None:
        # Broadcast to ourselves: the consumer is changed on its own event loop, never from here.
        assert self.app is not None
        self.app.control.broadcast(command, arguments=arguments, destination=[self.hostname], reply=False)

    def consuming(self) -> list[str]:
        tc = getattr(self.consumer, "task_consumer", None)
        if tc is None:
            return []
        return [q.name for q in tc.queues if tc.consuming_from(q.name)]

    def pool_size(self) -> int:
        pool = getattr(self.consumer, "pool", None)
        try:
            return int(pool.num_processes) if pool is not None else 1
        except (AttributeError, TypeError):
            return 1

    def release_jobs(self, reason: str) -> list[str]:
        """Give this process's running jobs back at once (no failure, no abort counted)."""
        if not self.registered:
            return []
        try:
            res = transaction(lambda s: fail_over_runner(s, self.hostname, utcnow(), reason, max_aborts=None,
                                                         instance=self.instance), retry_for=2)
        except Exception as exc:  # beat fails them over later (counting an abort)
            log.warning("runner %s: could not release its jobs (%s)", self.hostname, type(exc).__name__)
            return []
        if res.requeued:
            log.warning("runner %s: %s: released %d running job(s)", self.hostname, reason, len(res.requeued))
        return res.requeued

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if not self.registered or self.unregistered:
            return

        def tx(session: Any) -> None:
            now = utcnow()
            fail_over_runner(session, self.hostname, now, "worker stopped while the job ran", max_aborts=None,
                             instance=self.instance)
            runners.mark_stopped(session, self.hostname, now)

        try:
            transaction(tx, retry_for=2)
        except Exception as exc:
            log.warning("runner %s: could not record shutdown (%s)", self.hostname, type(exc).__name__)


def _active_jobs() -> int:
    from celery.worker import state

    return len(state.active_requests)


# By worker hostname: a process may host several workers (the tests' in-process workers do).
AGENTS: dict[str, FleetAgent] = {}


# ------------------------------------------------------------------------------ Celery wiring

@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    hostname = getattr(sender, "hostname", None) or "unknown"
    try:
        token_id = check_token(settings)
    except RegistrationRefused as exc:
        print(f"mediarunner: worker {hostname} refused to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None
    agent = AGENTS[hostname] = FleetAgent(hostname, settings, token_id)
    runtime.WORKER_INSTANCES[hostname] = agent.instance  # before the pool forks: its processes claim as it
    runtime.WORKER_SKILLS[hostname] = Skills.from_capabilities(capabilities(settings))  # what it may claim


@worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    agent = AGENTS.pop(getattr(sender, "hostname", None) or "unknown", None)
    if agent is not None:
        agent.stop()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    install_log_redaction(secret_values(get_settings()), [logger] if logger is not None else [])


class FleetStep(bootsteps.StartStopStep):
    """Consumer bootstep: runs after the task consumer exists, before the event loop."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        agent = AGENTS.get(c.hostname)
        if agent is not None:
            agent.attach(c)


@inspect_command()
def mediarunner_pool(state: Any, **_: Any) -> dict[str, Any]:
    """Remote control (read-only): the pool's target size, which pool_grow/pool_shrink change at once."""
    return {"size": state.consumer.pool.num_processes}


def install(app: Celery) -> None:
    app.steps["consumer"].add(FleetStep)
