"""The ladder layout decision (media/strategy.py): a decision table, no ffmpeg, no jobs."""

from __future__ import annotations

import pytest

from mediarunner.media.strategy import choose_layout, rung_cost

LADDER = [rung_cost(1280, 720), rung_cost(854, 480), rung_cost(640, 360)]  # 720p/480p/360p
FIT = {"max_parts": 4, "min_part_seconds": 20.0, "segment_seconds": 4.0}


@pytest.mark.parametrize(("duration", "idle", "parts", "can_combine", "expected"), [
    # one worker (no other idle slot): every rung in one ffmpeg, never split, whatever the length
    (10.0, 0, None, True, ("combined", 1, 1)),
    (300.0, 0, None, True, ("combined", 1, 1)),
    # ... unless it may not combine (a retry, hardware, a cover image): one job per rung
    (300.0, 0, None, False, ("fan-out", 1, 1)),
    # idle capacity unknown (a remote runner): the layout before the planner
    (300.0, None, None, True, ("fan-out", 1, 0)),
    # a second worker idle: a short video fans out, a long one splits in two
    (10.0, 1, None, True, ("fan-out", 1, 2)),
    (30.0, 1, None, True, ("fan-out", 1, 2)),  # 30 s: two parts of 20 s do not fit
    (60.0, 1, None, True, ("split", 2, 2)),
    (300.0, 1, None, True, ("split", 2, 2)),
    # three idle: 4 workers; the top rung is 59 % of the work, so 3 parts keep every worker busy
    (300.0, 3, None, True, ("split", 3, 4)),
    (60.0, 3, None, True, ("split", 3, 4)),
    (45.0, 3, None, True, ("split", 2, 4)),  # only two 20 s parts fit in 45 s
    # many idle: at most max_parts
    (3600.0, 50, None, True, ("split", 4, 51)),
    # an explicit parts wins (fewer only when the video is too short for them)
    (300.0, 3, 1, True, ("fan-out", 1, 4)),
    (300.0, 0, 4, True, ("split", 4, 1)),
    (30.0, 0, 4, True, ("combined", 1, 1)),  # 4 asked, none fit: one worker, one ffmpeg
    (30.0, 1, 4, True, ("fan-out", 1, 2)),
])
def test_decision_table(duration: float, idle: int | None, parts: int | None, can_combine: bool,
                        expected: tuple[str, int, int]) -> None:
    got = choose_layout(duration, LADDER, idle, parts=parts, can_combine=can_combine, **FIT)
    assert (got.kind, got.parts, got.workers) == expected, got.reason
    assert got.reason
    assert got.combined == (can_combine and (got.kind == "combined" or got.kind == "split"))


def test_a_single_rung_is_never_combined_and_a_ladder_without_children_never_split() -> None:
    assert choose_layout(100.0, LADDER[:1], 0, parts=None, can_combine=True, **FIT).kind == "fan-out"
    got = choose_layout(300.0, LADDER, 3, parts=None, can_combine=True, can_split=False, **FIT)
    assert (got.kind, got.parts) == ("fan-out", 1)
    assert choose_layout(300.0, [], 3, parts=None, can_combine=True, **FIT).parts == 1


def test_rung_costs_follow_the_picture_area() -> None:
    assert rung_cost(1280, 720) == pytest.approx(2.25 * rung_cost(854, 480), rel=0.01)
    assert rung_cost(None, None) == 1.0  # audio only: next to nothing next to any video rung
