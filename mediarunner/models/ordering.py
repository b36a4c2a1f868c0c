"""Queue order: the one definition of which pending job runs next, used by the worker's claim
(``transitions.claim_next``) and by the displayed ranks (``scheduler.ticks.update_ranks``), so
that the two can never disagree.

A queue's pending jobs that are due (no retry backoff left) run in this order:

1. effective class: the position of the job's ``priority_class`` among the distinct ranks of
   ``PRIORITY_CLASSES`` (best first; a class no longer configured comes last). With aging on
   (``PRIORITY_AGING_MINUTES`` > 0) a job moves up one class per that many minutes of age,
   never past the best one: a starvation guard for low classes;
2. priority, higher first (any integer in the accepted range);
3. age: ``created_at``, oldest first. A retried or failed-over job keeps its ``created_at``, so it
   keeps its place; a job in retry backoff (``run_after`` in the future) is not due;
4. id, to break exact ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, literal

from mediarunner.models.tables import JobRow


@dataclass(frozen=True)
class RankOrder:
    """Class ranks (``PRIORITY_CLASSES``) and the aging step; hashable, so statements built from
    it are cached."""

    classes: tuple[tuple[str, int], ...]
    aging_seconds: float = 0.0  # 0: aging off

    @classmethod
    def from_settings(cls, settings: Any) -> RankOrder:
        return cls(tuple(sorted(settings.priority_classes.items())), 60.0 * settings.priority_aging_minutes)

    @property
    def levels(self) -> int:
        """How many distinct class positions there are (a class not configured gets this one)."""
        return len({rank for _, rank in self.classes})

    def class_index(self, priority_class: str) -> int:
        ranks = sorted({rank for _, rank in self.classes})
        mine = dict(self.classes).get(priority_class)
        return ranks.index(mine) if mine is not None else len(ranks)

    def effective_class(self, priority_class: str, created_at: datetime, now: datetime) -> int:
        """The class position a job of ``priority_class`` created at ``created_at`` has at ``now``."""
        index = self.class_index(priority_class)
        if self.aging_seconds > 0:
            steps = int(max(0.0, (now - created_at).total_seconds()) // self.aging_seconds)
            index = max(0, index - steps)
        return index

    def key(self, job: Any, now: datetime) -> tuple[Any, ...]:
        """Sort key of a job (anything with the job's attributes): smaller runs first."""
        return (self.effective_class(job.priority_class, job.created_at, now), -job.priority, job.created_at,
                job.id)

    # ------------------------------------------------------------------ the same in SQL

    def sql_class(self) -> ColumnElement[int]:
        """The effective class of ``jobs`` rows; with aging it reads the bind parameters
        ``aged_1`` ... ``aged_n`` (see :meth:`aging_params`)."""
        ranks = sorted({rank for _, rank in self.classes})
        index: ColumnElement[int] = case(
            *((JobRow.priority_class == name, ranks.index(rank)) for name, rank in self.classes),
            else_=len(ranks)) if self.classes else literal(0)
        if self.aging_seconds <= 0:
            return index
        steps = sum((case((JobRow.created_at <= bindparam(f"aged_{k}", type_=JobRow.created_at.type), 1), else_=0)
                     for k in range(1, self.levels + 1)), literal(0))
        aged = index - steps
        return case((aged < 0, 0), else_=aged)

    def aging_params(self, now: datetime) -> dict[str, datetime]:
        """``aged_k``: a job created at or before it has aged k classes."""
        if self.aging_seconds <= 0:
            return {}
        return {f"aged_{k}": now - timedelta(seconds=k * self.aging_seconds) for k in range(1, self.levels + 1)}

    def sql_order(self) -> list[Any]:
        """ORDER BY terms (ids in the database's collation, as ``ix_jobs_pending_order`` has them)."""
        return [self.sql_class(), JobRow.priority.desc(), JobRow.created_at, JobRow.id]
