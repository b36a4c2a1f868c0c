"""``probe_location`` (the web admin's "Test connection"): list, write, read back and delete a
probe object on a real S3 (moto) and FTP server; failures are explicit steps, nothing left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mediarunner.config import Settings
from mediarunner.config.settings import HostCredentials
from mediarunner.storage.probe import probe_location


def _names(steps: list[Any]) -> list[tuple[str, bool]]:
    return [(s.name, s.ok) for s in steps]


def test_s3_probe_ok_and_missing_bucket(s3: tuple[Settings, Any]) -> None:
    settings, (client, bucket) = s3
    steps = probe_location(f"s3://{bucket}/videos/", settings)
    assert _names(steps) == [("location", True), ("list", True), ("write", True), ("read back", True),
                             ("delete", True)], steps
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # the probe object is gone
    bad = probe_location("s3://no-such-bucket-here/x/", settings)
    assert bad[-1].name in ("list", "delete") and not all(s.ok for s in bad) and bad[1].name == "list"
    assert "NoSuchBucket" in " ".join(s.detail for s in bad) or "not exist" in " ".join(s.detail for s in bad)


def test_ftp_probe_ok_and_wrong_password(ftp: tuple[Any, Settings]) -> None:
    server, settings = ftp
    steps = probe_location(f"ftp://127.0.0.1:{server.port}/out/", settings)
    assert all(s.ok for s in steps) and [s.name for s in steps][-1] == "delete", [(s.name, s.detail) for s in steps]
    assert not list(Path(server.root).rglob("probe.txt"))
    wrong = settings.model_copy(update={"ftp_credentials": {
        "127.0.0.1": HostCredentials(username="bob", password=SecretStr("nope"))}})
    failed = probe_location(f"ftp://127.0.0.1:{server.port}/out/", wrong)
    assert _names(failed)[:2] == [("location", True), ("list", False)]
    assert "nope" not in failed[1].detail and failed[1].detail
    assert _names(probe_location("/tmp/local", settings)) == [("location", False)]
