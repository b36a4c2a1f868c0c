"""ffprobe-based assertions on produced outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def streams(path: Path, kind: str) -> list[dict[str, Any]]:
    return [s for s in ffprobe(path)["streams"] if s["codec_type"] == kind]


def duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def master_variants(master: Path) -> list[tuple[str, str]]:
    """(STREAM-INF attributes, uri) pairs of a master playlist."""
    lines = [ln.strip() for ln in master.read_text().splitlines() if ln.strip()]
    assert lines[0] == "#EXTM3U"
    out = []
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:"):
            out.append((ln.split(":", 1)[1], lines[i + 1]))
    return out


def media_playlist_duration(playlist: Path) -> float:
    text = playlist.read_text()
    assert "#EXT-X-ENDLIST" in text
    total = 0.0
    for ln in text.splitlines():
        if ln.startswith("#EXTINF:"):
            total += float(ln.split(":", 1)[1].split(",", 1)[0])
            continue
        if ln and not ln.startswith("#"):
            assert (playlist.parent / ln).is_file(), f"missing segment {ln}"
    return total
