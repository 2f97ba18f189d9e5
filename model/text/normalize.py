"""Transcript normalisation shared by the corpus builder and the model code.

Kept dependency-free and pure so training/decoding code can import it and
produce exactly the same targets the corpus was built with.
"""
from __future__ import annotations

import re
import unicodedata

# Basic block + Extension A; the tokenizer only covers these ranges.
_CJK = "\u4e00-\u9fff\u3400-\u4dbf"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_ZH_TOKEN = re.compile(f"[{_CJK}]|[a-z0-9]+")
_EN_DROP = re.compile(r"[^a-z' ]+")
_EN_ORDINARY = re.compile(r"^[A-Za-z' .,;:!?\"()\-]+$")
_ZH_PUNCT = re.compile(r"[\s\W_]+")
_ONLY_CJK = re.compile(f"^[{_CJK}]+$")


def is_chinese_locale(locale: str) -> bool:
    """zh-CN, zh-TW, yue-HK, cmn-* ... all use character-level transcripts."""
    return locale.lower().startswith(("zh", "yue", "cmn"))


def _strip_accents(text: str) -> str:
    # NFKD splits "é" into "e" + combining mark so English keeps the letter.
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _normalize_chinese(text: str) -> str:
    # NFKC folds full-width digits/letters (ＡＢ１２) into ASCII.
    tokens = _ZH_TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    out: list[str] = []
    for tok in tokens:
        # A space only between two adjacent Latin/digit runs: "iphone 手机" -> "iphone手机".
        if out and tok[0].isascii() and out[-1][-1].isascii():
            out.append(" ")
        out.append(tok)
    return "".join(out)


def _normalize_english(text: str) -> str:
    text = _strip_accents(unicodedata.normalize("NFKC", text)).lower()
    text = text.replace("\u2019", "'").replace("`", "'")
    words = _EN_DROP.sub(" ", text).split()
    # Quotes like 'hello' are not part of the word; "don't" keeps its apostrophe.
    words = [w.strip("'") for w in words]
    return " ".join(w for w in words if w)


def normalize_text(text: str, locale: str) -> str:
    """Normalise a transcript for ``locale`` (see module docstring)."""
    if is_chinese_locale(locale):
        return _normalize_chinese(text)
    return _normalize_english(text)


def is_clean_sentence(text: str, locale: str) -> bool:
    """True when ``text`` is safe to synthesise and keep as its own transcript.

    Chinese: only ideographs once punctuation is gone (espeak reads digits and
    Latin differently from how a transcript would write them), 4-20 chars.
    English: letters, apostrophes and ordinary punctuation, 2-20 words.
    """
    if is_chinese_locale(locale):
        core = _ZH_PUNCT.sub("", text)
        return bool(_ONLY_CJK.match(core)) and 4 <= len(core) <= 20
    text = text.replace("\u2019", "'").strip()
    if not text or not _EN_ORDINARY.match(text):
        return False
    n_words = len(_normalize_english(text).split())
    return 2 <= n_words <= 20
