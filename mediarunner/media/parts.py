"""Splitting one rendition of a long video into time parts that several workers encode at once.

Parts are cut on the HLS segment grid (multiples of ``segment_seconds``): every part starts with
a keyframe the joined stream needs anyway, so joining the parts (stream copy) gives the same
keyframes and segments as one encode would. Pure functions: no ffmpeg, no jobs.
"""

from __future__ import annotations

import math

from mediarunner.errors import ValidationError
from mediarunner.models.payloads import MAX_PARTS


def effective_parts(duration: float, requested: int, *, min_part_seconds: float, segment_seconds: float) -> int:
    """How many parts a ``duration``-second video is really split into when ``requested`` are
    asked for: none shorter than ``min_part_seconds`` and none without a whole segment."""
    if requested < 1 or segment_seconds <= 0:
        raise ValidationError("parts must be >= 1 and segment_seconds > 0")
    segments = max(1, math.ceil(duration / segment_seconds - 1e-9))
    by_length = math.floor(duration / min_part_seconds) if min_part_seconds > 0 else requested
    return max(1, min(requested, segments, by_length, MAX_PARTS))


def part_span(duration: float, part: int, parts: int, *, segment_seconds: float) -> tuple[float, float | None]:
    """(start, length) in seconds of ``part`` (0-based) of ``parts``: whole segments, spread as
    evenly as they go; the last part runs to the end of the source (length None)."""
    if not 0 <= part < parts:
        raise ValidationError(f"part {part} is not in 0..{parts - 1}")
    segments = max(1, math.ceil(duration / segment_seconds - 1e-9))
    if parts > segments:
        raise ValidationError(f"{parts} parts of a {duration:.2f}s video with {segment_seconds:g}s segments")
    first, end = part * segments // parts, (part + 1) * segments // parts
    start = first * segment_seconds
    return start, None if part == parts - 1 else (end - first) * segment_seconds
