"""Remote storage end to end: a transcode reads from and writes to S3 (moto), SFTP (asyncssh) and
FTP (pyftpdlib) servers on loopback, through a real worker that gets its keys from its settings."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState
from tests.media_checks import duration, master_variants, media_playlist_duration, streams
from tests.storage.servers import FTPServer, SFTPServer, moto_server
from tests.support import Stack, make_clip, wait_for

DONE = JobState.COMPLETED
FAST_TRANSFERS = {
    "MEDIARUNNER_TRANSFER_RETRIES": "3",
    "MEDIARUNNER_TRANSFER_BACKOFF_SECONDS": "0.05",
    "MEDIARUNNER_TRANSFER_TIMEOUT_SECONDS": "5",
}


@dataclass
class Remote:
    """A running server: the URL prefix of its root, its files on disk (SFTP/FTP), and worker settings."""

    prefix: str
    root: Path | None
    env: dict[str, str]
    server: Any = None
    client: Any = None  # boto3 client (S3)
    bucket: str = ""


# ---------------------------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def s3_remote(endpoint: str) -> Remote:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    bucket = f"media-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    env = {"MEDIARUNNER_S3_ENDPOINT_URL": endpoint, "MEDIARUNNER_S3_REGION": "us-east-1",
           "MEDIARUNNER_S3_ACCESS_KEY_ID": "testing", "MEDIARUNNER_S3_SECRET_ACCESS_KEY": "testing"}
    return Remote(f"s3://{bucket}", None, {**FAST_TRANSFERS, **env}, client=client, bucket=bucket)


@pytest.fixture
def s3(s3_endpoint: str) -> Remote:
    return s3_remote(s3_endpoint)


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[Remote]:
    import asyncssh

    keys = tmp_path / "ssh"
    keys.mkdir()
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = keys / "id_ed25519"
    key_path.write_bytes(client_key.export_private_key("openssh"))
    key_path.chmod(0o600)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    root = tmp_path / "sftp-root"
    root.mkdir()
    server = SFTPServer(root, "alice", client_key.export_public_key("openssh").decode(), host_key).start()
    known_hosts = keys / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {host_key.export_public_key('openssh').decode().strip()}\n")
    creds = {f"127.0.0.1:{server.port}": {"username": "alice", "private_key_path": str(key_path)}}
    env = {"MEDIARUNNER_SFTP_CREDENTIALS": json.dumps(creds), "MEDIARUNNER_SFTP_KNOWN_HOSTS": str(known_hosts)}
    try:
        yield Remote(f"sftp://127.0.0.1:{server.port}", root, {**FAST_TRANSFERS, **env}, server=server)
    finally:
        server.stop()


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[Remote]:
    root = tmp_path / "ftp-root"
    root.mkdir()
    server = FTPServer(root, "bob", "s3cret").start()
    env = {"MEDIARUNNER_FTP_CREDENTIALS": json.dumps({"127.0.0.1": {"username": "bob", "password": "s3cret"}})}
    try:
        yield Remote(f"ftp://127.0.0.1:{server.port}", root, {**FAST_TRANSFERS, **env}, server=server)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- helpers


def s3_keys(remote: Remote, prefix: str) -> list[str]:
    """The keys under ``prefix``, relative to it (a listing only: keys may vanish while it runs)."""
    listing = remote.client.list_objects_v2(Bucket=remote.bucket, Prefix=prefix)
    return [o["Key"][len(prefix):] for o in listing.get("Contents", [])]


def s3_objects(remote: Remote, prefix: str) -> dict[str, bytes]:
    c, b = remote.client, remote.bucket
    return {k: c.get_object(Bucket=b, Key=prefix + k)["Body"].read() for k in s3_keys(remote, prefix)}


def mirror(files: dict[str, bytes], dst: Path) -> Path:
    for rel, data in files.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(data)
    return dst


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_ladder(out: Path, names: list[str], seconds: float) -> None:
    """A complete HLS + MP4 ladder under ``out`` (a local copy of the remote output)."""
    assert sorted(uri for _, uri in master_variants(out / "master.m3u8")) == sorted(
        f"hls/{n}/index.m3u8" for n in names)
    for n in names:
        mp4 = out / f"{n}.mp4"
        assert [s["codec_name"] for s in streams(mp4, "video")] == ["h264"]
        assert abs(duration(mp4) - seconds) <= 0.15
        assert abs(media_playlist_duration(out / "hls" / n / "index.m3u8") - seconds) <= 0.15
    assert not [f for f in tree(out) if f.rsplit("/", 1)[-1].startswith(".")], "temporaries left behind"


def scratch_is_clean(stack: Stack) -> bool:
    scratch = Path(stack.env["MEDIARUNNER_SCRATCH_DIR"])
    return not scratch.exists() or not any(scratch.iterdir())


# ---------------------------------------------------------------------------------------------- round trips


def test_s3_transcode_round_trip(stack: Stack, s3: Remote, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, size="640x360")
    s3.client.upload_file(str(clip), s3.bucket, "in/clip.mp4")
    stack.inproc_worker("a", extra_env=s3.env)
    client = stack.client()
    job = client.wait(client.submit_transcode(f"{s3.prefix}/in/clip.mp4", f"{s3.prefix}/out/talk",
                                              renditions=["360p", "240p"]).id, timeout=180)
    assert [j.state for j in job.family] == [DONE, DONE], [(j.type, j.error) for j in job.family]
    assert all(j.stage is not None for j in job.family)
    objects = s3_objects(s3, "out/talk/")
    assert_ladder(mirror(objects, tmp_path / "copy"), ["360p", "240p"], 2.0)
    head = s3.client.head_object(Bucket=s3.bucket, Key="out/talk/hls/240p/index.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"
    arts = [a for j in job.family for a in j.artifacts if a.kind == "mp4"]
    assert sorted(a.path for a in arts) == [f"{s3.prefix}/out/talk/240p.mp4", f"{s3.prefix}/out/talk/360p.mp4"]
    assert all(a.checksum and a.size == len(objects[a.path.rsplit("/", 1)[1]]) for a in arts)
    # the worker's keys never travel in messages or rows
    assert "testing" not in json.dumps([j.payload for j in job.family])
    wait_for(lambda: scratch_is_clean(stack), 10, what="scratch to be cleaned")


def test_s3_split_transcode_joins_remote_parts_and_removes_them(stack: Stack, s3: Remote, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=8.0, size="640x360")
    s3.client.upload_file(str(clip), s3.bucket, "in/long.mp4")
    env = {**s3.env, "MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "2"}
    stack.inproc_worker("a", extra_env=env)
    stack.inproc_worker("b", extra_env=env)
    client = stack.client()
    job = client.wait(client.submit_transcode(f"{s3.prefix}/in/long.mp4", f"{s3.prefix}/out/split",
                                              renditions=["240p"], parts=2).id, timeout=180)
    assert [j.state for j in job.family] == [DONE] * 3, [(j.type, j.error) for j in job.family]
    assert sum(1 for j in job.family if j.result and j.result.get("joined") == 2) == 1
    # the joiner removes its parts right after its completion is committed (Outcome.cleanup), so
    # the family can be seen done a moment before they are gone
    # (it lists keys only: reading them would race the removal)
    wait_for(lambda: not [k for k in s3_keys(s3, "out/split/") if k.startswith(".parts/")], 10,
             what="the joined parts to be removed")
    objects = s3_objects(s3, "out/split/")
    assert_ladder(mirror(objects, tmp_path / "copy"), ["240p"], 8.0)
    wait_for(lambda: scratch_is_clean(stack), 10, what="scratch to be cleaned")


@pytest.mark.parametrize("scheme", ["sftp", "ftp"])
def test_sftp_and_ftp_transcode_round_trip(scheme: str, request: pytest.FixtureRequest, stack: Stack,
                                           tmp_path: Path) -> None:
    remote: Remote = request.getfixturevalue(scheme)
    assert remote.root is not None
    (remote.root / "in").mkdir()
    make_clip(remote.root / "in" / "my clip.mp4", seconds=2.0, size="640x360")
    stack.inproc_worker("a", extra_env=remote.env)
    client = stack.client()
    job = client.wait(client.submit_transcode(f"{remote.prefix}/in/my%20clip.mp4", f"{remote.prefix}/out/job1",
                                              renditions=["240p"]).id, timeout=180)
    assert job.state is DONE, job.error
    assert_ladder(remote.root / "out" / "job1", ["240p"], 2.0)
    assert job.artifacts[0].path.startswith(f"{remote.prefix}/out/job1/")
    wait_for(lambda: scratch_is_clean(stack), 10, what="scratch to be cleaned")


@pytest.mark.parametrize("scheme", ["sftp", "ftp"])
def test_upload_interrupted_is_retried_and_never_partially_visible(scheme: str, request: pytest.FixtureRequest,
                                                                   stack: Stack, tmp_path: Path) -> None:
    remote: Remote = request.getfixturevalue(scheme)
    assert remote.root is not None
    clip = make_clip(tmp_path / "clip.mp4", seconds=3.0, size="640x360")
    out = remote.root / "out"
    # What a reader polling the destination sees: every visible (non-hidden) file and its size.
    seen: dict[str, set[int]] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for dirpath, _dirs, files in os.walk(out):
                for name in files:
                    if not name.startswith("."):
                        try:
                            size = (Path(dirpath) / name).stat().st_size
                        except FileNotFoundError:
                            continue
                        seen.setdefault(os.path.join(dirpath, name), set()).add(size)
            stop.wait(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    remote.server.faults.drop_after_bytes = 60_000  # the connection dies in the middle of the uploads
    stack.inproc_worker("a", extra_env=remote.env)
    client = stack.client()
    try:
        job = client.wait(client.submit_transcode(str(clip), f"{remote.prefix}/out", renditions=["360p"]).id,
                          timeout=180)
    finally:
        stop.set()
        watcher.join(5)
    assert job.state is DONE, job.error
    assert remote.server.faults.dropped == 1, "the fault was not injected"
    assert_ladder(out, ["360p"], 3.0)
    final = {str(p): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    partial = {f: sizes for f, sizes in seen.items() if sizes != {final.get(f)}}
    assert not partial, f"readers saw partial files: {partial}"
    log = (stack.tmp / "worker-a.log").read_text()
    assert "retry 1/" in log, "the interrupted transfer should have been retried"


# ---------------------------------------------------------------------------------------------- refusals


def test_worker_with_too_little_scratch_refuses_and_another_takes_it(stack: Stack, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0, size="320x240")
    full = stack.worker("full", extra_env={"MEDIARUNNER_MIN_FREE_SCRATCH_MB": str(10**12),
                                           "MEDIARUNNER_RETRY_BASE_SECONDS": "0.2"}, wait=False)
    stack.worker("sched", queues="scheduler", beat=True, extra_env={"MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5"},
                 wait=False)
    stack.ready()
    client = stack.client()
    job = client.submit_transcode(str(clip), str(stack.tmp / "outputs" / "refused"), renditions=["240p"])
    refused = wait_for(lambda: (j := client.get(job.id)).failures >= 1 and j, 60, what="the refusal")
    assert "InsufficientResourcesError" in (refused.error or "") and refused.error_kind == "transient"
    full.stop()
    stack.worker("roomy")
    done = client.wait(job.id, timeout=120)
    assert done.state is DONE and done.worker and done.worker.startswith("roomy@"), (done.state, done.error)


@pytest.mark.parametrize("output, message", [
    ("s3://bucket/out", None),
    ("sftp://media.example:2222/srv/out", None),
    ("ftp://media.example/out", None),
    ("s3://key:secret@bucket/out", "credentials"),
    ("sftp://alice:pw@media.example/out", "credentials"),
    ("s3://Bad_Bucket/out", "bucket"),
    ("webdav://media.example/out", "scheme"),
])
def test_client_validates_remote_outputs(stack: Stack, output: str, message: str | None) -> None:
    client = stack.client()
    if message is None:
        job = client.submit_transcode("s3://bucket/in.mp4", output, renditions=["240p"])
        assert job.payload["output"] == output
        client.cancel(job.id)
        return
    before = len(client.list(limit=10_000))
    with pytest.raises(ValidationError, match=message):
        client.submit_transcode("in.mp4", output)
    with pytest.raises(ValidationError, match="credentials"):
        client.submit_transcode("s3://key:secret@bucket/in.mp4", str(stack.tmp / "outputs" / "x"))
    assert len(client.list(limit=10_000)) == before
