"""Esup-Pod's task requests (``POST /esup/task/execute``) and the mediarunner jobs they become.

The body is what Pod's ``pod/video_encode_transcript/runner_manager.py`` (``_prepare_task_data``)
posts and esup-runner's manager validates (``TaskRequest``): ``etab_name``, ``app_name``,
``app_version``, ``task_type`` (``encoding`` | ``transcription`` | ``studio``), ``source_url``,
``notify_url`` and ``parameters``, whose nested values (``rendition``, ``cut``, ``dressing``) are
JSON *strings*. An encoding is a transcode ladder made of Pod's renditions (MP4 per rung; with a
``cut`` or a ``dressing``, a studio edit first); a transcription is ``submit_transcription``; a
studio task reads the Opencast mediapackage at ``source_url``: with a presentation and a presenter
track, both are composed in the layout Pod asks for (``parameters.presenter``, else the
mediapackage's ``presenter`` attribute; ``mid``, ``piph`` or ``pipb``, esup-runner's default
``mid``), else its one track is used; then it is encoded like an encoding, published also as
``studio_base.mp4``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mediarunner.config import Settings
from mediarunner.config.settings import Rendition
from mediarunner.errors import InvalidInputError, ValidationError
from mediarunner.models.networks import check_network_target

TaskType = Literal["encoding", "transcription", "studio"]
MAX_MEDIAPACKAGE_BYTES = 1024 * 1024
_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_RESOLUTION = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


class TaskRequest(BaseModel):
    """Pod's ``RunnerManagerTaskPayload`` (unknown fields, e.g. esup-runner's ``affiliation``, ignored)."""

    model_config = ConfigDict(extra="ignore")

    etab_name: str = Field(min_length=1, max_length=200)
    app_name: str = Field(min_length=1, max_length=100)
    app_version: str | None = Field(default=None, max_length=50)
    task_type: TaskType
    source_url: str = Field(min_length=1, max_length=2000)
    notify_url: str = Field(min_length=1, max_length=2000)
    affiliation: str | None = Field(default=None, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source_url", "notify_url")
    @classmethod
    def _http(cls, v: str) -> str:
        """Pod sends http(s) URLs only (never a path of this machine)."""
        if urlsplit(v).scheme.lower() not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return v


def _json_param(params: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A nested parameter: a JSON string (what Pod sends) or an object; None when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ValidationError(f"parameters.{name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationError(f"parameters.{name} must be a JSON object")
    return value


def _kbps(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    m = _BITRATE.match(str(value).strip())
    if not m:
        raise ValidationError(f"{what} must look like 750k, 3M or 1.5M (got {str(value)[:20]!r})")
    number = float(m.group(1)) * (1000 if m.group(2).lower() == "m" else 1)
    return max(1, int(number / (1000 if m.group(2) == "" else 1)))


def ladder(params: dict[str, Any]) -> tuple[list[Rendition] | None, dict[str, str]]:
    """Pod's ``rendition`` ({"360": {"resolution": "640x360", "video_bitrate": "750k", ...}}) as
    rungs named ``360p``..., and each rung's resolution as Pod wrote it (Pod looks its
    ``VideoRendition`` up by that string when it imports the file). None: the configured ladder."""
    spec = _json_param(params, "rendition")
    if not spec:
        return None, {}
    rungs, resolutions = [], {}
    for key, rung in spec.items():
        if not isinstance(rung, dict):
            raise ValidationError(f"parameters.rendition[{key!r}] must be an object")
        m = _RESOLUTION.match(str(rung.get("resolution", "")))
        if not m or not 0 < int(m.group(2)) <= 4320:
            raise ValidationError(f"parameters.rendition[{key!r}].resolution must be WIDTHxHEIGHT")
        height, name = int(m.group(2)), f"{int(m.group(2))}p"
        video = _kbps(rung.get("video_bitrate"), f"rendition[{key!r}].video_bitrate") or max(200, height * 3)
        audio = _kbps(rung.get("audio_bitrate"), f"rendition[{key!r}].audio_bitrate") or 128
        rungs.append(Rendition(name=name, height=height, video_bitrate_k=min(video, 200_000),
                               audio_bitrate_k=min(audio, 1024)))
        resolutions[name] = str(rung["resolution"])
    return rungs, resolutions


def _seconds(value: Any, what: str) -> float:
    text = str(value).strip()
    m = _CLOCK.match(text)
    try:
        return float(text) if m is None else int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    except ValueError:
        raise ValidationError(f"{what} must be HH:MM:SS or seconds") from None


def _corner(position: Any) -> str:
    """Pod's watermark position (``top_right``, or its French labels ``en haut à droite``...);
    anything else is Pod's default, top right, as esup-runner places it."""
    text = str(position or "").lower()
    top, left = any(w in text for w in ("top", "haut")), any(w in text for w in ("left", "gauche"))
    bottom = any(w in text for w in ("bottom", "bas"))
    if not (top or left or bottom or any(w in text for w in ("right", "droit"))) \
            and any(w in text for w in ("center", "centre", "milieu")):
        return "center"
    return f"{'bottom' if bottom and not top else 'top'}-{'left' if left else 'right'}"


def _opacity(value: Any) -> float:
    """Pod's dressing opacity, a percentage (1..100; Pod's default 100) as a 0.01..1 fraction;
    unreadable: opaque (esup-runner's fallback)."""
    try:
        percent = float(str(value).strip()) if value not in (None, "") else 100.0
    except ValueError:
        return 1.0
    if percent != percent:  # NaN
        return 1.0
    return max(0.01, min(1.0, percent / 100))


def operations(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Pod's ``cut`` and ``dressing`` as studio operations (cut, watermark, intro, outro), in the
    order esup-runner applies them; empty when Pod sent neither."""
    ops: list[dict[str, Any]] = []
    cut = _json_param(params, "cut")
    if cut and cut.get("start") is not None and cut.get("end") is not None:
        start, end = _seconds(cut["start"], "cut.start"), _seconds(cut["end"], "cut.end")
        if cut.get("initial_duration"):
            end = min(end, _seconds(cut["initial_duration"], "cut.initial_duration"))
        ops.append({"op": "cut", "start": start, "end": end})
    dressing = _json_param(params, "dressing") or {}
    if dressing.get("watermark"):
        where = dressing.get("watermark_position_orig") or dressing.get("watermark_position")
        opacity = dressing.get("watermark_opacity", dressing.get("opacity"))
        ops.append({"op": "watermark", "image_url": dressing["watermark"], "position": _corner(where),
                    "scale": 0.15, "opacity": _opacity(opacity)})
    if dressing.get("opening_credits_video"):
        ops.append({"op": "intro", "url": dressing["opening_credits_video"]})
    if dressing.get("ending_credits_video"):
        ops.append({"op": "outro", "url": dressing["ending_credits_video"]})
    return ops


def transcription_language(params: dict[str, Any]) -> str | None:
    """The spoken language: Pod's ``source_language`` unless ``auto``, else its ``language`` (or
    the legacy ``lang``); None (detect) when neither is a plain language code."""
    for key in ("source_language", "language", "lang"):
        value = str(params.get(key) or "").strip().lower().split("-")[0].split("_")[0]
        if re.fullmatch(r"[a-z]{2,3}", value) and value != "auto":
            return value
    return None


def mediapackage(source_url: str, settings: Settings, presenter: Any = None) -> tuple[str, list[dict[str, Any]]]:
    """The studio input and the operations that come first (the layout), from the Opencast mediapackage
    at ``source_url`` (Pod's studio task). Fetched like an http input: the host must pass
    ``ALLOWED_NETWORKS``, no redirect, at most 1 MiB; no DTD or entity is accepted."""
    try:
        check_network_target(source_url, settings.allowed_networks, what="source_url")
        with httpx.Client(timeout=settings.transfer_timeout_seconds, follow_redirects=False) as http, \
                http.stream("GET", source_url) as resp:
            if resp.status_code != 200:
                raise ValidationError(f"the mediapackage at source_url answered HTTP {resp.status_code}")
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_MEDIAPACKAGE_BYTES:
                    raise ValidationError("the mediapackage at source_url is larger than 1 MiB")
    except InvalidInputError as exc:
        raise ValidationError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise ValidationError(f"cannot read the mediapackage at source_url: {type(exc).__name__}") from None
    return studio_source(body, presenter)


def _parse(body: bytes) -> ElementTree.Element:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ValidationError("the mediapackage must not declare a DTD or entities")
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValidationError(f"the mediapackage is not valid XML: {exc}") from None


def studio_source(body: bytes, presenter: Any = None) -> tuple[str, list[dict[str, Any]]]:
    """(input URL, leading operations) of a mediapackage: the presentation with the presenter
    composed in ``presenter`` (else the mediapackage's ``presenter`` attribute; unknown: ``mid``),
    or the one track there is."""
    root = _parse(body)
    tracks: dict[str, str] = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] != "track":
            continue
        url = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "url" and c.text), None)
        kind = (el.get("type") or "").split("/")[0]
        if url and kind not in tracks:
            tracks[kind] = url.strip()
    if "presentation" in tracks and "presenter" in tracks:
        layout = str(presenter or root.get("presenter") or "mid").strip().lower()
        layout = layout if layout in ("mid", "piph", "pipb") else "mid"
        return tracks["presentation"], [{"op": "compose", "url": tracks["presenter"], "layout": layout}]
    for kind in ("presenter", "presentation"):
        if kind in tracks:
            return tracks[kind], []
    raise ValidationError("the mediapackage has no presenter or presentation track")
