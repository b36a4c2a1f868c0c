"""http(s) inputs: one file downloaded into scratch with ``httpx``. Input-only: nothing is published.

* **Network allow-list.** The host must resolve to public addresses, or to addresses inside
  ``ALLOWED_NETWORKS`` (:func:`~mediarunner.models.networks.check_network_target`): checked at submit
  by the client and again here right before each connection (every retry).
* **Redirects are not followed.** A 3xx answer fails the job permanently, naming the status and
  the target's host, so that a public URL cannot bounce the worker to a private address. Submit
  the final URL instead.
* **Size cap.** ``HTTP_MAX_INPUT_BYTES``: a larger ``Content-Length`` (or ``Content-Range`` total)
  fails at once, and a body that grows past it while streaming too; both are permanent.
* **Timeouts and retries.** Connect and read timeouts are ``TRANSFER_TIMEOUT_SECONDS``. Connection
  errors, timeouts, 408/429 and 5xx answers are retried by
  :class:`~mediarunner.storage.connection.Connection` (``TRANSFER_RETRIES``, backoff, a fresh client).
* **Resume.** After a dropped connection the retry asks for the missing bytes only
  (``Range: bytes=N-``, with ``If-Range`` set to the validator of the first answer). A ``206`` whose
  ``Content-Range`` starts at N is appended; any other answer (``200``) starts the file again.
* **Errors.** 404/410 → the permanent "not found" (naming the status), other 4xx → the permanent
  "refused"; the URL's query (which may carry a signature) is never shown.

Pure library: no Celery, no SQL.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mediarunner.config.settings import Settings
from mediarunner.errors import InvalidInputError, InvalidOutputError
from mediarunner.models.locations import Location
from mediarunner.models.networks import check_network_target
from mediarunner.storage.connection import Connection
from mediarunner.storage.layout import DEFAULT_LAST, Published, safe_name
from mediarunner.storage.local import check_free_space
from mediarunner.storage.transfer import Meter, Report

if TYPE_CHECKING:  # httpx (with the click/rich/pygments its package imports) loads on first use
    import httpx

__all__ = ["HttpStore"]

_CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class HttpStatusError(Exception):
    """A non-2xx answer; classified by :mod:`~mediarunner.storage.classify` through its base class."""


class HttpNotFound(HttpStatusError, FileNotFoundError):
    pass


class HttpRefused(HttpStatusError, PermissionError):
    pass


@dataclass
class _Progress:
    """What survives between attempts of one download: the bytes on disk and the server's validator."""

    tmp: Path
    validator: str | None = None
    total: int | None = None

    @property
    def have(self) -> int:
        return self.tmp.stat().st_size if self.tmp.exists() else 0


class HttpStore:
    """An http(s) URL naming one file: it can be staged in, nothing else."""

    local_path: Path | None = None

    def __init__(self, location: Location, settings: Settings, report: Report | None = None) -> None:
        self.location = location
        self.settings = settings
        self.report = report

    def stage_in(self, scratch: Path, rel: str = "") -> Path:
        if rel:
            raise InvalidInputError(f"{self.location.display} names one file, not a directory")
        return self._download(Path(scratch))

    def fetch(self, rel: str, scratch: Path) -> Path:
        raise InvalidInputError(f"{self.location.scheme}:// locations hold no outputs")

    def publish(self, local: Path, rel: str = "", *, last: Sequence[str] = DEFAULT_LAST) -> list[Published]:
        raise InvalidOutputError(f"{self.location.scheme}:// locations are input-only: cannot publish there")

    def list_files(self, rel: str = "") -> list[str]:
        return []

    def remove(self, rel: str = "") -> None:
        raise InvalidOutputError(f"{self.location.scheme}:// locations are input-only: cannot remove there")

    def free_space(self) -> int | None:
        return None

    def _download(self, scratch: Path) -> Path:
        loc = self.location
        base = posixpath.basename(loc.path.rstrip("/")) or "input"
        scratch.mkdir(parents=True, exist_ok=True)
        dest = scratch / f"{uuid.uuid5(uuid.NAMESPACE_URL, loc.url).hex[:10]}-{safe_name(base)}"
        state = _Progress(scratch / f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
        meter = Meter(self.report, None)
        conn = Connection(self.settings, loc, "input")
        try:
            conn.run(f"download {loc.display}", lambda client: self._attempt(client, state, meter))
        except BaseException:
            state.tmp.unlink(missing_ok=True)
            raise
        finally:
            conn.close()
        meter.file_done(state.have)
        os.replace(state.tmp, dest)
        return dest

    def _attempt(self, client: httpx.Client, state: _Progress, meter: Meter) -> None:
        """One request: the whole file, or the rest of it after an earlier attempt's bytes."""
        check_network_target(self.location.url, self.settings.allowed_networks, what="input")
        have = state.have
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have and state.validator is not None:
            headers["If-Range"] = state.validator
        with client.stream("GET", self.location.url, headers=headers) as resp:
            _check_status(resp, self.location)
            start = _resume_offset(resp, have)
            total = _total_size(resp, start)
            self._check_size(total, state.tmp.parent)
            if start == 0:
                state.validator = resp.headers.get("etag") or resp.headers.get("last-modified")
                state.total = total
            meter.total = state.total
            self._receive(resp, state, start, meter)
        if state.total is not None and state.have != state.total:
            raise ConnectionError(f"short transfer: {state.have} of {state.total} bytes")

    def _check_size(self, total: int | None, scratch: Path) -> None:
        cap = self.settings.http_max_input_bytes
        if total is not None and total > cap:
            raise InvalidInputError(f"input {self.location.display} is {total} bytes, over "
                                    f"HTTP_MAX_INPUT_BYTES ({cap})")
        if total is not None:
            check_free_space(scratch, total / 2**20 + 64)

    def _receive(self, resp: httpx.Response, state: _Progress, start: int, meter: Meter) -> None:
        cap = self.settings.http_max_input_bytes
        with open(state.tmp, "r+b" if start else "wb") as out:
            out.seek(start)
            out.truncate()
            done = start
            meter.file_progress(done)
            for chunk in resp.iter_raw(_CHUNK):
                done += len(chunk)
                if done > cap:
                    raise InvalidInputError(f"input {self.location.display} is over HTTP_MAX_INPUT_BYTES ({cap})")
                out.write(chunk)
                meter.file_progress(done)


def _check_status(resp: httpx.Response, loc: Location) -> None:
    code = resp.status_code
    if code in (200, 206):
        return
    why = f"HTTP {code} {resp.reason_phrase}".strip()
    if 300 <= code < 400:
        import httpx  # loaded already: the response came through it

        target = httpx.URL(resp.headers.get("location", "")).host or "?"
        raise InvalidInputError(f"input {loc.display} answered {why} (a redirect to host {target!r}); "
                                "redirects are not followed: submit the final URL")
    if code in (404, 410):
        raise HttpNotFound(why)
    if code in (408, 429) or code >= 500 or code < 200:
        raise ConnectionError(why)
    raise HttpRefused(why)


def _resume_offset(resp: httpx.Response, have: int) -> int:
    """Where this answer's body starts in the file: ``have`` for a matching 206, else 0."""
    if resp.status_code != 206:
        return 0
    m = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
    if m is None or int(m.group(1)) != have:
        raise ConnectionError(f"unexpected Content-Range {resp.headers.get('content-range')!r} for bytes={have}-")
    return have


def _total_size(resp: httpx.Response, start: int) -> int | None:
    if resp.status_code == 206:
        m = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
        return int(m.group(3)) if m is not None and m.group(3) != "*" else None
    length = resp.headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None
