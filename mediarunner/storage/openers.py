"""One fsspec filesystem per remote scheme (an httpx client for http(s) inputs), configured from
:class:`~mediarunner.config.Settings`.

Credentials never come from URLs: S3 keys, SFTP and FTP logins (keyed by ``host:port`` or
``host``), known_hosts and timeouts are read from the settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from mediarunner.config.settings import HostCredentials, Settings
from mediarunner.models.locations import DEFAULT_PORTS, Direction, Location, problem

__all__ = ["open_filesystem"]


def _need(module: str, scheme: str, direction: Direction) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise problem(
            direction, f"{scheme}:// needs the optional package {module!r}, which is not installed"
        ) from None


def _credentials(table: dict[str, HostCredentials], host: str, port: int) -> HostCredentials | None:
    return table.get(f"{host}:{port}") or table.get(host)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _open_s3(s: Settings, loc: Location, direction: Direction) -> Any:
    s3fs = _need("s3fs", "s3", direction)
    timeout = s.transfer_timeout_seconds
    fs = s3fs.S3FileSystem(
        key=s.s3_access_key_id,
        secret=_secret(s.s3_secret_access_key),
        token=_secret(s.s3_session_token),
        endpoint_url=s.s3_endpoint_url,
        client_kwargs={"region_name": s.s3_region} if s.s3_region else {},
        config_kwargs={
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": 1, "mode": "standard"},
        },
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    fs.retries = 1  # our own retries run each try on a fresh client
    return fs


def _open_sftp(s: Settings, loc: Location, direction: Direction) -> Any:
    _need("paramiko", "sftp", direction)
    port = loc.port or DEFAULT_PORTS["sftp"]
    creds = _credentials(s.sftp_credentials, loc.host, port)
    if creds is None:
        raise problem(direction, f"no SFTP credentials configured for {loc.host}:{port}")
    timeout = s.transfer_timeout_seconds
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
        known_hosts=s.sftp_known_hosts,
        host_key_policy=s.sftp_host_key_policy,
        io_timeout=timeout,
        skip_instance_cache=True,
        **kwargs,
    )


def _open_ftp(s: Settings, loc: Location, direction: Direction) -> Any:
    from fsspec.implementations.ftp import FTPFileSystem

    port = loc.port or DEFAULT_PORTS["ftp"]
    creds = _credentials(s.ftp_credentials, loc.host, port)
    return FTPFileSystem(
        loc.host,
        port=port,
        username=creds.username if creds else None,
        password=_secret(creds.password) if creds else None,
        timeout=s.transfer_timeout_seconds,
        tls=s.ftp_tls,
        skip_instance_cache=True,
    )


def _open_http(s: Settings, loc: Location, direction: Direction) -> Any:
    """An httpx client (see :mod:`mediarunner.storage.http`): redirects not followed, timeouts set."""
    import httpx

    return httpx.Client(follow_redirects=False, timeout=httpx.Timeout(s.transfer_timeout_seconds),
                        headers={"Accept-Encoding": "identity"})


_OPENERS: dict[str, Callable[[Settings, Location, Direction], Any]] = {
    "http": _open_http,
    "https": _open_http,
    "s3": _open_s3,
    "sftp": _open_sftp,
    "ftp": _open_ftp,
}


def open_filesystem(settings: Settings, loc: Location, direction: Direction) -> Any:
    """A fresh (uncached) fsspec filesystem for ``loc``'s scheme and host."""
    opener = _OPENERS.get(loc.scheme)
    if opener is None:
        raise problem(direction, f"{loc.scheme}:// is not a remote storage scheme")
    return opener(settings, loc, direction)


def close_filesystem(fs: Any, scheme: str) -> None:
    """Close the connection an SFTP or FTP filesystem or an HTTP client holds (S3 clients hold no session)."""
    if scheme in ("http", "https"):
        fs.close()
    elif scheme == "sftp":
        fs.client.close()
    elif scheme == "ftp":
        fs.ftp.close()


_SFTP_CLASS: Any = None


def _sftp_filesystem_class() -> Any:
    """fsspec's SFTPFileSystem with host key verification against a known_hosts file and I/O timeouts."""
    global _SFTP_CLASS
    if _SFTP_CLASS is None:
        _SFTP_CLASS = _make_sftp_class()
    return _SFTP_CLASS


def _make_sftp_class() -> Any:
    import paramiko
    from fsspec.implementations.sftp import SFTPFileSystem

    class VerifyingSFTPFileSystem(SFTPFileSystem):
        def __init__(self, host: str, *, known_hosts: Path | None, host_key_policy: str, io_timeout: float,
                     **ssh_kwargs: Any) -> None:
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

    return VerifyingSFTPFileSystem
