"""Render a :class:`Transcript` as WebVTT, SRT or JSON.

Cue times are made safe for players: clamped to ``[0, audio_duration]`` (when the duration is
known, i.e. > 0), made monotonic (a cue never starts before the previous one ended) and never
negative in length. Cues with no text are dropped. An empty transcript renders as a valid empty
file (``WEBVTT`` header only; an empty SRT).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from .transcript import Transcript


def _timestamp(seconds: float, sep: str) -> str:
    ms_total = max(0, round(seconds * 1000))
    hours, rem = divmod(ms_total, 3_600_000)
    minutes, rem = divmod(rem, 60_000)
    secs, ms = divmod(rem, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (hours always present, may exceed 99)."""
    return _timestamp(seconds, ".")


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    return _timestamp(seconds, ",")


def _clean_text(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" would be read as a timing line.
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n")]
    return "\n".join(ln for ln in lines if ln).replace("-->", "->")


def cues(t: Transcript) -> Iterator[tuple[float, float, str, str | None]]:
    """Yield ``(start, end, text, speaker)`` with sanitised, millisecond-rounded times."""
    # The limit is the duration rounded *down* to the millisecond, so a rounded cue time can never
    # land after the end of the audio (13.1416875 s allows 13.141, not 13.142).
    duration = t.audio_duration
    limit = math.floor(duration * 1000) / 1000 if duration > 0 and math.isfinite(duration) else math.inf
    last_end = 0.0
    for seg in sorted(t.segments, key=lambda s: (s.start, s.end)):
        text = _clean_text(seg.text)
        if not text:
            continue
        start = min(max(seg.start, last_end, 0.0), limit)
        end = min(max(seg.end, start), limit)
        start, end = round(start, 3), round(end, 3)
        last_end = end
        yield start, end, text, seg.speaker


def _with_speaker(text: str, speaker: str | None) -> str:
    return f"[{speaker}] {text}" if speaker else text


def to_webvtt(t: Transcript) -> str:
    """WebVTT text. Speakers, when known, become ``<v SPEAKER>`` voice spans."""
    out = ["WEBVTT", ""]
    for start, end, text, speaker in cues(t):
        out.append(f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}")
        body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if speaker:
            safe = speaker.replace(">", "").replace("\n", " ")
            body = f"<v {safe}>{body}"
        out.append(body)
        out.append("")
    return "\n".join(out)


def to_srt(t: Transcript) -> str:
    """SubRip text, cues numbered from 1. Speakers become a ``[SPEAKER]`` prefix."""
    out: list[str] = []
    for n, (start, end, text, speaker) in enumerate(cues(t), start=1):
        out.append(str(n))
        out.append(f"{srt_timestamp(start)} --> {srt_timestamp(end)}")
        out.append(_with_speaker(text, speaker))
        out.append("")
    return "\n".join(out)


def to_json(t: Transcript, *, indent: int | None = 2) -> str:
    """JSON with the metadata (language, engine, model, device, durations, realtime factor)
    and the sanitised segments."""
    doc = {
        "language": t.language,
        "engine": t.engine,
        "model": t.model,
        "device": t.device,
        "audio_duration": round(t.audio_duration, 3),
        "processing_seconds": round(t.processing_seconds, 3),
        "realtime_factor": round(t.realtime_factor, 4),
        "text": t.text,
        "segments": [
            {"start": s, "end": e, "text": text, "speaker": spk} for s, e, text, spk in cues(t)
        ],
    }
    return json.dumps(doc, indent=indent, ensure_ascii=False)
