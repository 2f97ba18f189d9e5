"""Tonal syllables of Chinese text: the romanisation behind the tone analysis (model.evaluation.tone_errors) and the
targets of the auxiliary syllable CTC (SpeechRecognizer.syllable_head), which teaches the encoder tones by pooling every
character of one syllable and tone into one class.

Why: in espeak-ng's Mandarin, homophones sound identical, so a character CTC sees each reading of a rare character
only as often as that character occurs; a syllable-with-tone class is seen every time any of its characters is.
Character and syllable CTC together are the hierarchical multitask CTC of Sanabria & Metze (2018) and the
intermediate CTC of Lee & Watanabe (2021): the syllable loss reads an intermediate encoder layer, the character
loss the last.

Mandarin is pinyin with tone numbers (pypinyin, neutral tone 5), Cantonese Jyutping (pycantonese). A table entry
is "<locale> <syllable>", e.g. "zh-CN ma3", "yue-HK maa1"; id 0 is the CTC blank and id 1 a syllable the table does
not have.

English can join the same head with its phonemes as espeak-ng says them (model.decoding.pronunciation; entries such as
"en-US aI"), when the table is built with `english_phonemes` (TrainConfig.english_phoneme_ctc). Why: of 0.12.0's English
word errors on dev, few are words that sound right but are spelled wrong (2.1 of 32.1 points greedy); most are words
heard wrong, at 15% phoneme errors (model.evaluation.sound_alike). The head then teaches the middle of the encoder
English phonemes as it teaches Chinese tones. A table with any English entry gives English rows targets.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from model.accuracy.scoring import scoring_units
from model.decoding.pronunciation import Pronunciation, pronounce

TONAL_LOCALES = ("zh-CN", "yue-HK")
PHONEME_LOCALE = "en-US"  # English: phonemes, when the table has them
SYLLABLE_BLANK, SYLLABLE_UNKNOWN = 0, 1
RESERVED = ("<blank>", "<unk>")


def without_tone(syllable: str) -> str:
    """A romanised syllable without its tone digit (pinyin TONE3 1-5, Jyutping 1-6): "zhong1" -> "zhong"."""
    return re.sub(r"[1-6]$", "", syllable)


def mandarin_syllables(text: str, tones: bool) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3 if tones else Style.NORMAL, neutral_tone_with_five=True)


def cantonese_syllables(text: str, tones: bool) -> list[str]:
    import pycantonese

    syllables: list[str] = []
    for word, jyutping in pycantonese.characters_to_jyutping(text):
        found = re.findall(r"[a-z]+[1-6]", jyutping or "")
        found = found if len(found) == len(word) else list(word)  # no reading: the characters stand for themselves
        syllables += found if tones else [without_tone(s) for s in found]
    return syllables


SYLLABLES = {"zh-CN": mandarin_syllables, "yue-HK": cantonese_syllables}


def tonal_syllables(text: str, locale: str) -> list[str] | None:
    """The syllables with tones of a Chinese locale's text, punctuation and spaces dropped; None for a locale
    without tones (English: no syllable targets)."""
    romanise = SYLLABLES.get(locale)
    if romanise is None:
        return None
    # A run without a reading (Latin letters, digits) stays, as an unknown syllable; punctuation is not spoken.
    return [f"{locale} {syllable}" for syllable in romanise("".join(scoring_units(text, locale)), True)
            if not all(unicodedata.category(c)[0] in "PSZ" for c in syllable)]


def english_phonemes(text: str, sounds: dict[str, Pronunciation]) -> list[str]:
    """The phonemes of English text, word by word as espeak-ng says each alone; `sounds` is the memo of word
    pronunciations, completed here for words it lacks."""
    words = scoring_units(text, PHONEME_LOCALE)
    missing = [w for w in words if w not in sounds]
    if missing:
        sounds.update(pronounce(missing))
    return [f"{PHONEME_LOCALE} {phoneme}" for w in words for phoneme in sounds[w]]


def build_syllable_table(texts_by_locale: dict[str, Iterable[str]], english_phonemes: bool = False) -> tuple[str, ...]:
    """Every tonal syllable of the training texts (and with `english_phonemes` every phoneme of their English texts),
    sorted, after the blank and unknown entries."""
    seen: set[str] = set()
    for locale, texts in texts_by_locale.items():
        if locale == PHONEME_LOCALE and english_phonemes:
            texts = list(texts)
            sounds = pronounce({w for text in texts for w in scoring_units(text, locale)})
            seen.update(f"{locale} {phoneme}" for word in sounds.values() for phoneme in word)
            continue
        for text in texts:
            seen.update(tonal_syllables(text, locale) or ())
    return RESERVED + tuple(sorted(seen))


def is_english_phoneme(entry: str) -> bool:
    """A table entry that is an English phoneme ("en-US aI"), not a Chinese syllable."""
    return entry.startswith(f"{PHONEME_LOCALE} ")


def has_english_phonemes(table: Iterable[str]) -> bool:
    return any(map(is_english_phoneme, table))


class SyllableEncoder:
    """Text -> syllable ids of a table, memoised: the trainer asks for the same sentences every epoch, and
    Cantonese romanisation (word segmentation first) costs about a millisecond a sentence."""

    def __init__(self, table: tuple[str, ...]) -> None:
        self.index = {syllable: i for i, syllable in enumerate(table)}
        self.english = has_english_phonemes(table)
        self.sounds: dict[str, Pronunciation] = {}  # English word -> phonemes, filled as words come
        self._memo: dict[tuple[str, str], list[int] | None] = {}

    def prime(self, english_texts: Iterable[str]) -> None:
        """Pronounce every word of these English texts in one espeak-ng call, rather than a call per new sentence."""
        if self.english:
            self.sounds.update(pronounce({w for text in english_texts for w in scoring_units(text, PHONEME_LOCALE)}
                                         - self.sounds.keys()))

    def __call__(self, text: str, locale: str) -> list[int] | None:
        key = (locale, text)
        if key not in self._memo:
            syllables = (english_phonemes(text, self.sounds) if locale == PHONEME_LOCALE and self.english
                         else tonal_syllables(text, locale))
            self._memo[key] = None if syllables is None else [self.index.get(s, SYLLABLE_UNKNOWN) for s in syllables]
        return self._memo[key]
