"""Audio + cover image (PeerTube's ``vod-audio-merge-transcoding``): an audio file and one still
image become a video ladder. The image is probed here (only the still-image demuxers may read
it), and the audio's :class:`MediaInfo` becomes that of the video to encode: the image's size,
the policy's ``cover_fps``, the audio's duration. :mod:`.encode` loops the image for that long."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

from mediarunner.errors import InvalidInputError, ProcessingError
from mediarunner.media.encoders import POLICY, EncoderPolicy
from mediarunner.media.formats import IMAGE_FORMATS, check_format, file_input_options, option_args
from mediarunner.media.probe import MediaInfo

__all__ = ["MAX_COVER_PIXELS", "image_demuxer", "probe_image", "with_cover"]

MAX_COVER_PIXELS = 8192 * 8192
# The still-image demuxer, chosen from the file's first bytes: forced with -f, so that ffmpeg never
# picks a demuxer from the file *name* (image2 for "x.jpg", which expands patterns into sequences).
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png_pipe"), (b"\xff\xd8\xff", 0, "jpeg_pipe"), (b"WEBP", 8, "webp_pipe"),
    (b"GIF8", 0, "gif"), (b"BM", 0, "bmp_pipe"), (b"II*\x00", 0, "tiff_pipe"), (b"MM\x00*", 0, "tiff_pipe"),
)


def image_demuxer(path: str | os.PathLike[str]) -> str:
    """The demuxer of a still image, from its magic bytes; :class:`InvalidInputError` if it is none."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise InvalidInputError(f"cover image {name} cannot be read ({exc.strerror})") from None
    for magic, at, demuxer in _MAGIC:
        if head[at:at + len(magic)] == magic and (demuxer != "webp_pipe" or head[:4] == b"RIFF"):
            return demuxer
    raise InvalidInputError(f"cover image {name} is not an image (PNG, JPEG, WebP, BMP, TIFF or GIF)")


def probe_image(path: str | os.PathLike[str], *, ffprobe: str = "ffprobe", timeout: float = 30) -> tuple[int, int]:
    """(width, height) of a still image (PNG, JPEG, WebP, BMP, TIFF, GIF); anything else, a
    video included, raises :class:`InvalidInputError`."""
    name = os.fspath(path)
    if not os.path.isfile(name) or os.path.getsize(name) == 0:
        raise InvalidInputError(f"cover image {name} is missing, empty or not a file")
    cmd = [ffprobe, "-v", "error", *option_args(file_input_options(IMAGE_FORMATS)), "-f", image_demuxer(name),
           "-show_entries",
           "stream=codec_type,width,height:format=format_name", "-of", "json", "file:" + os.path.abspath(name)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"ffprobe failed on the cover image: {exc}") from exc
    if res.returncode != 0:
        raise InvalidInputError(f"cover image {name} is not an image (PNG, JPEG, WebP, BMP, TIFF or GIF)")
    data = json.loads(res.stdout or "{}")
    check_format(str((data.get("format") or {}).get("format_name") or ""), f"cover image {name}", IMAGE_FORMATS)
    videos = [s for s in data.get("streams") or [] if s.get("codec_type") == "video"]
    if len(videos) != 1 or not videos[0].get("width") or not videos[0].get("height"):
        raise InvalidInputError(f"cover image {name} is not a single still image")
    width, height = int(videos[0]["width"]), int(videos[0]["height"])
    if width * height > MAX_COVER_PIXELS or min(width, height) < 2:
        raise InvalidInputError(f"cover image {name}: {width}x{height} is outside 2x2 .. {MAX_COVER_PIXELS} pixels")
    return width, height


def with_cover(audio: MediaInfo, size: tuple[int, int], policy: EncoderPolicy = POLICY) -> MediaInfo:
    """The video an audio-only ``audio`` and a cover image of ``size`` make together."""
    if audio.has_video:
        raise InvalidInputError("cover_image is for an audio-only input; this input already has video")
    if not audio.has_audio:
        raise InvalidInputError("cover_image needs an input with audio")
    return dataclasses.replace(audio, has_video=True, width=size[0], height=size[1], fps=policy.cover_fps,
                               video_codec="cover")

