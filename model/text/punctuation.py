"""Punctuation and English truecasing of recognised text, for `format=written`.

The recogniser writes what it hears as the transcript normal form (model.text.normalize): no punctuation, English
in lower case. A small tagger restores both: over the text's units (a Chinese character, an English word, a
masked entity's tag), an embedding and a bidirectional LSTM predict after each unit one of {none, comma, period,
question} and, for English, the unit's case {lower, Capitalised, UPPER}. The same token-classification framing as
FunASR's CT-Transformer punctuation model and the BERT punctuation-restoration taggers (Nagy et al., 2021), kept
small enough for CPU finals: one model per locale, trained by model.training.train_punctuation on the punctuated
raw text of the corpora (People's Daily and reviews, HKCanCor, Debian fortunes), its vocabulary and sizes stored in
the checkpoint beside the held-out F1 it measured.

    units (T) -> ids (1, T) -> embedding (1, T, E) -> BiLSTM (1, T, 2H) -> marks (1, T, 4), cases (1, T, 3)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import torch
from torch import nn

from model.text.normalize import is_chinese_locale

DEFAULT_PUNCTUATION = Path(__file__).resolve().parent.parent / "checkpoints" / "punctuation.pt"
CHECKPOINT_FORMAT = "openasr-punctuation/1"
PAD, UNKNOWN, TAG = "<pad>", "<unk>", "<tag>"
SPECIAL_UNITS = (PAD, UNKNOWN, TAG)  # ids 0, 1, 2 of every vocabulary

_CJK = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
# A masked entity's tag ([PHONE]), a CJK character, or a run of anything else that is not a space (an English word,
# a Latin or digit run inside Chinese): the units the tagger reads, as the recogniser's text holds them.
UNIT = re.compile(rf"\[[A-Z_]+\]|[{_CJK}]|[^\s{_CJK}]+")
ENTITY_TAG = re.compile(r"^\[[A-Z_]+\]$")


class Mark(IntEnum):
    """What follows a unit."""

    NONE = 0
    COMMA = 1
    PERIOD = 2
    QUESTION = 3


class Case(IntEnum):
    """How an English word is written."""

    LOWER = 0
    CAPITALISED = 1
    UPPER = 2


SENTENCE_ENDS = (Mark.PERIOD, Mark.QUESTION)
CHINESE_MARKS = {Mark.COMMA: "，", Mark.PERIOD: "。", Mark.QUESTION: "？"}
ENGLISH_MARKS = {Mark.COMMA: ",", Mark.PERIOD: ".", Mark.QUESTION: "?"}
# Inside a spoken number no mark belongs (一三八，一二三 would split a phone number before wetext writes it).
CHINESE_NUMERALS = frozenset("零〇一二三四五六七八九十百千萬万億亿兩两廿卅幺")
ENGLISH_NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion point".split())


@dataclass(frozen=True)
class TaggerConfig:
    """A locale's tagger, as stored in the checkpoint (so a file describes itself)."""

    locale: str
    vocabulary: tuple[str, ...]  # SPECIAL_UNITS first
    embedding_dim: int = 48
    hidden_dim: int = 64  # per direction
    layers: int = 1
    casing: bool = False  # English: the case head is trained and used
    dropout: float = 0.2  # on the embeddings, in training only


@dataclass(frozen=True)
class Tag:
    mark: Mark
    case: Case


class PunctuationTagger(nn.Module):
    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.index = {unit: i for i, unit in enumerate(config.vocabulary)}
        self.embedding = nn.Embedding(len(config.vocabulary), config.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_dim, config.layers, batch_first=True,
                            bidirectional=True)
        self.marks = nn.Linear(2 * config.hidden_dim, len(Mark))
        self.cases = nn.Linear(2 * config.hidden_dim, len(Case))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) -> mark logits (B, T, 4), case logits (B, T, 3). With `lengths` (B,), rows are padded at the
        end and packed, so the backward direction starts at each row's own last unit, as it does on one text."""
        embedded = self.dropout(self.embedding(ids))  # (B, T, E)
        if lengths is None:
            hidden, _ = self.lstm(embedded)  # (B, T, 2H)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            hidden, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                         total_length=ids.shape[1])  # (B, T, 2H)
        return self.marks(hidden), self.cases(hidden)

    def ids(self, units: Sequence[str]) -> list[int]:
        return [self.index.get(unit_key(u), 1) for u in units]


def unit_key(unit: str) -> str:
    """What the vocabulary holds for a unit: its lower case, or TAG for a masked entity's tag."""
    return TAG if ENTITY_TAG.match(unit) else unit.lower()


def units_of(text: str) -> list[re.Match[str]]:
    """The units of a recognised text, with their spans (rendering keeps the text between them as it was)."""
    return list(UNIT.finditer(text))


def is_numeral(unit: str) -> bool:
    return unit in CHINESE_NUMERALS or unit.lower() in ENGLISH_NUMBER_WORDS


def decide(units: Sequence[str], mark_logits: torch.Tensor, case_logits: torch.Tensor | None) -> tuple[Tag, ...]:
    """Tags from the logits (T, 4) and (T, 3): the likeliest mark, none inside a spoken number, and a sentence end
    after the last unit (a segment is a sentence or more: its likelier end mark of the two); the likeliest case,
    a capital at every sentence start, and a tag's text left alone."""
    marks = [Mark(int(i)) for i in mark_logits.argmax(-1)]
    for i in range(len(units) - 1):
        if is_numeral(units[i]) and is_numeral(units[i + 1]):
            marks[i] = Mark.NONE
    marks[-1] = Mark.PERIOD if mark_logits[-1, Mark.PERIOD] >= mark_logits[-1, Mark.QUESTION] else Mark.QUESTION
    cases = [Case.LOWER] * len(units) if case_logits is None else [Case(int(i)) for i in case_logits.argmax(-1)]
    for i, unit in enumerate(units):
        if ENTITY_TAG.match(unit):
            cases[i] = Case.LOWER
        elif cases[i] == Case.LOWER and case_logits is not None and (i == 0 or marks[i - 1] in SENTENCE_ENDS):
            cases[i] = Case.CAPITALISED
    return tuple(Tag(m, c) for m, c in zip(marks, cases))


def cased(word: str, case: Case) -> str:
    if case == Case.UPPER:
        return word.upper()
    return word[:1].upper() + word[1:] if case == Case.CAPITALISED else word


class Punctuator:
    """The taggers of every locale, shared by all requests (inference only, so safe across threads)."""

    def __init__(self, taggers: dict[str, PunctuationTagger], metadata: dict) -> None:
        self.taggers = taggers
        self.metadata = metadata

    def tagger_for(self, locale: str | None, text: str) -> PunctuationTagger:
        if locale in self.taggers:
            return self.taggers[locale]
        chinese = is_chinese_locale(locale) if locale else bool(re.search(f"[{_CJK}]", text))
        return self.taggers["zh-CN" if chinese else "en-US"]

    def tag(self, units: Sequence[str], locale: str | None) -> tuple[Tag, ...]:
        if not units:
            return ()
        tagger = self.tagger_for(locale, "".join(units))
        with torch.inference_mode():
            marks, cases = tagger(torch.tensor([tagger.ids(units)]))  # (1, T, 4), (1, T, 3)
        return decide(units, marks[0], cases[0] if tagger.config.casing else None)


def tagger_from(entry: dict) -> PunctuationTagger:
    config = entry["config"]
    tagger = PunctuationTagger(TaggerConfig(**{**config, "vocabulary": tuple(config["vocabulary"])}))
    tagger.load_state_dict({name: value.float() for name, value in entry["state"].items()})
    return tagger.eval()


def load_punctuator(path: Path | str = DEFAULT_PUNCTUATION) -> Punctuator:
    stored = torch.load(path, map_location="cpu", weights_only=True)
    if stored.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a punctuation checkpoint ({CHECKPOINT_FORMAT})")
    return Punctuator({locale: tagger_from(entry) for locale, entry in stored["taggers"].items()},
                      stored["metadata"])
