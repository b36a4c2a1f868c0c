"""Hardware encoders: which ones really open on this machine, and which one a job gets.

``ffmpeg -encoders`` lists what the *build* supports (Debian's lists h264/hevc NVENC, QSV and
VAAPI everywhere); only a real encode proves a GPU, a driver and a device are there. So a worker
runs a 1-frame test encode per listed hardware encoder at start-up (:func:`usable_encoders`,
cached) and advertises the ones that worked; :func:`choose_encoder` (pure) picks, for a job's
``hardware`` request and a rendition's codec, the hardware family to use or says why software
it is. The encoder *settings* live with the others in :mod:`.encoders`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Sequence
from functools import lru_cache

from mediarunner.media.encoders import HARDWARE_ENCODERS, codec_spec
from mediarunner.media.ffmpeg import list_encoders
from mediarunner.models.enums import Queue

__all__ = ["HARDWARE_KINDS", "choose_encoder", "probe_encode_args", "route_hardware", "usable_encoders"]

HARDWARE_KINDS: tuple[str, ...] = ("nvenc", "qsv", "vaapi")  # the order "auto" tries them in
_TEST_SOURCE = ["-f", "lavfi", "-i", "color=c=gray:s=256x144:r=25:d=0.04"]


def probe_encode_args(kind: str, encoder: str, *, vaapi_device: str = "/dev/dri/renderD128") -> list[str]:
    """A 1-frame encode to nowhere with ``encoder`` (and its device, for QSV and VAAPI)."""
    sink = ["-frames:v", "1", "-c:v", encoder, "-f", "null", "-"]
    if kind == "nvenc":
        return ["-hide_banner", "-v", "error", *_TEST_SOURCE, *sink]
    if kind == "qsv":
        return ["-hide_banner", "-v", "error", "-init_hw_device", "qsv=hw", "-filter_hw_device", "hw", *_TEST_SOURCE,
                "-vf", "format=nv12,hwupload=extra_hw_frames=16", *sink]  # fmt: skip
    if kind == "vaapi":
        return ["-hide_banner", "-v", "error", "-vaapi_device", vaapi_device, *_TEST_SOURCE,
                "-vf", "format=nv12,hwupload", *sink]  # fmt: skip
    raise ValueError(f"unknown hardware kind {kind!r}")


@lru_cache(maxsize=4)
def usable_encoders(ffmpeg: str = "ffmpeg", vaapi_device: str = "/dev/dri/renderD128",
                    timeout: float = 20.0) -> frozenset[str]:  # fmt: skip
    """The hardware encoders that complete a 1-frame test encode here (once per process)."""
    listed = list_encoders(ffmpeg)
    usable: set[str] = set()
    for kind in HARDWARE_KINDS:
        for encoder in dict.fromkeys(HARDWARE_ENCODERS[kind].values()):
            if encoder not in listed:
                continue
            try:
                res = subprocess.run([ffmpeg, *probe_encode_args(kind, encoder, vaapi_device=vaapi_device)],
                                     capture_output=True, timeout=timeout, check=False)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                continue
            if res.returncode == 0:
                usable.add(encoder)
    return frozenset(usable)


def choose_encoder(asked: str, codec: str, usable: Collection[str]) -> tuple[str | None, str]:
    """(hardware kind or None for software, why). ``asked``: ``none``, ``auto`` (the first family,
    in :data:`HARDWARE_KINDS` order, with a usable encoder for ``codec``) or one family."""
    software = codec_spec(codec).encoder
    if asked == "none":
        return None, f"software {software} (no hardware asked for)"
    kinds = HARDWARE_KINDS if asked == "auto" else (asked,)
    for kind in kinds:
        encoder = HARDWARE_ENCODERS[kind].get(codec)
        if encoder is not None and encoder in usable:
            return kind, f"{encoder} (hardware={asked}; its 1-frame test encode succeeded)"
    wanted = [HARDWARE_ENCODERS[k][codec] for k in kinds if codec in HARDWARE_ENCODERS[k]]
    if not wanted:
        return None, f"software {software}: no {'/'.join(kinds)} encoder for {codec}"
    return None, f"software {software}: fallback, {' / '.join(wanted)} cannot open here (hardware={asked})"


def route_hardware(asked: str, codecs: Sequence[str], runners: Sequence[tuple[str, Sequence[str], Collection[str]]],
                   allowed: Sequence[str] = ("cpu", "gpu")) -> tuple[str, str]:  # fmt: skip
    """(queue, reason) of a transcode asking for hardware ``asked``: the queue (``gpu`` first) of an
    online runner — (hostname, queues, encoders its 1-frame test opened) — with a usable encoder of
    that family for one of ``codecs``; none online: cpu, a software fallback that the reason records."""
    if asked == "none":
        return Queue.CPU.value, "transcode jobs run on cpu"
    for hostname, queues, usable in runners:
        for codec in codecs:
            kind, _ = choose_encoder(asked, codec, usable)
            if kind is None:
                continue
            for q in sorted((q for q in queues if q in allowed), key=lambda q: q != Queue.GPU.value):
                return q, f"hardware={asked}: {hostname} can open {HARDWARE_ENCODERS[kind][codec]}"
    return Queue.CPU.value, f"hardware={asked}: no online worker can open a {asked} encoder for " \
                            f"{'/'.join(codecs)}: software fallback on cpu"
