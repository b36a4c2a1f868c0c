"""whisperx on CPU (int8, pyannote VAD) with the bundled tiny.en model.

Runs only where whisperx is importable, i.e. in its own virtualenv::

    VENV=$(scripts/whisperx-venv.sh | tail -n1)
    PYTHONPATH=$PWD "$VENV/bin/python" -m pytest -m whisperx tests/transcribe

In the main virtualenv it is skipped (whisperx is not installed there).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mediarunner.errors import ModelNotFoundError
from mediarunner.speech.engines import Engine, WhisperXEngine, get_engine
from mediarunner.speech.subtitles import to_srt, to_webvtt
from mediarunner.speech.wer import wer

from .conftest import SPEECH_TEXT, WER_BOUND
from .vttparse import assert_well_formed, parse_srt, parse_vtt

pytestmark = [
    pytest.mark.whisperx,
    pytest.mark.skipif(
        importlib.util.find_spec("whisperx") is None,
        reason="whisperx is not importable here; run with the whisperx venv (scripts/whisperx-venv.sh)",
    ),
]


@pytest.fixture(scope="module")
def wx(tiny_en_path: Path) -> Engine:
    return get_engine(
        "whisperx", "tiny.en", device="cpu", compute_type="int8", vad_method="pyannote", batch_size=4
    )


def test_loaded_once(wx: Engine) -> None:
    assert isinstance(wx, WhisperXEngine)
    again = get_engine(
        "whisperx", "tiny.en", device="cpu", compute_type="int8", vad_method="pyannote", batch_size=4
    )
    assert again is wx
    assert (wx.name, wx.model_name, wx.device) == ("whisperx", "tiny.en", "cpu")


def test_speech_wer_and_subtitles(wx: Engine, speech_wav: Path) -> None:
    t = wx.transcribe(speech_wav, language=None)
    error = wer(SPEECH_TEXT, t.text)
    print(f"whisperx tiny.en: WER={error:.3f} RTF={t.realtime_factor:.3f} text={t.text!r}")
    assert error < WER_BOUND, t.text
    assert t.language == "en" and t.engine == "whisperx"
    assert 0 < t.realtime_factor < 20
    vtt = parse_vtt(to_webvtt(t))
    assert vtt
    assert_well_formed(vtt, t.audio_duration)
    assert_well_formed(parse_srt(to_srt(t)), t.audio_duration)


def test_silence_gives_empty_transcript(wx: Engine, silent_wav: Path) -> None:
    t = wx.transcribe(silent_wav, language=None)
    assert t.segments == [] and t.language is None
    assert t.audio_duration == pytest.approx(5.0, abs=0.05)


def test_alignment_and_diarization_need_local_dirs(tiny_en_path: Path, tmp_path: Path) -> None:
    # An existing directory without the English checkpoint: found out after the model loads.
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_ALIGN_MODEL_DIR"):
        WhisperXEngine(tiny_en_path, device="cpu", compute_type="int8", align_model_dir=tmp_path)
    # Cheap checks, before any model loads.
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_ALIGN_MODEL_DIR"):
        WhisperXEngine(tiny_en_path, device="cpu", align_model_dir=tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_DIARIZE_MODEL_DIR"):
        WhisperXEngine(tiny_en_path, device="cpu", compute_type="int8", diarize_model_dir=tmp_path)
