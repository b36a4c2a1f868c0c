"""``FleetService``: the one application-facing object for the runner fleet, like ``Client`` for jobs.

Constructed from ``Settings``; every method runs its own transaction(s) against
``settings.database_url`` and returns plain read models (:mod:`mediarunner.fleet.views`). State
changes stay where they live: ``models.runners`` and ``models.tokens`` (guarded compare-and-set
plus an event), ``scheduler.steering`` (revocation's failover, Celery remote control). With
``demo_mode`` every method that changes something raises :class:`ReadOnlyFleet`.

Remote control needs a Celery app on the workers' broker: pass ``app`` (an app, or a function of
the settings making one, such as ``mediarunner.workers.app.create_app``, which the CLI passes);
without it a bare app on ``settings.broker_url`` is made when first needed, which is all that
broadcasting needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

from celery import Celery
from sqlalchemy.orm import Session

from mediarunner.config import Settings, get_settings
from mediarunner.config.redact import mask_urls_in
from mediarunner.fleet.views import (
    ActivityEvent,
    AmbiguousRunner,
    Dashboard,
    FleetError,
    MetricsSnapshot,
    NewToken,
    ReadOnlyFleet,
    RunnerDetail,
    RunnerNotFound,
    TokenNotFound,
    dashboard,
    match_names,
    runner_detail,
)
from mediarunner.models import runners, tokens
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Health, RunnerStatus
from mediarunner.models.fleet_queries import Runner, list_runners
from mediarunner.models.health import HealthReport, HealthThresholds
from mediarunner.models.queries import recent_events
from mediarunner.models.stats import (
    FleetStats,
    completed_durations,
    fleet_stats,
    hour_series,
    jobs_by_state,
    pending_by_queue,
)
from mediarunner.models.tokens import TokenInfo
from mediarunner.scheduler import steering
from mediarunner.scheduler.steering import PingResult, SteerResult

T = TypeVar("T")
AppSource: TypeAlias = Celery | Callable[[Settings], Celery]


class FleetService:
    def __init__(self, settings: Settings | None = None, *, app: AppSource | None = None,
                 reply_timeout: float = 2.0) -> None:
        self.settings = settings or get_settings()
        self.reply_timeout = reply_timeout  # seconds to wait for a worker's remote-control answer
        self._app_source = app
        self._app: Celery | None = app if isinstance(app, Celery) else None

    @property
    def app(self) -> Celery:
        if self._app is None:
            source = self._app_source
            if callable(source) and not isinstance(source, Celery):
                self._app = source(self.settings)
            else:
                self._app = Celery("mediarunner-fleet", broker=self.settings.broker_url, set_as_current=False)
        return self._app

    @property
    def thresholds(self) -> HealthThresholds:
        return HealthThresholds.from_settings(self.settings)

    def _tx(self, fn: Callable[[Session], T], *, retry_for: float = 60.0) -> T:
        return transaction(fn, url=self.settings.database_url, retry_for=retry_for)

    def _writable(self) -> None:
        if self.settings.demo_mode:
            raise ReadOnlyFleet()

    # ------------------------------------------------------------------ tokens

    def create_token(self, name: str) -> NewToken:
        """A registration token; workers present its secret as MEDIARUNNER_WORKER_TOKEN."""
        self._writable()
        token_id, secret = self._tx(lambda s: tokens.create_token(s, name, utcnow()))
        return NewToken(token_id, name, secret)

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, never a secret."""
        return self._tx(tokens.list_tokens)

    def revoke_token(self, token_id: str) -> list[str]:
        """Revoke: its runners are unregistered (returned), their running jobs fail over and their
        consumers stop at once."""
        self._writable()
        queues = self._tx(lambda s: steering.revoke_token(s, token_id, utcnow()))
        if queues is None:
            raise TokenNotFound(token_id)
        steering.stop_consumers(self.app, queues)
        return list(queues)

    # ------------------------------------------------------------------ runners

    def list_runners(self, *, include_unregistered: bool = False) -> list[Runner]:
        """Runners by name with derived health and live job counts."""
        now = utcnow()
        return self._tx(lambda s: list_runners(s, now, self.thresholds, include_unregistered=include_unregistered))

    def resolve(self, name: str, *, include_unregistered: bool = False) -> str:
        """The one runner ``name`` means: a full name, a name part (``cpu1``) or a unique prefix."""
        matches = match_names(name, [r.hostname for r in self.list_runners(include_unregistered=include_unregistered)])
        if len(matches) == 1:
            return matches[0]
        raise AmbiguousRunner(name, matches) if matches else RunnerNotFound(name)

    def get_runner(self, name: str) -> Runner:
        hostname = self.resolve(name, include_unregistered=True)
        found = self._tx(lambda s: list_runners(s, utcnow(), self.thresholds, include_unregistered=True,
                                                hostname=hostname))
        if not found:
            raise RunnerNotFound(name)
        return found[0]

    def runner_detail(self, name: str, *, events: int = 10) -> RunnerDetail:
        """A runner with capabilities, diagnostics, health reasons and its recent activity."""
        runner = self.get_runner(name)
        return runner_detail(runner, self.events(runner=runner.hostname, limit=events))

    def health(self, name: str) -> HealthReport:
        runner = self.get_runner(name)
        return HealthReport(runner.health, runner.health_reasons)

    # ------------------------------------------------------------------ steering

    def set_status(self, name: str, status: RunnerStatus) -> SteerResult:
        """Stored first (the lasting intent), then remote control; an absent worker applies the
        stored status on its next heartbeat."""
        self._writable()
        hostname = self.resolve(name)

        def tx(session: Session) -> tuple[list[str] | None, bool]:
            queues = steering.queues_of(session, hostname)
            return queues, queues is not None and runners.set_status(session, hostname, status, utcnow())

        queues, changed = self._tx(tx)
        if queues is None:
            raise RunnerNotFound(name)
        replies = steering.apply_status(self.app, hostname, queues, status, self.reply_timeout)
        return SteerResult(hostname, changed, replies)

    def maintenance(self, name: str) -> SteerResult:
        """Running jobs finish, no new ones."""
        return self.set_status(name, RunnerStatus.MAINTENANCE)

    def enable(self, name: str) -> SteerResult:
        return self.set_status(name, RunnerStatus.ENABLED)

    def disable(self, name: str) -> SteerResult:
        return self.set_status(name, RunnerStatus.DISABLED)

    def set_concurrency(self, name: str, concurrency: int) -> SteerResult:
        """Store the operator's max concurrent jobs (survives restarts) and resize the live pool."""
        self._writable()
        hostname = self.resolve(name)
        changed = self._tx(lambda s: runners.set_desired_concurrency(s, hostname, concurrency, utcnow()))
        replies = steering.resize_pool(self.app, hostname, concurrency, self.reply_timeout)
        return SteerResult(hostname, changed, replies)

    def unregister_runner(self, name: str) -> tuple[str, list[str]]:
        """The runner leaves the fleet cleanly: unregistered (until it starts again), its running
        jobs back to pending with nothing counted, its consumers stopped. Returns its name and the
        released jobs."""
        self._writable()
        hostname = self.resolve(name)
        res = self._tx(lambda s: steering.unregister_runner(s, hostname, utcnow()))
        if res is None:
            raise RunnerNotFound(name)
        queues, released = res
        steering.stop_consumers(self.app, {hostname: queues})
        return hostname, released

    def remove_runner(self, name: str) -> str:
        """Forget one runner. Only a stopped (offline) or unregistered one: a live worker would
        register again with its next heartbeat."""
        self._writable()
        runner = self.get_runner(name)
        if runner.unregistered_at is None and runner.health is not Health.OFFLINE:
            raise FleetError(f"runner {runner.hostname} is {runner.health}: stop it, or run "
                             f"`mediarunner runners unregister {runner.hostname}`, before removing it")
        self._tx(lambda s: steering.remove_runner(s, runner.hostname, utcnow()))
        return runner.hostname

    def set_priority(self, name: str, priority: int, *, weight: int | None = None) -> SteerResult:
        """The runner's scheduling priority (lower first) and optionally its balancing weight;
        workers read it from the database at every claim (no remote control needed)."""
        self._writable()
        hostname = self.resolve(name)
        changed = self._tx(lambda s: runners.set_priority(s, hostname, priority, utcnow(), weight=weight))
        return SteerResult(hostname, changed, {})

    def ping(self, names: Sequence[str] | None = None, *, timeout: float | None = None) -> list[PingResult]:
        """A round trip through the broker to each runner (default: every one not offline)."""
        hostnames = ([self.resolve(n) for n in names] if names
                     else [r.hostname for r in self.list_runners() if r.health is not Health.OFFLINE])
        return steering.ping(self.app, hostnames, timeout=self.reply_timeout if timeout is None else timeout)

    # ------------------------------------------------------------------ activity log, stats, metrics

    def events(self, *, runner: str | None = None, kind: str | None = None, job: str | None = None,
               limit: int = 50) -> list[ActivityEvent]:
        """The activity log, newest last, URLs masked. ``runner`` may be a unique short name; a name
        no runner has (any more) is used as given, since its history is still logged."""
        if runner:
            matches = match_names(runner, [r.hostname for r in self.list_runners(include_unregistered=True)])
            runner = matches[0] if len(matches) == 1 else runner

        def read(session: Session) -> list[ActivityEvent]:
            return [ActivityEvent(e.at, e.kind, e.runner, e.job_id, mask_urls_in(e.message))
                    for e in recent_events(session, limit=limit, runner=runner, kind=kind, job_id=job)]

        return self._tx(read)

    def stats(self) -> FleetStats:
        """The dashboard numbers, in one SQL statement."""
        return self._tx(lambda s: fleet_stats(s, utcnow(), self.settings.runner_offline_after_seconds))

    def dashboard(self) -> Dashboard:
        """The dashboard's eight numbers (from :meth:`stats` and :meth:`list_runners`), the queues
        no online runner serves, and the last hour's queue depth and throughput."""
        now = utcnow()

        def read(s: Session) -> Dashboard:
            return dashboard(fleet_stats(s, now, self.settings.runner_offline_after_seconds),
                             list_runners(s, now, self.thresholds), pending_by_queue(s), hour_series(s, now))

        return self._tx(read)

    def metrics_snapshot(self, *, retry_for: float = 2.0) -> MetricsSnapshot:
        """Jobs by state, duration histograms and runners, read together for one scrape."""
        now = utcnow()

        def read(session: Any) -> MetricsSnapshot:
            return MetricsSnapshot(now, jobs_by_state(session), completed_durations(session),
                                   list_runners(session, now, self.thresholds))

        return self._tx(read, retry_for=retry_for)
