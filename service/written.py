"""Text in its written form for `format=written`: punctuated, English cased, and numbers written
(一共三百五十块钱吗 -> 一共350块钱吗？, "i paid three hundred and fifty dollars" -> "I paid $350.").

Punctuation and case come from model.text.punctuation's tagger, run on the text as heard (what it was trained on):
a mark follows the unit it was predicted after, a case rewrites a word, and a segment ends with its likelier sentence
end. Numbers are written per clause (the text between two marks), so a mark never lands inside a written number.

Numbers in their written form (inverse text normalisation, ITN):
一共三百五十块钱 -> 一共350块钱, "three hundred and fifty dollars" -> $350, 二零二四年 -> 2024年, 廿三號 -> 23號.

The grammars are WeTextProcessing's, compiled for Mandarin and English and run by `wetext` (Apache-2.0, on kaldifst;
no pynini). No Cantonese ITN exists as a package, and the Mandarin grammar leaves Traditional numerals half done
(兩百五十萬 -> 兩百50萬): Cantonese numerals are therefore written in their Mandarin characters inside runs of
numerals (兩 -> 两, 萬 -> 万, 廿 -> 二十), normalised by the Mandarin grammar, and what the grammar left as words
goes back to its Traditional characters. Single numerals stay words (一起, 三本书), as the grammar leaves them.

Masked entities' tags ([PHONE]) pass through unchanged: redaction runs first, on the words as heard.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher
from functools import cache

from wetext import Normalizer

from model.decoding.results import Alternative, SegmentResult, Transcript, WordResult, join_texts
from model.text.normalize import is_chinese_locale
from model.text.punctuation import (CHINESE_MARKS, ENGLISH_MARKS, Mark, Punctuator, Tag, cased, load_punctuator,
                                    units_of)

NUMERAL_RUN = re.compile("[零〇一二三四五六七八九十百千萬万億亿兩两廿卅]{2,}")
TO_MANDARIN = str.maketrans({"兩": "两", "萬": "万", "億": "亿"})
TO_TRADITIONAL = str.maketrans({"两": "兩", "万": "萬", "亿": "億"})
LATIN_LETTER = re.compile("[A-Za-z]")
MARKS = "".join(sorted({*CHINESE_MARKS.values(), *ENGLISH_MARKS.values()}))
_lock = threading.Lock()  # one normalisation at a time: wetext does not say its graphs may be shared by threads


@cache
def normalizer(language: str) -> Normalizer:
    return Normalizer(lang=language, operator="itn")


@cache
def punctuator() -> Punctuator:
    """The bundled taggers, loaded at the first written text (not at import)."""
    return load_punctuator()


def written(text: str, locale: str | None, names: Sequence[str] = ()) -> str:
    """`text` (a transcript in `locale`, as the model writes it) punctuated, cased, with its numbers written, and
    each of `names` (a request's hotwords) written as the request wrote it."""
    matches = units_of(text)
    if not matches:
        return text
    units = [m.group() for m in matches]
    tagger_locale = punctuator().tagger_for(locale, text).config.locale
    tags = punctuator().tag(units, tagger_locale)
    chinese = is_chinese_locale(tagger_locale)
    marks = CHINESE_MARKS if chinese else ENGLISH_MARKS
    clauses = []
    for first, last in clause_spans(tags):
        clause = written_numbers(text[matches[first].start():matches[last].end()], locale)
        if not chinese:
            clause = recased(units[first:last + 1], tags[first:last + 1], clause)
        clauses.append(clause + marks[tags[last].mark])
    return as_named(("" if chinese else " ").join(clauses), names)


def as_named(text: str, names: Sequence[str]) -> str:
    """Each name with Latin letters (Kubernetes, PayPal, iPhone) where the text has its words in another case: the
    tagger knows sentence starts and common names, a hotword the request spelled is spelled so."""
    for name in sorted((n for n in names if LATIN_LETTER.search(n)), key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w']){re.escape(name)}(?![\w'])", re.IGNORECASE)
        text = pattern.sub(name.replace("\\", "\\\\"), text)  # the name as the replacement, literally
    return text


def clause_spans(tags: Sequence[Tag]) -> list[tuple[int, int]]:
    """(first, last) unit of each clause: the units up to and including one followed by a mark."""
    ends = [i for i, tag in enumerate(tags) if tag.mark != Mark.NONE]
    return list(zip([0] + [end + 1 for end in ends[:-1]], ends))


def recased(heard: Sequence[str], tags: Sequence[Tag], clause: str) -> str:
    """The written clause with each word that ITN left as heard in its predicted case (a written number has none)."""
    words = clause.split(" ")
    for op, first, last, target, _ in SequenceMatcher(None, list(heard), words, autojunk=False).get_opcodes():
        if op == "equal":
            for offset in range(last - first):
                words[target + offset] = cased(words[target + offset], tags[first + offset].case)
    return " ".join(words)


def written_numbers(text: str, locale: str | None) -> str:
    """`text` (a transcript in `locale`, as the model writes it) with its numbers, dates, times and amounts written."""
    if not text:
        return text
    if locale == "yue-HK":
        return cantonese_written(text)
    with _lock:
        return normalizer("en" if locale == "en-US" else "zh").normalize(text)


def cantonese_written(text: str) -> str:
    def as_mandarin(match: re.Match) -> str:
        return match.group().translate(TO_MANDARIN).replace("廿", "二十").replace("卅", "三十")

    with _lock:
        result = normalizer("zh").normalize(NUMERAL_RUN.sub(as_mandarin, text))
    return result.translate(TO_TRADITIONAL)


def written_words(text: str, heard: Sequence[WordResult]) -> tuple[WordResult, ...]:
    """The words of a written text, each timed by the heard words it was written from: a word written as heard keeps
    its time, a written number spans the words said for it ($350 those of "three hundred and fifty dollars"), and a
    mark goes with the word before it ("locked.", 書。). Words are the units of model.text.punctuation (a Chinese
    character, a Latin or digit run, a masked entity's tag), as the heard words are."""
    units = [m.group() for m in units_of(text)]
    words: list[str] = []
    for unit in units:
        if words and not unit.strip(MARKS):
            words[-1] += unit
        else:
            words.append(unit)
    if len(words) > 1 and not words[0].strip(MARKS):  # a text that begins with a mark: it joins the first word
        words[1] = words[0] + words.pop(1)
    if not heard or not words:
        return ()
    keys = [word.strip(MARKS).lower() for word in words]
    timed: list[WordResult | None] = [None] * len(words)
    matcher = SequenceMatcher(None, [w.text.lower() for w in heard], keys, autojunk=False)
    for op, first, last, target, end in matcher.get_opcodes():
        said = heard[first:last]
        for offset, index in enumerate(range(target, end)):
            if op == "equal" or (op == "replace" and last - first == end - target):
                source = said[offset]
                timed[index] = WordResult(words[index], source.start_s, source.end_s, source.confidence)
            elif op == "replace":
                timed[index] = WordResult(words[index], said[0].start_s, said[-1].end_s,
                                          min(w.confidence for w in said))
    for index, word in enumerate(timed):  # written with nothing heard for it: at the end of the word before
        if word is None:
            before = timed[index - 1] if index else None
            at = before.end_s if before is not None else heard[0].start_s
            confidence = before.confidence if before is not None else heard[0].confidence
            timed[index] = WordResult(words[index], at, at, confidence)
    return tuple(w for w in timed if w is not None)


def written_segment(segment: SegmentResult, names: Sequence[str] = ()) -> SegmentResult:
    """Its text, words and n-best written; the tokens stay as heard (each written word is timed by the heard words
    it was written from, `written_words`)."""
    text = written(segment.text, segment.locale, names)
    alternatives = tuple(Alternative(text if a.text == segment.text else written(a.text, segment.locale, names),
                                     a.confidence) for a in segment.alternatives)
    return replace(segment, text=text, alternatives=alternatives, words=written_words(text, segment.words))


def written_transcript(transcript: Transcript, names: Sequence[str] = ()) -> tuple[Transcript, tuple[str, ...]]:
    """The transcript written, and each segment's text as heard (its `raw_text`)."""
    segments = tuple(written_segment(s, names) for s in transcript.segments)
    text = join_texts([s.text for s in segments])
    return replace(transcript, text=text, segments=segments), tuple(s.text for s in transcript.segments)
