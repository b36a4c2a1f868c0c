"""Prometheus metrics for jobs and runners, read from the database on every scrape.

``mediarunner metrics --port 9808`` serves them; ``--textfile PATH`` writes them once for the
node_exporter textfile collector. Nothing is counted in-process, so any number of exporters
(or none) can run, and a restart loses nothing: the database is the source of truth.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import SecretStr

from mediarunner.config import Settings, is_amqp
from mediarunner.fleet import FleetService, Runner
from mediarunner.models.enums import Health, JobState, RunnerStatus
from mediarunner.models.stats import FAILED_STATES, DurationHistogram
from mediarunner.scheduler import backlog


def broker_queue_lengths(broker_url: str, queues: list[str]) -> dict[str, int] | None:
    """Messages waiting per queue (Redis: all priority levels; RabbitMQ: ready messages); None if unreachable."""
    if is_amqp(broker_url):
        return backlog.broker_queue_lengths(broker_url, queues)
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis

    try:
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=1)
        # kombu keeps priority levels as `<queue>`, `<queue>:1` ... `<queue>:9` (sep ":" in workers/app.py)
        return {q: sum(int(client.llen(k)) for k in [q, *(f"{q}:{p}" for p in range(1, 10))]) for q in queues}
    except redis.RedisError:
        return None


class FleetCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fleet = FleetService(settings)

    def collect(self) -> Iterator[Metric]:
        snap = self.fleet.metrics_snapshot(retry_for=2)
        yield from self._jobs(snap.jobs_by_state, snap.durations)
        yield from self._runners(snap.runners, snap.now)

    def _jobs(self, by_state: list[Any], durations: list[DurationHistogram]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("mediarunner_jobs", "Jobs in the table by queue, type and state",
                                 labels=["queue", "type", "state"])
        depth: dict[str, int] = {}
        # A gauge, not a counter: rows that a purge deletes leave it (the runners' counters below count).
        failures = GaugeMetricFamily("mediarunner_failed_jobs", "Failed or timed-out jobs still in the table "
                                     "(purging lowers it)", labels=["queue", "type", "state"])
        for queue, type_, state, n in by_state:
            jobs.add_metric([queue, type_.value, state.value], n)
            depth.setdefault(queue, 0)
            if state is JobState.PENDING:
                depth[queue] += n
            if state in FAILED_STATES:
                failures.add_metric([queue, type_.value, state.value], n)
        queue_depth = GaugeMetricFamily("mediarunner_queue_depth", "Pending jobs per queue", labels=["queue"])
        for queue, n in sorted(depth.items()):
            queue_depth.add_metric([queue], n)
        # A gauge histogram: read from the jobs still in the table, so a purge lowers it (a
        # Prometheus histogram's _count/_sum are counters and must never go down).
        hist = GaugeHistogramMetricFamily("mediarunner_job_duration_seconds",
                                          "Processing time (started to finished) of completed jobs still in the "
                                          "table", labels=["type"])
        for d in durations:
            buckets = [(str(b), float(c)) for b, c in d.buckets] + [("+Inf", float(d.count))]
            hist.add_metric([d.type.value], buckets, d.sum)
        yield from (jobs, queue_depth, failures, hist)
        lengths = broker_queue_lengths(self.settings.broker_url, sorted(depth) or ["cpu", "gpu"])
        if lengths is not None:
            broker = GaugeMetricFamily("mediarunner_broker_queue_messages", "Messages waiting in the broker",
                                       labels=["queue"])
            for queue, n in lengths.items():
                broker.add_metric([queue], n)
            yield broker

    def _runners(self, fleet: list[Runner], now: datetime) -> Iterator[Metric]:
        counts = GaugeMetricFamily("mediarunner_runners", "Registered runners by status and health",
                                   labels=["status", "health"])
        for status in RunnerStatus:
            for health in Health:
                counts.add_metric([status.value, health.value],
                                  sum(1 for r in fleet if r.status is status and r.health is health))
        up = GaugeMetricFamily("mediarunner_runner_up", "1 if the runner is not offline", labels=["runner"])
        age = GaugeMetricFamily("mediarunner_runner_heartbeat_age_seconds", "Seconds since the last heartbeat",
                                labels=["runner"])
        running = GaugeMetricFamily("mediarunner_runner_jobs_running", "Jobs running now", labels=["runner"])
        concurrency = GaugeMetricFamily("mediarunner_runner_concurrency", "Pool size", labels=["runner"])
        load = GaugeMetricFamily("mediarunner_runner_load1", "1-minute load average", labels=["runner"])
        disk = GaugeMetricFamily("mediarunner_runner_disk_free_bytes", "Free scratch space", labels=["runner"])
        done = CounterMetricFamily("mediarunner_runner_jobs_completed", "Attempts completed", labels=["runner"])
        bad = CounterMetricFamily("mediarunner_runner_jobs_failed", "Attempts failed, timed out or retried",
                                  labels=["runner"])
        for r in fleet:
            h = [r.hostname]
            up.add_metric(h, 0 if r.health is Health.OFFLINE else 1)
            if (a := r.heartbeat_age(now)) is not None:
                age.add_metric(h, a)
            running.add_metric(h, r.jobs_running)
            concurrency.add_metric(h, r.concurrency)
            if isinstance(v := r.diagnostics.get("load_1m"), int | float):
                load.add_metric(h, v)
            if isinstance(v := r.diagnostics.get("disk_free_mb"), int | float):
                disk.add_metric(h, v * 2**20)
            done.add_metric(h, r.jobs_completed)
            bad.add_metric(h, r.jobs_failed)
        yield from (counts, up, age, running, concurrency, load, disk, done, bad)


Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def basic_auth(app: Wsgi, credentials: SecretStr) -> Wsgi:
    """``app`` behind HTTP basic auth; the password is compared in constant time."""
    expected = b"Basic " + base64.b64encode(credentials.get_secret_value().encode())

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="mediarunner metrics"'),
                                            ("Content-Type", "text/plain")])
        return [b"unauthorized\n"]

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(registry: CollectorRegistry, host: str, port: int, auth: SecretStr | None) -> ThreadingWSGIServer:
    """Serve ``/metrics`` on ``host:port`` (behind basic auth when ``auth`` is set) in a daemon thread."""
    app: Wsgi = make_wsgi_app(registry)
    if auth is not None and auth.get_secret_value():
        app = basic_auth(app, auth)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(settings))
    return registry
