from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import InvalidInputError, JobCancelled, ValidationError
from mediarunner.media.probe import probe
from mediarunner.media.studio import apply_operations
from mediarunner.models.studio import Compose, Cut, Intro, Outro, Watermark, parse_operations
from tests.media_checks import streams

from .conftest import ffmpeg_gen, frame_rgb, region_mean


class _resolver:
    """Maps URLs to local files and records the calls."""

    def __init__(self, mapping: dict[str, Path]) -> None:
        self.mapping = mapping
        self.calls: list[str] = []

    def __call__(self, url: str) -> Path:
        self.calls.append(url)
        return self.mapping[url]


FAST: dict[str, Any] = {"preset": "ultrafast", "crf": 28}


@pytest.mark.parametrize(
    "ops",
    [
        [],
        [{"op": "cut", "start": 2, "end": 1}],
        [{"op": "cut", "start": 1, "end": 1}],
        [{"op": "cut", "start": -1, "end": 1}],
        [{"op": "cut"}],
        [{"op": "blur"}],
        [{"op": "watermark", "image_url": "/x.png", "position": "middle"}],
        [{"op": "watermark", "image_url": "/x.png", "scale": 0}],
        [{"op": "intro", "url": "sftp://user:pw@host/intro.mp4"}],
        [{"op": "intro", "url": "gopher://host/intro.mp4"}],
        [{"op": "outro", "url": ""}],
        [{"op": "cut", "start": 1, "extra": True}],
    ],
)
def test_invalid_operations(ops: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError) as err:
        parse_operations(ops)
    assert "pw" not in str(err.value)


def test_parse_operations() -> None:
    ops = parse_operations(
        [
            {"op": "cut", "start": 1.5},
            {"op": "intro", "url": "s3://bucket/intro.mp4"},
            {"op": "outro", "url": "/media/outro.mp4"},
            {"op": "watermark", "image_url": "file:///logo.png", "position": "top-left", "scale": 0.2},
        ]
    )
    assert [type(o) for o in ops] == [Cut, Intro, Outro, Watermark]
    assert ops[0] == Cut(start=1.5, end=None)
    assert isinstance(ops[3], Watermark) and ops[3].margin == 16


def test_cut_durations(media: dict[str, Path], tmp_path: Path) -> None:
    progress: list[float] = []
    out = apply_operations(
        media["main"],
        [Cut(start=0.5, end=2.0)],
        tmp_path / "w1",
        resolve=_resolver({}),
        on_progress=progress.append,
        **FAST,
    )
    info = probe(out)
    assert abs(info.duration - 1.5) < 0.08
    assert (info.width, info.height, info.has_audio) == (320, 240, True)
    assert progress == sorted(progress) and progress[-1] == 1.0

    out = apply_operations(media["main"], [Cut(start=1.0)], tmp_path / "w2", resolve=_resolver({}), **FAST)
    assert abs(probe(out).duration - 2.0) < 0.1
    # Two cuts in a row: the second is relative to the first's output; intermediates removed.
    out = apply_operations(
        media["main"],
        [Cut(start=0.5, end=2.5), Cut(start=0.0, end=1.0)],
        tmp_path / "w3",
        resolve=_resolver({}),
        **FAST,
    )
    assert abs(probe(out).duration - 1.0) < 0.1
    assert [p.name for p in (tmp_path / "w3").iterdir()] == [out.name]
    with pytest.raises(InvalidInputError, match="lasts"):
        apply_operations(media["main"], [Cut(start=5)], tmp_path / "w4", resolve=_resolver({}), **FAST)


def test_intro_and_outro(media: dict[str, Path], tmp_path: Path) -> None:
    resolve = _resolver({"s3://bkt/intro.mp4": media["intro"], "sftp://h/outro.mp4": media["outro"]})
    main = probe(media["main"])
    intro, outro = probe(media["intro"]), probe(media["outro"])
    out = apply_operations(
        media["main"],
        [Intro(url="s3://bkt/intro.mp4"), Outro(url="sftp://h/outro.mp4")],
        tmp_path / "w",
        resolve=resolve,
        **FAST,
    )
    info = probe(out)
    assert abs(info.duration - (intro.duration + main.duration + outro.duration)) < 0.15
    assert (info.width, info.height) == (main.width, main.height)
    assert info.fps == pytest.approx(25, abs=0.01)
    assert info.has_audio  # the silent intro got generated silence
    video = streams(out, "video")[0]
    audio = streams(out, "audio")[0]
    assert video.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    assert abs(float(audio["duration"]) - float(video["duration"])) < 0.15
    assert resolve.calls == ["s3://bkt/intro.mp4", "sftp://h/outro.mp4"]


def test_intro_with_audio_on_silent_main(media: dict[str, Path], tmp_path: Path) -> None:
    out = apply_operations(
        media["silent"],
        [Intro(url="outro")],
        tmp_path / "w",
        resolve=_resolver({"outro": media["outro"]}),
        **FAST,
    )
    info = probe(out)
    assert info.has_audio and (info.width, info.height) == (320, 240)
    assert abs(info.duration - 3.0) < 0.15
    # Both sides silent: no audio stream at all.
    out = apply_operations(
        media["silent"],
        [Outro(url="intro")],
        tmp_path / "w2",
        resolve=_resolver({"intro": media["intro"]}),
        **FAST,
    )
    info = probe(out)
    assert not info.has_audio and abs(info.duration - 3.0) < 0.15


def test_watermark_present(media: dict[str, Path], tmp_path: Path) -> None:
    out = apply_operations(
        media["main"],
        [Watermark(image_url="logo", position="bottom-right", margin=16)],
        tmp_path / "w",
        resolve=_resolver({"logo": media["logo"]}),
        **FAST,
    )
    info = probe(out)
    assert (info.width, info.height, info.has_audio) == (320, 240, True)
    assert abs(info.duration - 3.0) < 0.1
    raw = frame_rgb(out, 1.0, 320, 240)
    # Inside the logo (64x32, 16 px from the bottom-right corner), shrunk by 4 px against chroma bleed.
    r, g, b = region_mean(raw, 320, 320 - 16 - 64 + 4, 240 - 16 - 32 + 4, 320 - 16 - 4, 240 - 16 - 4)
    assert r > 200 and g < 60 and b < 60
    # Outside: the untouched gray background (top-left and just left of the logo).
    for box in ((10, 10, 60, 60), (320 - 16 - 64 - 40, 200, 320 - 16 - 64 - 8, 220)):
        r, g, b = region_mean(raw, 320, *box)
        assert all(abs(c - 128) < 12 for c in (r, g, b)), (box, r, g, b)


def test_watermark_scaled_top_left(media: dict[str, Path], tmp_path: Path) -> None:
    out = apply_operations(
        media["main"],
        [Cut(end=1.0), Watermark(image_url="logo", position="top-left", margin=0, scale=0.5)],
        tmp_path / "w",
        resolve=_resolver({"logo": media["logo"]}),
        **FAST,
    )
    raw = frame_rgb(out, 0.5, 320, 240)
    r, g, b = region_mean(raw, 320, 4, 4, 156, 76)  # 160x80 logo at (0, 0)
    assert r > 200 and g < 60 and b < 60
    r, g, b = region_mean(raw, 320, 170, 90, 310, 230)
    assert all(abs(c - 128) < 12 for c in (r, g, b))


def test_watermark_opacity_blends_with_the_picture(media: dict[str, Path], tmp_path: Path) -> None:
    """Opacity 0.4: the red logo over the gray (128) picture reads 0.4 x red + 0.6 x gray."""
    out = apply_operations(
        media["main"],
        [Cut(end=1.0), Watermark(image_url="logo", position="top-left", margin=0, scale=0.5, opacity=0.4)],
        tmp_path / "w",
        resolve=_resolver({"logo": media["logo"]}),
        **FAST,
    )
    raw = frame_rgb(out, 0.5, 320, 240)
    r, g, b = region_mean(raw, 320, 4, 4, 156, 76)
    assert 160 < r < 200 and 60 < g < 95 and 60 < b < 95, (r, g, b)  # opaque: > 200, < 60
    r, g, b = region_mean(raw, 320, 170, 90, 310, 230)
    assert all(abs(c - 128) < 12 for c in (r, g, b))


@pytest.mark.parametrize("layout", ["mid", "piph", "pipb"])
def test_compose_layouts_show_both_tracks(layout: str, media: dict[str, Path], tmp_path: Path) -> None:
    """Esup-Pod's studio layouts: the gray presentation (3 s, with sound) and a blue presenter (2 s, silent)."""
    presenter = tmp_path / "presenter_160x120_blue.mp4"
    ffmpeg_gen("-f", "lavfi", "-i", "color=c=blue:size=160x120:rate=25:duration=2", "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(presenter))  # fmt: skip
    resolve = _resolver({"presenter": presenter})
    op = Compose.model_validate({"url": "presenter", "layout": layout})
    out = apply_operations(media["main"], [op], tmp_path / "c", resolve=resolve, **FAST)
    info = probe(out)
    assert abs(info.duration - 3.0) < 0.15 and info.has_audio and resolve.calls == ["presenter"]
    w, h = (320, 120) if layout == "mid" else (320, 240)
    assert (info.width, info.height) == (w, h)
    # mid: presentation left, presenter right, both 120 high; pip: the presenter 80x60 at 10 px from the right
    # edge and the top (piph) or bottom (pipb). At 2.5 s the presenter has ended: its last frame stays.
    blue = {"mid": (164, 4, 316, 116), "piph": (234, 14, 306, 66), "pipb": (234, 174, 306, 226)}[layout]
    gray = (4, 4, 156, 116) if layout == "mid" else (10, 80, 200, 160)
    for at in (1.0, 2.5):
        raw = frame_rgb(out, at, w, h)
        r, g, b = region_mean(raw, w, *blue)
        assert b > 200 and r < 60 and g < 60, (layout, at, r, g, b)
        assert all(abs(c - 128) < 12 for c in region_mean(raw, w, *gray)), (layout, at)


def test_bad_intro_fails_before_encoding(media: dict[str, Path], tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video" * 100)
    work = tmp_path / "w"
    with pytest.raises(InvalidInputError):
        apply_operations(
            media["main"],
            [Cut(start=1), Intro(url="x")],
            work,
            resolve=_resolver({"x": bogus}),
            **FAST,
        )
    assert not list(work.iterdir())
    audio_only = tmp_path / "audio.m4a"
    ffmpeg_gen("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio_only))
    with pytest.raises(InvalidInputError, match="needs a video"):
        apply_operations(media["main"], [Outro(url="x")], work, resolve=_resolver({"x": audio_only}))
    with pytest.raises(InvalidInputError, match="needs a video"):
        apply_operations(audio_only, [Watermark(image_url="x")], work, resolve=_resolver({"x": media["logo"]}))


def test_cancel(media: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "w"
    with pytest.raises(JobCancelled):
        apply_operations(
            media["main"],
            [Cut(start=0.5), Watermark(image_url="logo")],
            work,
            resolve=_resolver({"logo": media["logo"]}),
            should_cancel=lambda: True,
            cancel_poll=0.0,
            **FAST,
        )
    assert not list(work.iterdir())


def test_intro_is_the_main_file(media: dict[str, Path], tmp_path: Path) -> None:
    """The same file twice in one concat: each use gets its own branch of the graph."""
    main = probe(media["main"])
    out = apply_operations(
        media["main"], [Intro(url="file:main")], tmp_path / "w", resolve=_resolver({"file:main": media["main"]}), **FAST
    )
    info = probe(out)
    assert abs(info.duration - 2 * main.duration) < 0.15
    assert info.has_audio and (info.width, info.height) == (main.width, main.height)
