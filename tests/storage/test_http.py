"""http(s) inputs: downloaded from a local threaded HTTP server on loopback (allowed through
``ALLOWED_NETWORKS`` = 127.0.0.0/8), resumed with ``Range`` after a dropped connection, capped in
size, refused at submit (and on the worker) for loopback without the allow-list, 404 and redirects
permanent."""

from __future__ import annotations

import os
from ipaddress import ip_network
from pathlib import Path

import pytest

from mediarunner.errors import InvalidInputError, InvalidOutputError, ValidationError
from mediarunner.models.enums import JobState
from mediarunner.models.locations import check_location
from mediarunner.storage.store import open_store
from tests.support import Stack, make_clip

from .conftest import FAST, storage_settings
from .http_server import http_files

LOOPBACK = '["127.0.0.0/8"]'
BODY = os.urandom(3 * 1024 * 1024 + 17)


def _settings(**fields: object) -> object:
    return storage_settings(**{**FAST, "allowed_networks": [ip_network("127.0.0.0/8")], **fields})


def test_transcode_from_an_http_url(stack: Stack, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, size="320x180").read_bytes()
    with http_files(**{"clip.mp4": clip}) as srv:
        stack.inproc_worker("h1", extra_env={"MEDIARUNNER_ALLOWED_NETWORKS": LOOPBACK})
        client = stack.client()
        out = stack.tmp / "outputs" / "from-http"
        job = client.wait(client.submit_transcode(f"{srv.url}/clip.mp4", str(out), renditions=["240p"]).id,
                          timeout=120)
    assert job.state is JobState.COMPLETED, job.error
    assert all(j.state is JobState.COMPLETED for j in job.family)
    assert [a for j in job.family for a in j.artifacts if a.kind == "mp4"] and list(out.rglob("*.mp4"))


def test_dropped_connection_resumes_with_range(tmp_path: Path) -> None:
    with http_files(**{"big.bin": BODY}) as srv:
        srv.drop_once.add("/big.bin")
        moved: list[tuple[int, int | None]] = []
        store = open_store(f"{srv.url}/big.bin", _settings(), "input", lambda d, t: moved.append((d, t)))
        path = store.stage_in(tmp_path / "scratch")
        assert path.read_bytes() == BODY
        assert len(srv.ranges) == 1 and srv.ranges[0].startswith("bytes=") and srv.ranges[0] != "bytes=0-"
    assert moved[-1] == (len(BODY), len(BODY))
    assert not [p for p in (tmp_path / "scratch").iterdir() if ".part-" in p.name]


def test_over_the_size_cap_is_one_permanent_line(tmp_path: Path) -> None:
    with http_files(**{"big.bin": BODY}) as srv:
        store = open_store(f"{srv.url}/big.bin?sig=SECRET", _settings(http_max_input_bytes=1024 * 1024), "input")
        with pytest.raises(InvalidInputError, match="over HTTP_MAX_INPUT_BYTES") as err:
            store.stage_in(tmp_path / "scratch")
    assert "\n" not in str(err.value) and "SECRET" not in str(err.value)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_loopback_without_allowed_networks_is_refused_at_submit(sqlite_stack: Stack) -> None:
    client = sqlite_stack.client()
    with pytest.raises(ValidationError, match="loopback"):
        client.submit_transcode("http://127.0.0.1:9/clip.mp4", str(sqlite_stack.tmp / "outputs" / "x"))
    with pytest.raises(ValidationError, match="loopback"):
        client.submit_transcription("http://127.0.0.1:9/talk.wav", str(sqlite_stack.tmp / "outputs" / "y"))
    assert client.list() == []


def test_worker_checks_the_allow_list_again(tmp_path: Path) -> None:
    with http_files(**{"a.bin": b"x"}) as srv:
        store = open_store(f"{srv.url}/a.bin", storage_settings(**FAST), "input")
        with pytest.raises(InvalidInputError, match="loopback"):
            store.stage_in(tmp_path)


def test_404_is_permanent_and_names_the_status(tmp_path: Path) -> None:
    with http_files() as srv:
        store = open_store(f"{srv.url}/missing.mp4", _settings(), "input")
        with pytest.raises(InvalidInputError, match="404") as err:
            store.stage_in(tmp_path)
    assert "\n" not in str(err.value)


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    with http_files(**{"a.bin": b"x"}) as srv:
        srv.redirects["/r.bin"] = "http://169.254.169.254/latest/meta-data/"
        store = open_store(f"{srv.url}/r.bin", _settings(), "input")
        with pytest.raises(InvalidInputError, match=r"302.*redirects are not followed"):
            store.stage_in(tmp_path)


def test_http_is_input_only() -> None:
    with pytest.raises(InvalidOutputError, match="input-only"):
        check_location("https://cdn.example/out/", "output", None)
