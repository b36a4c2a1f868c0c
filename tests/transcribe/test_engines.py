"""faster-whisper end to end on espeak-ng speech, with the bundled tiny.en model (CPU, int8)."""

from __future__ import annotations

import importlib.util
import threading
import wave
from pathlib import Path

import pytest

from mediarunner.errors import InvalidInputError, JobCancelled, ModelNotFoundError, PermanentError
from mediarunner.speech import engines
from mediarunner.speech.engines import (
    Engine,
    FasterWhisperEngine,
    engine_lock,
    get_engine,
    load_engine,
)
from mediarunner.speech.subtitles import to_json, to_srt, to_webvtt
from mediarunner.speech.wer import wer

from .conftest import SPEECH_TEXT, WER_BOUND
from .vttparse import assert_well_formed, parse_srt, parse_vtt

pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")


@pytest.fixture(scope="module")
def fw(tiny_en_path: Path) -> Engine:
    return get_engine("faster-whisper", "tiny.en", device="cpu", compute_type="int8")


def test_get_engine_loads_once(fw: Engine) -> None:
    loads = engines.engine_loads()
    again = get_engine("faster_whisper", "tiny.en", device="cpu", compute_type="int8")
    assert again is fw
    assert get_engine("faster-whisper", "tiny.en") is fw  # the defaults spelled out or not: one engine
    assert engines.engine_loads() == loads
    with pytest.raises(TypeError, match="beam"):
        get_engine("faster-whisper", "tiny.en", beam=3)  # type: ignore[call-arg]
    assert isinstance(fw, FasterWhisperEngine) and isinstance(fw, Engine)
    assert (fw.name, fw.model_name, fw.device) == ("faster-whisper", "tiny.en", "cpu")


def test_get_engine_concurrent_first_calls_load_once(
    monkeypatch: pytest.MonkeyPatch, tiny_en_path: Path
) -> None:
    calls: list[str] = []
    sentinel = object()

    def fake_load(engine: str, model: str | None, **kw: object) -> object:
        calls.append(engine)
        return sentinel

    monkeypatch.setattr(engines, "load_engine", fake_load)
    monkeypatch.setattr(engines, "_cache", {})  # isolated: the real cache is left as it was
    monkeypatch.setattr(engines, "_load_locks", {})
    results: list[object] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        results.append(get_engine("faster-whisper", "fake-model-for-cache-test", device="cpu"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["faster-whisper"] and all(r is sentinel for r in results)


def test_speech_wer_and_subtitles(fw: Engine, speech_wav: Path) -> None:
    t = fw.transcribe(speech_wav, language=None)
    error = wer(SPEECH_TEXT, t.text)
    print(f"faster-whisper tiny.en: WER={error:.3f} RTF={t.realtime_factor:.3f} text={t.text!r}")
    assert error < WER_BOUND, t.text
    assert t.language == "en"
    assert t.audio_duration == pytest.approx(speech_wav.stat().st_size / 32000, abs=0.05)
    assert 0 < t.realtime_factor < 10
    assert t.segments and all(s.text for s in t.segments)

    vtt = parse_vtt(to_webvtt(t))
    srt = parse_srt(to_srt(t))
    assert len(vtt) == len(srt) >= 1
    assert_well_formed(vtt, t.audio_duration)
    assert_well_formed(srt, t.audio_duration)
    assert wer(SPEECH_TEXT, " ".join(c.text for c in vtt)) < WER_BOUND
    assert '"engine": "faster-whisper"' in to_json(t)


def test_silence_gives_empty_transcript(fw: Engine, silent_wav: Path) -> None:
    t = fw.transcribe(silent_wav, language=None)
    assert t.segments == [] and t.text == ""
    assert t.audio_duration == pytest.approx(5.0, abs=0.05)
    assert to_webvtt(t) == "WEBVTT\n" and to_srt(t) == ""


def test_zero_length_wav_gives_empty_transcript(fw: Engine, tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    t = fw.transcribe(path, language=None)
    assert t.segments == [] and t.audio_duration == 0.0 and t.realtime_factor == 0.0
    assert to_webvtt(t) == "WEBVTT\n"


def test_cancel_before_start(fw: Engine, speech_wav: Path) -> None:
    with pytest.raises(JobCancelled):
        fw.transcribe(speech_wav, language=None, should_cancel=lambda: True)


def test_corrupt_and_missing_audio(fw: Engine, corrupt_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        fw.transcribe(corrupt_file, language=None)
    with pytest.raises(InvalidInputError):
        fw.transcribe(tmp_path / "missing.wav", language=None)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InvalidInputError):
        fw.transcribe(tmp_path / "empty.wav", language=None)


def test_missing_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_MODEL"):
        load_engine("faster-whisper", "large-v3", model_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_MODEL"):
        FasterWhisperEngine(tmp_path)


def test_whisperx_missing_is_a_clear_permanent_error() -> None:
    if importlib.util.find_spec("whisperx") is not None:
        pytest.skip("whisperx is installed here")
    with pytest.raises(PermanentError, match="whisperx-venv"):
        load_engine("whisperx", "tiny.en", device="cpu", compute_type="int8")


def test_unknown_engine() -> None:
    with pytest.raises(PermanentError, match="MEDIARUNNER_WHISPER_ENGINE"):
        load_engine("vosk", "tiny.en")


def test_engine_lock_is_per_device() -> None:
    with engine_lock("cuda"):
        # The same device (cuda == cuda:0) is busy; another device is free.
        assert not engines._device_locks["cuda:0"].acquire(blocking=False)
        with engine_lock("cpu"), engine_lock("cuda:1"):
            pass
    with engine_lock("cuda:0"):
        pass
