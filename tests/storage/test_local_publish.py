from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mediarunner.errors import InvalidInputError, InvalidOutputError
from mediarunner.models.locations import resolve_local_path
from mediarunner.storage import local as publish
from mediarunner.storage.local import publish_file, publish_tree, remove_quietly


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "out"
    (r / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "out-evil").mkdir()
    (r / "link-out").symlink_to(tmp_path / "outside")  # a symlink inside the root, leading out
    (r / "link-in").symlink_to(r / "sub")
    return r


# (location template, ok?, path relative to the root if ok, else a fragment of the error message)
SAFETY_TABLE = [
    ("file://{root}/a.mp4", True, "a.mp4"),
    ("file://localhost{root}/sub/a.mp4", True, "sub/a.mp4"),
    ("file://{root}/with%20space.mp4", True, "with space.mp4"),
    ("{root}/sub/a.mp4", True, "sub/a.mp4"),
    ("sub/rel.mp4", True, "sub/rel.mp4"),  # relative: resolved against the CWD (= root here)
    ("{root}/link-in/a.mp4", True, "sub/a.mp4"),  # links inside the root are fine, and resolved
    ("{root}", True, "."),
    ("{root}/../outside/a.mp4", False, "'..' component"),
    ("sub/../../outside/a.mp4", False, "'..' component"),
    ("file://{root}/%2e%2e/outside/a.mp4", False, "'..' component"),
    ("/etc/passwd", False, "escapes the allowed roots"),
    ("file:///etc/passwd", False, "escapes the allowed roots"),
    ("{root}-evil/a.mp4", False, "escapes the allowed roots"),  # a shared prefix is not containment
    ("{root}/link-out/a.mp4", False, "escapes the allowed roots"),
    ("s3://bucket/key.mp4", False, "unknown URL scheme 's3'"),
    ("http://example.com/a.mp4", False, "unknown URL scheme 'http'"),
    ("file://otherhost/a.mp4", False, "remote host"),
    ("{root}/a\x00.mp4", False, "NUL byte"),
    ("file://{root}/a%00.mp4", False, "NUL byte"),
    ("", False, "empty"),
]


@pytest.mark.parametrize("what, exc", [("output", InvalidOutputError), ("input", InvalidInputError)])
@pytest.mark.parametrize("template, ok, expected", SAFETY_TABLE)
def test_resolve_local_path_table(
    template: str, ok: bool, expected: str, what: str, exc: type[Exception], root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(root)
    location = template.format(root=root)
    if ok:
        assert resolve_local_path(location, [root], what=what) == (root / expected).resolve()
    else:
        with pytest.raises(exc) as ei:
            resolve_local_path(location, [root], what=what)
        assert expected in str(ei.value)


def test_no_roots_means_no_restriction(root: Path) -> None:
    no_roots: list[list[Path] | None] = [None, []]
    for roots in no_roots:
        assert resolve_local_path("/etc/passwd", roots, what="input") == Path("/etc/passwd")
        with pytest.raises(InvalidInputError):  # '..' and schemes are refused regardless
            resolve_local_path("/etc/../etc/passwd", roots, what="input")
        with pytest.raises(InvalidInputError):
            resolve_local_path("s3://b/k", roots, what="input")


def test_root_given_through_a_symlink(tmp_path: Path, root: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert resolve_local_path(f"{root}/sub/x.mp4", [alias], what="output") == root / "sub" / "x.mp4"


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_publish_file_same_filesystem(tmp_path: Path) -> None:
    src = tmp_path / "scratch.mp4"
    src.write_bytes(b"new")
    dst = tmp_path / "pub" / "deep" / "a.mp4"
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"old")
    publish_file(src, dst)
    assert dst.read_bytes() == b"new" and not src.exists()
    assert _leftovers(dst.parent) == []


def test_publish_file_across_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename across filesystems fails with EXDEV: the copy path must still be atomic."""
    src = tmp_path / "scratch.bin"
    src.write_bytes(os.urandom(3 << 20))
    payload = src.read_bytes()
    dst = tmp_path / "pub" / "b.bin"
    real_replace = os.replace
    replaced: list[str] = []

    def replace(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        replaced.append(Path(a).name)
        real_replace(a, b)

    monkeypatch.setattr(publish.os, "replace", replace)
    publish_file(src, dst)
    assert dst.read_bytes() == payload and not src.exists()
    assert len(replaced) == 1 and replaced[0].startswith(".b.bin.")  # via a hidden temp sibling
    assert _leftovers(dst.parent) == []


def test_publish_file_refuses_directory(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidOutputError):
        publish_file(src, tmp_path / "d")


def test_publish_tree_publishes_playlists_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {
        "master.m3u8": "#EXTM3U\n240p/index.m3u8\naudio/index.m3u8\n",
        "240p/index.m3u8": "#EXTM3U\n#EXTINF:1,\nseg_00000.ts\n#EXTINF:1,\nseg_00001.ts\n",
        "240p/seg_00000.ts": "a",
        "240p/seg_00001.ts": "b",
        "audio/index.m3u8": "#EXTM3U\n#EXTINF:1,\nseg_00000.ts\n",
        "audio/seg_00000.ts": "c",
        "poster.jpg": "d",
    }
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)

    real_publish = publish.publish_file

    def checking_publish(s: Path, d: Path) -> None:
        # At the moment a playlist appears, everything it references must already be there.
        if s.suffix == ".m3u8":
            for line in s.read_text().splitlines():
                if line and not line.startswith("#"):
                    assert (d.parent / line).exists(), f"{d} published before {line}"
        real_publish(s, d)

    monkeypatch.setattr(publish, "publish_file", checking_publish)
    out = publish_tree(src, dst)
    rels = [p.relative_to(dst).as_posix() for p in out]
    assert sorted(rels) == sorted(files)
    assert rels[-3:] == ["240p/index.m3u8", "audio/index.m3u8", "master.m3u8"]
    assert all((dst / rel).read_text() == text for rel, text in files.items())


def test_remove_quietly(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "c").write_text("x")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "k").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(keep)
    for p in (f, tree, link, tmp_path / "missing"):
        remove_quietly(p)
        assert not p.exists() and not p.is_symlink()
    assert (keep / "k").exists()  # a symlink is removed, never followed


def test_publishing_sweeps_temp_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    dst = tmp_path / "out.txt"
    stale = tmp_path / ".out.txt.deadbeef0000.tmp"
    stale.write_text("half")
    other = tmp_path / ".other.txt.deadbeef0000.tmp"
    other.write_text("not ours")
    src = tmp_path / "staged" / "out.txt"
    src.parent.mkdir()
    src.write_text("whole")
    publish_file(src, dst)
    assert dst.read_text() == "whole" and not stale.exists() and other.exists()
