"""Where a handler's files come from and where they go: stage inputs, publish outputs.

Every handler goes through these doors, and they go through a :class:`~mediarunner.storage.store.Store`
opened on the location, so each of them works with every location the store supports (local
paths and ``file://`` URLs under the roots; ``s3://``, ``sftp://``, ``ftp://``). Credentials and
endpoints come from the worker's settings, never from URLs or task messages.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from mediarunner.models.enums import Stage
from mediarunner.models.locations import join_location
from mediarunner.storage.local import check_free_space
from mediarunner.storage.store import Published, Store
from mediarunner.tasks.context import JobContext

__all__ = [
    "Published",
    "check_output",
    "discard_after_completion",
    "ensure_scratch_space",
    "fetch_output",
    "join_location",
    "output_store",
    "publish_output",
    "publish_text",
    "remove_output",
    "stage_input",
]


def output_store(ctx: JobContext, output: str, *, moving: str | None = None) -> Store:
    """The store of an output location (checked against the roots and scheme rules). ``moving``:
    the direction of the transfer it is opened for, shown as the job's progress while it runs."""
    return ctx.open_store(output, "output", ctx.transfer_report(moving) if moving else None)


def ensure_scratch_space(ctx: JobContext) -> None:
    """Refuse the job (InsufficientResourcesError, transient: another worker takes it) on a full disk."""
    check_free_space(ctx.scratch, ctx.settings.min_free_scratch_mb)


def stage_input(ctx: JobContext, url: str) -> Path:
    """A local file with the bytes of ``url``: local inputs in place, remote ones copied into scratch."""
    if ctx.stage is not Stage.DOWNLOADING:
        ctx.set_stage(Stage.DOWNLOADING)
    ensure_scratch_space(ctx)
    path = ctx.open_store(url, "input", ctx.transfer_report("download")).stage_in(ctx.scratch / "inputs")
    if path.is_relative_to(ctx.scratch):
        ctx.log(f"staged {path.stat().st_size} bytes from {url}")
    return path


def check_output(ctx: JobContext, output: str) -> None:
    """Fail fast (permanently) on an output that could never be published, before any encoding."""
    output_store(ctx, output)


def publish_output(ctx: JobContext, local: Path, output: str, rel: str = "") -> list[Published]:
    """Publish a scratch file or directory tree at ``output``/``rel`` so readers never see partial files.

    A directory keeps its relative layout; playlists go last. Sources may be consumed (renamed
    into place). Raises JobCancelled (StaleAttemptError) when the job was cancelled (this attempt
    superseded) meanwhile, before anything becomes visible.
    """
    if ctx.stage is not Stage.UPLOADING:
        ctx.set_stage(Stage.UPLOADING)
    store = output_store(ctx, output, moving="upload")
    ctx.fence()  # last fence before anything becomes visible
    return store.publish(local, rel)


def publish_text(ctx: JobContext, text: str, output: str, rel: str = "", *, fence: bool = True) -> Published:
    """Publish a small generated file (a master playlist, a manifest, subtitles) at ``output``/``rel``.
    ``fence=False`` only where the caller is fenced already (a finalize step inside the completion
    transaction, see ``Lease.finalize_in_completion``)."""
    staging = ctx.scratch / "generated"
    staging.mkdir(parents=True, exist_ok=True)
    src = staging / (posixpath.basename(rel) or posixpath.basename(output.rstrip("/")) or "output.txt")
    src.write_text(text, encoding="utf-8")
    store = output_store(ctx, output)
    if fence:
        ctx.fence()
    (published,) = store.publish(src, rel)
    return published


def fetch_output(ctx: JobContext, output: str, rel: str) -> Path:
    """A local file with the bytes of an earlier output ``output``/``rel`` (intermediate files other
    workers published there, such as the parts of a split rendition or the audio to transcribe)."""
    store = output_store(ctx, output, moving="download")
    ensure_scratch_space(ctx)
    return store.fetch(rel, ctx.scratch / "fetched")


def remove_output(ctx: JobContext, output: str, rel: str) -> None:
    """Delete ``output``/``rel`` (a file or a directory tree of intermediate files); gone is fine.
    Fenced: a superseded attempt never deletes what the live one works with."""
    store = output_store(ctx, output)
    ctx.fence()
    store.remove(rel)


def discard_after_completion(ctx: JobContext, output: str, rel: str) -> None:
    """Delete intermediate files once this attempt's completion is recorded (an ``Outcome.cleanup``):
    only the attempt that completed the work may remove what it was made from."""
    output_store(ctx, output).remove(rel)
