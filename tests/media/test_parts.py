"""Time parts of a split rendition: on the segment grid, covering the video exactly once."""

from __future__ import annotations

import itertools

import pytest

from mediarunner.errors import ValidationError
from mediarunner.media.parts import MAX_PARTS, effective_parts, part_span


@pytest.mark.parametrize("duration, requested, min_part, expected", [
    (300.0, 4, 60.0, 4),   # a 5-minute video, 4 parts asked: 4
    (300.0, 8, 60.0, 5),   # no part shorter than a minute
    (30.0, 4, 60.0, 1),    # too short to split
    (10.0, 8, 1.0, 3),     # 3 segments of 4 s (the last one short): at most 3 parts
    (1000.0, 500, 1.0, MAX_PARTS),
    (300.0, 1, 60.0, 1),
])  # fmt: skip
def test_effective_parts(duration: float, requested: int, min_part: float, expected: int) -> None:
    assert effective_parts(duration, requested, min_part_seconds=min_part, segment_seconds=4.0) == expected


@pytest.mark.parametrize("duration, parts", [(300.0, 4), (301.5, 4), (30.0, 7), (9.0, 3), (4.0, 1), (127.3, 5)])
def test_parts_tile_the_video_on_the_segment_grid(duration: float, parts: int) -> None:
    seg = 4.0
    spans = [part_span(duration, i, parts, segment_seconds=seg) for i in range(parts)]
    assert spans[0][0] == 0.0 and spans[-1][1] is None  # from the start, the last one to the end
    for (start, length), (nxt, _) in itertools.pairwise(spans):
        assert length is not None and length > 0 and length % seg == 0 and start % seg == 0
        assert start + length == nxt  # no gap, no overlap
    lengths = [ln for _, ln in spans[:-1]] + [duration - spans[-1][0]]
    assert max(lengths) - min(lengths) <= seg + 1e-9  # as even as whole segments allow
    assert spans[-1][0] < duration


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValidationError):
        part_span(8.0, 3, 3, segment_seconds=4.0)
    with pytest.raises(ValidationError):
        part_span(8.0, 0, 3, segment_seconds=4.0)  # 3 parts of 2 segments
    with pytest.raises(ValidationError):
        effective_parts(10.0, 0, min_part_seconds=1.0, segment_seconds=4.0)
