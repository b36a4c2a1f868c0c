"""Remote storage: stage inputs into scratch and publish outputs atomically for readers.

Pure library (no Celery, no SQL) built on fsspec. Supported locations:

* plain paths and ``file:///abs/path`` (inputs are used in place, never copied);
* ``s3://bucket/key`` (s3fs; endpoint, region and keys from :class:`StorageConfig`);
* ``sftp://host[:port]/abs/path`` (fsspec's paramiko implementation);
* ``ftp://host[:port]/abs/path`` (fsspec's ftplib implementation).

Credentials never come from URLs: a URL with a ``user[:password]@`` part is rejected with
:class:`~mediarunner.errors.ValidationError`. They come from :class:`StorageConfig`, keyed by host.

Error mapping (see :mod:`mediarunner.errors`):

* missing remote object -> :class:`InvalidInputError` (stage_in) / :class:`InvalidOutputError` (publish);
* refused credentials, unknown host key, access denied -> same permanent classes;
* unknown scheme -> :class:`InvalidInputError` / :class:`InvalidOutputError`;
* connection refused/reset, timeouts, S3 5xx/throttling and anything unrecognised are retried
  ``transfer_retries`` times with exponential backoff, each time on a fresh connection, then raised
  as :class:`StorageError` (transient);
* local scratch disk full -> :class:`InsufficientResourcesError`.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import posixpath
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr

from mediarunner.config.settings import HostCredentials
from mediarunner.errors import (
    InsufficientResourcesError,
    InvalidInputError,
    InvalidOutputError,
    MediarunnerError,
    ProcessingError,
    StorageError,
)
from mediarunner.models.locations import (
    DEFAULT_PORTS,
    Direction,
    Location,
    is_local,
    parse_location,
    problem,
    resolve_local_path,
)

__all__ = [
    "DEFAULT_LAST",
    "HostCredentials",
    "Location",
    "Storage",
    "StorageConfig",
    "check_free_space",
    "cleanup",
    "is_local",
    "parse_location",
    "publish_order",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Files published after everything else, in this order (a reader that follows them never meets a
#: missing object).
DEFAULT_LAST: tuple[str, ...] = ("*.m3u8", "manifest.json")


#: Content types set on S3 uploads (mimetypes maps ``.ts`` to Qt's linguist files).
_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m3u": "audio/mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".png": "image/png",
}


# --------------------------------------------------------------------------------------------- config


# HostCredentials lives in the settings module (Settings holds tables of them); re-exported here.


class StorageConfig(BaseModel):
    """Storage settings; workers build it from Settings with ``mediarunner.tasks.io.storage_config``."""

    model_config = {"frozen": True, "extra": "forbid"}

    # S3 (or any S3-compatible store). Keys unset: boto's default chain (env, profile, instance role).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_session_token: SecretStr | None = None

    # SFTP / FTP logins keyed by "host:port" or "host" (the first that matches wins).
    sftp_credentials: dict[str, HostCredentials] = Field(default_factory=dict)
    #: known_hosts file used to verify SFTP servers; unset: the process user's ~/.ssh/known_hosts.
    sftp_known_hosts: Path | None = None
    #: "reject" (default) refuses servers whose key is not known; "auto_add" trusts on first use.
    sftp_host_key_policy: Literal["reject", "auto_add"] = "reject"
    ftp_credentials: dict[str, HostCredentials] = Field(default_factory=dict)  # none: anonymous
    ftp_tls: bool = False

    # Local paths (plain or file://) must resolve inside these (empty: anywhere); ".." is refused.
    input_roots: list[Path] = Field(default_factory=list)
    output_roots: list[Path] = Field(default_factory=list)

    # Retries of one transfer step (so attempts = transfer_retries + 1), exponential backoff.
    transfer_retries: int = Field(default=3, ge=0, le=100)
    transfer_backoff_seconds: float = Field(default=1.0, ge=0)
    transfer_backoff_max_seconds: float = Field(default=30.0, ge=0)
    #: Connect / read timeout of one network operation.
    transfer_timeout_seconds: float = Field(default=30.0, gt=0)


# ------------------------------------------------------------------------------------------- locations


# ------------------------------------------------------------------------------ error classification


class _Kind(Enum):
    MISSING = "missing"
    DENIED = "denied"
    NO_SPACE = "no space"
    TRANSIENT = "transient"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _type_names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}


def _classify(exc: BaseException) -> _Kind:
    """Decide what a failure of a transfer step means; unknown failures count as transient."""
    import ftplib

    for e in _chain(exc):
        names = _type_names(e)
        # botocore ClientError (possibly wrapped by s3fs into an OSError): decide by the response.
        response = getattr(e, "response", None)
        if "botocore.exceptions.ClientError" in names and isinstance(response, dict):
            err = response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                return _Kind.MISSING
            if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError"):
                return _Kind.TRANSIENT
            if status in (408, 429):
                return _Kind.TRANSIENT
            if 400 <= status < 500 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return _Kind.DENIED
            return _Kind.TRANSIENT
        if names & {
            "botocore.exceptions.NoCredentialsError",
            "botocore.exceptions.PartialCredentialsError",
            "paramiko.ssh_exception.AuthenticationException",
            "paramiko.ssh_exception.BadHostKeyException",
        }:
            return _Kind.DENIED
        if "paramiko.ssh_exception.SSHException" in names and "known_hosts" in str(e):
            return _Kind.DENIED  # RejectPolicy: unknown host key
        if isinstance(e, ftplib.error_perm):
            code = str(e)[:3]
            return _Kind.MISSING if code in ("550", "450") else _Kind.DENIED
        if isinstance(e, ftplib.error_temp | ftplib.error_reply | ftplib.error_proto):
            return _Kind.TRANSIENT
        if isinstance(e, FileNotFoundError):
            return _Kind.MISSING
        if isinstance(e, PermissionError):
            return _Kind.DENIED
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return _Kind.NO_SPACE
    return _Kind.TRANSIENT


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


# --------------------------------------------------------------------------------------- filesystems


def _need(module: str, scheme: str, direction: Direction) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise problem(
            direction, f"{scheme}:// needs the optional package {module!r}, which is not installed"
        ) from None


def _credentials(table: dict[str, HostCredentials], host: str, port: int) -> HostCredentials | None:
    return table.get(f"{host}:{port}") or table.get(host)


class _Connection:
    """One lazily (re)opened fsspec filesystem plus the retry loop that runs steps on it."""

    def __init__(self, config: StorageConfig, loc: Location, direction: Direction) -> None:
        self.config = config
        self.loc = loc
        self.direction = direction
        self._fs: Any = None

    # ---- connection

    def fs(self) -> Any:
        if self._fs is None:
            self._fs = self._open()
        return self._fs

    def _open(self) -> Any:
        cfg, loc = self.config, self.loc
        timeout = cfg.transfer_timeout_seconds
        if loc.scheme == "file":
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem(skip_instance_cache=True)
        if loc.scheme == "s3":
            s3fs = _need("s3fs", "s3", self.direction)
            client_kwargs: dict[str, Any] = {}
            if cfg.s3_region:
                client_kwargs["region_name"] = cfg.s3_region
            fs = s3fs.S3FileSystem(
                key=cfg.s3_access_key_id,
                secret=cfg.s3_secret_access_key.get_secret_value() if cfg.s3_secret_access_key else None,
                token=cfg.s3_session_token.get_secret_value() if cfg.s3_session_token else None,
                endpoint_url=cfg.s3_endpoint_url,
                client_kwargs=client_kwargs,
                config_kwargs={
                    "connect_timeout": timeout,
                    "read_timeout": timeout,
                    "retries": {"max_attempts": 1, "mode": "standard"},
                },
                use_listings_cache=False,
                skip_instance_cache=True,
            )
            fs.retries = 1  # our own loop retries (on a fresh client)
            return fs
        port = loc.port or DEFAULT_PORTS[loc.scheme]
        if loc.scheme == "sftp":
            _need("paramiko", "sftp", self.direction)
            creds = _credentials(cfg.sftp_credentials, loc.host, port)
            if creds is None:
                raise problem(self.direction, f"no SFTP credentials configured for {loc.host}:{port}")
            kwargs: dict[str, Any] = {
                "port": port,
                "username": creds.username,
                "timeout": timeout,
                "banner_timeout": timeout,
                "auth_timeout": timeout,
                "channel_timeout": timeout,
                "look_for_keys": False,
                "allow_agent": False,
            }
            if creds.password is not None:
                kwargs["password"] = creds.password.get_secret_value()
            if creds.private_key_path is not None:
                kwargs["key_filename"] = str(creds.private_key_path)
            if creds.private_key_passphrase is not None:
                kwargs["passphrase"] = creds.private_key_passphrase.get_secret_value()
            return _sftp_filesystem_class()(
                loc.host,
                known_hosts=cfg.sftp_known_hosts,
                host_key_policy=cfg.sftp_host_key_policy,
                io_timeout=timeout,
                skip_instance_cache=True,
                **kwargs,
            )
        # ftp
        from fsspec.implementations.ftp import FTPFileSystem

        creds = _credentials(cfg.ftp_credentials, loc.host, port)
        return FTPFileSystem(
            loc.host,
            port=port,
            username=creds.username if creds else None,
            password=creds.password.get_secret_value() if creds and creds.password else None,
            timeout=timeout,
            tls=cfg.ftp_tls,
            skip_instance_cache=True,
        )

    def reset(self) -> None:
        fs, self._fs = self._fs, None
        if fs is None:
            return
        try:
            if self.loc.scheme == "sftp":
                fs.client.close()
            elif self.loc.scheme == "ftp":
                fs.ftp.close()
        except Exception:  # closing a broken connection may fail in many ways
            log.debug("closing %s connection failed", self.loc.scheme, exc_info=True)

    close = reset

    # ---- retries

    def _backoff(self, attempt: int) -> float:
        base = self.config.transfer_backoff_seconds * (2**attempt)
        delay = min(base, self.config.transfer_backoff_max_seconds)
        return delay * random.uniform(0.8, 1.2)

    def run(self, what: str, step: Callable[[Any], T], *, retries: int | None = None) -> T:
        """Run ``step(fs)``, reconnecting and retrying transient failures; map errors to the taxonomy."""
        attempts = (self.config.transfer_retries if retries is None else retries) + 1
        where = f"{self.loc.scheme}://{self.loc.host}"
        for attempt in range(attempts):
            try:
                return step(self.fs())
            except MediarunnerError:
                raise
            except Exception as exc:
                kind = _classify(exc)
                if kind is _Kind.MISSING:
                    raise problem(self.direction, f"{what}: not found on {where}: {_describe(exc)}") from exc
                if kind is _Kind.DENIED:
                    raise problem(self.direction, f"{what}: refused by {where}: {_describe(exc)}") from exc
                if kind is _Kind.NO_SPACE:
                    if self.direction == "input":  # our scratch disk: another worker may have room
                        raise InsufficientResourcesError(f"{what}: scratch disk full: {_describe(exc)}") from exc
                    raise StorageError(f"{what}: destination full on {where}: {_describe(exc)}") from exc
                self.reset()
                if attempt + 1 >= attempts:
                    raise StorageError(
                        f"{what}: failed after {attempts} attempt(s) on {where}: {_describe(exc)}"
                    ) from exc
                delay = self._backoff(attempt)
                log.warning(
                    "%s failed on %s (%s); retry %d/%d in %.1fs",
                    what,
                    where,
                    _describe(exc),
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")


_SFTP_CLASS: Any = None


def _sftp_filesystem_class() -> Any:
    """fsspec's SFTPFileSystem with host key verification against a known_hosts file and I/O timeouts."""
    global _SFTP_CLASS
    if _SFTP_CLASS is not None:
        return _SFTP_CLASS
    import paramiko
    from fsspec.implementations.sftp import SFTPFileSystem

    class VerifyingSFTPFileSystem(SFTPFileSystem):
        def __init__(
            self,
            host: str,
            *,
            known_hosts: Path | None,
            host_key_policy: str,
            io_timeout: float,
            **ssh_kwargs: Any,
        ) -> None:
            self._known_hosts = known_hosts
            self._io_timeout = io_timeout
            super().__init__(host, host_key_policy=host_key_policy, **ssh_kwargs)

        def _connect(self) -> None:
            self.client = paramiko.SSHClient()
            if self._known_hosts is not None:
                self.client.load_host_keys(str(self._known_hosts))
            else:
                self.client.load_system_host_keys()
            self.client.set_missing_host_key_policy(self.host_key_policy)
            try:
                self.client.connect(self.host, **self.ssh_kwargs)
                self.ftp = self.client.open_sftp()
                self.ftp.get_channel().settimeout(self._io_timeout)
            except BaseException:
                self.client.close()
                raise

        def mv(self, old: str, new: str, **kwargs: Any) -> None:
            old, new = self._strip_protocol(old), self._strip_protocol(new)
            try:
                self.ftp.posix_rename(old, new)
            except OSError as exc:
                # Servers without the posix-rename extension refuse to rename over a file.
                if isinstance(exc, FileNotFoundError):
                    raise
                with suppress(FileNotFoundError):
                    self.ftp.remove(new)
                self.ftp.rename(old, new)

    _SFTP_CLASS = VerifyingSFTPFileSystem
    return _SFTP_CLASS


def _makedirs(path: str) -> Callable[[Any], None]:
    def step(fs: Any) -> None:
        fs.makedirs(path, exist_ok=True)

    return step


def _rm_file(path: str) -> Callable[[Any], None]:
    def step(fs: Any) -> None:
        fs.rm_file(path)

    return step


def _put(fs: Any, scheme: str, src: Path, dst: str) -> None:
    """Upload one local file to ``dst`` (its directory exists) in as few round trips as possible."""
    if scheme == "file":
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())  # the rename must not expose data still in the page cache only
    elif scheme == "sftp":
        fs.ftp.put(str(src), dst)  # paramiko checks the remote size afterwards
    elif scheme == "ftp":
        with open(src, "rb") as f:
            fs.ftp.storbinary(f"STOR {dst}", f, blocksize=fs.blocksize)
        fs.invalidate_cache(fs._parent(dst))
    else:  # s3: one PUT (or a multipart upload) under the final key; both appear atomically
        content_type = _CONTENT_TYPES.get(src.suffix.lower())
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        fs.put_file(str(src), dst, **extra)


def _replace(fs: Any, scheme: str, src: str, dst: str) -> None:
    """Rename ``src`` over ``dst`` (atomically where the protocol allows)."""
    if scheme == "file":
        os.replace(src, dst)
        with suppress(OSError):  # durability of the rename; some filesystems refuse a dir fsync
            fd = os.open(os.path.dirname(dst) or ".", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
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


# ------------------------------------------------------------------------------------- local helpers


def check_free_space(scratch_dir: Path, min_free_mb: float) -> None:
    """Raise InsufficientResourcesError when the disk holding ``scratch_dir`` has < ``min_free_mb`` free."""
    probe = Path(scratch_dir).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 2**20
    if free_mb < min_free_mb:
        raise InsufficientResourcesError(
            f"only {free_mb:.0f} MiB free under {scratch_dir}, need at least {min_free_mb:.0f} MiB"
        )


def cleanup(path: Path) -> None:
    """Remove a file or a directory tree; a missing path is fine. Symlinks are removed, not followed.

    Never call it on what :meth:`Storage.stage_in` returned for a local input (see :func:`is_local`):
    that is the caller's original file.
    """
    p = Path(path)
    if p.absolute() == Path(p.absolute().anchor):
        raise ValueError(f"refusing to clean up the filesystem root {p}")
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    elif p.is_dir():
        shutil.rmtree(p, ignore_errors=True)


def _safe_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[-120:] or "input"


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


def publish_order(root: Path | None, rel_paths: Sequence[str], last: Sequence[str]) -> list[str]:
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


def _tree_files(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file():
                out.append(full.relative_to(root).as_posix())
    return out


# ------------------------------------------------------------------------------------------- storage


@dataclass
class _Upload:
    src: Path
    dst: str  # fsspec path


class Storage:
    """Stage inputs in and publish outputs out, for every supported scheme."""

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()

    @contextmanager
    def _connection(self, loc: Location, direction: Direction) -> Iterator[_Connection]:
        conn = _Connection(self.config, loc, direction)
        try:
            yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------------------------ stage in

    def stage_in(self, url: str, scratch_dir: Path) -> Path:
        """Make ``url`` available as a local file.

        Local paths are returned in place (no copy), resolved (symlinks followed) and checked against
        ``input_roots``; InvalidInputError when missing or outside the roots. Remote objects are
        downloaded into ``scratch_dir`` under a temporary name, then renamed, so the returned path is
        always complete.
        """
        loc = parse_location(url, "input")
        if loc.scheme == "file":
            local = resolve_local_path(url, self.config.input_roots or None, what="input")
            if not local.is_file():
                raise InvalidInputError(f"input {local} does not exist or is not a file")
            return local
        scratch_dir = Path(scratch_dir)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        base = posixpath.basename(loc.path.rstrip("/"))
        if not base:
            raise InvalidInputError(f"input {loc.scheme}://{loc.host}{loc.path} names no file")
        digest = uuid.uuid5(uuid.NAMESPACE_URL, url).hex[:10]
        dest = scratch_dir / f"{digest}-{_safe_name(base)}"
        tmp = scratch_dir / f".{dest.name}.part-{uuid.uuid4().hex[:8]}"
        what = f"stage in {loc.scheme}://{loc.host}{'/' if loc.scheme == 's3' else ''}{loc.path}"

        with self._connection(loc, "input") as conn:
            info = conn.run(what, lambda fs: fs.info(loc.fs_path))
            if info.get("type") != "file":
                raise InvalidInputError(f"{what}: not a file (it is a {info.get('type', 'unknown')})")
            size = info.get("size")
            if isinstance(size, int) and size > 0:
                check_free_space(scratch_dir, size / 2**20 + 64)

            def download(fs: Any) -> None:
                try:
                    fs.get_file(loc.fs_path, str(tmp))
                    got = tmp.stat().st_size
                    if isinstance(size, int) and got != size:
                        raise ConnectionError(f"short transfer: {got} of {size} bytes")
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise

            conn.run(what, download)
        os.replace(tmp, dest)
        return dest

    # -------------------------------------------------------------------------------------- remove

    def remove(self, url: str) -> None:
        """Delete the file or directory tree at ``url`` (intermediate outputs); a missing one is fine."""
        loc = parse_location(url, "output")
        if loc.scheme == "file":
            path = resolve_local_path(url, self.config.output_roots or None, what="output")
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            return

        def rm(fs: Any) -> None:
            with suppress(FileNotFoundError):
                fs.rm(loc.fs_path, recursive=True)

        with self._connection(loc, "output") as conn:
            conn.run(f"remove {loc.scheme}://{loc.host}/{loc.path.lstrip('/')}", rm)

    # ------------------------------------------------------------------------------------- publish

    def publish(self, local: Path, url: str, *, last: Sequence[str] = DEFAULT_LAST) -> list[str]:
        """Upload a file or a directory tree to ``url`` so that readers never see partial output.

        * A file goes to ``url`` itself, or under it with its own name when ``url`` ends with "/".
        * A directory's files go under ``url`` keeping their relative paths.
        * Files matching ``last`` (playlists, manifests) go after everything else.
        * SFTP, FTP and local destinations: each file is written under a hidden temporary name in its
          destination directory, then renamed over the final name.
        * S3 (no rename): objects are put under their final keys (a PUT is atomic); the ordering
          guarantees a reader following a playlist never meets a missing object.
        * On failure (after retries) the files this call newly created are deleted, best effort, and
          the error is raised (StorageError when transient).

        Returns the URLs of the published files, in upload order.
        """
        loc = parse_location(url, "output")
        if loc.scheme == "file":
            real = resolve_local_path(url, self.config.output_roots or None, what="output")
            loc = Location("file", "", None, str(real), url)
        local = Path(local)
        if not local.exists():
            raise ProcessingError(f"nothing to publish: {local} does not exist")
        if local.is_dir():
            rels = _tree_files(local)
            dst_root = loc.fs_path.rstrip("/") if loc.scheme != "file" else str(Path(loc.path))
            ordered = publish_order(local, rels, last)
            uploads = [_Upload(local / rel, posixpath.join(dst_root, rel)) for rel in ordered]
            scan_root: str | None = dst_root
        else:
            if url.endswith("/") or (loc.scheme == "s3" and not loc.path):
                dst = posixpath.join(loc.fs_path, local.name)
            else:
                dst = loc.fs_path
            uploads = [_Upload(local, dst)]
            scan_root = None
        if not uploads:
            return []
        if loc.scheme == "s3" and not loc.host:
            raise InvalidOutputError("s3:// destination without a bucket")

        with self._connection(loc, "output") as conn:
            existing = self._existing(conn, uploads, scan_root)
            done: list[_Upload] = []
            try:
                if loc.scheme != "s3":
                    for d in sorted({posixpath.dirname(u.dst) for u in uploads}):
                        if d and d not in ("/", "."):
                            conn.run(f"create {loc.url_for(d)}", _makedirs(d))
                for up in uploads:
                    self._upload_one(conn, loc, up)
                    done.append(up)
            except BaseException:
                created = [u.dst for u in done if u.dst not in existing]
                self._rollback(conn, loc, created)
                raise
        return [loc.url_for(u.dst) for u in uploads]

    def _existing(self, conn: _Connection, uploads: Sequence[_Upload], scan_root: str | None) -> set[str]:
        """Destination files already present (a failed publish must not delete what it overwrote)."""
        if scan_root is None:

            def probe(fs: Any) -> set[str]:
                return {uploads[0].dst} if fs.exists(uploads[0].dst) else set()

            return conn.run(f"inspect {conn.loc.url_for(uploads[0].dst)}", probe)

        def scan(fs: Any) -> set[str]:
            try:
                found = fs.find(scan_root)
            except FileNotFoundError:
                return set()
            norm = {self._norm(conn.loc, p) for p in found}
            return {u.dst for u in uploads if self._norm(conn.loc, u.dst) in norm}

        return conn.run(f"list {conn.loc.url_for(scan_root)}", scan)

    @staticmethod
    def _norm(loc: Location, path: str) -> str:
        if loc.scheme == "file":
            return os.path.abspath(path)
        return "/" + path.strip("/") if loc.scheme in ("sftp", "ftp") else path.strip("/")

    def _upload_one(self, conn: _Connection, loc: Location, up: _Upload) -> None:
        target = loc.url_for(up.dst)
        what = f"publish {target}"
        if loc.scheme == "s3":
            conn.run(what, lambda fs: _put(fs, loc.scheme, up.src, up.dst))
            return
        directory, name = posixpath.split(up.dst)
        tmp = posixpath.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")

        def put_and_rename(fs: Any) -> None:
            try:
                _put(fs, loc.scheme, up.src, tmp)
                _replace(fs, loc.scheme, tmp, up.dst)
            except BaseException:
                self._discard(fs, tmp)
                raise

        conn.run(what, put_and_rename)

    @staticmethod
    def _discard(fs: Any, path: str) -> None:
        """Best effort removal of a temporary upload (the connection may be dead)."""
        try:
            fs.rm_file(path)
        except Exception:
            log.debug("could not remove temporary %s", path, exc_info=True)

    def _rollback(self, conn: _Connection, loc: Location, created: Sequence[str]) -> None:
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

    # ----------------------------------------------------------------------------------- helpers

    @staticmethod
    def check_free_space(scratch_dir: Path, min_free_mb: float) -> None:
        check_free_space(scratch_dir, min_free_mb)

    @staticmethod
    def cleanup(path: Path) -> None:
        cleanup(path)
