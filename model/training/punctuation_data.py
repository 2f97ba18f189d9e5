"""The punctuation tagger's examples (model.text.punctuation): the corpora's raw, punctuated text as units in the
transcript normal form, each with the mark that follows it and, in English, its case.

A unit is what model.text.normalize leaves of the raw text, one Chinese character or Latin/digit run, or one English
word, so the tagger reads exactly what the recogniser writes; what normalisation drops (marks, quotes, English
digits) only labels the unit before it. Documents (a People's Daily paragraph or review, eight consecutive HKCanCor
utterances, a fortune) are split into training and held-out text by a hash of their text, never by chance, and cut
into windows of whole sentences, as a recognised segment mostly is.
"""

from __future__ import annotations

import random
import re
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from model.corpus.text_sources import _fortune_files, _fortune_sentences, _fortunes, _yue_raw, _zh_cn_raw
from model.text.punctuation import CHINESE_NUMERALS, SENTENCE_ENDS, TAG, Case, Mark

_CJK = "\u4e00-\u9fff\u3400-\u4dbf"
# After NFKC: full-width ，？！；： are ASCII; 。 and 、 stay. An ellipsis (…, NFKC "...") ends a sentence.
MARK_OF = {**dict.fromkeys(",、;:", Mark.COMMA), **dict.fromkeys(".。!", Mark.PERIOD), "?": Mark.QUESTION}
_ZH_PIECE = re.compile(rf"[{_CJK}]|[A-Za-z0-9]+|[,、;:.。!?]")
_EN_PIECE = re.compile(r"[A-Za-z']+|[,;:.!?]")
_EN_ORDINARY = re.compile(r"^[A-Za-z0-9' .,;:!?\"()\-]+$")
HELD_OUT_ONE_IN = 20  # a document whose text hashes to 0 modulo this is held out (5%)
HKCANCOR_UTTERANCES_PER_DOCUMENT = 8
_DIGITS = re.compile(r"^[0-9a-z]*[0-9][0-9a-z]*$")


@dataclass(frozen=True)
class Labelled:
    units: tuple[str, ...]
    marks: tuple[Mark, ...]
    cases: tuple[Case, ...]


def case_of(word: str) -> Case:
    if len(word) > 1 and word.isupper():
        return Case.UPPER
    return Case.CAPITALISED if word[:1].isupper() else Case.LOWER


def labelled(raw: str, chinese: bool) -> Labelled:
    """Units in normal form, each with the strongest mark before the next unit (question > period > comma)."""
    text = unicodedata.normalize("NFKC", raw)
    if not chinese:
        decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("`", "'"))
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    units: list[str] = []
    marks: list[Mark] = []
    cases: list[Case] = []
    for piece in (_ZH_PIECE if chinese else _EN_PIECE).findall(text):
        if piece in MARK_OF:
            if units:
                marks[-1] = max(marks[-1], MARK_OF[piece])
            continue
        word = piece if chinese else piece.strip("'")
        if word:
            units.append(word.lower())
            marks.append(Mark.NONE)
            cases.append(Case.LOWER if chinese else case_of(word))
    return Labelled(tuple(units), tuple(marks), tuple(cases))


def documents(locale: str) -> Iterator[str]:
    """The raw punctuated documents of a locale's corpus, in a fixed order."""
    if locale == "zh-CN":
        yield from (line for line in _zh_cn_raw() if re.search("[。！？!?]", line))
    elif locale == "yue-HK":
        utterances = list(_yue_raw())
        for i in range(0, len(utterances), HKCANCOR_UTTERANCES_PER_DOCUMENT):
            yield " ".join(utterances[i:i + HKCANCOR_UTTERANCES_PER_DOCUMENT])
    elif locale == "en-US":
        for path in _fortune_files():
            for fortune in _fortunes(path):
                sentences = _fortune_sentences(fortune)
                if sentences and all(_EN_ORDINARY.match(s) for s in sentences):  # prose, not lists and pictures
                    yield " ".join(sentences)
    else:
        raise ValueError(f"no punctuated text for {locale!r}")


def is_held_out(document: str) -> bool:
    return zlib.crc32(document.encode("utf-8")) % HELD_OUT_ONE_IN == 0


def is_title_or_shouting(sentence: Labelled) -> bool:
    """An English line in Title Case or capitals (fortunes have many): its case is no sentence's, so it would teach
    the tagger to capitalise common words."""
    later = sentence.cases[1:]
    return len(later) >= 3 and sum(c != Case.LOWER for c in later) > len(later) / 2


def sentences(example: Labelled) -> Iterator[Labelled]:
    start = 0
    for i, mark in enumerate(example.marks):
        if mark in SENTENCE_ENDS or i == len(example.marks) - 1:
            yield Labelled(example.units[start:i + 1], example.marks[start:i + 1], example.cases[start:i + 1])
            start = i + 1


def windows(docs: Iterable[str], chinese: bool, seed: int, max_units: int = 96) -> list[Labelled]:
    """Each document's sentences packed into windows of 1 to a few sentences (a random target length of 6 to
    `max_units` units, cut at `max_units`); a "sentence" longer than `max_units` is left out."""
    rng = random.Random(seed)
    out: list[Labelled] = []
    for doc in docs:
        pending: list[Labelled] = []
        target = rng.randint(6, max_units)
        for sentence in sentences(labelled(doc, chinese)):
            if len(sentence.units) > max_units or is_title_or_shouting(sentence):
                continue
            pending.append(sentence)
            if sum(len(s.units) for s in pending) >= target:
                out.extend(cut(joined(pending), max_units))
                pending, target = [], rng.randint(6, max_units)
        if pending:
            out.extend(cut(joined(pending), max_units))
    return [w for w in out if w.units]


def joined(parts: list[Labelled]) -> Labelled:
    return Labelled(tuple(u for p in parts for u in p.units), tuple(m for p in parts for m in p.marks),
                    tuple(c for p in parts for c in p.cases))


def cut(example: Labelled, max_units: int) -> list[Labelled]:
    return [Labelled(example.units[i:i + max_units], example.marks[i:i + max_units], example.cases[i:i + max_units])
            for i in range(0, len(example.units), max_units)]


def is_numeral_unit(unit: str) -> bool:
    return unit in CHINESE_NUMERALS or bool(_DIGITS.match(unit))


def entities_tagged(example: Labelled, rng: random.Random, rate: float) -> Labelled:
    """Each number (a digit run, or two or more numerals without a mark between) collapsed into one TAG unit with
    probability `rate`: what redaction makes of a phone or card number, which the raw text never shows."""
    units: list[str] = []
    marks: list[Mark] = []
    cases: list[Case] = []
    i = 0
    while i < len(example.units):
        end = i
        while end < len(example.units) and is_numeral_unit(example.units[end]) and (
                end == i or example.marks[end - 1] == Mark.NONE):
            end += 1
        number = end - i >= 2 or (end > i and bool(_DIGITS.match(example.units[i])))
        collapse = number and rng.random() < rate
        last = end - 1 if collapse else i
        units.append(TAG if collapse else example.units[i])
        marks.append(example.marks[last])
        cases.append(Case.LOWER if collapse else example.cases[i])
        i = last + 1
    return Labelled(tuple(units), tuple(marks), tuple(cases))


def split_windows(locale: str, seed: int = 0) -> tuple[list[Labelled], list[Labelled]]:
    """(training windows, held-out windows) of a locale."""
    chinese = locale != "en-US"
    docs = list(documents(locale))
    train = windows((d for d in docs if not is_held_out(d)), chinese, seed)
    held_out = windows((d for d in docs if is_held_out(d)), chinese, seed + 1)
    return train, held_out
