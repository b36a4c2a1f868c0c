from __future__ import annotations

import pytest

from mediarunner.speech.wer import normalize, wer


def test_normalize_drops_case_and_punctuation() -> None:
    assert normalize("Hello, World! Don't   stop—now.") == ["hello", "world", "don't", "stop", "now"]
    assert normalize("'quoted' well-known") == ["quoted", "well", "known"]


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("the cat sat", "The cat sat.", 0.0),
        ("the cat sat", "the cat", 1 / 3),  # deletion
        ("the cat sat", "the dog sat", 1 / 3),  # substitution
        ("the cat sat", "the cat sat down", 1 / 3),  # insertion
        ("the cat sat", "", 1.0),
        ("", "", 0.0),
        ("", "noise", 1.0),
        ("a b", "x y z w", 2.0),
    ],
)
def test_wer(ref: str, hyp: str, expected: float) -> None:
    assert wer(ref, hyp) == pytest.approx(expected)
