"""Locations: parsing storage URLs, scheme rules and the root check for local paths.

The one place that decides what a location means. Pure: no Celery, no SQL, no network.

* plain paths and ``file:///abs/path`` are local; they must resolve (symlinks followed) inside the
  configured roots, and ``..`` components are refused;
* ``s3://bucket/key``, ``sftp://host[:port]/abs/path``, ``ftp://host[:port]/abs/path`` are remote;
  credentials never come from URLs;
* ``http://`` and ``https://`` URLs are inputs only (a query is kept: signed URLs); publishing to
  one is refused.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from mediarunner.errors import InvalidInputError, InvalidOutputError, PermanentError, ValidationError
from mediarunner.models.networks import IpNetwork, check_network_target

__all__ = [
    "DEFAULT_PORTS",
    "INPUT_ONLY_SCHEMES",
    "SCHEMES",
    "Direction",
    "Location",
    "check_input_root",
    "check_live_input",
    "check_location",
    "control_character",
    "is_local",
    "join_location",
    "parse_location",
    "problem",
    "resolve_local_path",
]

Direction = Literal["input", "output"]
SCHEMES = ("file", "s3", "sftp", "ftp", "http", "https")
#: Schemes that can only be read from (never published to).
INPUT_ONLY_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"sftp": 22, "ftp": 21}


@dataclass(frozen=True)
class Location:
    """A parsed storage URL."""

    scheme: str  # "file", "s3", "sftp", "ftp", "http" or "https"
    host: str  # the bucket for s3, "" for file
    port: int | None
    path: str  # local path (file), key without leading "/" (s3), absolute path (sftp, ftp, http)
    url: str  # the URL as given

    @property
    def display(self) -> str:
        """The URL without its query (which may hold a signature or a token): safe to show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port is None else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}" if self.scheme != "file" else self.path

    @property
    def fs_path(self) -> str:
        """The path as the fsspec filesystem for this scheme wants it."""
        if self.scheme == "s3":
            return f"{self.host}/{self.path}" if self.path else self.host
        return self.path

    def url_for(self, fs_path: str) -> str:
        """The URL of another path on the same host."""
        if self.scheme == "file":
            return fs_path
        if self.scheme == "s3":
            return f"s3://{fs_path}"
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{fs_path}"

    def join(self, rel: str) -> Location:
        """The location ``rel`` (a relative path) below this one."""
        if not rel:
            return self
        path = posixpath.join(self.path, rel) if self.path else rel
        return replace(self, path=path, url=join_location(self.url, rel))


# C0 controls (newline, CR, tab, NUL...), DEL and C1 controls: never part of a sane path or URL,
# and a newline in a path can inject lines into the lists ffmpeg reads (concat, playlists).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "newline", "\r": "carriage return", "\x7f": "DEL"}


def control_character(value: str) -> str | None:
    """The name of the first control character in ``value`` (None: there is none)."""
    m = _CONTROL_RE.search(value)
    if m is None:
        return None
    c = m.group()
    return _CONTROL_NAMES.get(c, f"U+{ord(c):04X}")


def problem(direction: Direction, message: str) -> PermanentError:
    """The permanent error for a bad input (InvalidInputError) or output (InvalidOutputError)."""
    return InvalidInputError(message) if direction == "input" else InvalidOutputError(message)


def is_local(url: str) -> bool:
    """True when ``url`` is a plain path or a ``file://`` URL (stage_in returns it in place)."""
    return "://" not in url or url.lower().startswith("file://")


def parse_location(url: str, direction: Direction = "input") -> Location:
    """Parse and validate a storage URL.

    Raises ValidationError for embedded credentials or a malformed URL, InvalidInputError /
    InvalidOutputError (by ``direction``) for an unsupported scheme.
    """
    if not url or not url.strip():
        raise ValidationError("empty storage location")
    bad = control_character(url) or ("://" in url and control_character(unquote(url))) or None
    if bad is not None:
        raise ValidationError(f"storage location contains a control character ({bad})")
    if "://" not in url:
        return Location("file", "", None, url, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"malformed storage URL: {exc}") from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        # Never echo the URL: it may hold a password.
        raise ValidationError(f"credentials must not be embedded in {scheme}:// URLs; configure them in the settings")
    if scheme not in SCHEMES:
        raise problem(direction, f"unsupported storage scheme {scheme!r} (supported: {', '.join(SCHEMES)})")
    if scheme in INPUT_ONLY_SCHEMES:
        return _parse_http(parts, url, direction)
    if parts.query or parts.fragment:
        raise ValidationError(f"{scheme}:// URLs take no query or fragment (percent-encode '?' and '#' in paths)")
    path = unquote(parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValidationError("file:// URLs must name a local path (file:///abs/path)")
        if not path:
            raise ValidationError("file:// URL without a path")
        return Location("file", "", None, path, url)
    host = parts.hostname or ""
    if not host:
        raise ValidationError(f"{scheme}:// URL without a host")
    if scheme == "s3":
        if port is not None:
            raise ValidationError("s3:// URLs name a bucket, not host:port (set s3_endpoint_url)")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", parts.netloc):
            raise ValidationError(f"invalid S3 bucket name {parts.netloc!r}")
        return Location("s3", parts.netloc, None, path.lstrip("/"), url)
    if not path.startswith("/"):
        path = "/" + path
    return Location(scheme, host, port, path, url)


def _parse_http(parts: SplitResult, url: str, direction: Direction) -> Location:
    """An http(s) input: a host, a path naming a file; a query is kept (signed URLs), a fragment refused."""
    scheme = parts.scheme.lower()
    if direction == "output":
        raise problem(direction, f"{scheme}:// locations are input-only: outputs cannot be published over "
                                 "HTTP (use a local path, s3://, sftp:// or ftp://)")
    host = parts.hostname or ""
    if not host:
        raise ValidationError(f"{scheme}:// URL without a host")
    if parts.fragment:
        raise ValidationError(f"{scheme}:// input URLs take no fragment")
    return Location(scheme, host, parts.port, unquote(parts.path) or "/", url)


# "scheme://..." is a URL. A bare "name:rest" stays a (relative) path: colons are legal in names.
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def resolve_local_path(url_or_path: str, roots: Sequence[Path] | None, *, what: Direction) -> Path:
    """Validate a ``file://`` URL or plain path and return its real absolute path.

    ``what`` ("input" / "output") picks the error class and names the thing in messages.
    Symlinks are resolved before the root check, and the resolved path is returned, so a
    link cannot lead the caller outside the roots. ``roots`` None or empty: no restriction.
    """
    raw = url_or_path
    if not raw:
        raise problem(what, f"{what} location is empty")
    bad = control_character(raw)  # before urlsplit, which silently drops tabs and newlines
    if bad is not None and bad != "NUL":
        raise problem(what, f"{what} location contains a control character ({bad})")
    m = _URL_RE.match(raw)
    if m or raw.lower().startswith("file:"):
        scheme = m.group(1).lower() if m else "file"
        if scheme != "file":
            raise problem(what, f"{what} location {raw!r} has an unknown URL scheme {scheme!r} "
                                "(only local paths and file:// URLs are supported)")  # fmt: skip
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise problem(what, f"{what} location {raw!r} names a remote host {parts.netloc!r}")
        if parts.query or parts.fragment:
            raise problem(what, f"{what} location {raw!r} has a query or fragment")
        path_str = unquote(parts.path)  # decoded first, so %2e%2e and %00 are caught below
        if not path_str.startswith("/"):
            raise problem(what, f"{what} location {raw!r} is not an absolute file URL")
    else:
        path_str = raw

    if "\x00" in path_str:
        raise problem(what, f"{what} location contains a NUL byte")
    bad = control_character(path_str)
    if bad is not None:
        raise problem(what, f"{what} location contains a control character ({bad})")
    if ".." in re.split(r"[/\\]", path_str):
        raise problem(what, f"{what} location {raw!r} contains a '..' component")

    real = Path(os.path.realpath(os.path.join(os.getcwd(), path_str)))
    if roots:
        real_roots = [Path(os.path.realpath(r)) for r in roots]
        if not any(real == r or real.is_relative_to(r) for r in real_roots):
            allowed = ", ".join(str(r) for r in real_roots)
            raise problem(what, f"{what} location {raw!r} escapes the allowed roots ({allowed})")
    return real


def check_input_root(url_or_path: str, roots: Sequence[Path]) -> Path:
    """A local input's real path, inside ``roots`` (the ``input_roots`` setting). Empty roots
    refuse every local input: "no roots" never means "read anything"."""
    if not roots:
        raise InvalidInputError("local inputs are disabled: MEDIARUNNER_INPUT_ROOTS is empty "
                                "(set it to the directories inputs may be read from)")
    return resolve_local_path(url_or_path, roots, what="input")


def check_live_input(url: str, roots: Sequence[Path], allowed: Sequence[IpNetwork], *, listen: bool = False) -> str:
    """The live input as the worker opens it, checked the same way at submit and on the worker
    (InvalidInputError): a local file must lie inside the input roots (its real path is
    returned); a network source must be a public address or in ``allowed`` (see
    :mod:`mediarunner.models.networks`). A listen address (``listen``, SRT ``mode=listener``)
    is where the worker binds, not a target, so only its syntax is checked."""
    if is_local(url):
        return str(check_input_root(url, roots))
    parts = urlsplit(url)
    modes = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "mode"]
    if listen or (parts.scheme.lower() == "srt" and modes == ["listener"]):
        return url
    check_network_target(url, allowed, what="live input")
    return url


def join_location(output: str, rel: str) -> str:
    """``output`` (a path or URL naming a directory) joined with a relative path."""
    if not rel:
        return output
    if is_local(output):
        return str(Path(output) / rel)
    return posixpath.join(output.rstrip("/"), rel)


def check_location(url: str, direction: Direction, roots: Sequence[Path] | None) -> Location:
    """Parse ``url`` and, for a local one, check it against ``roots`` (see :func:`resolve_local_path`).

    Remote locations are checked for syntax only (known scheme, no credentials): the workers hold
    the keys. The returned location of a local path names its real path. Empty input roots refuse
    every local input (:func:`check_input_root`); empty output roots put no restriction.
    """
    loc = parse_location(url, direction)
    if loc.scheme != "file":
        return loc
    if direction == "input":
        real = check_input_root(url, roots or ())
    else:
        real = resolve_local_path(url, roots or None, what=direction)
    return Location("file", "", None, str(real), url)
