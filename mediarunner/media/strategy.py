"""How a ladder's encoding is laid out over the workers, decided by the transcode parent when it
has probed the source: pure functions of the duration, the rungs' costs and the idle capacity of
the queue at that moment (no ffmpeg, no jobs, no clock).

Three layouts:

* **combined**: no other worker slot is idle, so every rung would run on this worker one after the
  other anyway: encode them all in one ffmpeg (one decode, ``split`` + ``scale`` per rung,
  :func:`~mediarunner.media.encode.encode_renditions`);
* **fan-out**: other slots are idle and the video is short: the parent encodes the top rung and one
  child per lower rung runs on the other workers (the layout before the planner);
* **split**: other slots are idle and the video is long enough: the video is cut into ``parts``
  time parts on the segment grid (:mod:`.parts`), encoded by as many workers at once; when it may
  combine, each part job encodes every rung of its span in one ffmpeg (one decode per part),
  otherwise each rung's parts are jobs of their own.

An explicit ``parts`` (asked for by the submitter) wins over the planner's choice of parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mediarunner.media.parts import effective_parts

__all__ = ["LadderLayout", "choose_layout", "rung_cost"]


@dataclass(frozen=True)
class LadderLayout:
    parts: int  # time parts per rung (1: whole rungs)
    combined: bool  # every rung in one ffmpeg: by this job (parts == 1), or by each part job (split)
    workers: int  # the workers the layout counts on: this one + the idle slots (0: unknown)
    reason: str  # one line for the job's log and result

    @property
    def kind(self) -> str:
        return "split" if self.parts > 1 else "combined" if self.combined else "fan-out"


def rung_cost(width: int | None, height: int | None) -> float:
    """Relative encoding cost of a rung: its pixels per frame (x264's time grows about linearly
    with the picture area at a fixed preset). An audio-only rung costs next to nothing."""
    return float((width or 0) * (height or 0)) or 1.0


def _auto_parts(workers: int, costs: Sequence[float]) -> int:
    """Parts per rung that keep ``workers`` busy: the biggest piece (a part of the top rung) no
    bigger than a worker's fair share of the whole ladder; at least 2 once a second worker is idle."""
    total, top = sum(costs), max(costs)
    return max(2, math.ceil(workers * top / total - 1e-9))


def choose_layout(duration: float, costs: Sequence[float], idle_slots: int | None, *, parts: int | None,
                  max_parts: int, min_part_seconds: float, segment_seconds: float, can_combine: bool,
                  can_split: bool = True) -> LadderLayout:
    """The layout of one ladder (see the module docstring).

    ``costs``: :func:`rung_cost` of each planned rung; ``idle_slots``: free job slots of the queue's
    other runners minus the jobs already waiting there (None: unknown, e.g. on a remote runner:
    the layout before the planner, fan-out, is kept); ``parts``: the submitter's explicit split
    (None: the planner decides, at most ``max_parts``); ``can_combine``: whether this ladder may be
    encoded in one ffmpeg (software encoders, no cover image, first attempt); ``can_split``:
    whether its rungs may be split (the children were created for it)."""
    if not costs:
        return LadderLayout(1, False, 0, "nothing to encode")
    workers = 0 if idle_slots is None else 1 + max(0, idle_slots)
    fit = {"min_part_seconds": min_part_seconds, "segment_seconds": segment_seconds}
    if parts is not None:
        n = effective_parts(duration, parts, **fit) if can_split and parts > 1 else 1
        why = f"{parts} part(s) asked for" + (f", {n} fit a {duration:.1f}s video" if n != parts else "")
    elif workers > 1 and can_split:
        want = min(_auto_parts(workers, costs), max_parts)
        n = effective_parts(duration, want, **fit) if want > 1 else 1
        why = (f"{workers - 1} other idle slot(s): {n} part(s) per rung" if n > 1 else
               f"{workers - 1} other idle slot(s), but a {duration:.1f}s video is too short to split "
               f"(parts of at least {min_part_seconds:g}s)")
    else:
        n = 1
        why = "idle capacity unknown" if workers == 0 else \
            "no other idle slot" if workers == 1 else "splitting not possible"
    if n > 1:
        together = can_combine and len(costs) > 1
        return LadderLayout(n, together, workers, why + ("; each part job encodes every rung in one ffmpeg"
                                                         if together else ""))
    if workers == 1 and can_combine and len(costs) > 1:
        return LadderLayout(1, True, workers, f"{why}: all {len(costs)} rungs in one ffmpeg (one decode)")
    return LadderLayout(1, False, workers, why)
