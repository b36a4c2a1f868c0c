"""Esup-Pod's file set, made from the MP4 renditions of an encoding (stream copies, one audio
encode, a few frames), in the names Pod's own encoder writes and esup-runner's encoding reports:

    <name>.m3u8 + <name>.ts   per rendition: a VOD playlist of byte ranges into one MPEG-TS file
                              (``-hls_flags single_file``, Pod's ``%sp.m3u8``)
    livestream.m3u8           the master playlist over those renditions (Pod's name)
    audio_192k.mp3            the audio as MP3 (Pod's ``encode_audio`` / ``audio/mp3``)
    thumbnail_<k>.png         3 frames at 25, 50 and 75 % of the video (esup-runner's choice)
    overview.png/overview.vtt the seek-preview sprite and its WebVTT track (cues ``overview.png#xywh=``)

Pure media work: local files in, local files out; no Celery, no SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import file_input_options, option_args
from mediarunner.media.hls import describe_variant, render_master_playlist
from mediarunner.media.probe import MediaInfo
from mediarunner.media.storyboard import make_storyboard, plan_storyboard, render_vtt

__all__ = ["MASTER", "MP3", "OVERVIEW_SPRITE", "OVERVIEW_VTT", "THUMBNAIL_AT", "PodFiles", "package_for_pod"]

MASTER = "livestream.m3u8"
MP3 = "audio_192k.mp3"
OVERVIEW_SPRITE, OVERVIEW_VTT = "overview.png", "overview.vtt"
THUMBNAIL_AT = (0.25, 0.50, 0.75)
HLS_SECONDS = 2.0  # Pod's and esup-runner's -hls_time


@dataclass(frozen=True)
class Rung:
    name: str  # "360p": the files are <name>.mp4 (given), <name>.m3u8 and <name>.ts (made)
    mp4: Path


@dataclass
class PodFiles:
    hls: list[str] = field(default_factory=list)  # the rungs' playlists (names relative to out)
    master: str | None = None
    mp3: str | None = None
    thumbnails: list[tuple[str, float, int]] = field(default_factory=list)  # (file, seconds, percent)
    overview: tuple[str, str] | None = None  # (sprite, vtt)


def _input(src: Path, seek: float | None = None) -> list[str]:
    return [*option_args(file_input_options()), *(["-ss", f"{seek:.3f}"] if seek is not None else []),
            "-i", "file:" + str(src.resolve())]  # fmt: skip


def single_file_ts(mp4: Path, playlist: Path, *, ffmpeg: str = "ffmpeg") -> Path:
    """``playlist`` + the one ``.ts`` beside it (same stem), from ``mp4`` by stream copy."""
    ts = playlist.with_suffix(".ts")
    run_ffmpeg(["-y", *_input(mp4), "-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-bsf:v", "h264_mp4toannexb",
                "-f", "hls", "-hls_time", f"{HLS_SECONDS:g}", "-hls_list_size", "0", "-hls_playlist_type", "vod",
                "-hls_flags", "single_file+independent_segments", "-hls_segment_type", "mpegts",
                "-hls_segment_filename", str(ts.resolve()), str(playlist.resolve())], ffmpeg=ffmpeg)
    text = playlist.read_text(encoding="utf-8")  # some ffmpeg versions write the segment's full path
    playlist.write_text(text.replace(str(ts.resolve()), ts.name), encoding="utf-8")
    return playlist


def mp3(src: Path, dst: Path, *, ffmpeg: str = "ffmpeg") -> Path:
    """The first audio stream of ``src`` as MP3 (LAME VBR ~190 kb/s, 44.1 kHz: Pod's settings)."""
    run_ffmpeg(["-y", *_input(src), "-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-q:a", "2", "-ar", "44100",
                "-f", "mp3", "file:" + str(dst.resolve())], ffmpeg=ffmpeg)
    return dst


def thumbnails(src: Path, out: Path, info: MediaInfo, *, ffmpeg: str = "ffmpeg") -> list[tuple[str, float, int]]:
    """``thumbnail_<k>.png`` at :data:`THUMBNAIL_AT` of the duration, at most 1280x720, never upscaled."""
    made = []
    for k, share in enumerate(THUMBNAIL_AT):
        at, name = info.duration * share, f"thumbnail_{k}.png"
        run_ffmpeg(["-y", *_input(src, at), "-map", "0:V:0", "-frames:v", "1", "-an",
                    "-vf", "scale='min(1280,iw)':'min(720,ih)':force_original_aspect_ratio=decrease",
                    "-c:v", "png", "-f", "image2", "-update", "1", "file:" + str((out / name).resolve())],
                   ffmpeg=ffmpeg)  # fmt: skip
        made.append((name, round(at, 3), round(share * 100)))
    return made


def overview(src: Path, out: Path, info: MediaInfo, *, tile_width: int = 192, max_tiles: int = 100,
             min_interval: float = 1.0, columns: int = 10, ffmpeg: str = "ffmpeg") -> tuple[str, str]:
    """The storyboard (:func:`make_storyboard`) as Pod's ``overview.png`` + ``overview.vtt``."""
    plan = plan_storyboard(info, tile_width=tile_width, max_tiles=max_tiles, min_interval=min_interval,
                           columns=columns)
    work = out / ".overview"
    board = make_storyboard(src, work, info, plan, image="png", ffmpeg=ffmpeg)
    board.sprite.replace(out / OVERVIEW_SPRITE)
    (out / OVERVIEW_VTT).write_text(render_vtt(plan, OVERVIEW_SPRITE, info.duration), encoding="utf-8")
    board.vtt.unlink(missing_ok=True)
    work.rmdir()
    return OVERVIEW_SPRITE, OVERVIEW_VTT


def package_for_pod(out: Path, rungs: Sequence[Rung], info: MediaInfo, *, ffmpeg: str = "ffmpeg",
                    ffprobe: str = "ffprobe", audio: Path | None = None,
                    storyboard: dict[str, float] | None = None) -> PodFiles:
    """Everything Pod imports beside the MP4s, written in ``out``; ``rungs`` tallest last;
    ``info`` describes the tallest rung (what the frames and the audio are taken from), or
    ``audio`` (an audio-only encoding's file) when there is no rung."""
    files = PodFiles()
    variants = []
    for r in rungs:
        playlist = single_file_ts(r.mp4, out / f"{r.name}.m3u8", ffmpeg=ffmpeg)
        files.hls.append(playlist.name)
        variants.append(describe_variant(r.mp4, playlist.name, ffprobe=ffprobe, segment_seconds=HLS_SECONDS))
    if variants:
        (out / MASTER).write_text(render_master_playlist(variants), encoding="utf-8")
        files.master = MASTER
    top = rungs[-1].mp4 if rungs else audio
    if top is not None and info.has_audio:
        files.mp3 = mp3(top, out / MP3, ffmpeg=ffmpeg).name
    if top is not None and info.has_video and info.duration > 0:
        files.thumbnails = thumbnails(top, out, info, ffmpeg=ffmpeg)
        knobs = storyboard or {}
        files.overview = overview(top, out, info, ffmpeg=ffmpeg, tile_width=int(knobs.get("tile_width", 192)),
                                  max_tiles=int(knobs.get("max_tiles", 100)),
                                  min_interval=float(knobs.get("min_interval", 1.0)),
                                  columns=int(knobs.get("columns", 10)))
    return files
