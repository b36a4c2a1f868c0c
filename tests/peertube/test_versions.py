"""Server versions and their runner protocol (``versions.py``); PeerTube's storyboard payload as a
mediarunner sprite grid (``storyboard.py``). No services."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mediarunner.connectors.peertube import jobs
from mediarunner.connectors.peertube.storyboard import STORYBOARD, sprite_grid
from mediarunner.connectors.peertube.versions import ServerProfile, parse_version, runner_version
from mediarunner.media.probe import MediaInfo
from mediarunner.media.storyboard import grid_plan

ALL = jobs.SUPPORTED_JOB_TYPES
PAYLOAD = {"input": {"videoFileUrl": "http://pt/api/v1/runners/jobs/u/files/videos/1/max-quality"},
           "sprites": {"size": {"width": 192, "height": 108}, "count": {"width": 10, "height": 4}, "duration": 2},
           "output": {}}


@pytest.mark.parametrize(("text", "want"), [("6.3.3", (6, 3, 3)), ("8.0.0-rc.1", (8, 0, 0)), ("v7.2", (7, 2, 0)),
                                            ("", None), (None, None), ("nightly", None), (7, None)])
def test_parse_version(text: object, want: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == want


def test_each_version_is_asked_only_what_it_has() -> None:
    old, unknown, new = ServerProfile((6, 3, 3)), ServerProfile(None), ServerProfile((8, 0, 2))
    assert STORYBOARD in ALL
    assert old.job_types(ALL) == unknown.job_types(ALL) == tuple(t for t in ALL if t != STORYBOARD)
    assert new.job_types(ALL) == ALL
    assert not old.filters_job_types and not old.takes_runner_version and not unknown.takes_runner_version
    assert ServerProfile((7, 1, 0)).filters_job_types and not ServerProfile((7, 1, 0)).takes_runner_version
    assert new.filters_job_types and new.takes_runner_version
    assert runner_version() and parse_version(runner_version()) is not None


def test_storyboard_payload_maps_to_a_sprite_grid() -> None:
    g = sprite_grid(PAYLOAD)
    assert (g.tile_width, g.tile_height, g.columns, g.rows, g.interval) == (192, 108, 10, 4, 2.0)
    assert jobs.supported({"type": STORYBOARD, "uuid": "u", "payload": PAYLOAD}, ALL)
    assert not jobs.supported({"type": STORYBOARD, "uuid": "u", "payload": PAYLOAD}, ALL[:-1])  # not enabled
    info = MediaInfo(duration=75.0, format_name="mp4", has_video=True, has_audio=False, width=1280, height=720,
                     fps=25.0, video_codec="h264", audio_codec=None, audio_channels=None, audio_sample_rate=None,
                     bit_rate=None)
    plan = grid_plan(info, **g.model_dump())
    assert (plan.count, plan.columns, plan.rows, plan.interval) == (38, 10, 4, 2.0)


@pytest.mark.parametrize("change", [
    {"sprites": {"size": {"width": 0, "height": 108}, "count": {"width": 10, "height": 4}, "duration": 2}},
    {"sprites": {"size": {"width": 192, "height": 108}, "count": {"width": 1000, "height": 4}, "duration": 2}},
    {"sprites": {"size": {"width": 192, "height": 108}, "count": {"width": 10, "height": 4}, "duration": 0}},
    {"sprites": {"size": {"width": 192}, "count": {"width": 10, "height": 4}, "duration": 2}},
    {"output": {"storyboardFileCustomUpload": {"url": "https://elsewhere/put", "method": "PUT"}}},
])
def test_a_storyboard_payload_out_of_range_or_uploading_elsewhere_is_not_accepted(change: dict) -> None:
    payload = PAYLOAD | change
    with pytest.raises(ValidationError if "sprites" in change else ValueError):
        sprite_grid(payload)
    assert not jobs.supported({"type": STORYBOARD, "uuid": "u", "payload": payload}, ALL)


def test_a_success_answered_409_means_the_job_is_gone() -> None:
    from mediarunner.connectors.peertube.protocol import PeerTubeError

    # the newest postRunnerJobSuccess: 409 "This job is not in processing state anymore"
    assert PeerTubeError(409, "This job is not in processing state anymore").job_gone
    assert not PeerTubeError(400, "Payload is invalid").job_gone and not PeerTubeError(500, "x").job_gone
