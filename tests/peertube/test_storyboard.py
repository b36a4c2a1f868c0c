"""PeerTube's ``generate-video-storyboard`` runner job (newest PeerTube) end to end against the fake,
with a real worker and ffmpeg; and what each server version is sent and offered.

The payload is built as PeerTube's ``VideoStoryboardJobHandler.create`` builds it (``buildSpriteSize``,
``buildTotalSprites``, ``findGridSize``: 192-pixel sprites, at most 10 x 10, a sprite a second or
more); the success body is checked part by part against the newest success validator and upload
filter: ``runnerToken``, ``jobToken`` and one file, ``payload[storyboardFile]``, an image.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mediarunner.connectors.peertube import RunnerAPI
from mediarunner.connectors.peertube.protocol import PeerTubeError
from tests.peertube.conftest import VERSIONS, register, start_connector
from tests.peertube.fake import COMPLETED, ERRORED, NEWEST, PENDING, FakePeerTube, file_url
from tests.support import Stack, make_clip, wait_for

SPRITE_MAX_SIZE, SPRITES_MAX_EDGE_COUNT = 192, 10  # PeerTube's STORYBOARD constants


def peertube_payload(duration: float, width: int, height: int) -> dict[str, Any]:
    """``generate-video-storyboard``'s payload for a video of that duration and size, as PeerTube makes it."""
    ratio = width / height
    size = {"width": SPRITE_MAX_SIZE, "height": round(SPRITE_MAX_SIZE / ratio)} if width >= height else \
        {"width": round(SPRITE_MAX_SIZE * ratio), "height": SPRITE_MAX_SIZE}
    max_sprites = min(math.ceil(duration), SPRITES_MAX_EDGE_COUNT * SPRITES_MAX_EDGE_COUNT)
    sprite_duration = math.ceil(duration / max_sprites)
    total = math.ceil(duration / sprite_duration)
    count = next({"width": j, "height": i} for i in range(1, SPRITES_MAX_EDGE_COUNT + 1)
                 for j in range(i, SPRITES_MAX_EDGE_COUNT + 1) if total <= i * j)
    return {"input": {"videoFileUrl": file_url("max-quality")},
            "sprites": {"size": size, "count": count, "duration": sprite_duration}, "output": {}}


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def _tile_luma(sprite: Path, w: int, h: int, x: int, y: int) -> float:
    """The mean luma of one tile (black padding: about 16)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(sprite), "-vf", f"crop={w}:{h}:{x}:{y},signalstats,"
                          "metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().rsplit("=", 1)[1])


@pytest.mark.parametrize("peertube", [NEWEST], indirect=True)
def test_storyboard_job_posts_the_sprite_peertube_expects(stack: Stack, peertube: FakePeerTube) -> None:
    video = make_clip(stack.tmp / "board.mp4", seconds=12.0, size="320x240", audio=False)
    payload = peertube_payload(12.0, 320, 240)
    assert payload["sprites"] == {"size": {"width": 192, "height": 144}, "count": {"width": 6, "height": 2},
                                  "duration": 1}
    stack.inproc_worker("cpu1", queues="cpu")
    register(stack, peertube)
    running = start_connector(stack)
    try:
        job = peertube.add_job("generate-video-storyboard", payload, {"max-quality": video})
        wait_for(lambda: job.state in (COMPLETED, ERRORED), timeout=120, what="the storyboard job to end")
    finally:
        running.stop()
    assert job.state == COMPLETED and job.error is None and job.success is not None
    assert sorted(job.success["keys"]) == ["jobToken", "payload[storyboardFile]", "runnerToken"]
    assert job.success["fields"] == {} and set(job.success["files"]) == {"storyboardFile"}
    sprite, filename, mime = job.success["files"]["storyboardFile"]
    assert mime == "image/jpeg" and filename.endswith(".jpg")
    s = _probe(sprite)
    assert (s["codec_name"], s["width"], s["height"]) == ("mjpeg", 6 * 192, 2 * 144)
    for k in range(12):  # 12 s, a tile a second: every cell holds a frame (none left black)
        assert _tile_luma(sprite, 192, 144, (k % 6) * 192, (k // 6) * 144) > 40, k
    assert peertube.requests[-1]["version"] and "generate-video-storyboard" in peertube.requests[-1]["jobTypes"]


@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)
def test_register_and_request_send_what_each_version_takes(stack: Stack, peertube: FakePeerTube) -> None:
    register(stack, peertube)
    running = start_connector(stack, peertube_poll_seconds=0.3)
    try:
        wait_for(lambda: len(peertube.requests) >= 2, timeout=20, what="requests")
    finally:
        running.stop()
    body, request = peertube.register_bodies[-1], peertube.requests[-1]
    if peertube.version == "6.3.3":  # RegisterRunnerBody / RequestRunnerJobBody of 6.3.3: nothing more
        assert set(body) == {"name", "description"} and request == {}
    else:
        assert set(body) == {"name", "description", "version"} and body["version"] == request["version"]
        assert set(request) == {"jobTypes", "version"} and "generate-video-storyboard" in request["jobTypes"]


@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)
def test_a_storyboard_job_is_never_taken_from_a_server_without_it(stack: Stack, peertube: FakePeerTube) -> None:
    """6.3.3 has no storyboard job: one it would offer anyway (a server lying about its version) is
    refused; the newest offers it, but an instance that did not enable it never takes it."""
    video = make_clip(stack.tmp / "board.mp4", seconds=3.0, size="320x240", audio=False)
    types = () if peertube.version == "6.3.3" else ("vod-web-video-transcoding",)
    register(stack, peertube, "fleet", *types)
    running = start_connector(stack, peertube_poll_seconds=0.3)
    try:
        job = peertube.add_job("generate-video-storyboard", peertube_payload(3.0, 320, 240), {"max-quality": video},
                               any_type=True)
        n = len(peertube.requests)
        wait_for(lambda: len(peertube.requests) >= n + 3, timeout=20, what="several requests")
        assert job.state == PENDING and job.job_token is None
    finally:
        running.stop()


def test_newest_server_refuses_a_version_that_is_not_semver(tmp_path: Path) -> None:
    fake = FakePeerTube(tmp_path, version=NEWEST)
    from tests.support import free_port

    fake.start(free_port())
    api = RunnerAPI(fake.url)
    try:
        assert api.server_version() == NEWEST
        with pytest.raises(PeerTubeError) as exc:  # what mediarunner sent before: "mediarunner 0.1.0"
            api.register(fake.registration_token, "fleet", version="mediarunner 0.1.0")
        assert exc.value.status == 400
        api.register(fake.registration_token, "fleet", version="0.1.0")
    finally:
        api.close()
        fake.stop()
