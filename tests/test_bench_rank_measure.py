"""The rank-fidelity benchmark's two pair counts, on hand-made event orders."""

from __future__ import annotations

import pytest

from bench.rank_fidelity import out_of_order, run_before

RANK = {"a": 1, "b": 2, "c": 3}


def test_concurrent_claims_taken_in_either_order_are_not_run_out_of_order() -> None:
    # Two workers claim a and b at once; b's event is numbered first. c waits for the first to finish.
    assigned, completed = {"b": 1, "a": 2, "c": 4}, {"b": 3, "a": 5, "c": 6}
    assert run_before(assigned, completed, RANK) == 0.0
    assert out_of_order(["b", "a", "c"], RANK) == pytest.approx(1 / 3)


def test_a_job_run_wholly_before_a_better_one_is_counted() -> None:
    # c was claimed, run and completed before a was claimed: one pair (a, c) of three.
    assigned, completed = {"c": 1, "b": 2, "a": 4}, {"c": 3, "b": 5, "a": 6}
    assert run_before(assigned, completed, RANK) == pytest.approx(1 / 3)
    assert run_before({"a": 1, "b": 3, "c": 5}, {"a": 2, "b": 4, "c": 6}, RANK) == 0.0
