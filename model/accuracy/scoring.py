"""Error rates: CER for Chinese locales (characters, spaces ignored), WER for English (words).
Edit distances come from rapidfuzz's Levenshtein, which works on any sequence of hashables.

Both sides are compared in the corpus's normal form (lower case, no punctuation: a real recording's transcript is
written as its source wrote it), and Chinese in one script: Traditional characters are folded to Simplified
(OpenCC's t2s), so a Cantonese 飯 against a reference's 饭 is not an error. Scoring only: the text a user gets is
what the model wrote."""

from __future__ import annotations

from dataclasses import dataclass

from functools import lru_cache

import opencc
from rapidfuzz.distance import Levenshtein

from model.text.normalize import is_chinese_locale, normalize_text


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


@lru_cache(maxsize=1)
def to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def comparable_units(text: str, locale: str) -> list[str]:
    """The units an error rate counts: normalised, and Chinese folded to Simplified characters."""
    text = normalize_text(text, locale)
    return scoring_units(to_simplified().convert(text) if is_chinese_locale(locale) else text, locale)


def count_errors(reference: str, hypothesis: str, locale: str) -> ErrorCount:
    ref, hyp = comparable_units(reference, locale), comparable_units(hypothesis, locale)
    return ErrorCount(Levenshtein.distance(ref, hyp), len(ref))


def summarize(totals: dict[str, ErrorCount]) -> dict:
    """Per-locale error rates of summed counts (WER or CER as the locale is scored) and the disparity: worst / best
    locale rate."""
    rates = {locale: count.rate for locale, count in totals.items()}
    best = min(rates.values()) if rates else 0.0
    return {
        "per_locale": {
            locale: {"metric": "wer" if uses_words(locale) else "cer", "error_rate": round(count.rate, 4),
                     "errors": count.errors, "reference_units": count.reference_units}
            for locale, count in sorted(totals.items())
        },
        "disparity": round(max(rates.values()) / best, 3) if best > 0 else None,
    }
