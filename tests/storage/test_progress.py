"""Transfers report their progress on every scheme: bytes moved so far, out of the total."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediarunner.config import Settings
from mediarunner.storage.store import open_store
from mediarunner.storage.transfer import Meter
from tests.storage.conftest import make_tree, tree_files

BIG = 3 * 2**20 + 12345  # several blocks on every protocol


def _check(reports: list[tuple[int, int | None]], total: int, *, midway: bool = True) -> None:
    assert reports, "no progress was reported"
    done = [d for d, _ in reports]
    assert done == sorted(done), f"progress went backwards: {done[:20]}"
    assert {t for _, t in reports} == {total}
    assert done[-1] == total
    if midway:
        assert any(0 < d < total for d in done), "nothing was reported between start and end"


def _round_trip(settings: Settings, url: str, tmp_path: Path, *, single_put: bool = False) -> None:
    """``single_put``: the store sends a file of this size in one request (S3 below its multipart
    chunk size), so its upload reports only when the request is done."""
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(256)) * (BIG // 256) + b"x" * (BIG % 256))
    up: list[tuple[int, int | None]] = []
    open_store(url, settings, "output", lambda d, t: up.append((d, t))).publish(src, "big.bin")
    _check(up, BIG, midway=not single_put)
    down: list[tuple[int, int | None]] = []
    got = open_store(f"{url}/big.bin", settings, "input", lambda d, t: down.append((d, t))).stage_in(tmp_path / "in")
    assert got.read_bytes() == src.read_bytes()
    _check(down, BIG)
    tree = make_tree(tmp_path / "tree")
    total = sum(len(b) for b in tree_files(tree).values())
    many: list[tuple[int, int | None]] = []
    open_store(f"{url}/tree", settings, "output", lambda d, t: many.append((d, t))).publish(tree)
    _check(many, total)


def test_s3_progress(s3: tuple[Settings, Any], tmp_path: Path) -> None:
    settings, (_client, bucket) = s3
    _round_trip(settings, f"s3://{bucket}/p", tmp_path, single_put=True)


def test_sftp_progress(sftp: tuple[Any, Settings], tmp_path: Path) -> None:
    server, settings = sftp
    _round_trip(settings, f"sftp://127.0.0.1:{server.port}/p", tmp_path)


def test_ftp_progress(ftp: tuple[Any, Settings], tmp_path: Path) -> None:
    server, settings = ftp
    _round_trip(settings, f"ftp://127.0.0.1:{server.port}/p", tmp_path)


@pytest.mark.parametrize("total", [100, None])
def test_a_retried_file_starts_again_without_counting_twice(total: int | None) -> None:
    seen: list[tuple[int, int | None]] = []
    meter = Meter(lambda d, t: seen.append((d, t)), total)
    meter.file_progress(40)
    meter.file_progress(0)  # the connection dropped; the retry starts from the beginning
    meter.file_progress(60)
    meter.file_done(60)
    meter.file_progress(40)
    meter.file_done(40)
    assert seen[3] == (60, total)  # the first file counts once: its 40 aborted bytes are forgotten
    assert seen[-1] == (100, total) and max(d for d, _ in seen) == 100
