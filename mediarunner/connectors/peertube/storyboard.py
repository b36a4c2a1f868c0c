"""PeerTube's ``generate-video-storyboard`` runner job (8.0 and later) as a mediarunner storyboard job.

PeerTube computes the geometry server-side (``VideoStoryboardJobHandler.create``) and sends it in
the payload::

    {"input": {"videoFileUrl": ...},
     "sprites": {"size": {"width": 192, "height": 108}, "count": {"width": 10, "height": 4},
                 "duration": 2},
     "output": {}}

Its own runner (``processGenerateStoryboard``) takes a frame every ``duration`` seconds, scales it to
``size`` and tiles ``count.width`` x ``count.height`` of them into one JPEG; then posts multipart
``payload[storyboardFile]`` (the success validator's only file; the upload filter takes image MIME
types). PeerTube stores that image and the sprite geometry of its own payload. mediarunner's
storyboard job with that geometry (:class:`~mediarunner.models.payloads.SpriteGrid`) and the JPEG
format makes the same image: ``count.width x size.width`` by ``count.height x size.height`` pixels,
tile *k* the frame at *k* x ``duration`` seconds.

A payload asking for an upload elsewhere (``output.storyboardFileCustomUpload``) is not supported:
such a job is not accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mediarunner.client import Client
from mediarunner.errors import PermanentError
from mediarunner.models.payloads import SpriteGrid
from mediarunner.models.schemas import Job

STORYBOARD = "generate-video-storyboard"
SPRITE = Path("storyboard") / "storyboard.jpg"  # under the job's output directory (tasks/storyboard.py)


class _Pair(BaseModel):
    model_config = ConfigDict(extra="ignore")
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class _Sprites(BaseModel):
    model_config = ConfigDict(extra="ignore")
    size: _Pair
    count: _Pair
    duration: float = Field(gt=0)


def sprite_grid(payload: Mapping[str, Any]) -> SpriteGrid:
    """The payload's ``sprites`` as mediarunner's grid; ValueError (pydantic's) when out of range
    or when the payload asks for a custom upload."""
    output = payload.get("output") or {}
    if not isinstance(output, Mapping) or output.get("storyboardFileCustomUpload"):
        raise ValueError("an upload to a custom URL is not supported")
    s = _Sprites.model_validate(payload["sprites"])
    return SpriteGrid(tile_width=s.size.width, tile_height=s.size.height, columns=s.count.width,
                      rows=s.count.height, interval=s.duration)


def submit(client: Client, payload: Mapping[str, Any], video: Path, out: Path, *, priority_class: str,
           meta: Mapping[str, Any]) -> Job:
    """A storyboard job of its own on the staged ``video``; its JPEG lands at ``out``/storyboard/."""
    return client.submit_storyboard(str(video), str(out), sprites=sprite_grid(payload), image="jpg",
                                    priority_class=priority_class, metadata=dict(meta))


def sprite_file(out: Path) -> Path:
    """The JPEG to post as ``payload[storyboardFile]``."""
    sprite = out / SPRITE
    if not sprite.is_file():
        raise PermanentError("the storyboard job published no sprite image")
    return sprite
