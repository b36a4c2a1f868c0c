"""Slow is not dead: a healthy worker staging a big input over a slow link keeps its job.

The input comes from an FTP server throttled so that the download alone lasts about three times
``FAILOVER_AFTER_SECONDS``; beat runs failover all the while. The job's heartbeat thread keeps the
row fresh through the download, so the job completes on its first attempt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarunner.models.enums import JobState, Stage
from tests.support import RedisServer, Stack, make_clip, make_stack, wait_for

FAILOVER_AFTER = 2.0
RATE = 64 * 1024  # bytes per second the server sends


class ThrottledFTP:
    """pyftpdlib on loopback; downloads are sent at ``rate`` bytes per second."""

    def __init__(self, root: Path, rate: int) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
        from pyftpdlib.servers import FTPServer

        authorizer = DummyAuthorizer()
        authorizer.add_user("carol", "pw", str(root), perm="elr")
        dtp = type("SlowDTP", (ThrottledDTPHandler,), {"write_limit": rate})
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "dtp_handler": dtp})
        self._server = FTPServer(("127.0.0.1", 0), handler)
        self.port = int(self._server.socket.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self._server.close_all()

    def __enter__(self) -> ThrottledFTP:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def slow_stack(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[tuple[Stack, ThrottledFTP]]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    root = tmp_path / "ftp-root"
    root.mkdir()
    with ThrottledFTP(root, RATE) as ftp, make_stack(
        tmp_path, pg_url, redis_server.url,
        MEDIARUNNER_BEAT_INTERVAL_SECONDS="0.5",
        MEDIARUNNER_FAILOVER_AFTER_SECONDS=str(FAILOVER_AFTER),
        MEDIARUNNER_HEARTBEAT_SECONDS="0.5",
        MEDIARUNNER_FTP_CREDENTIALS=json.dumps({"127.0.0.1": {"username": "carol", "password": "pw"}}),
        MEDIARUNNER_TRANSFER_TIMEOUT_SECONDS="30",
    ) as stack:
        yield stack, ftp


def test_a_download_three_times_longer_than_failover_completes_on_attempt_1(
        slow_stack: tuple[Stack, ThrottledFTP]) -> None:
    stack, ftp = slow_stack
    root = stack.tmp / "ftp-root"
    src = make_clip(stack.tmp / "src.mp4", seconds=4.0, size="640x360")
    # Pad the file to ~3 x FAILOVER_AFTER seconds of transfer (trailing bytes after the moov
    # atom are ignored by demuxers; the clip stays a valid MP4).
    size = int(3 * FAILOVER_AFTER * RATE)
    data = src.read_bytes()
    (root / "big.mp4").write_bytes(data + b"\0" * max(0, size - len(data)))
    stack.worker("a")
    stack.worker("sched", queues="scheduler", beat=True)
    client = stack.client()
    out = stack.tmp / "outputs" / "slow"
    started = time.monotonic()
    job = client.submit_transcode(f"ftp://127.0.0.1:{ftp.port}/big.mp4", str(out), renditions=["360p"],
                                  formats=["mp4"])
    wait_for(lambda: client.get(job.id).stage is Stage.DOWNLOADING, 30, what="the download to start")
    # The transfer's progress is on the job while it runs (saved by the heartbeat).
    moving = wait_for(lambda: (r := (client.get(job.id).result or {}).get("transfer")) and 0 < r["bytes"] < r["total"]
                      and r, 30, what="transfer progress on the job")
    assert moving["direction"] == "download" and moving["total"] == (root / "big.mp4").stat().st_size
    wait_for(lambda: ((client.get(job.id).result or {}).get("transfer") or {}).get("bytes", 0) > moving["bytes"],
             30, what="the transfer progress to advance")
    done = client.wait(job.id, timeout=120)
    assert time.monotonic() - started > 2 * FAILOVER_AFTER, "the download was not slow: nothing was tested"
    assert done.state is JobState.COMPLETED, done.error
    assert done.attempt == 1 and done.failures == 0
    assert (out / "360p.mp4").is_file()
