from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mediarunner.config import Settings
from mediarunner.errors import InvalidInputError, InvalidOutputError, StorageError
from mediarunner.storage import transfer

from .conftest import FAST, publish, stage_in, storage_settings, tree_files


def _objects(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def test_s3_round_trip(s3: tuple[Settings, Any], tree: Path, tmp_path: Path) -> None:
    config, (client, bucket) = s3
    urls = publish(config, tree, f"s3://{bucket}/jobs/42")
    expected = {f"jobs/42/{k}": v for k, v in tree_files(tree).items()}
    assert _objects(client, bucket) == expected
    assert urls[-2:] == [f"s3://{bucket}/jobs/42/master.m3u8", f"s3://{bucket}/jobs/42/manifest.json"]
    assert all(not u.endswith(".m3u8") for u in urls[:6])
    head = client.head_object(Bucket=bucket, Key="jobs/42/v0/seg_000.ts")
    assert head["ContentType"] == "video/mp2t"
    head = client.head_object(Bucket=bucket, Key="jobs/42/master.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"

    scratch = tmp_path / "scratch"
    local = stage_in(config, f"s3://{bucket}/jobs/42/v1/seg_002.ts", scratch)
    assert local.parent == scratch and local.name.endswith("seg_002.ts")
    assert local.read_bytes() == (tree / "v1" / "seg_002.ts").read_bytes()
    assert [p.name for p in scratch.iterdir()] == [local.name]  # no temporaries left

    # A single file, to a key and under a prefix.
    assert publish(config, tree / "manifest.json", f"s3://{bucket}/single/m.json") == [f"s3://{bucket}/single/m.json"]
    assert publish(config, tree / "manifest.json", f"s3://{bucket}/dir/") == [f"s3://{bucket}/dir/manifest.json"]
    assert set(_objects(client, bucket, "single/")) == {"single/m.json"}
    assert set(_objects(client, bucket, "dir/")) == {"dir/manifest.json"}


def test_s3_missing_is_permanent(s3: tuple[Settings, Any], tmp_path: Path) -> None:
    config, (_client, bucket) = s3
    with pytest.raises(InvalidInputError):
        stage_in(config, f"s3://{bucket}/no/such/key.mp4", tmp_path)
    with pytest.raises(InvalidInputError):
        stage_in(config, "s3://no-such-bucket-xyz/key.mp4", tmp_path)
    with pytest.raises(InvalidInputError):
        stage_in(config, f"s3://{bucket}/", tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InvalidOutputError):
        publish(config, tmp_path / "f.txt", "s3://no-such-bucket-xyz/out.txt")


def test_s3_unreachable_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connection refused
    config = storage_settings(
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_region="us-east-1",
        s3_access_key_id="k",
        s3_secret_access_key=SecretStr("s"),
        **FAST,
    )
    t0 = time.monotonic()
    with pytest.raises(StorageError) as err:
        stage_in(config, "s3://bucket/key.mp4", tmp_path)
    assert "3 attempt" in str(err.value)
    assert time.monotonic() - t0 < 20


def test_s3_failed_publish_rolls_back(
    s3: tuple[Settings, Any], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, (client, bucket) = s3
    client.put_object(Bucket=bucket, Key="out/v0/seg_000.ts", Body=b"old")  # was there before
    real_put = transfer.upload
    calls: list[str] = []

    def flaky_put(fs: Any, scheme: str, src: Path, dst: str, meter: Any) -> None:
        calls.append(dst)
        if dst.endswith("v1/index.m3u8"):
            raise ConnectionResetError("injected reset")
        real_put(fs, scheme, src, dst, meter)

    monkeypatch.setattr(transfer, "upload", flaky_put)
    with pytest.raises(StorageError):
        publish(config, tree, f"s3://{bucket}/out")
    assert sum(c.endswith("v1/index.m3u8") for c in calls) == 3  # 1 + transfer_retries
    left = _objects(client, bucket, "out/")
    # Only the object that existed before remains (overwritten, not deleted); no playlist at all.
    assert list(left) == ["out/v0/seg_000.ts"]
    assert left["out/v0/seg_000.ts"] == (tree / "v0" / "seg_000.ts").read_bytes()
