from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mediarunner.config import Settings
from mediarunner.config.settings import HostCredentials
from mediarunner.storage.store import open_store

from .servers import FTPServer, SFTPServer, moto_server

FAST: dict[str, Any] = {
    "transfer_retries": 2,
    "transfer_backoff_seconds": 0.01,
    "transfer_timeout_seconds": 5.0,
}


def storage_settings(**fields: Any) -> Settings:
    """Worker settings for the stores: roots that admit any local path ("/" for inputs: empty input
    roots refuse every local input; none for outputs), no .env file, ``fields`` on top."""
    return Settings(_env_file=None, **{"input_roots": [Path("/")], "output_roots": [], **fields})  # type: ignore[call-arg]


def stage_in(settings: Settings, url: str, scratch: Path) -> Path:
    """A local file with the bytes of the input ``url`` (the store of that location stages it in)."""
    return open_store(url, settings, "input").stage_in(scratch)


def publish(settings: Settings, local: Path, url: str) -> list[str]:
    """Publish ``local`` at ``url``; the published locations, in upload order."""
    return [p.location for p in open_store(url, settings).publish(local)]


def make_tree(root: Path, *, segments: int = 3, seg_bytes: int = 20_000) -> Path:
    """A small HLS-like output tree: two variants, a master playlist and a manifest."""
    root.mkdir(parents=True, exist_ok=True)
    for variant in ("v0", "v1"):
        (root / variant).mkdir(exist_ok=True)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
        for i in range(segments):
            name = f"seg_{i:03d}.ts"
            (root / variant / name).write_bytes(os.urandom(seg_bytes))
            lines += ["#EXTINF:2.0,", name]
        lines.append("#EXT-X-ENDLIST")
        (root / variant / "index.m3u8").write_text("\n".join(lines) + "\n")
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv0/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=400000\nv1/index.m3u8\n"
    )
    (root / "manifest.json").write_text(json.dumps({"master": "master.m3u8"}))
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


# ---------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[tuple[Settings, object]]:
    import uuid

    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    config = storage_settings(
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key=SecretStr("testing"),
        **FAST,
    )
    yield config, (client, bucket)


# -------------------------------------------------------------------------------------------- SFTP


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    import asyncssh

    d = tmp_path_factory.mktemp("ssh")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = d / "id_ed25519"
    key_path.write_bytes(client_key.export_private_key("openssh"))
    key_path.chmod(0o600)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    return {
        "dir": d,
        "client_key_path": key_path,
        "client_public": client_key.export_public_key("openssh").decode(),
        "host_key": host_key,
        "host_public": host_key.export_public_key("openssh").decode().strip(),
    }


@pytest.fixture
def sftp(tmp_path: Path, ssh_keys: dict[str, object]) -> Iterator[tuple[SFTPServer, Settings]]:
    root = tmp_path / "sftp-root"
    root.mkdir()
    server = SFTPServer(root, "alice", str(ssh_keys["client_public"]), ssh_keys["host_key"]).start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {ssh_keys['host_public']}\n")
    config = storage_settings(
        sftp_credentials={
            f"127.0.0.1:{server.port}": HostCredentials(
                username="alice", private_key_path=Path(str(ssh_keys["client_key_path"]))
            )
        },
        sftp_known_hosts=known_hosts,
        **FAST,
    )
    try:
        yield server, config
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------- FTP


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[FTPServer, Settings]]:
    root = tmp_path / "ftp-root"
    root.mkdir()
    server = FTPServer(root, "bob", "s3cret").start()
    config = storage_settings(
        ftp_credentials={"127.0.0.1": HostCredentials(username="bob", password=SecretStr("s3cret"))},
        **FAST,
    )
    try:
        yield server, config
    finally:
        server.stop()
