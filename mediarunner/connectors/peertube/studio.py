"""PeerTube's ``video-studio-transcoding`` tasks as mediarunner studio operations.

PeerTube 6.3 (``packages/ffmpeg/src/ffmpeg-edition.ts``) and its runner know four tasks:

* ``cut`` ``{start?, end?}`` (seconds; strings when the edit was submitted as multipart) -> ``cut``;
* ``add-intro`` / ``add-outro`` ``{file}`` -> ``intro`` / ``outro`` of the downloaded clip;
* ``add-watermark`` ``{file, watermarkSizeRatio, horitonzalMarginRatio (sic), verticalMarginRatio}``:
  PeerTube scales the image to ``ratio`` x the video height and puts it top right, both margins
  a fraction of the video *height* -> ``watermark`` top-right with ``scale`` (its width as a fraction
  of the video width, from both sizes) and ``margin`` (pixels, the horizontal one: mediarunner has one
  margin for both sides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mediarunner.errors import ValidationError
from mediarunner.media.cover import probe_image
from mediarunner.media.probe import probe

TASKS = frozenset({"cut", "add-intro", "add-outro", "add-watermark"})


def task_key(i: int) -> str:
    return f"task{i}"


def tasks_supported(tasks: Any) -> bool:
    return isinstance(tasks, list) and bool(tasks) and all(
        isinstance(t, Mapping) and t.get("name") in TASKS and isinstance(t.get("options"), Mapping) for t in tasks)


def task_urls(tasks: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {task_key(i): str(t["options"]["file"]) for i, t in enumerate(tasks) if t["name"] != "cut"}


def _seconds(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def operations(tasks: Sequence[Mapping[str, Any]], staged: Mapping[str, Path], video: Path, *,
               ffprobe: str = "ffprobe") -> list[dict[str, Any]]:
    """mediarunner studio operations for PeerTube's ``tasks`` (files from ``staged``)."""
    ops: list[dict[str, Any]] = []
    for i, t in enumerate(tasks):
        o, name = t["options"], t["name"]
        if name == "cut":
            start, end = _seconds(o.get("start")) or 0.0, _seconds(o.get("end"))
            if start > 0 or end is not None:
                ops.append({"op": "cut", "start": start, "end": end})
        elif name in ("add-intro", "add-outro"):
            ops.append({"op": name[4:], "url": str(staged[task_key(i)])})
        else:
            ops.append(_watermark(o, staged[task_key(i)], video, ffprobe=ffprobe))
    if not ops:
        raise ValidationError("the studio job asks for nothing to do")
    return ops


def _watermark(o: Mapping[str, Any], image: Path, video: Path, *, ffprobe: str) -> dict[str, Any]:
    info = probe(video, ffprobe=ffprobe)
    if not info.width or not info.height:
        raise ValidationError("a watermark needs a video stream")
    iw, ih = probe_image(image, ffprobe=ffprobe)
    size, margin = float(o.get("watermarkSizeRatio") or 0.1), float(o.get("horitonzalMarginRatio") or 0)
    scale = min(1.0, max(0.001, info.height * size * iw / ih / info.width))
    return {"op": "watermark", "image_url": str(image), "position": "top-right",
            "margin": round(info.height * margin), "scale": round(scale, 4)}
