"""The raw-Celery baseline of ``bench.throughput``: ``celery -A bench.raw_app worker -Q bench-raw``.

A separate Celery app with mediarunner's own Celery settings (``celery_config``: acks_late,
prefetch 1, queue arguments, events...) on the same broker, and one trivial task. Its queue is
declared as mediarunner declares a job queue (on RabbitMQ: a quorum queue with the same
arguments). The only extra work it does is an ``RPUSH`` of its finish time to a Redis list: that is
how the benchmark learns when the last task finished (mediarunner jobs tell it through
``finished_at`` in the job table). That Redis is the broker's, or ``BENCH_RAW_DONE_REDIS`` (with
RabbitMQ as the broker); the queue's name is ``BENCH_RAW_QUEUE`` (default ``bench-raw``).
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import redis
from celery import Celery

from mediarunner.config import Settings, get_settings
from mediarunner.workers.app import celery_config, task_queues

RAW_QUEUE = "bench-raw"
TASK_NAME = "bench.raw_noop"
QUEUE_ENV = "BENCH_RAW_QUEUE"  # the queue's name (a RabbitMQ run's own)
DONE_ENV = "BENCH_RAW_DONE_REDIS"  # where finish times go (default: the broker, when it is Redis)


def done_url(settings: Settings | None = None) -> str:
    return os.environ.get(DONE_ENV) or (settings or get_settings()).broker_url


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(done_url())


def noop(done_key: str) -> None:
    _redis().rpush(done_key, repr(time.time()))


def create_raw_app(settings: Settings | None = None, queue: str | None = None) -> Celery:
    settings = settings or get_settings()
    queue = queue or os.environ.get(QUEUE_ENV) or RAW_QUEUE
    declared = next(q for q in task_queues(settings.model_copy(update={"job_queues": [queue]})) if q.name == queue)
    app = Celery("bench_raw")
    app.conf.update(celery_config(settings))
    app.conf.update(task_default_queue=queue, task_queues=[declared])
    app.task(name=TASK_NAME, ignore_result=True)(noop)
    return app


app = create_raw_app()
