from __future__ import annotations

from pathlib import Path

import pytest

from mediarunner.errors import (
    InsufficientResourcesError,
    InvalidInputError,
    InvalidOutputError,
    ProcessingError,
    StorageError,
    ValidationError,
)
from mediarunner.models.locations import is_local, parse_location
from mediarunner.storage.layout import publish_order
from mediarunner.storage.local import check_free_space
from mediarunner.storage.store import open_store

from .conftest import make_tree, publish, stage_in, storage_settings, tree_files


@pytest.mark.parametrize(
    "url",
    [
        "sftp://user:pass@example.com/x.mp4",
        "sftp://user@example.com/x.mp4",
        "ftp://anonymous:x@127.0.0.1:2121/a",
        "s3://AKIA:secret@bucket/key",
    ],
)
def test_credentials_in_url_rejected(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        stage_in(storage_settings(), url, tmp_path)
    assert "pass" not in str(err.value) and "secret" not in str(err.value)
    with pytest.raises(ValidationError):
        publish(storage_settings(), tmp_path, url)


def test_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        stage_in(storage_settings(), "gopher://host/x", tmp_path)
    with pytest.raises(InvalidOutputError):
        publish(storage_settings(), tmp_path, "gopher://host/x")


@pytest.mark.parametrize("url", ["s3://bucket/key?versionId=1", "sftp://h/a#frag", "file://otherhost/x"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        parse_location(url)


def test_parse_location() -> None:
    loc = parse_location("sftp://127.0.0.1:2222/data/my%20clip.mp4")
    assert (loc.scheme, loc.host, loc.port, loc.path) == ("sftp", "127.0.0.1", 2222, "/data/my clip.mp4")
    loc = parse_location("s3://my-bucket/a/b.mp4")
    assert (loc.host, loc.path, loc.fs_path) == ("my-bucket", "a/b.mp4", "my-bucket/a/b.mp4")
    assert parse_location("/tmp/x.mp4").scheme == "file"
    assert parse_location("file:///tmp/x.mp4").path == "/tmp/x.mp4"
    assert is_local("/tmp/x") and is_local("file:///tmp/x") and not is_local("s3://b/k")


def test_stage_in_local_is_in_place(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(b"data")
    scratch = tmp_path / "scratch"
    assert stage_in(storage_settings(), str(src), scratch) == src
    assert stage_in(storage_settings(), f"file://{src}", scratch) == src
    assert not scratch.exists()
    with pytest.raises(InvalidInputError):
        stage_in(storage_settings(), str(tmp_path / "missing.mp4"), scratch)
    with pytest.raises(InvalidInputError):
        stage_in(storage_settings(), str(tmp_path), scratch)  # a directory


def test_publish_order_playlists_last() -> None:
    rels = [
        "manifest.json",
        "master.m3u8",
        "v0/index.m3u8",
        "v0/seg_000.ts",
        "v1/index.m3u8",
        "v1/seg_000.ts",
        "thumb.jpg",
    ]
    order = publish_order(None, rels, ("*.m3u8", "manifest.json"))
    assert order[:3] == ["thumb.jpg", "v0/seg_000.ts", "v1/seg_000.ts"]
    assert order[3:5] == ["v0/index.m3u8", "v1/index.m3u8"]
    assert order[5:] == ["master.m3u8", "manifest.json"]


def test_publish_order_follows_references(tmp_path: Path) -> None:
    # Flat layout: the master sits beside its variants; references decide.
    (tmp_path / "a_master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nz_720.m3u8\n")
    (tmp_path / "z_720.m3u8").write_text('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\nseg0.m4s\n')
    order = publish_order(tmp_path, ["seg0.m4s", "init.mp4", "a_master.m3u8", "z_720.m3u8"], ("*.m3u8",))
    assert order == ["init.mp4", "seg0.m4s", "z_720.m3u8", "a_master.m3u8"]


def test_publish_local_tree(tmp_path: Path, tree: Path) -> None:
    dst = tmp_path / "out" / "job1"
    expected = tree_files(tree)  # a local publish renames the files into place (consumes them)
    urls = publish(storage_settings(), tree, str(dst))
    assert tree_files(dst) == expected
    assert urls[-2:] == [str(dst / "master.m3u8"), str(dst / "manifest.json")]
    # Publishing again overwrites in place and leaves no temporaries.
    make_tree(tree, seg_bytes=1000)
    expected = tree_files(tree)
    publish(storage_settings(), tree, f"file://{dst}")
    assert tree_files(dst) == expected
    assert not [p for p in dst.rglob(".*")]


def test_publish_local_file(tmp_path: Path) -> None:
    src = tmp_path / "a.mp4"
    src.write_bytes(b"x" * 100)
    out = tmp_path / "out"
    out.mkdir()
    data = src.read_bytes()  # a local publish renames the file into place (consumes it)
    assert publish(storage_settings(), src, str(out / "b.mp4")) == [str(out / "b.mp4")]
    assert (out / "b.mp4").read_bytes() == data
    src.write_bytes(data)
    assert publish(storage_settings(), src, f"{out}/") == [str(out / "a.mp4")]
    with pytest.raises(ProcessingError):
        publish(storage_settings(), tmp_path / "nope", str(out))


def test_check_free_space(tmp_path: Path) -> None:
    check_free_space(tmp_path / "not" / "yet", 0)
    with pytest.raises(InsufficientResourcesError):
        check_free_space(tmp_path, 10**12)
    # The store's view of the same disk: free bytes where the location lives (unknown when remote).
    free = open_store(str(tmp_path / "not" / "yet"), storage_settings()).free_space()
    assert free is not None and 0 < free < 10**12 * 2**20
    assert open_store("s3://bucket/out", storage_settings()).free_space() is None


def test_store_remove(tmp_path: Path) -> None:
    d = make_tree(tmp_path / "t")
    f = tmp_path / "f"
    f.write_text("x")
    outside = tmp_path / "keep"
    outside.mkdir()
    (d / "link").symlink_to(outside)
    store = open_store(str(tmp_path), storage_settings())
    store.remove("t")
    store.remove("f")
    store.remove("missing")
    assert not d.exists() and not f.exists() and outside.exists()
    with pytest.raises(ValueError):
        open_store("/", storage_settings()).remove()


def test_store_list_files_and_fetch(tmp_path: Path, tree: Path) -> None:
    store = open_store(str(tmp_path / "out"), storage_settings())
    assert store.list_files() == []
    expected = tree_files(tree)
    store.publish(tree, "job")
    assert store.list_files("job") == sorted(expected)
    got = store.fetch("job/manifest.json", tmp_path / "scratch")
    assert got == tmp_path / "out" / "job" / "manifest.json" and got.read_bytes() == expected["manifest.json"]
    store.remove("job/v0")
    assert not [f for f in store.list_files("job") if f.startswith("v0/")]
    with pytest.raises(StorageError):
        store.fetch("job/v0/index.m3u8", tmp_path / "scratch")


def test_local_roots_enforced(tmp_path: Path, tree: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.mp4").write_bytes(b"a")
    (outside / "b.mp4").write_bytes(b"b")
    (inside / "link.mp4").symlink_to(outside / "b.mp4")
    out_root = tmp_path / "outputs"
    roots = storage_settings(input_roots=[inside], output_roots=[out_root])
    assert stage_in(roots, str(inside / "a.mp4"), tmp_path / "s") == (inside / "a.mp4").resolve()
    for bad in (str(outside / "b.mp4"), str(inside / "link.mp4"), f"{inside}/../elsewhere/b.mp4"):
        with pytest.raises(InvalidInputError):
            stage_in(roots, bad, tmp_path / "s")
    assert publish(roots, tree, f"file://{out_root}/job")[-1] == str(out_root / "job" / "manifest.json")
    with pytest.raises(InvalidOutputError):
        publish(roots, tree, str(outside / "job"))
    with pytest.raises(InvalidOutputError):
        publish(roots, tree, f"{out_root}/../elsewhere")
