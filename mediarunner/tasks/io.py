"""Where a handler's files come from and where they go: stage inputs, publish outputs.

Every handler goes through these two doors, so each of them works with every location:

* local paths and ``file://`` URLs: inputs are read in place (checked against ``input_roots``);
  outputs are published under ``output_roots`` with atomic renames (playlists last);
* ``s3://``, ``sftp://``, ``ftp://``: inputs are downloaded into the attempt's scratch directory;
  outputs are uploaded by :class:`~mediarunner.storage.remote.Storage` (temporary name then
  rename; on S3 one atomic PUT per object, playlists and manifests last), with transfer retries.

Credentials and endpoints come from the worker's settings, never from URLs or task messages.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from mediarunner.config import Settings
from mediarunner.errors import InvalidOutputError, JobCancelled, StorageError
from mediarunner.models.enums import Stage
from mediarunner.models.locations import join_location, resolve_local_path
from mediarunner.storage.local import publish_file, publish_tree
from mediarunner.storage.remote import Storage, StorageConfig, check_free_space, is_local, parse_location
from mediarunner.tasks.context import JobContext

__all__ = [
    "Published",
    "check_output",
    "ensure_scratch_space",
    "join_location",
    "publish_output",
    "publish_text",
    "stage_input",
    "storage_config",
]

#: Published after everything else (a reader following a playlist never meets a missing file).
LAST = ("*.m3u8", "manifest.json")


@dataclass(frozen=True)
class Published:
    """One published file: where readers find it, and a local copy of its bytes (for size/checksum)."""

    local: Path  # the destination itself for local outputs; the scratch original for remote ones
    location: str  # absolute path or URL


def storage_config(settings: Settings) -> StorageConfig:
    """The storage library's view of the worker settings."""
    return StorageConfig(
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key,
        s3_session_token=settings.s3_session_token,
        sftp_credentials=settings.sftp_credentials,
        sftp_known_hosts=settings.sftp_known_hosts,
        sftp_host_key_policy=settings.sftp_host_key_policy,
        ftp_credentials=settings.ftp_credentials,
        ftp_tls=settings.ftp_tls,
        input_roots=settings.input_roots,
        output_roots=settings.output_roots,
        transfer_retries=settings.transfer_retries,
        transfer_backoff_seconds=settings.transfer_backoff_seconds,
        transfer_backoff_max_seconds=settings.transfer_backoff_max_seconds,
        transfer_timeout_seconds=settings.transfer_timeout_seconds,
    )


def _storage(ctx: JobContext) -> Storage:
    return Storage(storage_config(ctx.settings))


def ensure_scratch_space(ctx: JobContext) -> None:
    """Refuse the job (InsufficientResourcesError, transient: another worker takes it) on a full disk."""
    check_free_space(ctx.scratch, ctx.settings.min_free_scratch_mb)


def stage_input(ctx: JobContext, url: str) -> Path:
    """A local file with the bytes of ``url``: local inputs in place, remote ones copied into scratch."""
    if ctx.stage is not Stage.DOWNLOADING:
        ctx.set_stage(Stage.DOWNLOADING)
    ensure_scratch_space(ctx)
    path = _storage(ctx).stage_in(url, ctx.scratch / "inputs")
    if not is_local(url):
        ctx.log(f"staged {path.stat().st_size} bytes from {url}")
    return path


def check_output(ctx: JobContext, output: str) -> None:
    """Fail fast (permanently) on an output that could never be published, before any encoding."""
    if is_local(output):
        resolve_local_path(output, ctx.settings.output_roots, what="output")
    else:
        parse_location(output, "output")


def publish_output(ctx: JobContext, local: Path, output: str, rel: str = "") -> list[Published]:
    """Publish a scratch file or directory tree at ``output``/``rel`` so readers never see partial files.

    A directory keeps its relative layout; playlists go last. Local sources may be consumed (renamed
    into place); remote publishes leave them in scratch. Raises JobCancelled when the job was
    cancelled meanwhile, before anything becomes visible.
    """
    if ctx.stage is not Stage.UPLOADING:
        ctx.set_stage(Stage.UPLOADING)
    if ctx.should_cancel():  # last fence before anything becomes visible
        raise JobCancelled("cancelled before publishing")
    if is_local(output):
        base = resolve_local_path(output, ctx.settings.output_roots, what="output")
        dst = base / rel if rel else base
        if local.is_dir():
            return [Published(p, str(p)) for p in publish_tree(local, dst, last=LAST)]
        if dst.is_dir():
            raise InvalidOutputError(f"cannot publish a file over the directory {dst}")
        publish_file(local, dst)
        return [Published(dst, str(dst))]
    url = join_location(output, rel)
    files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
    _storage(ctx).publish(local, url, last=LAST)
    if not local.is_dir():
        return [Published(local, url)]
    return [Published(p, join_location(url, p.relative_to(local).as_posix())) for p in files]


def publish_text(ctx: JobContext, text: str, output: str, rel: str) -> Published:
    """Publish a small generated file (a master playlist, a manifest) at ``output``/``rel``."""
    staging = ctx.scratch / "generated"
    staging.mkdir(parents=True, exist_ok=True)
    src = staging / posixpath.basename(rel)
    src.write_text(text, encoding="utf-8")
    if is_local(output):
        dst = resolve_local_path(output, ctx.settings.output_roots, what="output") / rel
        publish_file(src, dst)
        return Published(dst, str(dst))
    url = join_location(output, rel)
    _storage(ctx).publish(src, url, last=LAST)
    return Published(src, url)


def fetch_output(ctx: JobContext, output: str, rel: str) -> Path:
    """A local file with the bytes of an earlier job's output ``output``/``rel`` (intermediate
    files other workers published there, such as the parts of a split rendition)."""
    if is_local(output):
        path = resolve_local_path(output, ctx.settings.output_roots, what="output") / rel
        if not path.is_file():  # transient: whoever removed it may have finished the work meanwhile
            raise StorageError(f"{path} is missing")
        return path
    ensure_scratch_space(ctx)
    return _storage(ctx).stage_in(join_location(output, rel), ctx.scratch / "fetched")


def remove_output(ctx: JobContext, output: str, rel: str) -> None:
    """Delete ``output``/``rel`` (a file or a directory tree of intermediate files); gone is fine."""
    _storage(ctx).remove(join_location(output, rel))
    if is_local(output):  # and the directories that held only it (object stores have none)
        base = resolve_local_path(output, ctx.settings.output_roots, what="output")
        for parent in (base / rel).parents:
            if parent == base or base not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: another job's files are there
                break
