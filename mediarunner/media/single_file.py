"""Stream-copy reshaping of an encoded rendition into the single-file forms other systems ask for:

* :func:`package_single_file_hls`: one fragmented MP4 addressed by byte ranges from one VOD media
  playlist (``-hls_flags single_file``), as PeerTube stores HLS: ``<name>.m3u8`` + the ``.mp4`` it names;
* :func:`select_streams`: a faststart MP4 of the video or the audio only (separated audio, audio-only
  variants).

Both copy the streams (no re-encode) and read only a local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mediarunner.errors import ValidationError
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import file_input_options, option_args

__all__ = ["Streams", "merge_tracks", "package_single_file_hls", "select_streams"]

Streams = Literal["all", "video", "audio"]
_MAPS: dict[str, list[str]] = {"all": ["-map", "0:V:0?", "-map", "0:a:0?"],
                               "video": ["-map", "0:V:0", "-an"], "audio": ["-map", "0:a:0", "-vn"]}


def _input(src: Path) -> list[str]:
    return [*option_args(file_input_options()), "-i", "file:" + str(src.resolve())]


def select_streams(src: Path, dst: Path, streams: Streams, *, ffmpeg: str = "ffmpeg") -> Path:
    """``dst``: a faststart MP4 holding ``streams`` of ``src`` (stream copy)."""
    if streams not in _MAPS:
        raise ValidationError(f"streams must be one of {sorted(_MAPS)}")
    run_ffmpeg(["-y", *_input(src), *_MAPS[streams], "-c", "copy", "-movflags", "+faststart", "-f", "mp4",
                "file:" + str(dst.resolve())], ffmpeg=ffmpeg)
    return dst


def package_single_file_hls(src: Path, playlist: Path, video_filename: str, *, streams: Streams = "all",
                            segment_seconds: float = 4.0, ffmpeg: str = "ffmpeg") -> tuple[Path, Path]:
    """Package ``src`` (stream copy) as ``playlist`` (a VOD media playlist of byte ranges) and
    ``video_filename`` beside it (one fragmented MP4, its ``#EXT-X-MAP`` init section included);
    the playlist names the file relatively. Returns (playlist, video file)."""
    if segment_seconds <= 0:
        raise ValidationError("segment_seconds must be positive")
    if "/" in video_filename or not video_filename.endswith(".mp4"):
        raise ValidationError("video_filename must be a bare .mp4 file name")
    if streams not in _MAPS:
        raise ValidationError(f"streams must be one of {sorted(_MAPS)}")
    video = playlist.parent / video_filename
    run_ffmpeg(["-y", *_input(src), *_MAPS[streams], "-c", "copy", "-f", "hls", "-hls_time", f"{segment_seconds:g}",
                "-hls_list_size", "0", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
                "-hls_flags", "single_file", "-hls_segment_filename", str(video.resolve()),
                str(playlist.resolve())], ffmpeg=ffmpeg)
    # Some ffmpeg versions write the init section's URI as the full path: make it relative.
    text = playlist.read_text(encoding="utf-8")
    playlist.write_text(text.replace(f'URI="{video.resolve()}"', f'URI="{video_filename}"'), encoding="utf-8")
    return playlist, video


def merge_tracks(video: Path, audio: Path, dst: Path, *, ffmpeg: str = "ffmpeg") -> Path:
    """``dst``: the video stream of ``video`` and the audio stream of ``audio`` in one MP4 (stream
    copy), for a source whose audio was stored apart."""
    run_ffmpeg(["-y", *_input(video), *_input(audio), "-map", "0:V:0", "-map", "1:a:0", "-c", "copy",
                "-f", "mp4", "file:" + str(dst.resolve())], ffmpeg=ffmpeg)
    return dst
