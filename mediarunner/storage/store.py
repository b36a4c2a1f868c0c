"""One shape for moving files: a :class:`Store` per location, local or remote, chosen once.

Every handler moves files through a store opened on the job's input or output location::

    store = open_store(output, settings)          # the one place that tells local from remote
    store.publish(scratch / "hls", "hls/720p")    # atomically, playlists and manifests last
    store.fetch(".parts/720p/part_000.mp4", scratch)
    store.remove(".parts/720p")

Local locations (plain paths and ``file://`` URLs) must resolve inside the configured roots
(``input_roots`` / ``output_roots``); inputs are read in place, outputs published by renames.
Remote ones (``s3://``, ``sftp://``, ``ftp://``) go through :class:`~mediarunner.storage.remote.RemoteStore`;
``http://`` / ``https://`` inputs through :class:`~mediarunner.storage.http.HttpStore` (input-only).
Settings (endpoints, credentials, retries, roots) are read from :class:`~mediarunner.config.Settings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mediarunner.config.settings import Settings
from mediarunner.errors import InvalidInputError, ProcessingError, StorageError
from mediarunner.models.locations import INPUT_ONLY_SCHEMES, Direction, Location, check_location
from mediarunner.storage.http import HttpStore
from mediarunner.storage.layout import DEFAULT_LAST, Published, tree_files
from mediarunner.storage.local import free_bytes, publish_file, publish_tree, remove_quietly
from mediarunner.storage.remote import RemoteStore
from mediarunner.storage.transfer import Report

__all__ = ["DEFAULT_LAST", "LocalStore", "Published", "Store", "open_store"]


class Store(Protocol):
    """The operations every location offers. ``rel`` is a relative path below the location."""

    location: Location
    #: The location as a local directory that writers may fill in place, or None (remote).
    local_path: Path | None

    def stage_in(self, scratch: Path, rel: str = "") -> Path:
        """A local file with the bytes of the input at ``rel`` (in place, or copied into ``scratch``)."""
        ...

    def publish(self, local: Path, rel: str = "", *, last: Sequence[str] = DEFAULT_LAST) -> list[Published]:
        """Publish a file or a tree at ``rel`` atomically, ``last`` files last; ``local`` may be consumed."""
        ...

    def fetch(self, rel: str, scratch: Path) -> Path:
        """A local file with the bytes of an earlier output ``rel`` (in place, or copied into ``scratch``)."""
        ...

    def list_files(self, rel: str = "") -> list[str]:
        """Relative paths of the files under ``rel``."""
        ...

    def remove(self, rel: str = "") -> None:
        """Delete the file or tree at ``rel``; a missing one is fine."""
        ...

    def free_space(self) -> int | None:
        """Free bytes where the location lives, or None when unknown (remote)."""
        ...


def open_store(location: str, settings: Settings, direction: Direction = "output",
               report: Report | None = None) -> Store:
    """The store for ``location``: checked (roots, scheme, no credentials) but not yet connected.
    ``report`` is told the bytes moved as remote transfers go (local ones move nothing)."""
    loc = check_location(location, direction, settings.input_roots if direction == "input" else settings.output_roots)
    if loc.scheme == "file":
        return LocalStore(loc, direction)
    if loc.scheme in INPUT_ONLY_SCHEMES:
        return HttpStore(loc, settings, report)
    return RemoteStore(loc, settings, report)


class LocalStore:
    """A local directory or file (its real path, already checked against the roots)."""

    def __init__(self, location: Location, direction: Direction = "output") -> None:
        self.location = location
        self.direction = direction
        self.local_path: Path | None = Path(location.path)

    @property
    def root(self) -> Path:
        return Path(self.location.path)

    def stage_in(self, scratch: Path, rel: str = "") -> Path:
        path = self.root / rel if rel else self.root
        if not path.is_file():
            raise InvalidInputError(f"input {path} does not exist or is not a file")
        return path

    def fetch(self, rel: str, scratch: Path) -> Path:
        path = self.root / rel
        if not path.is_file():  # transient: whoever removed it may have finished the work meanwhile
            raise StorageError(f"{path} is missing")
        return path

    def publish(self, local: Path, rel: str = "", *, last: Sequence[str] = DEFAULT_LAST) -> list[Published]:
        local = Path(local)
        if not local.exists():
            raise ProcessingError(f"nothing to publish: {local} does not exist")
        dst = self.root / rel if rel else self.root
        if local.is_dir():
            return [Published(p, str(p)) for p in publish_tree(local, dst, last=last)]
        if not rel and self.location.url.endswith("/"):
            dst = dst / local.name
        publish_file(local, dst)
        return [Published(dst, str(dst))]

    def list_files(self, rel: str = "") -> list[str]:
        path = self.root / rel if rel else self.root
        return tree_files(path) if path.is_dir() else []

    def remove(self, rel: str = "") -> None:
        """Delete ``rel`` and the directories below the location that held only it."""
        target = self.root / rel if rel else self.root
        if target.absolute() == Path(target.absolute().anchor):
            raise ValueError(f"refusing to remove the filesystem root {target}")
        remove_quietly(target)
        for parent in target.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: another job's files are there
                break

    def free_space(self) -> int | None:
        return free_bytes(self.root)
