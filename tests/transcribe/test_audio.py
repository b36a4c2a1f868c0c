"""Audio extraction through the media worker's run_ffmpeg/probe, and the one-file pipeline."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from mediarunner.errors import InvalidInputError, JobCancelled
from mediarunner.speech.audio import extract_audio, wav_duration
from mediarunner.speech.engines import get_engine
from mediarunner.speech.pipeline import transcribe
from mediarunner.speech.wer import wer

from .conftest import SPEECH_TEXT, WER_BOUND

pytest.importorskip(
    "mediarunner.media.ffmpeg", reason="mediarunner.media (run_ffmpeg/probe) not merged yet"
)
pytest.importorskip("mediarunner.media.probe", reason="mediarunner.media.probe not merged")


def test_extract_from_video(speech_mp4: Path, speech_wav: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "audio.wav"
    progress: list[float] = []
    duration = extract_audio(speech_mp4, dst, on_progress=progress.append)
    assert duration is not None
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    assert duration == pytest.approx(wav_duration(speech_wav), abs=0.1)
    with wave.open(str(dst), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    assert [p.name for p in dst.parent.iterdir()] == ["audio.wav"]  # no partial file left


def test_video_without_audio_returns_none(video_no_audio: Path, tmp_path: Path) -> None:
    dst = tmp_path / "audio.wav"
    assert extract_audio(video_no_audio, dst) is None
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []


def test_corrupt_input_is_invalid(corrupt_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        extract_audio(corrupt_file, tmp_path / "audio.wav")
    with pytest.raises(InvalidInputError):
        extract_audio(tmp_path / "missing.mp4", tmp_path / "audio.wav")
    assert not (tmp_path / "audio.wav").exists()


def test_cancel_during_extraction(speech_mp4: Path, tmp_path: Path) -> None:
    with pytest.raises(JobCancelled):
        extract_audio(speech_mp4, tmp_path / "audio.wav", should_cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_end_to_end(
    speech_mp4: Path, video_no_audio: Path, tmp_path: Path, tiny_en_path: Path
) -> None:
    engine = get_engine("faster-whisper", "tiny.en", device="cpu", compute_type="int8")
    t = transcribe(speech_mp4, engine=engine, work_dir=tmp_path)
    assert wer(SPEECH_TEXT, t.text) < WER_BOUND, t.text
    assert list(tmp_path.iterdir()) == []  # the temporary WAV is gone

    empty = transcribe(video_no_audio, engine=engine, work_dir=tmp_path)
    assert empty.segments == [] and empty.audio_duration == 0.0 and empty.model == "tiny.en"
