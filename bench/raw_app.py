"""The raw-Celery baseline of ``bench.throughput``: ``celery -A bench.raw_app worker -Q bench-raw``.

A separate Celery app with mediarunner's own Celery settings (``celery_config``: acks_late,
prefetch 1, priority queues, events...) on the same broker, and one trivial task. The only extra
work it does is an ``RPUSH`` of its finish time to a Redis list: that is how the benchmark learns
when the last task finished (mediarunner jobs tell it through ``finished_at`` in the job table).
"""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from celery import Celery
from kombu import Queue as KQueue

from mediarunner.config import Settings, get_settings
from mediarunner.workers.app import celery_config

RAW_QUEUE = "bench-raw"
TASK_NAME = "bench.raw_noop"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().broker_url)


def noop(done_key: str) -> None:
    _redis().rpush(done_key, repr(time.time()))


def create_raw_app(settings: Settings | None = None) -> Celery:
    app = Celery("bench_raw")
    app.conf.update(celery_config(settings or get_settings()))
    app.conf.update(task_default_queue=RAW_QUEUE, task_queues=[KQueue(RAW_QUEUE, routing_key=RAW_QUEUE)])
    app.task(name=TASK_NAME, ignore_result=True)(noop)
    return app


app = create_raw_app()
