"""Live transcoding: one ffmpeg process turns a live input into a live HLS ladder.

The input is pulled (RTMP, SRT, HLS over HTTP, UDP, or a file, optionally paced with ``-re``)
or, with ``listen=True``, received as an RTMP publish (``-listen 1``). Output layout::

    out_dir/master.m3u8
    out_dir/<rendition>/index.m3u8      (EVENT playlist, grows while the input runs)
    out_dir/<rendition>/seg_00000.ts ...

``-hls_flags temp_file`` makes ffmpeg write every segment and playlist under a temporary name and
rename it, so a reader (or a publisher syncing ``out_dir`` elsewhere) never sees a partial file.
When the input ends, the playlists get ``#EXT-X-ENDLIST``.

Failover: when ``out_dir`` already holds a previous attempt's output (``resume=True``), the new
process continues it. With playlists present, ffmpeg appends to them (``append_list``): numbering
continues from the playlist, and an ``#EXT-X-DISCONTINUITY`` separates the attempts. With only
orphan segments (the attempt died before writing any playlist), numbering continues after them
(``-start_number``) so no file is overwritten.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ffmpeg as ffpy  # ffmpeg-python builds the argument lists; run_ffmpeg runs them

from mediarunner.errors import InvalidInputError, JobCancelled, ProcessingError, ValidationError
from mediarunner.media.encoders import POLICY, Options, live_audio_options, live_video_options, threads_option
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import file_input_options, network_input_options
from mediarunner.media.ladder import PlannedRendition
from mediarunner.storage.local import remove_quietly

__all__ = ["MASTER_PLAYLIST", "LiveResume", "live_args", "plan_resume", "run_live"]

MASTER_PLAYLIST = "master.m3u8"
VARIANT_PLAYLIST = "index.m3u8"

_NETWORK_SCHEMES = ("rtmp", "rtmps", "srt", "http", "https", "udp", "rtp", "tcp")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SEGMENT_RE = re.compile(r"^seg_(\d+)\.ts$")

# run_ffmpeg reports fractions of a known duration only. For a live input (unknown length) we
# pass this huge nominal duration and turn the fraction back into seconds: exact to well under
# a microsecond, and run_ffmpeg clamps fractions to 0.999 (31 years) before its final 1.0.
_NOMINAL_DURATION = 1e9


@dataclass(frozen=True)
class LiveResume:
    """What a previous attempt left in ``out_dir`` and how to continue it."""

    append: bool  # playlists exist: ffmpeg appends to them (numbering continues from them)
    start_number: int | None  # only orphan segments: number the new ones after them


def _segment_numbers(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return [int(m.group(1)) for p in directory.iterdir() if (m := _SEGMENT_RE.match(p.name))]


def plan_resume(out_dir: Path, renditions: Sequence[PlannedRendition], *, resume: bool = True) -> LiveResume:
    """Tidy ``out_dir`` for a new attempt and decide how to continue what is there.

    Leftover temporaries (``*.tmp`` from ``temp_file``) are removed. ``resume=False`` removes
    the previous output instead of continuing it.
    """
    dirs = [out_dir / r.name for r in renditions]
    for d in [out_dir, *dirs]:
        if d.is_dir():
            for tmp in d.glob("*.tmp"):
                remove_quietly(tmp)
    if not resume:
        remove_quietly(out_dir / MASTER_PLAYLIST)
        for d in dirs:
            remove_quietly(d / VARIANT_PLAYLIST)
            for seg in d.glob("seg_*.ts"):
                remove_quietly(seg)
        return LiveResume(append=False, start_number=None)
    if any((d / VARIANT_PLAYLIST).is_file() for d in dirs):
        return LiveResume(append=True, start_number=None)
    numbers = [n for d in dirs for n in _segment_numbers(d)]
    return LiveResume(append=False, start_number=max(numbers) + 1 if numbers else None)


def _input_options(
    input_url: str,
    *,
    listen: bool,
    realtime: bool,
    stall_timeout: float | None,
    listen_timeout: float | None,
) -> tuple[str, Options]:
    """The input as ffmpeg reads it (``file:`` + absolute path for a file) and its input options."""
    if not input_url:
        raise ValidationError("live input is empty")
    scheme = urlsplit(input_url).scheme.lower() if "://" in input_url else ""
    opts: Options = {"re": None} if realtime else {}
    if scheme in ("", "file"):
        if listen:
            raise ValidationError("listen=True needs an rtmp:// input URL")
        path = Path(urlsplit(input_url).path if scheme else input_url)
        if not path.is_file():
            raise InvalidInputError(f"live input file not found: {path}")
        return "file:" + str(path.resolve()), opts | file_input_options()
    if scheme not in _NETWORK_SCHEMES:
        raise InvalidInputError(
            f"unsupported live input scheme {scheme!r} (supported: {', '.join(_NETWORK_SCHEMES)}, file)"
        )
    if "@" in urlsplit(input_url).netloc:
        raise ValidationError("credentials must not be embedded in the live input URL")
    opts |= network_input_options(input_url)
    if listen:
        if scheme not in ("rtmp", "rtmps"):
            raise ValidationError("listen=True needs an rtmp:// input URL (SRT listens via ?mode=listener)")
        opts["listen"] = "1"
        if listen_timeout is not None:
            opts["timeout"] = str(max(1, math.ceil(listen_timeout)))  # rtmp: seconds
    elif stall_timeout is not None and stall_timeout > 0:
        # A source that stops sending must end the job (transient error, then failover/resume).
        opts["rw_timeout"] = str(int(stall_timeout * 1_000_000))
    return input_url, opts


def _check_ladder(out_dir: Path, renditions: Sequence[PlannedRendition], segment_seconds: float) -> None:
    if not renditions:
        raise ValidationError("live transcoding needs at least one rendition")
    if not (0.5 <= segment_seconds <= 60):
        raise ValidationError("segment_seconds must be between 0.5 and 60")
    if "%" in str(out_dir):
        raise ValidationError("the live output directory must not contain '%'")
    names = [r.name for r in renditions]
    if len(set(names)) != len(names) or not all(_NAME_RE.match(n) for n in names):
        raise ValidationError(f"rendition names must be unique and match {_NAME_RE.pattern}: {names}")
    for r in renditions:
        if not (r.has_video or r.has_audio):
            raise ValidationError(f"rendition {r.name!r} has neither audio nor video")
        if r.has_video and not (r.width and r.height and r.video_bitrate_k):
            raise ValidationError(f"video rendition {r.name!r} needs width, height and video_bitrate_k")


def _ladder_streams(source: Any, video: Sequence[PlannedRendition], audio: Sequence[PlannedRendition]) -> list[Any]:
    """The output streams in ``-var_stream_map`` order: every video rung (the source split, fit
    and letterboxed: its aspect ratio is kept whatever the plan assumed), then one copy of the
    source audio per audio rung."""
    streams: list[Any] = []
    if video:
        split = source["v:0"].filter_multi_output("split")
        for i, r in enumerate(video):
            scaled = split[i].filter("scale", r.width, r.height, force_original_aspect_ratio="decrease")
            padded = scaled.filter("pad", r.width, r.height, "(ow-iw)/2", "(oh-ih)/2").filter("setsar", 1)
            streams.append(padded.filter("format", POLICY.pix_fmt))
    return streams + [source["a:0"] for _ in audio]


def _stream_map(renditions: Sequence[PlannedRendition]) -> str:
    """``-var_stream_map``: ``v:0,a:0,name:720p v:1,name:360p a:1,name:audio``."""
    entries = []
    vi = ai = 0
    for r in renditions:
        parts = []
        if r.has_video:
            parts.append(f"v:{vi}")
            vi += 1
        if r.has_audio:
            parts.append(f"a:{ai}")
            ai += 1
        entries.append(",".join([*parts, f"name:{r.name}"]))
    return " ".join(entries)


def _hls_options(out: str, renditions: Sequence[PlannedRendition], segment_seconds: float,
                 resume: LiveResume | None) -> Options:  # fmt: skip
    """The HLS muxer: EVENT playlists per rendition, a master, atomic writes, resume."""
    flags = "independent_segments+temp_file"
    if resume is not None and resume.append:
        flags += "+append_list"
    opts: Options = {"sn": None, "dn": None, "max_muxing_queue_size": "1024",
                     "f": "hls", "hls_time": f"{segment_seconds:g}", "hls_playlist_type": "event",
                     "hls_list_size": "0", "hls_flags": flags, "hls_segment_type": "mpegts",
                     "master_pl_name": MASTER_PLAYLIST, "hls_segment_filename": f"{out}/%v/seg_%05d.ts"}  # fmt: skip
    if resume is not None and resume.start_number is not None:
        opts["start_number"] = str(resume.start_number)
    opts["var_stream_map"] = _stream_map(renditions)
    return opts


def live_args(
    input_url: str,
    out_dir: Path,
    renditions: Sequence[PlannedRendition],
    *,
    listen: bool = False,
    realtime: bool = False,
    segment_seconds: float = 2.0,
    preset: str = "veryfast",
    threads: int = 0,
    stall_timeout: float | None = 30.0,
    listen_timeout: float | None = None,
    max_duration: float | None = None,
    resume: LiveResume | None = None,
) -> list[str]:
    """The ffmpeg arguments (without ``ffmpeg`` itself) for :func:`run_live`, built with ffmpeg-python."""
    _check_ladder(out_dir, renditions, segment_seconds)
    url, input_opts = _input_options(input_url, listen=listen, realtime=realtime, stall_timeout=stall_timeout,
                                     listen_timeout=listen_timeout)  # fmt: skip
    source = ffpy.input(url, **input_opts)
    video = [r for r in renditions if r.has_video]
    audio = [r for r in renditions if r.has_audio]
    opts: Options = {}
    if video:
        bitrates = [int(r.video_bitrate_k or 0) for r in video]
        opts |= live_video_options(bitrates, preset=preset, segment_seconds=segment_seconds)
    if audio:
        opts |= live_audio_options([r.audio_bitrate_k for r in audio])
    opts |= threads_option(threads)
    if max_duration is not None:
        opts["t"] = f"{max_duration:.3f}"
    out = str(out_dir.resolve())
    opts |= _hls_options(out, renditions, segment_seconds, resume)
    output = ffpy.output(*_ladder_streams(source, video, audio), f"{out}/%v/{VARIANT_PLAYLIST}", **opts)
    return list(output.get_args())


class _Watchdog:
    """Turns run_ffmpeg's fractions of the nominal duration back into seconds, and reports a stall.

    A source that stops sending (publisher frozen, network black hole) leaves ffmpeg blocked in
    a read that -rw_timeout does not cover for every protocol (RTMP in particular). Media time
    that stops advancing for ``stall_timeout`` seconds ends the attempt (see :func:`run_live`).
    """

    def __init__(self, stall_timeout: float | None, *, listen: bool, on_progress: Callable[[float], None] | None,
                 should_cancel: Callable[[], bool] | None) -> None:  # fmt: skip
        self.stall_timeout = stall_timeout
        self.listen = listen
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self.started = time.monotonic()
        self.last_advance: float | None = None
        self.stalled = False

    def progress(self, fraction: float) -> None:
        self.last_advance = time.monotonic()
        if self.on_progress is not None and fraction < 1.0:  # the final 1.0 means "done", not 31 years
            self.on_progress(fraction * _NOMINAL_DURATION)

    def cancel_or_stall(self) -> bool:
        if self.should_cancel is not None and self.should_cancel():
            return True
        if self.stall_timeout is None or self.stall_timeout <= 0:
            return False
        now = time.monotonic()
        if self.last_advance is None:
            # Nothing decoded yet: a publisher may take its time to connect (listen_timeout
            # bounds that); a pulled source must start within stall_timeout.
            self.stalled = not self.listen and now - self.started > self.stall_timeout
        else:
            self.stalled = now - self.last_advance > self.stall_timeout
        return self.stalled


def run_live(
    input_url: str,
    out_dir: Path,
    renditions: Sequence[PlannedRendition],
    *,
    listen: bool = False,
    segment_seconds: float = 2.0,
    ffmpeg: str = "ffmpeg",
    preset: str = "veryfast",
    threads: int = 0,
    realtime: bool = False,
    resume: bool = True,
    stall_timeout: float | None = 30.0,
    listen_timeout: float | None = None,
    max_duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
) -> None:
    """Transcode a live input into a live HLS ladder under ``out_dir`` until the input ends.

    ``on_progress`` receives the seconds of media processed so far (non-decreasing).
    ``realtime`` paces a file input at its native rate (``-re``), as if it were live.
    ``stall_timeout``: media time not advancing this long (a pulled input also: not starting)
    fails the attempt with a transient :class:`ProcessingError` (so the job is retried and
    resumes this output); None disables the watchdog.
    ``listen_timeout``: with ``listen=True``, how long to wait for the publisher (None: forever).
    ``max_duration``: stop (cleanly, with ``#EXT-X-ENDLIST``) after this many seconds.
    Cancellation (``should_cancel``) stops ffmpeg within ``cancel_poll`` + ~1 s and raises
    :class:`JobCancelled`; ffmpeg failures raise from the error taxonomy (see ``run_ffmpeg``).
    """
    plan = plan_resume(out_dir, renditions, resume=resume)
    args = live_args(input_url, out_dir, renditions, listen=listen, realtime=realtime, segment_seconds=segment_seconds,
                     preset=preset, threads=threads, stall_timeout=stall_timeout, listen_timeout=listen_timeout,
                     max_duration=max_duration, resume=plan)  # fmt: skip
    for r in renditions:
        (out_dir / r.name).mkdir(parents=True, exist_ok=True)
    watchdog = _Watchdog(stall_timeout, listen=listen, on_progress=on_progress, should_cancel=should_cancel)
    try:
        run_ffmpeg(args, ffmpeg=ffmpeg, duration=_NOMINAL_DURATION, on_progress=watchdog.progress,
                   should_cancel=watchdog.cancel_or_stall, cancel_poll=cancel_poll)  # fmt: skip
    except JobCancelled:
        if watchdog.stalled:
            raise ProcessingError(f"live input stalled: no media for {stall_timeout:g} s") from None
        raise
