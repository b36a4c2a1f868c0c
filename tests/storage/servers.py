"""Loopback test servers (S3 via moto, SFTP via asyncssh, FTP via pyftpdlib), each in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------- S3


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# -------------------------------------------------------------------------------------------- SFTP


class Faults:
    """Shared switches the fault-injecting servers read."""

    def __init__(self) -> None:
        self.drop_after_bytes: int | None = None  # drop the connection once this many bytes arrived
        self.then_go_down = False  # after the drop, refuse every new connection
        self.received = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def account(self, n: int) -> bool:
        """Count received bytes; True when the connection must be dropped now."""
        with self.lock:
            self.received += n
            if self.drop_after_bytes is not None and self.received >= self.drop_after_bytes:
                self.drop_after_bytes = None
                self.dropped += 1
                return True
        return False


class SFTPServer:
    """asyncssh SSH server with an SFTP subsystem chrooted to ``root``, in its own thread."""

    def __init__(self, root: Path, username: str, client_public_key: str, host_key: Any) -> None:
        self.root = root
        self.username = username
        self.client_public_key = client_public_key
        self.host_key = host_key
        self.faults = Faults()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._conns: set[Any] = set()

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> SFTPServer:
        self._thread.start()
        self.port = self._call(self._listen(0))
        return self

    async def _listen(self, port: int) -> int:
        import asyncssh

        outer = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                outer._conns.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                outer._conns = {c for c in outer._conns if not c.is_closed()}

        class FaultySFTP(asyncssh.SFTPServer):
            def write(self, file_obj: object, offset: int, data: bytes) -> Any:
                if outer.faults.account(len(data)):
                    self.channel.get_connection().abort()
                    if outer.faults.then_go_down:
                        outer._server.close()
                    raise asyncssh.SFTPConnectionLost("injected fault")
                return super().write(file_obj, offset, data)

        keys = asyncssh.import_authorized_keys(self.client_public_key)
        self._server = await asyncssh.listen(
            HOST,
            port,
            server_host_keys=[self.host_key],
            authorized_client_keys=keys,
            server_factory=Server,
            sftp_factory=lambda chan: FaultySFTP(chan, chroot=str(self.root).encode()),
            allow_scp=False,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for conn in list(self._conns):
            conn.abort()

    def go_down(self) -> None:
        """Stop listening and drop every connection."""
        self._call(self._shutdown())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# --------------------------------------------------------------------------------------------- FTP


class FTPServer:
    """pyftpdlib server for one user rooted at ``root``, polled from its own thread."""

    def __init__(self, root: Path, username: str, password: str) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import DTPHandler, FTPHandler
        from pyftpdlib.servers import FTPServer as _Server

        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        self.root = root
        self.faults = Faults()
        self._stop = threading.Event()
        self._down = threading.Event()
        outer = self

        class FaultyDTP(DTPHandler):
            def handle_read(self) -> None:
                before = self.tot_bytes_received
                super().handle_read()
                if outer.faults.account(self.tot_bytes_received - before):
                    self.cmd_channel.close()  # drops data and control connections
                    if outer.faults.then_go_down:
                        outer._down.set()

            handle_read_event = handle_read

        authorizer = DummyAuthorizer()
        authorizer.add_user(username, password, str(root), perm="elradfmwMT")
        handler = type(
            "Handler",
            (FTPHandler,),
            {"authorizer": authorizer, "dtp_handler": FaultyDTP, "auth_failed_timeout": 0.05},
        )
        self._server = _Server((HOST, 0), handler)
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set() and not self._down.is_set():
            self._server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        self._server.close_all()

    def start(self) -> FTPServer:
        self._thread.start()
        return self

    def go_down(self) -> None:
        self._down.set()
        self._thread.join(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
