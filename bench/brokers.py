"""The brokers a benchmark measures on (``--brokers redis,rabbitmq``): the same measurement, run once
per broker, never copied.

* ``redis``: a private ``redis-server`` on a free port, started for the benchmark and stopped after
  (the queues keep their usual names: nothing else uses that server).
* ``rabbitmq``: the machine's RabbitMQ, the test suite's (``MEDIARUNNER_TEST_RABBITMQ``, default
  ``amqp://guest:guest@127.0.0.1:5672``), default vhost. Every queue the benchmark names gets a
  suffix of its own run, and is deleted at the end, even when the run fails, so a run never reads
  another's messages and leaves no queues behind (mediarunner's job queues are quorum queues
  there, as in production). The queues and exchanges of Celery's native delayed delivery
  (``celery_delayed_*``, declared by every worker on quorum queues) are deleted too when the run
  brought them; Celery's fixed-name exchanges (``cpu``, ``celeryev``, ``celery.pidbox``: no queues,
  no messages, the same for every run) are left, as another run may be publishing to them.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Unavailable, private_redis
from tests.support import RABBITMQ, rabbitmq_available

BROKERS = ("redis", "rabbitmq")
RABBITMQ_URL = f"{RABBITMQ.rstrip('/')}//"  # the default vhost


def _where() -> str:
    return RABBITMQ.rsplit("@", 1)[-1]  # host:port, never the credentials


def pick(asked: str | None, smoke: bool) -> tuple[list[str], dict[str, str]]:
    """The brokers to measure on and those asked for that cannot be used here, with why.

    ``asked``: comma-separated (``--brokers``); default both (smoke: Redis only). RabbitMQ is
    listed as not available when nothing answers on its port."""
    kinds = [k.strip() for k in asked.split(",") if k.strip()] if asked else ["redis"] if smoke else list(BROKERS)
    unknown = [k for k in kinds if k not in BROKERS]
    if unknown or not kinds:
        raise ValueError(f"unknown broker(s) {unknown}: choose from {', '.join(BROKERS)}")
    missing = {k: f"RabbitMQ not reachable at {_where()} (set MEDIARUNNER_TEST_RABBITMQ)"
               for k in kinds if k == "rabbitmq" and not rabbitmq_available()}
    usable = [k for k in kinds if k not in missing]
    if not usable:
        raise Unavailable("; ".join(missing.values()))
    return usable, missing


def label(kind: str, kinds: Sequence[str]) -> str:
    """The prefix of a metric's name: the broker's (``rabbitmq/``) unless Redis alone was asked for,
    so that the names of a Redis-only run stay those of earlier results."""
    return "" if list(kinds) == ["redis"] else f"{kind}/"


@dataclass
class Broker:
    kind: str
    url: str
    suffix: str = ""  # appended to every queue name (a RabbitMQ run's own)
    declared: list[str] = field(default_factory=list)

    def queue(self, base: str) -> str:
        """This run's name for the queue ``base``; it is deleted when the broker is left."""
        name = base + self.suffix
        if name not in self.declared:
            self.declared.append(name)
        return name

    def job_queues(self, *names: str) -> dict[str, str]:
        """``make_stack`` / worker env: mediarunner's ``job_queues`` (declared with their arguments)."""
        return {"MEDIARUNNER_JOB_QUEUES": json.dumps(list(names))}


@contextlib.contextmanager
def broker(kind: str, tmp: Path) -> Iterator[Broker]:
    """Enter one broker of :func:`pick`'s list (see the module docstring)."""
    if kind == "redis":
        with private_redis(tmp) as server:
            yield Broker(kind, server.url)
        return
    if kind != "rabbitmq":
        raise ValueError(f"unknown broker {kind!r}")
    if not rabbitmq_available():
        raise Unavailable(f"RabbitMQ not reachable at {_where()}")
    b = Broker(kind, RABBITMQ_URL, suffix=f"-{uuid.uuid4().hex[:8]}")
    queues, exchanges = _delayed_delivery()
    # Celery's workers declare the queues and exchanges of its native delayed delivery (fixed names,
    # as they do for quorum queues in production): removed after if this run brought them.
    ours = not queue_exists(b.url, queues[0])
    try:
        yield b
    finally:
        # The exchanges named like a queue: the raw-Celery app's default exchange is named after its queue.
        _delete(b.url, [*b.declared, *(queues if ours else [])], [*b.declared, *(exchanges if ours else [])])


def queue_exists(url: str, queue: str) -> bool:
    """Whether ``queue`` exists on the RabbitMQ at ``url`` (a passive declare)."""
    return _on_channel(url, [("queue_declare", queue)], passive=True)[0]


def _delayed_delivery() -> tuple[list[str], list[str]]:
    from kombu.transport.native_delayed_delivery import CELERY_DELAYED_DELIVERY_EXCHANGE, MAX_LEVEL, level_name

    levels = [level_name(level) for level in range(MAX_LEVEL + 1)]
    return levels, [*levels, CELERY_DELAYED_DELIVERY_EXCHANGE]


def _on_channel(url: str, ops: Sequence[tuple[str, str]], **kwargs: bool) -> list[bool]:
    """Run each ``(method, name)`` on a channel of its own (an error such as 404 closes the
    channel); returns which succeeded."""
    from kombu import Connection

    done = []
    with Connection(url, connect_timeout=5) as conn:
        for op, name in ops:
            channel = conn.channel()
            try:
                getattr(channel, op)(name, **kwargs)
                done.append(True)
            except Exception:  # ChannelError: no such queue or exchange
                done.append(False)
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    return done


def _delete(url: str, queues: Sequence[str], exchanges: Sequence[str]) -> None:
    """Delete these queues and exchanges; missing ones are skipped."""
    _on_channel(url, [*(("queue_delete", q) for q in dict.fromkeys(queues)),
                      *(("exchange_delete", e) for e in dict.fromkeys(exchanges))])
