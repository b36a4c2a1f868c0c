from __future__ import annotations

import time
from pathlib import Path

import pytest

from mediarunner.config import Settings
from mediarunner.config.settings import HostCredentials
from mediarunner.errors import InvalidInputError, InvalidOutputError, StorageError

from .conftest import make_tree, publish, stage_in, tree_files
from .servers import SFTPServer


def _url(server: SFTPServer, path: str) -> str:
    return f"sftp://127.0.0.1:{server.port}{path}"


def test_sftp_round_trip(sftp: tuple[SFTPServer, Settings], tree: Path, tmp_path: Path) -> None:
    server, config = sftp
    urls = publish(config, tree, _url(server, "/out/job 1"))
    dst = server.root / "out" / "job 1"
    assert tree_files(dst) == tree_files(tree)
    assert urls[-2:] == [_url(server, "/out/job 1/master.m3u8"), _url(server, "/out/job 1/manifest.json")]
    assert not list(dst.rglob(".*"))  # no temporaries left

    # Overwrite an existing tree (rename over existing files).
    make_tree(tree, seg_bytes=5000)
    publish(config, tree, _url(server, "/out/job%201"))
    assert tree_files(dst) == tree_files(tree)

    scratch = tmp_path / "scratch"
    local = stage_in(config, _url(server, "/out/job%201/v0/seg_001.ts"), scratch)
    assert local.read_bytes() == (tree / "v0" / "seg_001.ts").read_bytes()
    assert [p.name for p in scratch.iterdir()] == [local.name]


def test_sftp_permanent_errors(
    sftp: tuple[SFTPServer, Settings], tmp_path: Path, ssh_keys: dict[str, object]
) -> None:
    server, config = sftp
    with pytest.raises(InvalidInputError, match="not found"):
        stage_in(config, _url(server, "/nope.mp4"), tmp_path)
    # No credentials for that host.
    with pytest.raises(InvalidInputError, match="no SFTP credentials"):
        stage_in(config.model_copy(update={"sftp_credentials": {}}), _url(server, "/x"), tmp_path)
    # Unknown host key: refused at once, never retried.
    (tmp_path / "empty_known_hosts").write_text("")
    strict = config.model_copy(update={"sftp_known_hosts": tmp_path / "empty_known_hosts"})
    t0 = time.monotonic()
    with pytest.raises(InvalidOutputError, match="known_hosts"):
        publish(strict, make_tree(tmp_path / "t"), _url(server, "/out"))
    assert time.monotonic() - t0 < 3
    # Wrong key.
    import asyncssh

    other = tmp_path / "other_key"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh"))
    wrong = config.model_copy(
        update={
            "sftp_credentials": {f"127.0.0.1:{server.port}": HostCredentials(username="alice", private_key_path=other)}
        }
    )
    with pytest.raises(InvalidInputError, match="refused"):
        stage_in(wrong, _url(server, "/x"), tmp_path)


def test_sftp_connection_dropped_once_is_retried(sftp: tuple[SFTPServer, Settings], tmp_path: Path) -> None:
    server, config = sftp
    src = make_tree(tmp_path / "big", segments=4, seg_bytes=200_000)
    server.faults.drop_after_bytes = 500_000
    publish(config, src, _url(server, "/out"))
    assert server.faults.dropped == 1
    assert tree_files(server.root / "out") == tree_files(src)
    assert not list((server.root / "out").rglob(".*"))


def test_sftp_server_dies_mid_upload(sftp: tuple[SFTPServer, Settings], tmp_path: Path) -> None:
    server, config = sftp
    src = make_tree(tmp_path / "big", segments=4, seg_bytes=200_000)
    server.faults.drop_after_bytes = 700_000
    server.faults.then_go_down = True
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="3 attempt"):
        publish(config, src, _url(server, "/out"))
    assert time.monotonic() - t0 < 20
    assert server.faults.dropped == 1
    out = server.root / "out"
    # What a reader can see: complete files only, and no playlist/manifest at all.
    visible = {k: v for k, v in tree_files(out).items() if not Path(k).name.startswith(".")}
    hidden = [k for k in tree_files(out) if Path(k).name.startswith(".")]
    assert visible, "some segments should have been published before the failure"
    assert hidden, "the interrupted upload should have been left under its temporary name"
    expected = tree_files(src)
    assert all(visible[k] == expected[k] for k in visible)
    assert not [k for k in visible if k.endswith((".m3u8", ".json"))]
    assert len(visible) < len(expected)


def test_sftp_stage_in_server_down(sftp: tuple[SFTPServer, Settings], tmp_path: Path) -> None:
    server, config = sftp
    server.go_down()
    with pytest.raises(StorageError):
        stage_in(config, _url(server, "/x.mp4"), tmp_path)
