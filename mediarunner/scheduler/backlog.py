"""How many messages wait in broker queues, on Redis and RabbitMQ alike (kombu's passive declare).

Beat's outbox uses it (a queue still holding a message per published job lost nothing) and so
does the ``mediarunner_broker_queue_messages`` metric. Redis counts every priority level of a
queue; RabbitMQ counts the ready messages (not those delivered to a worker and still unacked).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import ChannelError, KombuError
from redis.exceptions import RedisError

BrokerError = (KombuError, AMQPError, RedisError, OSError)


def queue_lengths(conn: Connection, queues: Collection[str]) -> dict[str, int]:
    """Messages waiting in each queue; a queue that does not exist (yet) holds none. Raises
    :data:`BrokerError` when the broker cannot be asked. Each queue gets a channel of its own:
    RabbitMQ closes the channel that asked about a missing queue."""
    counts: dict[str, int] = {}
    for q in queues:
        channel = conn.channel()
        try:
            counts[q] = int(channel.queue_declare(queue=q, passive=True).message_count)
        except ChannelError:
            counts[q] = 0
        finally:
            with contextlib.suppress(*BrokerError):
                channel.close()
    return counts


def broker_queue_lengths(broker_url: str, queues: Collection[str], *, timeout: float = 1.0) -> dict[str, int] | None:
    """:func:`queue_lengths` on a connection of its own; None when the broker does not answer.
    For RabbitMQ (a Redis connection made here would not know the workers' priority separator)."""
    try:
        with Connection(broker_url, connect_timeout=timeout,
                        transport_options={"max_retries": 0, "socket_timeout": timeout}) as conn:
            conn.ensure_connection(max_retries=1)
            return queue_lengths(conn, queues)
    except BrokerError:
        return None
