"""The remote store (fsspec): ``s3://bucket/key``, ``sftp://host[:port]/path``, ``ftp://host[:port]/path``.

Pure library (no Celery, no SQL). Endpoints and credentials come from the settings (see
:mod:`~mediarunner.storage.openers`); retries and error mapping from
:mod:`~mediarunner.storage.connection`.

Publishing never shows a reader a partial file: on SFTP and FTP each file is written under a
hidden temporary name in its destination directory, then renamed over the final name; on S3 (no
rename) objects are put under their final keys (a PUT is atomic). Playlists and manifests go last.
"""

from __future__ import annotations

import logging
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediarunner.config.settings import Settings
from mediarunner.errors import InvalidInputError, InvalidOutputError, MediarunnerError, ProcessingError
from mediarunner.models.locations import Direction, Location
from mediarunner.storage import transfer
from mediarunner.storage.connection import Connection
from mediarunner.storage.layout import DEFAULT_LAST, Published, publish_order, safe_name, tree_files
from mediarunner.storage.local import check_free_space
from mediarunner.storage.transfer import Meter, Report, download

__all__ = ["RemoteStore"]

log = logging.getLogger(__name__)


@dataclass
class _Upload:
    src: Path
    dst: str  # fsspec path


class RemoteStore:
    """A remote location (a directory, or a file) reached through fsspec."""

    local_path: Path | None = None  # nothing here can be written in place

    def __init__(self, location: Location, settings: Settings, report: Report | None = None) -> None:
        self.location = location
        self.settings = settings
        self.report = report  # told the bytes moved as transfers go (see storage.transfer)

    @contextmanager
    def _connection(self, loc: Location, direction: Direction) -> Iterator[Connection]:
        conn = Connection(self.settings, loc, direction)
        try:
            yield conn
        finally:
            conn.close()

    # ----------------------------------------------------------------------------------- reading

    def stage_in(self, scratch: Path, rel: str = "") -> Path:
        """Download the object at ``rel`` into ``scratch`` (a temporary name, then a rename)."""
        return self._download(self.location.join(rel), Path(scratch))

    def fetch(self, rel: str, scratch: Path) -> Path:
        """An earlier output ``rel`` back into ``scratch``."""
        return self._download(self.location.join(rel), Path(scratch))

    def _download(self, loc: Location, scratch: Path) -> Path:
        base = posixpath.basename(loc.path.rstrip("/"))
        if not base:
            raise InvalidInputError(f"input {loc.scheme}://{loc.host}{loc.path} names no file")
        scratch.mkdir(parents=True, exist_ok=True)
        digest = uuid.uuid5(uuid.NAMESPACE_URL, loc.url).hex[:10]
        dest = scratch / f"{digest}-{safe_name(base)}"
        tmp = scratch / f".{dest.name}.part-{uuid.uuid4().hex[:8]}"
        what = f"stage in {loc.url_for(loc.fs_path)}"
        with self._connection(loc, "input") as conn:
            info = conn.run(what, lambda fs: fs.info(loc.fs_path))
            if info.get("type") != "file":
                raise InvalidInputError(f"{what}: not a file (it is a {info.get('type', 'unknown')})")
            size = info.get("size")
            if isinstance(size, int) and size > 0:
                check_free_space(scratch, size / 2**20 + 64)
            meter = Meter(self.report, size if isinstance(size, int) else None)
            conn.run(what, _downloader(loc, tmp, size, meter))
        os.replace(tmp, dest)
        return dest

    def presign(self, seconds: int, rel: str = "") -> str | None:
        """A URL that reads the object at ``rel`` for ``seconds`` without credentials (S3 only:
        None elsewhere), after checking it is a file."""
        loc = self.location.join(rel)
        if loc.scheme != "s3":
            return None
        what = f"presign {loc.url_for(loc.fs_path)}"
        with self._connection(loc, "input") as conn:
            info = conn.run(what, lambda fs: fs.info(loc.fs_path))
            if info.get("type") != "file":
                raise InvalidInputError(f"{what}: not a file (it is a {info.get('type', 'unknown')})")
            return str(conn.run(what, lambda fs: fs.sign(loc.fs_path, expiration=seconds)))

    def list_files(self, rel: str = "") -> list[str]:
        """Relative paths of the files under ``rel`` (none when it does not exist)."""
        loc = self.location.join(rel)
        root = _norm(loc, loc.fs_path)

        def find(fs: Any) -> list[str]:
            try:
                found = fs.find(loc.fs_path)
            except FileNotFoundError:
                return []
            return sorted(posixpath.relpath(_norm(loc, p), root) for p in found)

        with self._connection(loc, "output") as conn:
            return conn.run(f"list {loc.url}", find)

    def free_space(self) -> int | None:
        """Unknown for remote stores."""
        return None

    # ----------------------------------------------------------------------------------- writing

    def remove(self, rel: str = "") -> None:
        """Delete the file or directory tree at ``rel`` (intermediate outputs); a missing one is fine."""
        loc = self.location.join(rel)

        def rm(fs: Any) -> None:
            with suppress(FileNotFoundError):
                fs.rm(loc.fs_path, recursive=True)

        with self._connection(loc, "output") as conn:
            conn.run(f"remove {loc.url_for(loc.fs_path)}", rm)

    def publish(self, local: Path, rel: str = "", *, last: Sequence[str] = DEFAULT_LAST) -> list[Published]:
        """Upload a file or a directory tree to ``rel`` so that readers never see partial output.

        * A file goes to ``rel`` itself, or under it with its own name when the location ends with "/".
        * A directory's files go under ``rel`` keeping their relative paths; ``last`` ones go last.
        * On failure (after retries) the files this call newly created are deleted, best effort, and
          the error is raised (StorageError when transient). ``local`` stays where it is.
        """
        loc = self.location.join(rel)
        local = Path(local)
        if not local.exists():
            raise ProcessingError(f"nothing to publish: {local} does not exist")
        if loc.scheme == "s3" and not loc.host:
            raise InvalidOutputError("s3:// destination without a bucket")
        uploads, scan_root = _plan(local, loc, last)
        if uploads:
            self._upload_all(loc, uploads, scan_root)
        return [Published(u.src, loc.url_for(u.dst)) for u in uploads]

    def _upload_all(self, loc: Location, uploads: Sequence[_Upload], scan_root: str | None) -> None:
        meter = Meter(self.report, sum(u.src.stat().st_size for u in uploads))
        with self._connection(loc, "output") as conn:
            existing = _existing(conn, uploads, scan_root)
            done: list[_Upload] = []
            try:
                if loc.scheme != "s3":
                    for d in sorted({posixpath.dirname(u.dst) for u in uploads}):
                        if d and d not in ("/", "."):
                            conn.run(f"create {loc.url_for(d)}", _makedirs(d))
                for up in uploads:
                    _upload_one(conn, loc, up, meter)
                    meter.file_done(up.src.stat().st_size)
                    done.append(up)
            except BaseException:
                _rollback(conn, loc, [u.dst for u in done if u.dst not in existing])
                raise


# ------------------------------------------------------------------------------------------ steps


def _downloader(loc: Location, tmp: Path, size: Any, meter: Meter) -> Callable[[Any], None]:
    def run(fs: Any) -> None:
        try:
            download(fs, loc.scheme, loc.fs_path, tmp, meter)
            got = tmp.stat().st_size
            if isinstance(size, int) and got != size:
                raise ConnectionError(f"short transfer: {got} of {size} bytes")
            meter.file_done(got)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    return run


def _plan(local: Path, loc: Location, last: Sequence[str]) -> tuple[list[_Upload], str | None]:
    """The uploads of a publish, in order, and the destination directory to scan (a tree) or None."""
    if local.is_dir():
        dst_root = loc.fs_path.rstrip("/")
        ordered = publish_order(local, tree_files(local), last)
        return [_Upload(local / rel, posixpath.join(dst_root, rel)) for rel in ordered], dst_root
    if loc.url.endswith("/") or (loc.scheme == "s3" and not loc.path):
        return [_Upload(local, posixpath.join(loc.fs_path, local.name))], None
    return [_Upload(local, loc.fs_path)], None


def _norm(loc: Location, path: str) -> str:
    return "/" + path.strip("/") if loc.scheme in ("sftp", "ftp") else path.strip("/")


def _existing(conn: Connection, uploads: Sequence[_Upload], scan_root: str | None) -> set[str]:
    """Destination files already present (a failed publish must not delete what it overwrote)."""
    loc = conn.loc
    if scan_root is None:

        def probe(fs: Any) -> set[str]:
            return {uploads[0].dst} if fs.exists(uploads[0].dst) else set()

        return conn.run(f"inspect {loc.url_for(uploads[0].dst)}", probe)

    def scan(fs: Any) -> set[str]:
        try:
            found = fs.find(scan_root)
        except FileNotFoundError:
            return set()
        norm = {_norm(loc, p) for p in found}
        return {u.dst for u in uploads if _norm(loc, u.dst) in norm}

    return conn.run(f"list {loc.url_for(scan_root)}", scan)


def _upload_one(conn: Connection, loc: Location, up: _Upload, meter: Meter) -> None:
    what = f"publish {loc.url_for(up.dst)}"
    if loc.scheme == "s3":
        conn.run(what, lambda fs: transfer.upload(fs, loc.scheme, up.src, up.dst, meter))
        return
    directory, name = posixpath.split(up.dst)
    tmp = posixpath.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")

    def put_and_rename(fs: Any) -> None:
        try:
            transfer.upload(fs, loc.scheme, up.src, tmp, meter)
            _replace(fs, loc.scheme, tmp, up.dst)
        except BaseException:
            _discard(fs, tmp)
            raise

    conn.run(what, put_and_rename)


def _discard(fs: Any, path: str) -> None:
    """Best effort removal of a temporary upload (the connection may be dead)."""
    try:
        fs.rm_file(path)
    except Exception:
        log.debug("could not remove temporary %s", path, exc_info=True)


def _rollback(conn: Connection, loc: Location, created: Sequence[str]) -> None:
    """Delete files this publish created, best effort: one attempt, no retries."""
    if not created:
        return
    try:
        conn.run("rollback", lambda fs: None, retries=0)
    except MediarunnerError:
        log.warning("publish to %s failed; cannot reconnect to remove %d file(s)", loc.url, len(created))
        return
    for path in reversed(created):
        try:
            conn.run(f"remove {loc.url_for(path)}", _rm_file(path), retries=0)
        except MediarunnerError:
            log.warning("publish rollback: could not remove %s", loc.url_for(path))


def _makedirs(path: str) -> Callable[[Any], None]:
    def step(fs: Any) -> None:
        fs.makedirs(path, exist_ok=True)

    return step


def _rm_file(path: str) -> Callable[[Any], None]:
    def step(fs: Any) -> None:
        fs.rm_file(path)

    return step


def _replace(fs: Any, scheme: str, src: str, dst: str) -> None:
    """Rename ``src`` over ``dst`` (atomically where the protocol allows)."""
    if scheme == "ftp":
        import ftplib

        try:
            fs.mv(src, dst)
        except ftplib.error_perm:
            # Some servers refuse RNTO onto an existing file: remove it first (not atomic, but the
            # window is one round trip and the new file is complete).
            with suppress(ftplib.error_perm):
                fs.ftp.delete(fs._strip_protocol(dst))
            fs.mv(src, dst)
        return
    fs.mv(src, dst)
