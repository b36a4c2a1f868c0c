"""The Celery application: ``celery -A mediarunner.workers.app worker -Q cpu`` (or ``-Q gpu``)."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.signals import worker_before_create_process, worker_process_init
from kombu import Queue as KQueue

from mediarunner.config import Settings, get_settings, is_amqp
from mediarunner.models.enums import Queue
from mediarunner.workers import clock, fleet, shutdown  # noqa: F401  (shutdown: its signal handlers)

TASK_MODULES = ["mediarunner.workers.tasks", "mediarunner.workers.beat"]
# What a process loads, by role: `mediarunner beat` (the scheduler-queue worker with beat embedded)
# sets MEDIARUNNER_WORKER_ROLE=scheduler and loads only beat's tasks, never the job tasks.
ROLE_ENV = "MEDIARUNNER_WORKER_ROLE"
ROLE_MODULES = {"jobs": TASK_MODULES, "scheduler": ["mediarunner.workers.beat"]}


def modules_for(role: str | None) -> list[str]:
    """The task modules a worker of ``role`` imports (no role: every task, as a job worker)."""
    if not role:
        return TASK_MODULES
    if role not in ROLE_MODULES:
        raise ValueError(f"{ROLE_ENV}={role!r}: expected one of {', '.join(ROLE_MODULES)}")
    return ROLE_MODULES[role]


def _transport_options(settings: Settings) -> dict[str, Any]:
    if is_amqp(settings.broker_url):
        # Publisher confirms: a publish returns once RabbitMQ has the message (or raises, and the
        # outbox publishes again), as a Redis LPUSH does.
        return {"confirm_publish": True}
    return {
        # Redis re-delivers unacked messages after this; it must outlive the longest job.
        "visibility_timeout": settings.visibility_timeout,
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
        "sep": ":",
    }


def task_queues(settings: Settings) -> list[KQueue]:
    """The queues, declared with their RabbitMQ arguments (ignored by Redis).

    Job queues are quorum queues (or classic ones with 10 priority levels, ``RABBITMQ_QUEUE_TYPE``)
    whose ``x-consumer-timeout`` outlives the longest job: with late acks a message stays unacked
    while its job runs, and RabbitMQ (>= 3.12; older servers: ``consumer_timeout`` in
    rabbitmq.conf) would otherwise close the channel after 30 minutes. See README, RabbitMQ."""
    longest = max(settings.job_time_limit_seconds, settings.live_time_limit_seconds) + 600
    job_args: dict[str, Any] = {"x-consumer-timeout": int(longest * 1000)}
    if settings.rabbitmq_queue_type == "quorum":
        job_args["x-queue-type"] = "quorum"
        scheduler_args: dict[str, Any] = {"x-queue-type": "quorum"}
    else:
        job_args["x-max-priority"] = 10
        scheduler_args = {}
    names = dict.fromkeys([*(q.value for q in Queue if q is not Queue.SCHEDULER), *settings.job_queues])
    return [KQueue(Queue.SCHEDULER.value, routing_key=Queue.SCHEDULER.value, queue_arguments=scheduler_args or None),
            *(KQueue(q, routing_key=q, queue_arguments=job_args) for q in names)]


def celery_config(settings: Settings) -> dict[str, Any]:
    return dict(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_ignore_result=True,  # the job table is the source of truth, not the result backend
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A job is acknowledged only once it finished; a worker killed mid-job gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # long jobs: never hoard messages another worker could run
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        # Publishing must fail fast when the broker is down: the outbox re-publishes later.
        broker_connection_timeout=2,
        task_publish_retry=False,  # dispatch() catches the failure; beat re-publishes
        task_default_queue=Queue.CPU.value,
        task_queues=task_queues(settings),
        task_create_missing_queues=True,
        task_create_missing_queue_type="quorum" if settings.rabbitmq_queue_type == "quorum" else "classic",
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        task_soft_time_limit=None,
        task_track_started=False,
        broker_heartbeat=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        timezone="UTC",
        enable_utc=True,
    )


def create_app(settings: Settings | None = None, include: Sequence[str] | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("mediarunner", include=list(TASK_MODULES if include is None else include))
    app.conf.update(celery_config(settings))
    fleet.install(app)  # registration, heartbeats, self-steering (mediarunner.workers.fleet)
    clock.install(app)  # --beat-thread: `mediarunner beat` in one process (mediarunner.workers.clock)
    return app


app = create_app(include=modules_for(os.environ.get(ROLE_ENV)))


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # Pooled DB connections inherited through fork would be shared with the parent: drop them.
    from mediarunner.models.db import dispose_engines

    dispose_engines()


@worker_before_create_process.connect
def _share_before_fork(**_: Any) -> None:
    # In the prefork parent, just before it forks a pool process: what it has loaded (every module,
    # the task registry, the settings) moves to the collector's permanent generation, so the
    # collections of both processes never write to those objects' headers and their pages stay
    # shared with the pool process instead of being copied into it page by page (CPython's advice
    # for fork without exec, see gc.freeze). Objects made after the fork are collected as before.
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
