"""PeerTube runner job types as mediarunner jobs, and the success body each one posts back.

For every type: the input file URLs to download (:func:`input_urls`), the mediarunner job(s) to
submit on the staged inputs (:func:`submit`) and, once that family completed, the ``payload[...]``
fields and files PeerTube's ``success`` validator requires (:func:`success_body`):

==============================  ==============================================  ===============================
type                            mediarunner work                                success payload
==============================  ==============================================  ===============================
vod-web-video-transcoding       transcode, one rung at the payload's            ``videoFile`` (faststart MP4)
                                resolution and fps, MP4 only
vod-hls-transcoding             the same, then a stream copy to one fMP4 +      ``videoFile``,
                                byte-range playlist (video only / audio only    ``resolutionPlaylistFile``
                                with ``separatedAudio``; resolution 0: audio)
vod-audio-merge-transcoding     transcode of the audio over the preview image   ``videoFile``
video-studio-transcoding        studio (cut, intro, outro, watermark: see       ``videoFile``
                                ``studio.py``)
video-transcription             extract_audio -> transcribe (VTT)               ``inputLanguage``, ``vttFile``
generate-video-storyboard       storyboard with the payload's sprite geometry   ``storyboardFile`` (JPEG)
(PeerTube 8.0+)                 (see ``storyboard.py``)
live-rtmp-hls-transcoding       live (``live.py``: chunks sent as ``update``)   none (empty payload)
==============================  ==============================================  ===============================

Which types a server can offer at all depends on its version (``versions.py``).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediarunner.client import Client
from mediarunner.config.settings import Rendition
from mediarunner.connectors.peertube import live, storyboard, studio
from mediarunner.errors import PermanentError
from mediarunner.media.probe import probe
from mediarunner.media.single_file import Streams, merge_tracks, package_single_file_hls, select_streams
from mediarunner.models.payloads import STUDIO_OUTPUT
from mediarunner.models.schemas import Job

SUPPORTED_JOB_TYPES: tuple[str, ...] = (
    "vod-web-video-transcoding", "vod-hls-transcoding", "vod-audio-merge-transcoding", "video-studio-transcoding",
    "video-transcription", live.LIVE, storyboard.STORYBOARD,
)
VIDEO, AUDIO, PREVIEW = "video", "audio", "preview"


@dataclass(frozen=True)
class Success:
    fields: dict[str, str]  # payload[<name>] text fields
    files: dict[str, Path]  # payload[<name>] files


def supported(job: Mapping[str, Any], enabled: tuple[str, ...]) -> bool:
    """A job this connector accepts: an enabled, supported type whose payload has what we need."""
    kind, payload = job.get("type"), job.get("payload")
    if kind not in enabled or kind not in SUPPORTED_JOB_TYPES or not isinstance(payload, Mapping):
        return False
    if kind == live.LIVE:
        return live.parse(payload) is not None
    try:
        urls = input_urls(str(kind), payload)
        if kind == "video-studio-transcoding":
            if not studio.tasks_supported(payload.get("tasks")):
                return False
        elif kind == storyboard.STORYBOARD:
            storyboard.sprite_grid(payload)
        elif kind != "video-transcription":
            _resolution_fps(payload)
    except (KeyError, TypeError, ValueError):
        return False
    return all(isinstance(u, str) and u for u in urls.values())


def input_urls(kind: str, payload: Mapping[str, Any]) -> dict[str, str]:
    inp = payload["input"]
    if kind == "vod-audio-merge-transcoding":
        return {AUDIO: inp["audioFileUrl"], PREVIEW: inp["previewFileUrl"]}
    urls = {VIDEO: inp["videoFileUrl"]}
    separated = inp.get("separatedAudioFileUrl") or []
    if kind != "video-transcription" and separated:
        urls[AUDIO] = separated[0]
    if kind == "video-studio-transcoding":
        urls |= studio.task_urls(payload["tasks"])
    return urls


def _resolution_fps(payload: Mapping[str, Any]) -> tuple[int, float]:
    out = payload["output"]
    resolution, fps = int(out["resolution"]), float(out["fps"])
    if not 0 <= resolution <= 4320 or not 0 <= fps <= 120:
        raise ValueError("resolution or fps out of range")
    return resolution, fps


def _rung(client: Client, height: int) -> Rendition:
    """A rung ``height`` tall with the bitrates of the configured rung nearest to it."""
    near = min(client.settings.renditions, key=lambda r: abs(r.height - height))
    return Rendition(name=f"pt{height}p", height=height, video_bitrate_k=near.video_bitrate_k,
                     audio_bitrate_k=near.audio_bitrate_k)


def _height(client: Client, src: Path, resolution: int) -> int:
    """PeerTube's resolution is the short side; mediarunner's rung the height: a portrait
    video's rung is taller. Resolution 0 (audio only): the smallest configured rung (its audio is kept)."""
    if resolution == 0:
        return min(r.height for r in client.settings.renditions)
    info = probe(src, ffprobe=client.settings.ffprobe_path)
    if info.has_video and info.width and info.height and info.height > info.width:
        return max(2, round(resolution * info.height / info.width / 2) * 2)
    return resolution


def submit(client: Client, kind: str, payload: Mapping[str, Any], staged: Mapping[str, Path], out: Path, *,
           priority_class: str, meta: Mapping[str, Any]) -> Job:
    """Submit the mediarunner job family that does ``kind``'s work; its results land under ``out``."""
    common: dict[str, Any] = {"priority_class": priority_class, "metadata": dict(meta)}
    if kind == "video-transcription":
        return client.submit_transcription(str(staged[VIDEO]), str(out), formats=("vtt",), **common)
    if kind == storyboard.STORYBOARD:
        return storyboard.submit(client, payload, staged[VIDEO], out, priority_class=priority_class, meta=meta)
    if kind == "video-studio-transcoding":
        src = _with_audio(client, staged, out)
        ops = studio.operations(payload["tasks"], staged, src, ffprobe=client.settings.ffprobe_path)
        return client.submit_studio(str(src), str(out), ops, **common)
    resolution, fps = _resolution_fps(payload)
    if kind == "vod-audio-merge-transcoding":
        src, cover = staged[AUDIO], str(staged[PREVIEW])
    else:
        src, cover = _with_audio(client, staged, out), None
    rung = _rung(client, _height(client, src, resolution))
    rung_client = Client(client.settings.model_copy(update={"renditions": [rung]}), app=client.app)
    return rung_client.submit_transcode(str(src), str(out), renditions=[rung.name], formats=("mp4",), parts=None,
                                        cover_image=cover, fps=fps or None, **common)


def _with_audio(client: Client, staged: Mapping[str, Path], out: Path) -> Path:
    """The video input; with a separated audio file, one input with both tracks (stream copy)."""
    if AUDIO not in staged:
        return staged[VIDEO]
    return merge_tracks(staged[VIDEO], staged[AUDIO], out.parent / "merged.mp4", ffmpeg=client.settings.ffmpeg_path)


def _encoded(out: Path) -> Path:
    found = sorted(p for p in out.glob("*.mp4")) + sorted(out.glob("*.m4a"))
    if not found:
        raise PermanentError("the transcode published no MP4")
    return found[0]


def success_body(kind: str, payload: Mapping[str, Any], job: Job, out: Path, work: Path, *,
                 ffmpeg: str = "ffmpeg", segment_seconds: float = 4.0) -> Success:
    """The success payload of ``kind`` from the completed family ``job`` (outputs under ``out``);
    reshaped files are written under ``work``."""
    if kind == "video-transcription":
        vtt = out / "transcript.vtt"
        language = next(((j.result or {}).get("language") for j in job.family if (j.result or {}).get("language")),
                        None)
        if not vtt.is_file() or not language:
            raise PermanentError("the transcription published no VTT or no language")
        return Success({"inputLanguage": str(language)}, {"vttFile": vtt})
    if kind == storyboard.STORYBOARD:
        return Success({}, {"storyboardFile": storyboard.sprite_file(out)})
    if kind == "video-studio-transcoding":
        edited = out / STUDIO_OUTPUT
        if not edited.is_file():
            raise PermanentError("the studio job published no video")
        return Success({}, {"videoFile": edited})
    resolution, _ = _resolution_fps(payload)
    mp4 = _encoded(out)
    if kind == "vod-hls-transcoding":
        separated = bool(payload["output"].get("separatedAudio"))
        streams: Streams = "audio" if resolution == 0 else "video" if separated else "all"
        name = f"{uuidlib.uuid4()}-{resolution}"  # PeerTube renames <uuid>-<resolution>-fragmented.mp4
        playlist, video = package_single_file_hls(mp4, work / f"{name}.m3u8", f"{name}-fragmented.mp4",
                                                  streams=streams, segment_seconds=segment_seconds, ffmpeg=ffmpeg)
        return Success({}, {"videoFile": video, "resolutionPlaylistFile": playlist})
    if resolution == 0 or mp4.suffix == ".m4a":  # an audio-only web video
        mp4 = select_streams(mp4, work / "audio.mp4", "audio", ffmpeg=ffmpeg)
    return Success({}, {"videoFile": mp4})
