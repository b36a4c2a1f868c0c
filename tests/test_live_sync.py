"""LiveSync (uploads of a growing live output) and the playlist restore a resumed attempt starts from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mediarunner.config import Rendition
from mediarunner.config.settings import HostCredentials
from mediarunner.storage.store import Store, open_store
from mediarunner.tasks.live import LiveSync, _restore_playlists, live_renditions
from tests.storage.conftest import storage_settings
from tests.storage.servers import FTPServer
from tests.studio.test_live import segments_in
from tests.support import free_port, wait_for


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[FTPServer, Store]]:
    root = tmp_path / "ftp-root"
    root.mkdir()
    server = FTPServer(root, "bob", "s3cret").start()
    config = storage_settings(
        ftp_credentials={"127.0.0.1": HostCredentials(username="bob", password=SecretStr("s3cret"))},
        transfer_retries=2, transfer_backoff_seconds=0.01, transfer_timeout_seconds=5)
    try:
        yield server, open_store(f"ftp://127.0.0.1:{server.port}/live/show", config)
    finally:
        server.stop()


def write_playlist(d: Path, n: int, *, end: bool = False) -> None:
    for i in range(n):
        seg = d / f"seg_{i:05d}.ts"
        if not seg.exists():
            seg.write_bytes(bytes([i]) * 1000)
    lines = ["#EXTM3U", "#EXT-X-PLAYLIST-TYPE:EVENT", *[f"#EXTINF:1.0,\nseg_{i:05d}.ts" for i in range(n)]]
    (d / "index.m3u8.tmp").write_text("\n".join([*lines, *(["#EXT-X-ENDLIST"] if end else [])]) + "\n")
    (d / "index.m3u8.tmp").replace(d / "index.m3u8")  # as ffmpeg's temp_file does


def test_sync_uploads_new_files_and_restore_fetches_playlists(ftp: tuple[FTPServer, Store], tmp_path: Path) -> None:
    server, store = ftp
    local = tmp_path / "live"
    (local / "180p").mkdir(parents=True)
    (local / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n180p/index.m3u8\n")
    (local / "180p" / "seg_00009.ts.tmp").write_bytes(b"partial")  # still being written: skipped
    sync = LiveSync(store, local, interval=0.1, give_up_after=5, staging=tmp_path / "sync")
    write_playlist(local / "180p", 2)
    sync.flush()
    remote = server.root / "live" / "show"
    assert segments_in(remote / "180p" / "index.m3u8") == ["seg_00000.ts", "seg_00001.ts"]
    assert (remote / "master.m3u8").is_file() and not (remote / "180p" / "seg_00009.ts.tmp").exists()
    first = (remote / "180p" / "seg_00000.ts").stat().st_mtime_ns
    write_playlist(local / "180p", 4, end=True)
    sync.flush()
    assert segments_in(remote / "180p" / "index.m3u8") == [f"seg_{i:05d}.ts" for i in range(4)]
    assert (remote / "180p" / "seg_00000.ts").stat().st_mtime_ns == first  # unchanged files are not sent again
    assert not list((tmp_path / "sync").iterdir())

    # A resumed attempt on another worker starts from the published playlists (ffmpeg appends to them).
    fresh = tmp_path / "resumed"
    ladder = live_renditions((Rendition(name="180p", height=180, video_bitrate_k=300),
                              Rendition(name="120p", height=120, video_bitrate_k=150)), audio=True)
    _restore_playlists(store, fresh, ladder, tmp_path / "restore")
    assert (fresh / "180p" / "index.m3u8").read_text() == (remote / "180p" / "index.m3u8").read_text()
    assert not (fresh / "120p").exists()  # nothing published for it: nothing to continue


def test_sync_reports_broken_uploads(tmp_path: Path) -> None:
    config = storage_settings(transfer_retries=0, transfer_timeout_seconds=1)
    local = tmp_path / "live"
    local.mkdir()
    (local / "master.m3u8").write_text("#EXTM3U\n")
    sync = LiveSync(open_store(f"ftp://127.0.0.1:{free_port()}/x", config), local, interval=0.05, give_up_after=0.3,
                    staging=tmp_path / "sync")
    sync.start()
    try:
        wait_for(lambda: sync.broken, 10, what="the sync to give up")
        assert sync.error and "ftp://127.0.0.1" in sync.error
    finally:
        sync.stop()

def test_live_ladder_is_16_9_and_even() -> None:
    (r,) = live_renditions((Rendition(name="x", height=240, video_bitrate_k=1),), audio=False)
    assert (r.width, r.height, r.has_audio, r.audio_bitrate_k) == (426, 240, False, None)


def test_storage_secrets_are_known_to_the_log_redaction() -> None:
    from mediarunner.config import Settings
    from mediarunner.config.redact import secret_values, settings_view

    s = Settings(s3_secret_access_key=SecretStr("s3secretkey"),
                 sftp_credentials={"h": HostCredentials(username="alice", password=SecretStr("sftppass"),
                                                        private_key_passphrase=SecretStr("keyphrase"))},
                 ftp_credentials={"f:21": HostCredentials(username="bob", password=SecretStr("ftppass"))})
    assert {"s3secretkey", "sftppass", "keyphrase", "ftppass"} <= secret_values(s, {})
    view = str(settings_view(s))
    assert not any(x in view for x in ("s3secretkey", "sftppass", "keyphrase", "ftppass"))
