"""RabbitMQ specifics (issue 14, item 6): queue declarations. Message priorities are not used (a
message is a doorbell for its queue and the claim orders the queue). The end-to-end, ordering and
fault tests run on both brokers through the ``broker_url`` fixture (conftest)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mediarunner.config import Settings, is_amqp
from mediarunner.models.enums import JobState
from mediarunner.workers.app import celery_config
from tests.support import empty_broker, make_stack, wait_for


def test_broker_kinds_and_queue_arguments() -> None:
    assert is_amqp("amqp://u:p@h:5672/v") and is_amqp("pyamqp://h//") and not is_amqp("redis://h:6379/0")
    quorum = {q.name: q.queue_arguments for q in celery_config(Settings(broker_url="amqp://h//"))["task_queues"]}
    assert quorum["cpu"]["x-queue-type"] == "quorum" and quorum["scheduler"] == {"x-queue-type": "quorum"}
    assert quorum["cpu"]["x-consumer-timeout"] > 7 * 24 * 3600 * 1000  # outlives a live stream's limit
    classic = celery_config(Settings(broker_url="amqp://h//", rabbitmq_queue_type="classic"))
    assert {q.name: (q.queue_arguments or {}).get("x-max-priority") for q in classic["task_queues"]}["gpu"] == 10
    redis_options = celery_config(Settings(broker_url="redis://h:6379/0"))["broker_transport_options"]
    assert redis_options["sep"] == ":" and "confirm_publish" not in redis_options


def test_job_queues_are_declared_as_quorum_queues(tmp_path: Path, pg_url: str, rabbitmq_url: str) -> None:
    empty_broker(rabbitmq_url)
    with make_stack(tmp_path, pg_url, rabbitmq_url) as st:
        st.worker("q")  # a process of its own: the in-process app may have declared queues for Redis
        client = st.client()
        assert client.wait(client.submit_noop().id, timeout=60).state is JobState.COMPLETED
        vhost = rabbitmq_url.rsplit("/", 1)[1]
        listing = wait_for(lambda: subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "arguments"],
            capture_output=True, text=True, timeout=60).stdout, 60, what="rabbitmqctl list_queues")
        cpu = next(line for line in listing.splitlines() if line.startswith("cpu\t"))
        assert "quorum" in cpu and "x-consumer-timeout" in cpu
