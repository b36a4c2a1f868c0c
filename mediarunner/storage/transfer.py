"""Moving one file's bytes to or from a remote filesystem, reporting progress as they move.

fsspec's SFTP and FTP filesystems ignore progress callbacks, so each scheme uses the call that
reports: paramiko's ``get``/``put`` callbacks (SFTP), ``retrbinary``/``storbinary`` blocks (FTP),
and an fsspec :class:`~fsspec.callbacks.Callback` (S3). Pure library: no Celery, no SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fsspec.callbacks import Callback

from mediarunner.storage.layout import CONTENT_TYPES

__all__ = ["Meter", "Report", "download", "upload"]

#: Told (bytes moved so far, bytes in all) as a transfer goes; the total is None when unknown.
Report = Callable[[int, int | None], None]


class Meter:
    """Bytes moved by one transfer (a file, or every file of a tree) across its files and retries."""

    def __init__(self, report: Report | None, total: int | None) -> None:
        self.report, self.total = report, total
        self.finished = 0  # bytes of the files already moved
        self.current = 0  # bytes of the file moving now (a retry starts it again from 0)

    def file_progress(self, done: int) -> None:
        self.current = done
        if self.report is not None:
            self.report(self.finished + done, self.total)

    def file_done(self, size: int) -> None:
        self.finished += size
        self.current = 0
        if self.report is not None:
            self.report(self.finished, self.total)


class _FsspecCallback(Callback):
    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def call(self, *args: Any, **kwargs: Any) -> None:
        self.meter.file_progress(int(self.value or 0))


def _counting(meter: Meter, sink: Callable[[bytes], Any] | None = None) -> Callable[[bytes], None]:
    def block(data: bytes) -> None:
        if sink is not None:
            sink(data)
        meter.file_progress(meter.current + len(data))

    return block


def download(fs: Any, scheme: str, src: str, dst: Path, meter: Meter) -> None:
    """Copy the remote file ``src`` to the local path ``dst``."""
    meter.file_progress(0)
    if scheme == "sftp":
        fs.ftp.get(src, str(dst), callback=lambda done, _total: meter.file_progress(int(done)))
    elif scheme == "ftp":
        with open(dst, "wb") as out:
            fs.ftp.retrbinary(f"RETR {src}", _counting(meter, out.write), blocksize=fs.blocksize)
    else:
        fs.get_file(src, str(dst), callback=_FsspecCallback(meter))


def upload(fs: Any, scheme: str, src: Path, dst: str, meter: Meter) -> None:
    """Copy the local file ``src`` to ``dst`` (its directory exists) in as few round trips as possible."""
    meter.file_progress(0)
    if scheme == "sftp":  # paramiko checks the remote size afterwards
        fs.ftp.put(str(src), dst, callback=lambda done, _total: meter.file_progress(int(done)))
    elif scheme == "ftp":
        with open(src, "rb") as f:
            fs.ftp.storbinary(f"STOR {dst}", f, blocksize=fs.blocksize, callback=_counting(meter))
        fs.invalidate_cache(fs._parent(dst))
    else:  # s3: one PUT (or a multipart upload) under the final key; both appear atomically
        content_type = CONTENT_TYPES.get(src.suffix.lower())
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        fs.put_file(str(src), dst, callback=_FsspecCallback(meter), **extra)
