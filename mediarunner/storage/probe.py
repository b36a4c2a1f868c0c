"""``test_connection``: check a remote location's credentials and reachability the way a job will
use it (list, write, read back and delete a probe object under ``.mediarunner-probe/``), one explicit step at a
time, without retries, for the web admin's "Test connection" button."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediarunner.config.redact import mask_urls_in
from mediarunner.config.settings import Settings
from mediarunner.models.locations import INPUT_ONLY_SCHEMES, check_location
from mediarunner.storage.classify import describe
from mediarunner.storage.store import open_store

PROBE_DIR = ".mediarunner-probe"
REMOTE_SCHEMES = ("s3", "sftp", "ftp")


@dataclass(frozen=True)
class ProbeStep:
    name: str  # location | list | write | read back | delete
    ok: bool
    detail: str  # what was seen, or the error (URLs masked)
    seconds: float


def _step(steps: list[ProbeStep], name: str, fn: Callable[[], Any], check: Callable[[Any], str]) -> bool:
    start = time.monotonic()
    try:
        detail, ok = check(fn()), True
    except Exception as exc:
        detail, ok = describe(exc), False
    steps.append(ProbeStep(name, ok, mask_urls_in(detail), round(time.monotonic() - start, 3)))
    return ok


def _remote(location: str) -> str:
    parsed = check_location(location, "output", None)
    if parsed.scheme not in REMOTE_SCHEMES or parsed.scheme in INPUT_ONLY_SCHEMES:
        raise ValueError(f"not a remote output location: use one of {', '.join(REMOTE_SCHEMES)}")
    return parsed.url


def probe_location(location: str, settings: Settings) -> list[ProbeStep]:
    """The steps run against ``location`` (an ``s3://``, ``sftp://`` or ``ftp://`` URL), stopping at
    the first that fails (the probe object is deleted whenever it may have been written); all
    ``ok``: workers with these settings can publish there."""
    steps: list[ProbeStep] = []
    if not _step(steps, "location", lambda: _remote(location), lambda s: s):
        return steps
    store = open_store(location, settings.model_copy(update={"transfer_retries": 0}), "output")
    folder = f"{PROBE_DIR}/{secrets.token_hex(6)}"  # removed as a tree, the way jobs remove their .parts
    name = f"{folder}/probe.txt"
    with tempfile.TemporaryDirectory(prefix="mr-probe-") as tmp:
        probe = Path(tmp) / "probe.txt"
        probe.write_text("mediarunner connection test\n")
        plan: list[tuple[str, Callable[[], Any], Callable[[Any], str]]] = [
            ("list", lambda: store.list_files(PROBE_DIR), lambda f: f"{len(f)} object(s) listed"),
            ("write", lambda: store.publish(probe, name), lambda _: f"wrote {name}"),
            ("read back", lambda: store.fetch(name, Path(tmp) / "back"), lambda p: _same(p, probe)),
        ]
        for step_name, fn, check in plan:
            if not _step(steps, step_name, fn, check):
                break
    if len(steps) > 2:  # the write was tried
        _step(steps, "delete", lambda: store.remove(folder), lambda _: f"deleted {folder}/")
    return steps


def _same(fetched: Path, sent: Path) -> str:
    if fetched.read_bytes() != sent.read_bytes():
        raise ValueError("the probe object read back differs from what was written")
    return f"read back {fetched.stat().st_size} bytes"
