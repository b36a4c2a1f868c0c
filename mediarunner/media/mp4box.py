"""Read the few facts an HLS variant needs straight from an MP4's ``moov`` box, without ffprobe.

What :func:`~mediarunner.media.hls.describe_variant` needs of a rendition it encoded: per track, the
sample entry (``avc1``, ``hvc1``, ``av01``, ``vp09``, ``mp4a``), its codec configuration record
(``avcC``, ``hvcC``, ``av1C``, ``vpcC``; the audio object type from ``esds``), the coded picture
size and the average frame rate (``stts`` as ffmpeg's demuxer computes it: frames x timescale /
duration). Starting an ffprobe costs tens of milliseconds per rendition; this reads one box.

Only our own outputs are read here (web MP4s written by ffmpeg with ``+faststart``). Anything
unexpected (a box we do not know, a truncated file) gives None: the caller asks ffprobe instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["Track", "read_tracks"]

_MAX_MOOV = 64 * 1024 * 1024  # a moov this large is not one of our renditions: let ffprobe read it
_VISUAL_ENTRY = 78  # SampleEntry (8) + VisualSampleEntry fields (70) before the child boxes
_AUDIO_ENTRY = 28  # SampleEntry (8) + AudioSampleEntry v0 fields (20)


@dataclass(frozen=True)
class Track:
    kind: str  # "video" | "audio"
    entry: str  # sample entry type: avc1, hvc1, av01, vp09, mp4a, ...
    config: bytes  # the codec configuration record (avcC/hvcC/av1C/vpcC payload; esds: the ASC)
    width: int = 0
    height: int = 0
    frame_rate: Fraction | None = None
    object_type: int | None = None  # mp4a: the esds objectTypeIndication (0x40 AAC, 0x69/0x6B MP3)


class _Malformed(ValueError):
    pass


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[str, list[bytes]]:
    """The payloads of the boxes in ``data[start:end]``, by type."""
    end = len(data) if end is None else end
    out: dict[str, list[bytes]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            (size,), head = struct.unpack_from(">Q", data, pos + 8), 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise _Malformed("box runs past its parent")
        out.setdefault(kind.decode("latin-1"), []).append(data[pos + head:pos + size])
        pos += size
    return out


def _one(boxes: dict[str, list[bytes]], kind: str) -> bytes:
    found = boxes.get(kind)
    if not found:
        raise _Malformed(f"no {kind} box")
    return found[0]


def _read_moov(path: Path) -> bytes | None:
    with path.open("rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            size, kind = struct.unpack(">I4s", head)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            if size < 8 or (kind == b"moov" and size - 8 > _MAX_MOOV):
                return None
            if kind == b"moov":
                data = f.read(size - 8)
                return data if len(data) == size - 8 else None
            f.seek(size - 8, 1)


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """An MPEG-4 descriptor at ``pos``: (tag, payload start, payload end)."""
    tag, pos, length = data[pos], pos + 1, 0
    for _ in range(4):
        b = data[pos]
        pos += 1
        length = (length << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return tag, pos, pos + length


def _esds(payload: bytes) -> tuple[int, bytes]:
    """(objectTypeIndication, AudioSpecificConfig) from an ``esds`` box (ISO 14496-1 descriptors)."""
    tag, pos, _ = _descriptor(payload, 4)  # after version + flags: the ES_Descriptor
    if tag != 0x03:
        raise _Malformed("esds without an ES descriptor")
    flags = payload[pos + 2]
    pos += 3 + (2 if flags & 0x80 else 0)  # ES_ID, flags, dependsOn_ES_ID
    pos += 1 + payload[pos] if flags & 0x40 else 0  # a URL
    pos += 2 if flags & 0x20 else 0  # OCR_ES_Id
    tag, pos, end = _descriptor(payload, pos)
    if tag != 0x04:
        raise _Malformed("esds without a decoder config")
    oti = payload[pos]
    pos += 13
    if pos < end:
        tag, start, stop = _descriptor(payload, pos)
        if tag == 0x05:
            return oti, payload[start:stop]
    return oti, b""


def _frame_rate(stts: bytes, timescale: int) -> Fraction | None:
    (entries,) = struct.unpack_from(">I", stts, 4)
    frames = duration = 0
    for i in range(entries):
        count, delta = struct.unpack_from(">II", stts, 8 + 8 * i)
        frames += count
        duration += count * delta
    return Fraction(timescale * frames, duration) if frames and duration and timescale else None


def _track(trak: bytes) -> Track | None:
    """A track's facts; None for a track that is neither audio nor video (text, timecode)."""
    mdia = _boxes(_one(_boxes(trak), "mdia"))
    mdhd = _one(mdia, "mdhd")
    timescale = struct.unpack_from(">I", mdhd, 20 if mdhd[0] == 1 else 12)[0]
    handler = _one(mdia, "hdlr")[8:12]
    stbl = _boxes(_one(_boxes(_one(mdia, "minf")), "stbl"))
    stsd = _one(stbl, "stsd")
    entries = _boxes(stsd, 8)
    if len(entries) != 1 or len(next(iter(entries.values()))) != 1:
        raise _Malformed("several sample descriptions")
    entry, (body,) = next(iter(entries.items()))
    if handler == b"vide":
        width, height = struct.unpack_from(">HH", body, 24)
        children = _boxes(body, _VISUAL_ENTRY)
        config = next((v[0] for k, v in children.items() if k in ("avcC", "hvcC", "av1C", "vpcC")), b"")
        return Track("video", entry, config, width, height, _frame_rate(_one(stbl, "stts"), timescale))
    if handler == b"soun":
        if struct.unpack_from(">H", body, 8)[0] != 0:
            raise _Malformed("a QuickTime v1/v2 sound description")
        oti, asc = _esds(_one(_boxes(body, _AUDIO_ENTRY), "esds")) if entry == "mp4a" else (None, b"")
        return Track("audio", entry, asc, object_type=oti)
    return None  # text, timecode, ... tracks are not ours


def read_tracks(path: Path) -> list[Track] | None:
    """The audio and video tracks of an MP4, in file order; None when it cannot be read here."""
    try:
        moov = _read_moov(path)
        if moov is None:
            return None
        tracks = [_track(t) for t in _boxes(moov).get("trak", [])]
    except (OSError, _Malformed, struct.error, IndexError):
        return None
    return [t for t in tracks if t is not None] or None
