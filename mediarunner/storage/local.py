"""Path safety for user-supplied locations, and atomic publishing of results.

Readers of an output directory must never see a half-written file, nor a playlist whose
segments are not there yet: every file goes through a hidden temporary sibling and
``os.replace``, and playlists are published last.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from mediarunner.errors import InsufficientResourcesError, InvalidOutputError
from mediarunner.storage.layout import DEFAULT_LAST, publish_order, tree_files

__all__ = [
    "check_free_space",
    "file_sha256",
    "free_bytes",
    "publish_file",
    "publish_tree",
    "remove_quietly",
]


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Some filesystems refuse fsync on a directory: that only
    # weakens durability after a crash, never what a reader sees.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_sibling(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}.tmp")


def _sweep_stale_temps(dst: Path) -> None:
    """Remove temp siblings of ``dst`` left by writers that died before their rename (a killed
    worker). Only the current attempt publishes a given file, so any other temp is stale."""
    for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*.tmp"):
        remove_quietly(stale)


def publish_file(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` atomically: readers see the old file, or all of the new one.

    ``src`` is consumed: it is renamed when it lives on the same filesystem as ``dst`` and
    copied (then removed) otherwise.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir():
        raise InvalidOutputError(f"cannot publish over a directory: {dst}")
    with open(src, "rb") as f:  # data written by ffmpeg is not necessarily on disk yet
        os.fsync(f.fileno())
    try:
        os.replace(src, dst)  # same filesystem: the rename is the atomic step
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = _temp_sibling(dst)
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
                fout.flush()
                os.fsync(fout.fileno())
            shutil.copymode(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            remove_quietly(tmp)
            raise
        remove_quietly(src)
    _sweep_stale_temps(dst)
    _fsync_dir(dst.parent)


def publish_tree(src_dir: Path, dst_dir: Path, *, last: Sequence[str] = DEFAULT_LAST) -> list[Path]:
    """Publish every regular file under ``src_dir`` to the same place under ``dst_dir``.

    Files matching ``last`` (playlists, manifests) go after all the others, each playlist after
    those it references (see :func:`~mediarunner.storage.layout.publish_order`), so a reader never
    sees a playlist whose segments or variants are missing. ``src_dir``'s files are consumed.
    Returns destinations in order.
    """
    if not src_dir.is_dir():
        raise FileNotFoundError(f"not a directory: {src_dir}")
    published = []
    for rel in publish_order(src_dir, tree_files(src_dir), last):
        dst = dst_dir / rel
        publish_file(src_dir / rel, dst)
        published.append(dst)
    return published


def remove_quietly(path: Path) -> None:
    """Remove a file, symlink or directory tree; a missing path is fine."""
    with contextlib.suppress(OSError):
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or would hold it: its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(directory: Path, min_free_mb: float) -> None:
    """Raise InsufficientResourcesError when the disk holding ``directory`` has < ``min_free_mb`` free."""
    free_mb = free_bytes(directory) / 2**20
    if free_mb < min_free_mb:
        raise InsufficientResourcesError(
            f"only {free_mb:.0f} MiB free under {directory}, need at least {min_free_mb:.0f} MiB"
        )


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
