"""A threaded loopback HTTP server for http(s) input tests: files from a dict, ``Range`` support,
a connection dropped halfway through the first download of chosen paths, redirects and errors."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HttpFiles:
    """What the server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)  # first full GET: half the body, then a reset
    redirects: dict[str, str] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)  # the Range headers received
    url: str = ""


def _handler(state: HttpFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.files.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            rng = self.headers.get("Range")
            if rng:
                state.ranges.append(rng)
                m = re.fullmatch(r"bytes=(\d+)-", rng)
                start = int(m.group(1)) if m else 0
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self._send(body[start:])
                return
            self.send_response(200)
            if path in state.drop_once:
                state.drop_once.discard(path)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(body)

        def _send(self, body: bytes) -> None:
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (size cap, tests) is expected here


@contextmanager
def http_files(**files: bytes) -> Iterator[HttpFiles]:
    """Serve ``files`` (name -> bytes, at ``/name``) on a free loopback port."""
    state = HttpFiles(files={f"/{k}": v for k, v in files.items()})
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
