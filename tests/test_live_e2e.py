"""Live transcoding end to end: ffmpeg publishes a generated stream over RTMP to a live job on a real
worker (which listens for it); the live HLS ladder grows while it runs and is complete when it ends."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState, Stage
from tests.studio.test_live import is_listening, playlist_seconds, publish, segments_in
from tests.support import RedisServer, Stack, free_port, make_stack, wait_for
from tests.test_storage_e2e import Remote, s3_remote

DONE = JobState.COMPLETED
NAMES = ("180p", "120p")
LIVE_ENV = {
    "MEDIARUNNER_RENDITIONS": json.dumps([
        {"name": "180p", "height": 180, "video_bitrate_k": 300, "audio_bitrate_k": 64},
        {"name": "120p", "height": 120, "video_bitrate_k": 150, "audio_bitrate_k": 48},
    ]),
    "MEDIARUNNER_LIVE_SEGMENT_SECONDS": "1",
    "MEDIARUNNER_LIVE_STALL_TIMEOUT_SECONDS": "10",
    "MEDIARUNNER_ALLOWED_NETWORKS": '["127.0.0.0/8"]',  # the test's sources are on loopback
}


@pytest.fixture
def live(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, pg_url, redis_server.url, **LIVE_ENV) as s:
        yield s


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from tests.storage.servers import moto_server

    with moto_server() as url:
        yield url


def rtmp() -> tuple[int, str]:
    port = free_port()
    return port, f"rtmp://127.0.0.1:{port}/live/stream"


def has_segments(out: Path, n: int = 1) -> bool:
    pl = out / NAMES[0] / "index.m3u8"
    return pl.is_file() and len(segments_in(pl)) >= n and (out / "master.m3u8").is_file()


def ffmpeg_writing(out: Path) -> bool:
    found = subprocess.run(["pgrep", "-af", "ffmpeg"], capture_output=True, text=True).stdout
    return str(out.resolve()) in found


def assert_complete(out: Path, seconds: float) -> None:
    master = (out / "master.m3u8").read_text()
    assert all(f"{n}/index.m3u8" in master for n in NAMES) and "RESOLUTION=320x180" in master
    for n in NAMES:
        pl = out / n / "index.m3u8"
        text = pl.read_text()
        assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:EVENT" in text
        assert abs(playlist_seconds(pl) - seconds) < 1.5, playlist_seconds(pl)
        assert all((out / n / s).is_file() for s in segments_in(pl))
    assert not list(out.rglob("*.tmp"))


def test_rtmp_publish_to_live_job(live: Stack, publishers: list[subprocess.Popen[bytes]]) -> None:
    port, url = rtmp()
    out = live.tmp / "outputs" / "live"
    live.inproc_worker("a")
    client = live.client()
    job = client.submit_live(url, str(out), listen=True)
    wait_for(lambda: is_listening(port), 30, what="the live job to listen for the publisher")
    publishers.append(publish(url, 10))
    # The ladder is there, and growing, while the stream runs.
    wait_for(lambda: has_segments(out, 2), 30, what="live segments and playlists")
    assert "#EXT-X-ENDLIST" not in (out / NAMES[0] / "index.m3u8").read_text()
    running = wait_for(lambda: (j := client.get(job.id)).result and j.result.get("seconds_processed", 0) > 1 and j,
                       10, what="seconds processed in the job's result")
    assert (running.state, running.stage, running.progress) == (JobState.RUNNING, Stage.PROCESSING, 0)
    done = client.wait(job.id, timeout=60)
    assert done.state is DONE, done.error
    assert_complete(out, 10)
    assert done.result and 9 <= done.result["seconds_processed"] <= 10.6
    assert done.progress == 100
    assert {a.kind for a in done.artifacts} == {"hls_master", "hls_playlist"}
    assert publishers[0].wait(10) == 0


def test_cancel_stops_live_job_within_two_seconds(live: Stack, publishers: list[subprocess.Popen[bytes]]) -> None:
    port, url = rtmp()
    out = live.tmp / "outputs" / "cancel"
    live.inproc_worker("a")
    client = live.client()
    job = client.submit_live(url, str(out), listen=True)
    wait_for(lambda: is_listening(port), 30, what="the live job to listen")
    publishers.append(publish(url, 60))
    wait_for(lambda: has_segments(out) and ffmpeg_writing(out), 30, what="the live job to be transcoding")
    client.cancel(job.id)
    wait_for(lambda: not ffmpeg_writing(out), 2.0, what="the live ffmpeg to stop within 2 s")
    done = client.wait(job.id, timeout=10)
    assert done.state is JobState.CANCELLED
    scratch = Path(live.env["MEDIARUNNER_SCRATCH_DIR"])
    wait_for(lambda: not any(scratch.glob(f"{job.id}-*")), 10, what="scratch to be cleaned")


def test_live_to_s3_publishes_while_running(live: Stack, s3_endpoint: str,
                                            publishers: list[subprocess.Popen[bytes]]) -> None:
    s3: Remote = s3_remote(s3_endpoint)
    port, url = rtmp()
    live.inproc_worker("a", extra_env=s3.env)
    client = live.client()
    job = client.submit_live(url, f"{s3.prefix}/live/show", listen=True)
    wait_for(lambda: is_listening(port), 30, what="the live job to listen")
    publishers.append(publish(url, 6))

    def get(key: str) -> bytes | None:
        try:
            return bytes(s3.client.get_object(Bucket=s3.bucket, Key=f"live/show/{key}")["Body"].read())
        except s3.client.exceptions.NoSuchKey:
            return None

    def consistent_playlist() -> str | None:
        """A published variant playlist whose segments are all published already."""
        raw = get(f"{NAMES[0]}/index.m3u8")
        if raw is None:
            return None
        text = raw.decode()
        missing = [s for s in segments_in_text(text) if get(f"{NAMES[0]}/{s}") is None]
        assert not missing, f"playlist published before its segments {missing}"
        return text if segments_in_text(text) else None

    text = wait_for(consistent_playlist, 30, what="a live playlist in S3")
    assert "#EXT-X-ENDLIST" not in text and client.get(job.id).state is JobState.RUNNING
    assert get("master.m3u8") is not None
    done = client.wait(job.id, timeout=60)
    assert done.state is DONE, done.error
    for n in NAMES:
        final = (get(f"{n}/index.m3u8") or b"").decode()
        assert final.rstrip().endswith("#EXT-X-ENDLIST")
        assert all(get(f"{n}/{s}") for s in segments_in_text(final))
    assert done.result and done.result["master"] == f"{s3.prefix}/live/show/master.m3u8"


def segments_in_text(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


@pytest.mark.slow
def test_lost_worker_fails_over_and_the_stream_continues(live: Stack,
                                                         publishers: list[subprocess.Popen[bytes]]) -> None:
    fast = {"MEDIARUNNER_FAILOVER_AFTER_SECONDS": "3", "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5"}
    workers = {w.hostname: w for w in (live.worker("a", wait=False), live.worker("b", wait=False))}
    live.worker("sched", queues="scheduler", beat=True, extra_env=fast, wait=False)
    live.ready()
    port, url = rtmp()
    out = live.tmp / "outputs" / "failover"
    client = live.client()
    job = client.submit_live(url, str(out), listen=True)
    wait_for(lambda: is_listening(port), 30, what="the live job to listen")
    publishers.append(publish(url, 60))
    wait_for(lambda: has_segments(out, 2), 30, what="segments from the first worker")
    # The recorded seconds trail the stream by a heartbeat: wait until some are on record.
    first = wait_for(lambda: (j := client.get(job.id)).result and j.result["seconds_processed"] >= 2 and j, 30,
                     what="seconds processed on record")
    assert first.worker
    workers[first.worker].kill()  # the worker and its ffmpeg die
    before = {n: segments_in(out / n / "index.m3u8") for n in NAMES}
    resumed = wait_for(lambda: (j := client.get(job.id)).attempt == 2 and j.state is JobState.RUNNING and j, 60,
                       what="failover to the other worker")
    assert resumed.worker != first.worker
    wait_for(lambda: is_listening(port), 30, what="the resumed job to listen again")
    publishers[0].kill()  # its connection died with the first worker
    publishers.append(publish(url, 4))
    done = client.wait(job.id, timeout=60)
    assert done.state is DONE and done.attempt == 2, done.error
    for n, old in before.items():
        segs = segments_in(out / n / "index.m3u8")
        assert segs[: len(old)] == old and len(segs) > len(old)  # earlier segments kept, numbering continues
        text = (out / n / "index.m3u8").read_text()
        assert "#EXT-X-DISCONTINUITY" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    # Seconds count over both attempts: what the first had on record, plus the 4 s of the second stream.
    assert done.result and done.result["seconds_processed"] >= first.result["seconds_processed"] + 3.5  # type: ignore[index]


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_url="rtmp://u:pw@127.0.0.1/live/x"), "credentials"),
    (dict(input_url="gopher://h/x"), "scheme"),
    (dict(input_url="http://127.0.0.1/x.m3u8", listen=True), "listen"),
    (dict(input_url="rtmp://127.0.0.1/live/x", renditions=["999p"]), "unknown rendition"),
])
def test_invalid_live_submissions(live: Stack, kwargs: dict[str, object], message: str) -> None:
    client = live.client()
    before = len(client.list(limit=10_000))
    with pytest.raises(ValidationError, match=message) as err:
        client.submit_live(output=str(live.tmp / "outputs" / "x"), **kwargs)  # type: ignore[arg-type]
    assert "pw" not in str(err.value)
    assert len(client.list(limit=10_000)) == before
