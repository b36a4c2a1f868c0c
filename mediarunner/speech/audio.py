"""Turn any media file into the 16 kHz mono PCM WAV that the speech engines want."""

from __future__ import annotations

import contextlib
import os
import wave
from collections.abc import Callable
from pathlib import Path

from mediarunner.errors import InvalidInputError, JobCancelled
from mediarunner.media.formats import file_input_options, option_args

SAMPLE_RATE = 16_000


def wav_duration(path: Path) -> float:
    """Duration in seconds of a PCM WAV file (from its header)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError) as exc:
        raise InvalidInputError(f"{path} is not a readable PCM WAV file: {exc}") from exc


def _file_url(path: Path) -> str:
    # "file:" stops ffmpeg reading "a:b.mp4" as protocol "a" or "-x.wav" as an option.
    return "file:" + os.path.abspath(path)


def extract_audio_args(src: Path, dst_wav: Path) -> list[str]:
    """The ffmpeg arguments (without the binary) that write the first audio stream of ``src``
    as 16 kHz mono signed 16-bit PCM WAV to ``dst_wav``."""
    return [
        "-y",
        *option_args(file_input_options()),  # real media containers only, and only this file
        "-i",
        _file_url(src),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        _file_url(dst_wav),
    ]


def extract_audio(
    src: Path,
    dst_wav: Path,
    *,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> float | None:
    """Write the first audio stream of ``src`` to ``dst_wav`` (16 kHz mono PCM WAV).

    Returns the duration in seconds of the written audio, or ``None`` when ``src`` has no audio
    stream (nothing is written then). The input is probed first, so a missing or corrupt input
    raises :class:`~mediarunner.errors.InvalidInputError` (and one with no usable stream
    :class:`~mediarunner.errors.UnsupportedMediaError`) before ffmpeg runs. ``on_progress``
    gets ffmpeg's progress as a fraction in [0, 1]. ffmpeg's own
    errors (``PermanentError``/``ProcessingError``/``JobCancelled``) propagate from
    ``run_ffmpeg``; a partial output is never left at ``dst_wav`` (it is written to a temporary
    name beside it and renamed on success).
    """
    # Imported here: these modules belong to the media worker package.
    from mediarunner.media.ffmpeg import run_ffmpeg
    from mediarunner.media.probe import probe

    src = Path(src)
    dst_wav = Path(dst_wav)
    if not src.is_file():
        raise InvalidInputError(f"input {src} does not exist or is not a file")
    info = probe(src, ffprobe=ffprobe)
    if not info.has_audio:
        return None
    if should_cancel is not None and should_cancel():  # run_ffmpeg first polls after cancel_poll
        raise JobCancelled("audio extraction cancelled")

    dst_wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_wav.with_name(f".{dst_wav.stem}.{os.getpid()}.partial.wav")
    try:
        run_ffmpeg(
            extract_audio_args(src, tmp),
            ffmpeg=ffmpeg,
            duration=info.duration,
            on_progress=on_progress,
            should_cancel=should_cancel,
        )
        duration = wav_duration(tmp)
        os.replace(tmp, dst_wav)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return duration
