"""Error rates: CER for Chinese locales (characters, spaces ignored), WER for English (words).
Edit distances come from rapidfuzz's Levenshtein, which works on any sequence of hashables."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein


def uses_words(locale: str) -> bool:
    """English-like locales are scored by words; Chinese varieties by characters."""
    return not (locale.startswith("zh") or locale.startswith("yue") or locale in {"cmn", "hak", "wuu", "nan"})


def scoring_units(text: str, locale: str) -> list[str]:
    return text.split() if uses_words(locale) else [c for c in text if not c.isspace()]


@dataclass(frozen=True)
class ErrorCount:
    errors: int
    reference_units: int

    def __add__(self, other: "ErrorCount") -> "ErrorCount":
        return ErrorCount(self.errors + other.errors, self.reference_units + other.reference_units)

    @property
    def rate(self) -> float:
        return self.errors / max(self.reference_units, 1)


def count_errors(reference: str, hypothesis: str, locale: str) -> ErrorCount:
    ref, hyp = scoring_units(reference, locale), scoring_units(hypothesis, locale)
    return ErrorCount(Levenshtein.distance(ref, hyp), len(ref))
