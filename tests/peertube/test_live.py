"""``live-rtmp-hls-transcoding`` through the PeerTube connector, with a real worker and real ffmpeg.

The RTMP source is ffmpeg as an RTMP server (``-listen 1``) that the mediarunner live job pulls, as
peertube-runner pulls PeerTube's ``rtmpUrl``. Every update is checked against PeerTube 6.3.3's live
update validator (in the fake: ``fake_live.py``) and field by field here: chunk names
``<rung>-<nnnnnn>.ts`` in order, the rung's playlist ``<rung>.m3u8`` ending with that chunk and
holding at most ``segmentListSize`` chunks, the master naming every rung, remove-chunk once the list
size (+1, ffmpeg's delete threshold) is exceeded, success at the end of the stream.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import m3u8
import pytest

from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from tests.peertube.conftest import register, running_fake, start_connector
from tests.peertube.fake import COMPLETED, ERRORED, PENDING, PROCESSING, FakeJob, FakePeerTube
from tests.peertube.fake_live import LIVE, MASTER_NAME
from tests.studio.conftest import X264
from tests.studio.test_live import is_listening
from tests.support import RedisServer, Stack, free_port, make_stack, wait_for

LIST_SIZE = 3
CHUNK = re.compile(r"^(\d)-(\d{6})\.ts$")
LIVE_ENV = {
    "MEDIARUNNER_RENDITIONS": json.dumps([
        {"name": "240p", "height": 240, "video_bitrate_k": 300, "audio_bitrate_k": 64},
        {"name": "144p", "height": 144, "video_bitrate_k": 150, "audio_bitrate_k": 48},
    ]),
    "MEDIARUNNER_LIVE_STALL_TIMEOUT_SECONDS": "10",
    "MEDIARUNNER_ALLOWED_NETWORKS": '["127.0.0.1/32"]',  # the fake PeerTube's own host, nothing wider
}


@pytest.fixture
def live(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    import redis

    redis_server.ping() or redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, pg_url, redis_server.url, **LIVE_ENV) as s:
        yield s


@pytest.fixture
def fake(live: Stack, tmp_path: Path) -> Iterator[FakePeerTube]:
    with running_fake(tmp_path, live.settings().database_url) as pt:
        yield pt


def rtmp_server(publishers: list[subprocess.Popen[bytes]], seconds: float) -> str:
    """PeerTube's RTMP side: ffmpeg serving a generated A/V stream to the one client that pulls it."""
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/3f9c2a7e-stream-key"
    publishers.append(subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", f"{seconds}", *X264, "-g", "15", "-c:a", "aac", "-b:a", "64k", "-f", "flv", "-listen", "1", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    wait_for(lambda: is_listening(port), 20, what="the RTMP source to listen")
    return url


def live_payload(url: str, heights: tuple[int, ...] = (240, 144)) -> dict[str, Any]:
    """As PeerTube 6.3.3 builds it: the video resolutions, then always resolution 0 (its audio group)."""
    rungs = [{"resolution": h, "fps": 15} for h in heights] + [{"resolution": 0, "fps": 0}]
    return {"input": {"rtmpUrl": url}, "output": {"toTranscode": rungs, "segmentListSize": LIST_SIZE,
                                                    "segmentDuration": 1}}


def mediarunner_job(stack: Stack, uuid: str) -> str | None:
    from mediarunner.models import peertube as records

    t = transaction(lambda s: records.get_job(s, uuid), url=stack.settings().database_url)
    return t.job_id if t is not None else None


def adds(j: FakeJob) -> list[dict[str, Any]]:
    return [u for u in j.live_updates if u["fields"]["type"] == "add-chunk"]


def check_add(u: dict[str, Any], rungs: int) -> tuple[int, int]:
    """One add-chunk update, field by field: (rung, chunk number)."""
    fields, files = u["fields"], u["files"]
    m = CHUNK.match(fields["videoChunkFilename"])
    assert m, fields
    rung, number = int(m.group(1)), int(m.group(2))
    assert rung < rungs
    assert fields == {"type": "add-chunk", "videoChunkFilename": f"{rung}-{number:06d}.ts",
                      "resolutionPlaylistFilename": f"{rung}.m3u8"}
    assert set(files) == {"videoChunkFile", "resolutionPlaylistFile", "masterPlaylistFile"}
    name, data, mime = files["videoChunkFile"]
    assert (name, mime) == (fields["videoChunkFilename"], "video/mp2t") and data[:1] == b"\x47"  # MPEG-TS sync
    playlist = m3u8.loads(files["resolutionPlaylistFile"][1].decode())
    uris = [s.uri for s in playlist.segments]
    assert uris[-1] == fields["videoChunkFilename"] and len(uris) <= LIST_SIZE
    assert uris == [f"{rung}-{n:06d}.ts" for n in range(number + 1 - len(uris), number + 1)]
    assert playlist.media_sequence == number + 1 - len(uris) and not playlist.is_endlist
    assert playlist.playlist_type is None and playlist.target_duration
    master = m3u8.loads(files["masterPlaylistFile"][1].decode())
    assert sorted(v.uri for v in master.playlists) == [f"{i}.m3u8" for i in range(rungs)]
    return rung, number


def probe_chunk(data: bytes, tmp: Path) -> dict[str, Any]:
    path = tmp / "chunk.ts"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


@contextlib.contextmanager
def connected(live: Stack, fake: FakePeerTube, *, worker: bool = True) -> Iterator[None]:
    """The fake registered as instance ``fleet``, a connector polling it and (``worker``) a worker."""
    register(live, fake, "fleet", LIVE)
    running = start_connector(live, peertube_poll_seconds=0.3)
    if worker:
        live.inproc_worker("a")
    try:
        yield
    finally:
        running.stop()


def test_live_chunks_reach_peertube_then_success(live: Stack, fake: FakePeerTube, tmp_path: Path,
                                                 publishers: list[subprocess.Popen[bytes]]) -> None:
    with connected(live, fake):
        job = fake.add_job(LIVE, live_payload(rtmp_server(publishers, 8)))
        wait_for(lambda: job.state not in (PENDING, PROCESSING), 90, what="the live job to end")
        assert job.state == COMPLETED and job.success, job.error
        assert (job.success["fields"], job.success["files"]) == ({}, {})  # the empty payload PeerTube requires
    job_id = mediarunner_job(live, job.uuid)
    assert job_id and live.client().get(job_id).state is JobState.COMPLETED
    seen: dict[int, list[int]] = {0: [], 1: []}
    for u in adds(job):
        rung, number = check_add(u, 2)
        seen[rung].append(number)
    for rung, numbers in seen.items():  # every chunk once, in order, about one a second
        assert numbers == list(range(len(numbers))) and 6 <= len(numbers) <= 10, (rung, numbers)
    removes = [u for u in job.live_updates if u["fields"]["type"] == "remove-chunk"]
    for rung, numbers in seen.items():
        gone = [int(CHUNK.match(u["fields"]["videoChunkFilename"]).group(2)) for u in removes  # type: ignore[union-attr]
                if u["fields"]["videoChunkFilename"].startswith(f"{rung}-")]
        assert gone == list(range(len(numbers) - LIST_SIZE - 1)), (rung, gone)
        kept = sorted(n for n in job.live_files if n.startswith(f"{rung}-"))
        assert len(kept) == LIST_SIZE + 1
        final = m3u8.loads(job.live_files[f"{rung}.m3u8"].decode())
        assert {s.uri for s in final.segments} <= set(kept)
    assert MASTER_NAME in job.live_files
    streams = probe_chunk(adds(job)[-1]["files"]["videoChunkFile"][1], tmp_path)
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert {int(u["fields"]["videoChunkFilename"][0]): probe_chunk(u["files"]["videoChunkFile"][1], tmp_path)
            ["video"]["height"] for u in adds(job)[:4]} == {0: 240, 1: 144}


@pytest.mark.parametrize("how", ["cancel", "session_end"])
def test_peertube_ending_the_job_stops_the_mediarunner_job(live: Stack, fake: FakePeerTube, how: str,
                                                           publishers: list[subprocess.Popen[bytes]]) -> None:
    with connected(live, fake):
        job = fake.add_job(LIVE, live_payload(rtmp_server(publishers, 60), heights=(144,)))
        wait_for(lambda: len(adds(job)) >= LIST_SIZE + 3, 60, what="live chunks")
        staged = live.tmp / "outputs" / "peertube" / "fleet" / job.uuid / "out" / "r0-144p"
        assert 0 < len(list(staged.glob("seg_*.ts"))) <= LIST_SIZE + 3  # relayed and removed ones are deleted
        if how == "cancel":  # the admin cancels (or deletes) the runner job: the next update is a 404
            fake.cancel(job.uuid)
        else:  # the streamer stopped: PeerTube's session ended, updates answer 400 not-processing
            fake.end_session(job.uuid)
        job_id = mediarunner_job(live, job.uuid)
        assert job_id
        done = wait_for(lambda: (j := live.client().get(job_id)).done and j, 30, what="the live job to stop")
        assert done.state is JobState.CANCELLED
        if how == "session_end":  # as peertube-runner does: success, so PeerTube closes the job cleanly
            wait_for(lambda: job.state == COMPLETED, 10, what="success after the session ended")
            assert job.success and (job.success["fields"], job.success["files"]) == ({}, {})


def test_rtmp_url_on_another_host_is_refused(live: Stack, fake: FakePeerTube) -> None:
    with connected(live, fake, worker=False):
        job = fake.add_job(LIVE, live_payload("rtmp://127.0.0.2:1935/live/key"))
        wait_for(lambda: job.state == ERRORED, 30, what="the job to be errored")
        assert job.error is not None and "is not this PeerTube instance's host" in job.error
        assert "\n" not in job.error and not job.live_updates
        assert mediarunner_job(live, job.uuid) is None  # nothing was submitted


def test_keepalive_is_a_valid_live_update(live: Stack, fake: FakePeerTube, tmp_path: Path) -> None:
    """While the output is quiet (a failover), a remove-chunk of a name no chunk has keeps PeerTube's
    30 s live watchdog fed; PeerTube's validator accepts it and removing a missing file is a no-op."""
    import time

    from mediarunner.connectors.peertube.live import KEEPALIVE_CHUNK, LiveRelay
    from mediarunner.connectors.peertube.protocol import RunnerAPI
    from mediarunner.storage.store import open_store

    api = RunnerAPI(fake.url)
    api.register(fake.registration_token, "manual")
    job = fake.add_job(LIVE, live_payload("rtmp://127.0.0.1:1935/live/key"))
    token = api.accept(job.uuid)["jobToken"]
    out = live.tmp / "outputs" / "quiet"
    out.mkdir(parents=True)
    relay = LiveRelay(api, job.uuid, token, open_store(str(out), live.settings()), ["r0-240p"], list_size=3,
                      scratch=tmp_path / "scratch", keepalive=0.0)
    before = job.updated_at
    assert relay.relay() == 0  # nothing written yet: nothing posted
    assert not job.live_updates
    wait_for(lambda: time.monotonic() > before, 1, what="the clock to move")
    relay.feed_watchdog()
    assert [u["fields"] for u in job.live_updates] == [{"type": "remove-chunk", "videoChunkFilename": KEEPALIVE_CHUNK}]
    assert job.updated_at > before and job.live_files == {}
    api.close()
