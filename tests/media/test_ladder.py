from __future__ import annotations

import dataclasses

import pytest

from mediarunner.config.settings import DEFAULT_LADDER, Rendition
from mediarunner.errors import ValidationError
from mediarunner.media.ladder import PlannedRendition, plan_ladder
from mediarunner.media.probe import MediaInfo

SRC_360 = MediaInfo(
    duration=3.0, format_name="mov,mp4", has_video=True, has_audio=True, width=640, height=360,
    fps=25.0, video_codec="h264", audio_codec="aac", audio_channels=2, audio_sample_rate=48000,
    bit_rate=900_000,
)  # fmt: skip


def _src(**kw: object) -> MediaInfo:
    return dataclasses.replace(SRC_360, **kw)  # type: ignore[arg-type]


def test_no_upscale_for_360p_source() -> None:
    plan = plan_ladder(SRC_360, DEFAULT_LADDER)
    assert [(p.name, p.width, p.height) for p in plan] == [("360p", 640, 360), ("240p", 426, 240)]
    assert [(p.video_bitrate_k, p.audio_bitrate_k) for p in plan] == [(800, 96), (400, 64)]
    assert all(p.has_video and p.has_audio for p in plan)


def test_highest_first_regardless_of_ladder_order() -> None:
    plan = plan_ladder(_src(width=1920, height=1080), list(reversed(DEFAULT_LADDER)))
    assert [p.name for p in plan] == ["1080p", "720p", "480p", "360p", "240p"]
    assert [p.width for p in plan] == [1920, 1280, 854, 640, 426]
    assert all(p.width % 2 == 0 and p.height % 2 == 0 for p in plan if p.width and p.height)


def test_requested_subset() -> None:
    plan = plan_ladder(_src(width=1280, height=720), DEFAULT_LADDER, ["240p", "720p", "240p"])
    assert [p.name for p in plan] == ["720p", "240p"]
    # Requested rungs that would upscale are dropped.
    assert [p.name for p in plan_ladder(SRC_360, DEFAULT_LADDER, ["1080p", "240p"])] == ["240p"]


def test_requested_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValidationError) as ei:
        plan_ladder(SRC_360, DEFAULT_LADDER, ["720p", "4k"])
    assert "'4k'" in str(ei.value)
    for name in ("1080p", "720p", "480p", "360p", "240p"):
        assert name in str(ei.value)


def test_small_source_gets_one_rendition_at_source_height() -> None:
    plan = plan_ladder(_src(width=176, height=144), DEFAULT_LADDER)
    assert plan == [PlannedRendition(name="144p", width=176, height=144, video_bitrate_k=400,
                                     audio_bitrate_k=64, has_video=True, has_audio=True)]  # fmt: skip
    # Odd sizes round to even, never above the source.
    odd = plan_ladder(_src(width=161, height=121), DEFAULT_LADDER)[0]
    assert (odd.name, odd.width, odd.height) == ("120p", 160, 120)


def test_all_requested_would_upscale_falls_back_to_source_height() -> None:
    plan = plan_ladder(SRC_360, DEFAULT_LADDER, ["1080p", "720p"])
    assert [(p.name, p.height, p.video_bitrate_k) for p in plan] == [("360p", 360, 800)]


def test_video_without_audio() -> None:
    plan = plan_ladder(_src(has_audio=False, audio_codec=None), DEFAULT_LADDER)
    assert plan and all(not p.has_audio and p.audio_bitrate_k is None for p in plan)


def test_audio_only_source() -> None:
    info = _src(has_video=False, width=None, height=None, fps=None, video_codec=None)
    plan = plan_ladder(info, DEFAULT_LADDER)
    assert plan == [PlannedRendition(name="audio", width=None, height=None, video_bitrate_k=None,
                                     audio_bitrate_k=192, has_video=False, has_audio=True)]  # fmt: skip
    assert plan_ladder(info, DEFAULT_LADDER, ["240p"])[0].audio_bitrate_k == 64


def test_planned_rendition_json_round_trip_and_frozen() -> None:
    p = plan_ladder(SRC_360, DEFAULT_LADDER)[0]
    assert PlannedRendition.model_validate_json(p.model_dump_json()) == p
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        p.name = "x"  # type: ignore[misc]


def test_empty_ladder_is_invalid() -> None:
    with pytest.raises(ValidationError):
        plan_ladder(SRC_360, [])
    assert plan_ladder(SRC_360, [Rendition(name="a", height=360, video_bitrate_k=1)], [])[0].name == "a"
