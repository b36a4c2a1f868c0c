"""Live stream secrets (SRT passphrase/streamid, RTMP stream keys, key/token/sig parameters) are
masked wherever a URL is shown: job error and log tail, events, the worker log, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mediarunner.cli import app as cli_app
from mediarunner.config.redact import MASK, mask_secrets, mask_url, mask_urls_in, url_secrets
from mediarunner.media.ffmpeg import classify_failure
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow, JobRow
from tests.support import RedisServer, Stack, free_port, make_stack, wait_for

PASS = "srtPassphrase0123"
STREAMID = "publish-streamid-4567"
RTMP_KEY = "live_sk_89abcdefXYZ"


def test_mask_url_masks_stream_secrets() -> None:
    assert mask_url(f"srt://h:9000?passphrase={PASS}&streamid={STREAMID}&latency=200") == \
        f"srt://h:9000?passphrase={MASK}&streamid={MASK}&latency=200"
    assert mask_url(f"rtmp://h/live/{RTMP_KEY}") == f"rtmp://h/live/{MASK}"
    assert mask_url(f"rtmps://h:443/app/inst/{RTMP_KEY}?x=1") == f"rtmps://h:443/app/inst/{MASK}?x=1"
    assert mask_url("rtmp://h/app") == "rtmp://h/app"  # no key segment
    assert mask_url("https://h/a.m3u8?token=t0k3n&key=k3y99&secret=s3cr3t&sig=abcd&password=pw12&n=1") == \
        f"https://h/a.m3u8?token={MASK}&key={MASK}&secret={MASK}&sig={MASK}&password={MASK}&n=1"
    assert mask_url("srt://h:1?streamid=#!::r=live/k,m=publish") == f"srt://h:1?streamid={MASK}"


def test_text_echoing_urls_and_bare_secrets_is_masked() -> None:
    text = (f"[srt @ 0x5] Connection to srt://127.0.0.1:9?passphrase={PASS}&streamid={STREAMID}: refused\n"
            f"rtmp://h/live/{RTMP_KEY}: Input/output error")
    masked = mask_urls_in(text)
    assert PASS not in masked and STREAMID not in masked and RTMP_KEY not in masked
    assert ": refused" in masked and f"rtmp://h/live/{MASK}: Input/output error" in masked
    payload = {"input_url": f"rtmp://h/live/{RTMP_KEY}", "output": "/out"}
    assert url_secrets(payload) == {RTMP_KEY}
    assert mask_secrets(f"fname = {RTMP_KEY}", payload) == f"fname = {MASK}"
    err = classify_failure(1, f"rtmp://h/live/{RTMP_KEY}: Connection refused\nkey {RTMP_KEY}",
                           ["-i", f"rtmp://h/live/{RTMP_KEY}", "out.m3u8"])
    assert RTMP_KEY not in str(err)


@pytest.fixture
def live_stack(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    redis_server.ping() or redis_server.start()
    with make_stack(tmp_path, pg_url, redis_server.url, MEDIARUNNER_MAX_ATTEMPTS="1",
                    MEDIARUNNER_LIVE_STALL_TIMEOUT_SECONDS="5",
                    MEDIARUNNER_ALLOWED_NETWORKS='["127.0.0.0/8"]') as s:  # loopback inputs, if restricted
        yield s


def _secrets_in_rows(job_id: str) -> list[str]:
    def read(s: object) -> list[str]:
        job = s.get(JobRow, job_id)  # type: ignore[attr-defined]
        events = s.scalars(select(EventRow.message).where(EventRow.job_id == job_id)).all()  # type: ignore[attr-defined]
        return [job.error or "", job.log_tail or "", *events]

    return transaction(read)


def test_failed_live_jobs_show_no_secret(live_stack: Stack) -> None:
    worker = live_stack.worker("live")
    client = live_stack.client()
    out = live_stack.tmp / "outputs"
    port = free_port()  # nothing listens there
    jobs = [client.submit_live(f"srt://127.0.0.1:{port}?passphrase={PASS}&streamid={STREAMID}", str(out / "srt"),
                               renditions=["240p"]),
            client.submit_live(f"rtmp://127.0.0.1:{port}/live/{RTMP_KEY}", str(out / "rtmp"), renditions=["240p"])]
    for job in jobs:
        done = wait_for(lambda j=job: (g := client.get(j.id)).done and g, 120, what=f"live job {job.id} to fail")
        assert done.state is JobState.FAILED, done
        assert done.error, done
        texts = _secrets_in_rows(job.id)
        assert any("127.0.0.1" in t for t in texts), texts  # the URL is shown, masked
        for secret in (PASS, STREAMID, RTMP_KEY):
            assert all(secret not in t for t in texts), (secret, texts)
        for cmd in (["jobs", "show", job.id], ["logs", "--job", job.id]):
            res = CliRunner(env={"COLUMNS": "250"}).invoke(cli_app, cmd)
            assert res.exit_code == 0, res.output
            assert all(s not in res.output for s in (PASS, STREAMID, RTMP_KEY)), res.output
    worker.stop()
    log = worker.log.read_text()
    assert "127.0.0.1" in log
    assert all(s not in log for s in (PASS, STREAMID, RTMP_KEY)), log[-4000:]
