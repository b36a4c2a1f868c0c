"""What a failed transfer step means: missing, refused, out of space, or worth another try.

A small table of rules, each looking at one exception of the chain (``__cause__`` /
``__context__``); the first rule that recognises one decides. Unknown failures are transient.
"""

from __future__ import annotations

import errno
import ftplib
from collections.abc import Callable, Iterator
from enum import Enum

__all__ = ["Kind", "classify", "describe"]


class Kind(Enum):
    MISSING = "missing"
    DENIED = "denied"
    NO_SPACE = "no space"
    TRANSIENT = "transient"


_S3_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_S3_TRANSIENT = {"SlowDown", "Throttling", "RequestTimeout", "InternalError"}
_S3_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_DENIED_TYPES = {
    "botocore.exceptions.NoCredentialsError",
    "botocore.exceptions.PartialCredentialsError",
    "paramiko.ssh_exception.AuthenticationException",
    "paramiko.ssh_exception.BadHostKeyException",
}


def _type_names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}


def _s3_response(e: BaseException) -> Kind | None:
    """botocore's ClientError (possibly wrapped by s3fs into an OSError): decided by the response."""
    response = getattr(e, "response", None)
    if "botocore.exceptions.ClientError" not in _type_names(e) or not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _S3_MISSING or status == 404:
        return Kind.MISSING
    if status >= 500 or status in (408, 429) or code in _S3_TRANSIENT:
        return Kind.TRANSIENT
    if 400 <= status < 500 or code in _S3_DENIED:
        return Kind.DENIED
    return Kind.TRANSIENT


def _refused_login(e: BaseException) -> Kind | None:
    names = _type_names(e)
    if names & _DENIED_TYPES:
        return Kind.DENIED
    if "paramiko.ssh_exception.SSHException" in names and "known_hosts" in str(e):
        return Kind.DENIED  # RejectPolicy: unknown host key
    return None


def _ftp_reply(e: BaseException) -> Kind | None:
    if isinstance(e, ftplib.error_perm):
        return Kind.MISSING if str(e)[:3] in ("550", "450") else Kind.DENIED
    if isinstance(e, ftplib.error_temp | ftplib.error_reply | ftplib.error_proto):
        return Kind.TRANSIENT
    return None


def _os_error(e: BaseException) -> Kind | None:
    if isinstance(e, FileNotFoundError):
        return Kind.MISSING
    if isinstance(e, PermissionError):
        return Kind.DENIED
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return Kind.NO_SPACE
    return None


_RULES: tuple[Callable[[BaseException], Kind | None], ...] = (_s3_response, _refused_login, _ftp_reply, _os_error)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def classify(exc: BaseException) -> Kind:
    """Decide what a failure of a transfer step means; unknown failures count as transient."""
    for e in _chain(exc):
        for rule in _RULES:
            kind = rule(e)
            if kind is not None:
                return kind
    return Kind.TRANSIENT


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
