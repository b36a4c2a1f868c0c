"""Word error rate, for tests and quality checks."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w\s']|_")
_APOSTROPHES = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize(text: str) -> list[str]:
    """NFKC-normalise, lower-case and drop punctuation; return the words.

    Apostrophes inside words are kept ("don't"); hyphens split words ("well-known" is two).
    """
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = _NON_WORD.sub(" ", text)
    text = _APOSTROPHES.sub(" ", text)
    return text.split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words.

    Both texts are normalised with :func:`normalize`. An empty reference gives 0.0 for an empty
    hypothesis and 1.0 otherwise. The result can exceed 1.0 when the hypothesis inserts a lot.
    """
    ref = normalize(reference)
    hyp = normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)
