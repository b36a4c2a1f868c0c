"""Turn the configured ladder and a probed source into the renditions to encode."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from mediarunner.config.settings import Rendition
from mediarunner.errors import ValidationError
from mediarunner.media.probe import MediaInfo
from mediarunner.models.payloads import rendition_name

__all__ = ["PlannedRendition", "plan_ladder"]


class PlannedRendition(BaseModel, frozen=True):
    """One output to encode. Travels in JSON job payloads (``model_dump`` / ``model_validate``)."""

    name: str
    width: int | None
    height: int | None
    video_bitrate_k: int | None
    audio_bitrate_k: int | None
    has_video: bool
    has_audio: bool
    codec: str = "h264"  # the video codec (see media/encoders.CODECS); irrelevant without video
    fps: float | None = None  # an output frame rate asked for (None: the source's, at most the policy's max_fps)


# yuv420p needs even dimensions. Heights round down (never above the source); widths round
# to the nearest even number but never past the source width.
def _even_floor(x: int) -> int:
    return max(2, x - x % 2)


def _even_near(x: float) -> int:
    return max(2, round(x / 2) * 2)


def _select(ladder: Sequence[Rendition], requested: Sequence[str] | None) -> list[Rendition]:
    if not ladder:
        raise ValidationError("the rendition ladder is empty")
    if not requested:  # None or empty: the whole ladder
        return list(ladder)
    by_name = {r.name: r for r in ladder}
    unknown = [n for n in dict.fromkeys(requested) if n not in by_name]
    if unknown:
        raise ValidationError(
            f"unknown rendition(s) {', '.join(map(repr, unknown))}; valid: {', '.join(by_name)}"
        )
    return [by_name[n] for n in dict.fromkeys(requested)]


def _audio_only(chosen: Sequence[Rendition], has_audio: bool) -> list[PlannedRendition]:
    """One audio rendition at the best audio bitrate of the chosen rungs."""
    if not has_audio:
        raise ValidationError("source has neither audio nor video")
    best = max(chosen, key=lambda r: (r.audio_bitrate_k, r.height))
    return [
        PlannedRendition(
            name="audio",
            width=None,
            height=None,
            video_bitrate_k=None,
            audio_bitrate_k=best.audio_bitrate_k,
            has_video=False,
            has_audio=True,
        )
    ]


def plan_ladder(
    info: MediaInfo, ladder: Sequence[Rendition], requested: Sequence[str] | None = None,
    codecs: Sequence[str] = ("h264",),
) -> list[PlannedRendition]:
    """:func:`plan_codec` for each of ``codecs`` (one ladder each, named by :func:`rendition_name`),
    in that order; an audio-only source gives one audio rendition whatever the codecs."""
    first = plan_codec(info, ladder, requested)
    if not info.has_video:
        return first
    return [r.model_copy(update={"name": rendition_name(r.name, c), "codec": c})
            for c in dict.fromkeys(codecs) for r in first]


def plan_codec(
    info: MediaInfo, ladder: Sequence[Rendition], requested: Sequence[str] | None = None
) -> list[PlannedRendition]:
    """Renditions to produce for ``info``, highest first; never upscales.

    ``requested`` (rung names; None or empty = all) picks a subset; unknown names raise
    :class:`ValidationError`. Rungs taller than the source are dropped; if none is left, one
    rendition at the source height is planned, with the bitrates of the smallest rung at or
    above the source height (that is the smallest rung when the source is smaller than all).
    """
    chosen = _select(ladder, requested)
    has_audio = info.has_audio

    if not info.has_video:
        return _audio_only(chosen, has_audio)

    src_w, src_h = info.width, info.height
    if not src_w or not src_h:
        raise ValidationError("video source without a picture size")

    def planned(name: str, h: int, rung: Rendition) -> PlannedRendition:
        return PlannedRendition(
            name=name,
            width=min(_even_near(h * src_w / src_h), _even_floor(src_w)),
            height=h,
            video_bitrate_k=rung.video_bitrate_k,
            audio_bitrate_k=rung.audio_bitrate_k if has_audio else None,
            has_video=True,
            has_audio=has_audio,
        )

    fitting = sorted((r for r in chosen if r.height <= src_h), key=lambda r: (-r.height, -r.video_bitrate_k))
    if fitting:
        return [planned(r.name, _even_floor(r.height), r) for r in fitting]
    # Source smaller than every chosen rung: one rendition at its own height.
    above = [r for r in ladder if r.height >= src_h] or list(chosen)
    rung = min(above, key=lambda r: (r.height, r.video_bitrate_k))
    h = _even_floor(src_h)
    return [planned(f"{h}p", h, rung)]
