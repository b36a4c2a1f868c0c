"""Runner priority and balancing: real (in-process) workers pull the messages, and which worker
ran each job follows the runner priority and the RUNNER_BALANCING method."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mediarunner.cli import app as cli
from mediarunner.cli import ui
from mediarunner.models import runners
from mediarunner.models.balancing import choose
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from tests.support import InprocWorker, Stack, wait_for

T = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_the_reference_choice_of_each_method() -> None:
    rows = [("a", 0, 1, 2, None, T), ("b", 0, 0, 2, None, None), ("c", 1, 0, 4, 9, T)]
    assert choose("least_loaded", rows) == "b" and choose("priority", rows) == "a"
    assert choose("round_robin", rows) == "b"  # never claimed: longest ago
    assert choose("weighted", [("a", 0, 2, 4, 3, T), ("b", 0, 1, 4, 1, T)]) == "a"  # 2/3 < 1/1
    assert choose("priority", [("a", 0, 2, 2, None, T), *rows[1:]]) == "b"  # a is full
    assert choose("least_loaded", [("a", 0, 1, 1, None, T)]) is None


def _env(method: str) -> dict[str, str]:
    return {"MEDIARUNNER_RUNNER_BALANCING": method, "MEDIARUNNER_RUNNER_PREFERENCE_GRACE_SECONDS": "120",
            "MEDIARUNNER_RUNNER_DECLINE_RETRY_SECONDS": "0.05"}


def _workers(stack: Stack, method: str, concurrency: int, tag: str) -> tuple[InprocWorker, InprocWorker]:
    """Two workers named for the test (runner rows, with their priorities, outlive a test)."""
    a = stack.inproc_worker(f"{tag}-a", concurrency=concurrency, extra_env=_env(method))
    b = stack.inproc_worker(f"{tag}-b", concurrency=concurrency)
    return a, b


def _set(hostname: str, priority: int, weight: int | None = None) -> None:
    assert transaction(lambda s: runners.set_priority(s, hostname, priority, utcnow(), weight=weight))


def _started(stack: Stack, duration: float) -> str:
    """Submit a job and wait until it runs; the worker that took it."""
    client = stack.client()
    job = client.submit_noop(duration=duration)
    return wait_for(lambda: (j := client.get(job.id)).state is not JobState.PENDING and j.worker, 30,
                    what="the job to start")


def _one_after_another(stack: Stack, n: int) -> list[str]:
    client = stack.client()
    return [client.wait(client.submit_noop().id, timeout=30).worker or "" for _ in range(n)]


def test_runner_priority_strict_order(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _workers(stack, "priority", 1, "strict")
    monkeypatch.setattr(ui, "console", Console(width=250))
    out = CliRunner().invoke(cli, ["runners", "set-priority", "strict-b", "5"])
    assert out.exit_code == 0 and f"{b.hostname}: priority 5" in out.output, out.output
    assert " 5 " in CliRunner().invoke(cli, ["runners", "ls"]).output  # shown in `runners ls`
    assert _one_after_another(stack, 4) == [a.hostname] * 4  # b only when a is full
    first = _started(stack, 3.0)
    second = _started(stack, 3.0)
    assert (first, second) == (a.hostname, b.hostname)


def test_least_loaded_fills_the_idle_runner_first(stack: Stack) -> None:
    a, b = _workers(stack, "least_loaded", 2, "least")
    first = _started(stack, 4.0)
    second = _started(stack, 4.0)
    assert {first, second} == {a.hostname, b.hostname}  # 0/2 beats 1/2
    third = _started(stack, 4.0)
    fourth = _started(stack, 4.0)
    assert fourth != third  # the one that took the third had 2/2


def test_a_better_priority_wins_over_a_lighter_load(stack: Stack) -> None:
    a, b = _workers(stack, "least_loaded", 2, "prio")
    _set(b.hostname, 1)
    assert [_started(stack, 3.0) for _ in range(2)] == [a.hostname, a.hostname]
    assert _started(stack, 3.0) == b.hostname  # a is full


def test_weighted_shares_by_weight(stack: Stack) -> None:
    a, b = _workers(stack, "weighted", 4, "weighted")
    _set(a.hostname, 0, weight=3)
    _set(b.hostname, 0, weight=1)
    took = [_started(stack, 5.0) for _ in range(4)]
    assert took.count(a.hostname) == 3 and took.count(b.hostname) == 1


def test_round_robin_alternates(stack: Stack) -> None:
    a, b = _workers(stack, "round_robin", 1, "rr")
    took = _one_after_another(stack, 6)
    assert all(x != y for x, y in itertools.pairwise(took)), took
    assert set(took) == {a.hostname, b.hostname}
