"""What a publish produces and in which order its files appear (shared by every store).

Pure: no Celery, no SQL, no network.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONTENT_TYPES", "DEFAULT_LAST", "Published", "publish_order", "safe_name", "tree_files"]

#: Files published after everything else, in this order (a reader that follows them never meets a
#: missing object): playlists, then manifests.
DEFAULT_LAST: tuple[str, ...] = ("*.m3u8", "manifest.json")

#: Content types set on S3 uploads (mimetypes maps ``.ts`` to Qt's linguist files).
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m3u": "audio/mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".png": "image/png",
}


@dataclass(frozen=True)
class Published:
    """One published file: where readers find it, and a local copy of its bytes (for size/checksum)."""

    local: Path  # the destination itself for local stores; the scratch original for remote ones
    location: str  # absolute path or URL


def safe_name(name: str) -> str:
    """A file name made of safe characters only (for scratch copies of remote objects)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[-120:] or "input"


def tree_files(root: Path) -> list[str]:
    """Relative (posix) paths of the regular files under ``root``; symlinks are not followed."""
    out: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                out.append(full.relative_to(root).as_posix())
    return sorted(out)


def _fnmatch_any(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(posixpath.basename(rel), pattern) or fnmatch.fnmatchcase(rel, pattern)


_URI_ATTR = re.compile(r'URI="([^"]+)"')


def _playlist_refs(path: Path, rel: str) -> set[str]:
    """Relative paths (from the tree root) a local HLS playlist refers to."""
    if path.suffix.lower() not in (".m3u8", ".m3u"):
        return set()
    try:
        if path.stat().st_size > 16 * 2**20:
            return set()
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    base = posixpath.dirname(rel)
    refs: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        uris = _URI_ATTR.findall(line) if line.startswith("#") else ([line] if line else [])
        for uri in uris:
            if "://" in uri or uri.startswith("/"):
                continue
            refs.add(posixpath.normpath(posixpath.join(base, uri.split("?")[0])))
    return refs


def publish_order(root: Path | None, rel_paths: Sequence[str], last: Sequence[str] = DEFAULT_LAST) -> list[str]:
    """Order files for publishing: ordinary files first (sorted), then files matching ``last``.

    Files matching ``last`` come in the order of the patterns; within that, a playlist comes after
    every playlist it references (read from ``root`` when given), then deeper paths first (variant
    playlists before the master), then by name.
    """
    group: dict[str, int] = {}
    first: list[str] = []
    for rel in rel_paths:
        idx = next((i for i, pat in enumerate(last) if _fnmatch_any(rel, pat)), None)
        if idx is None:
            first.append(rel)
        else:
            group[rel] = idx
    first.sort()

    def priority(rel: str) -> tuple[int, int, str]:
        return (group[rel], -rel.count("/"), rel)

    deps: dict[str, set[str]] = {rel: set() for rel in group}
    if root is not None:
        for rel in group:
            deps[rel] = {r for r in _playlist_refs(root / rel, rel) if r in group and r != rel}
    ordered: list[str] = []
    pending = set(group)
    while pending:
        ready = [r for r in pending if not (deps[r] & pending)]
        pick = min(ready or pending, key=priority)  # a reference cycle falls back to priority
        ordered.append(pick)
        pending.remove(pick)
    return first + ordered
