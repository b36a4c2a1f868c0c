from __future__ import annotations

import json

import pytest

from mediarunner.speech.subtitles import srt_timestamp, to_json, to_srt, to_webvtt, vtt_timestamp
from mediarunner.speech.transcript import Segment, Transcript

from .vttparse import assert_well_formed, parse_srt, parse_vtt


def _t(segments: list[Segment], duration: float = 10.0) -> Transcript:
    return Transcript(
        language="en",
        segments=segments,
        engine="faster-whisper",
        model="tiny.en",
        device="cpu",
        audio_duration=duration,
        processing_seconds=2.5,
    )


def test_timestamp_formats() -> None:
    assert vtt_timestamp(1.5) == "00:00:01.500"
    assert srt_timestamp(1.5) == "00:00:01,500"
    assert vtt_timestamp(3725.0004) == "01:02:05.000"
    assert srt_timestamp(59.9996) == "00:01:00,000"
    assert vtt_timestamp(-3) == "00:00:00.000"
    assert vtt_timestamp(100 * 3600) == "100:00:00.000"


def test_realtime_factor_and_text() -> None:
    t = _t([Segment(start=0, end=1, text=" Hello "), Segment(start=1, end=2, text="world. ")])
    assert t.realtime_factor == pytest.approx(0.25)  # 2.5 s of work for 10 s of audio
    assert t.text == "Hello world."
    assert _t([], duration=0.0).realtime_factor == 0.0


def test_empty_transcript_gives_valid_empty_files() -> None:
    t = _t([])
    assert to_webvtt(t) == "WEBVTT\n"
    assert parse_vtt(to_webvtt(t)) == []
    assert to_srt(t) == ""
    assert parse_srt(to_srt(t)) == []
    doc = json.loads(to_json(t))
    assert doc["segments"] == [] and doc["text"] == ""


def test_cues_are_clamped_monotonic_and_escaped() -> None:
    t = _t(
        [
            Segment(start=0.0, end=2.0, text="first"),
            Segment(start=1.5, end=1.2, text="overlaps, ends before it starts"),
            Segment(start=3.0, end=4.0, text="   "),  # dropped
            Segment(start=5.0, end=6.0, text="a <b> & c --> d\n\nsecond line", speaker="SPEAKER_00"),
            Segment(start=9.5, end=12.0, text="runs past the end"),
            Segment(start=11.0, end=13.0, text="starts past the end"),
        ],
        duration=10.0,
    )
    vtt = to_webvtt(t)
    cues = parse_vtt(vtt)
    assert_well_formed(cues, 10.0)
    assert [c.text.split("\n")[0][:5] for c in cues] == ["first", "overl", "<v SP", "runs ", "start"]
    assert cues[1].start == 2.0 and cues[1].end == 2.0
    assert cues[2].text == "<v SPEAKER_00>a &lt;b&gt; &amp; c -&gt; d\nsecond line"
    assert cues[3].end == 10.0 and cues[4].start == 10.0 and cues[4].end == 10.0

    srt_cues = parse_srt(to_srt(t))
    assert_well_formed(srt_cues, 10.0)
    assert [(c.start, c.end) for c in srt_cues] == [(c.start, c.end) for c in cues]
    assert srt_cues[2].text.startswith("[SPEAKER_00] a <b> & c -> d")

    doc = json.loads(to_json(t))
    assert doc["engine"] == "faster-whisper" and doc["model"] == "tiny.en" and doc["device"] == "cpu"
    assert doc["language"] == "en" and doc["realtime_factor"] == 0.25
    assert doc["audio_duration"] == 10.0 and doc["processing_seconds"] == 2.5
    assert len(doc["segments"]) == 5 and doc["segments"][2]["speaker"] == "SPEAKER_00"
    assert all(0 <= s["start"] <= s["end"] <= 10.0 for s in doc["segments"])


def test_clamp_rounds_down_to_the_millisecond() -> None:
    t = _t([Segment(start=0.0314, end=13.2, text="past the end")], duration=13.1416875)
    (cue,) = parse_vtt(to_webvtt(t))
    assert (cue.start, cue.end) == (0.031, 13.141)
    assert_well_formed(parse_srt(to_srt(t)), 13.1416875)


def test_millisecond_formatting_in_files() -> None:
    vtt = to_webvtt(_t([Segment(start=1.5, end=2.25, text="hi")]))
    assert "00:00:01.500 --> 00:00:02.250" in vtt
    srt = to_srt(_t([Segment(start=1.5, end=2.25, text="hi")]))
    assert srt.startswith("1\n00:00:01,500 --> 00:00:02,250\nhi\n")
