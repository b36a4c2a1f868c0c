"""A tiny, strict WebVTT / SRT parser for the tests (timestamps must be exactly right)."""

from __future__ import annotations

import re
from dataclasses import dataclass

VTT_TS = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
SRT_TS = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"


@dataclass
class Cue:
    start: float
    end: float
    text: str


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _cues(blocks: list[str], ts: str, numbered: bool) -> list[Cue]:
    timing = re.compile(rf"^{ts} --> {ts}$")
    cues = []
    for block in blocks:
        lines = block.split("\n")
        if numbered:
            assert lines[0].isdigit(), f"SRT cue must start with its number: {block!r}"
            assert int(lines[0]) == len(cues) + 1, "SRT cues must be numbered 1, 2, ..."
            lines = lines[1:]
        m = timing.match(lines[0])
        assert m, f"bad timing line {lines[0]!r}"
        g = m.groups()
        text = "\n".join(lines[1:])
        assert text.strip(), f"cue without text: {block!r}"
        cues.append(Cue(_seconds(*g[:4]), _seconds(*g[4:]), text))
    return cues


def parse_vtt(doc: str) -> list[Cue]:
    assert doc.startswith("WEBVTT"), "a WebVTT file must start with WEBVTT"
    head, _, body = doc.partition("\n\n")
    assert head.strip() == "WEBVTT"
    blocks = [b.strip("\n") for b in body.split("\n\n") if b.strip()]
    return _cues(blocks, VTT_TS, numbered=False)


def parse_srt(doc: str) -> list[Cue]:
    blocks = [b.strip("\n") for b in doc.split("\n\n") if b.strip()]
    return _cues(blocks, SRT_TS, numbered=True)


def assert_well_formed(cues: list[Cue], duration: float) -> None:
    last_end = 0.0
    for c in cues:
        assert 0.0 <= c.start <= c.end <= duration + 1e-9, (c, duration)
        assert c.start >= last_end - 1e-9, f"cues overlap or go backwards: {c}"
        last_end = c.end
