from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from mediarunner.config import Settings
from mediarunner.config.settings import HostCredentials
from mediarunner.errors import InvalidInputError, InvalidOutputError, StorageError

from .conftest import make_tree, publish, stage_in, tree_files
from .servers import FTPServer


def _url(server: FTPServer, path: str) -> str:
    return f"ftp://127.0.0.1:{server.port}{path}"


def test_ftp_round_trip(ftp: tuple[FTPServer, Settings], tree: Path, tmp_path: Path) -> None:
    server, config = ftp
    urls = publish(config, tree, _url(server, "/pub/job1"))
    dst = server.root / "pub" / "job1"
    assert tree_files(dst) == tree_files(tree)
    assert urls[-2:] == [_url(server, "/pub/job1/master.m3u8"), _url(server, "/pub/job1/manifest.json")]
    assert not list(dst.rglob(".*"))

    make_tree(tree, seg_bytes=3000)  # overwrite: rename over existing files
    publish(config, tree, _url(server, "/pub/job1"))
    assert tree_files(dst) == tree_files(tree)

    scratch = tmp_path / "scratch"
    local = stage_in(config, _url(server, "/pub/job1/v1/seg_000.ts"), scratch)
    assert local.read_bytes() == (tree / "v1" / "seg_000.ts").read_bytes()
    assert [p.name for p in scratch.iterdir()] == [local.name]

    single = publish(config, tree / "manifest.json", _url(server, "/pub/"))
    assert single == [_url(server, "/pub/manifest.json")]
    assert (server.root / "pub" / "manifest.json").read_bytes() == (tree / "manifest.json").read_bytes()


def test_ftp_permanent_errors(ftp: tuple[FTPServer, Settings], tmp_path: Path) -> None:
    server, config = ftp
    with pytest.raises(InvalidInputError, match="not found"):
        stage_in(config, _url(server, "/missing.mp4"), tmp_path)
    bad = config.model_copy(
        update={"ftp_credentials": {"127.0.0.1": HostCredentials(username="bob", password=SecretStr("wrong"))}}
    )
    t0 = time.monotonic()
    with pytest.raises(InvalidOutputError, match="refused"):
        publish(bad, make_tree(tmp_path / "t"), _url(server, "/pub"))
    assert time.monotonic() - t0 < 2  # never retried


def test_ftp_connection_dropped_once_is_retried(ftp: tuple[FTPServer, Settings], tmp_path: Path) -> None:
    server, config = ftp
    src = make_tree(tmp_path / "big", segments=4, seg_bytes=200_000)
    server.faults.drop_after_bytes = 500_000
    publish(config, src, _url(server, "/pub"))
    assert server.faults.dropped == 1
    assert tree_files(server.root / "pub") == tree_files(src)
    assert not list((server.root / "pub").rglob(".*"))


def test_ftp_server_dies_mid_upload(ftp: tuple[FTPServer, Settings], tmp_path: Path) -> None:
    server, config = ftp
    src = make_tree(tmp_path / "big", segments=4, seg_bytes=200_000)
    server.faults.drop_after_bytes = 700_000
    server.faults.then_go_down = True
    with pytest.raises(StorageError, match="3 attempt"):
        publish(config, src, _url(server, "/pub"))
    assert server.faults.dropped == 1
    out = server.root / "pub"
    visible = {k: v for k, v in tree_files(out).items() if not Path(k).name.startswith(".")}
    hidden = [k for k in tree_files(out) if Path(k).name.startswith(".")]
    assert visible and hidden  # published segments, plus the interrupted temporary
    expected = tree_files(src)
    assert all(visible[k] == expected[k] for k in visible)
    assert not [k for k in visible if k.endswith((".m3u8", ".json"))]


def test_scratch_full_is_insufficient_resources(
    ftp: tuple[FTPServer, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from mediarunner.errors import InsufficientResourcesError
    from mediarunner.storage import remote

    server, config = ftp
    (server.root / "in.mp4").write_bytes(b"x" * 1000)

    def full(fs: object, scheme: str, src: str, dst: Path, meter: object) -> None:
        Path(dst).write_bytes(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(remote, "download", full)
    with pytest.raises(InsufficientResourcesError):
        stage_in(config, _url(server, "/in.mp4"), tmp_path / "scratch")
    assert not list((tmp_path / "scratch").iterdir())  # the partial download is gone
