"""Small server-rendered SVG charts (no script, no styles beyond classes): a line and bars."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 240, 60, 4


def _points(values: Sequence[int]) -> list[tuple[float, float]]:
    top = max(max(values, default=0), 1)
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    return [(PAD + i * step, HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / top) for i, v in enumerate(values)]


def _frame(label: str, body: str, values: Sequence[int]) -> Markup:
    title = escape(f"{label}: {', '.join(str(v) for v in values)} (oldest first; max {max(values, default=0)})")
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
                  f'aria-label="{title}">'
                  f'<title>{title}</title><line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
                  f'y2="{HEIGHT - PAD}"/>{body}</svg>')


def sparkline(values: Sequence[int], label: str) -> Markup:
    """A polyline of ``values`` scaled to the chart's height."""
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in _points(values))
    return _frame(label, f'<polyline class="line" points="{pts}"/>', values)


def bars(values: Sequence[int], label: str) -> Markup:
    """One bar per value."""
    width = (WIDTH - 2 * PAD) / max(len(values), 1)
    top = max(max(values, default=0), 1)
    rects = []
    for i, v in enumerate(values):
        h = (HEIGHT - 2 * PAD) * v / top
        rects.append(f'<rect class="bar" x="{PAD + i * width + 1:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                     f'width="{max(width - 2, 1):.1f}" height="{h:.1f}"/>')
    return _frame(label, "".join(rects), values)
