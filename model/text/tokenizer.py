"""One token table for every locale: CTC blank and specials, one start token per locale (the attention decoder is
conditioned on it), English subword pieces (SentencePiece unigram; character CTC on English at 40 ms frames has
too few frames per label to align), and one token per CJK character (Mandarin and Cantonese share ideographs).

The table and the SentencePiece model travel inside the checkpoint, so a checkpoint decodes without side files.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sentencepiece
import torch

BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"
SPECIAL_TOKENS = (BLANK, UNK, SOS_EOS)
BLANK_ID, UNK_ID, SOS_EOS_ID = 0, 1, 2
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁" marks a piece that starts a word


def is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def locale_token(locale: str) -> str:
    return f"<{locale}>"


def split_scripts(text: str) -> list[tuple[bool, str]]:
    """'我们用python写' -> [(True, '我们用'), (False, 'python'), (True, '写')]: runs of CJK vs other text."""
    runs: list[tuple[bool, str]] = []
    for char in text:
        cjk = is_cjk(char)
        if runs and runs[-1][0] == cjk:
            runs[-1] = (cjk, runs[-1][1] + char)
        else:
            runs.append((cjk, char))
    return [(cjk, run if cjk else run.strip()) for cjk, run in runs if cjk or run.strip()]


def train_subword_model(sentences: Iterable[str], vocab_size: int) -> bytes:
    """Train a SentencePiece unigram model on Latin-script text; returns the serialized model."""
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        hard_vocab_limit=False,  # tiny corpora (tests) may not support the requested size
        minloglevel=2,
    )
    return buffer.getvalue()


@dataclass
class Tokenizer:
    tokens: list[str]
    locales: list[str]
    subword_model: bytes

    def __post_init__(self) -> None:
        assert tuple(self.tokens[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
        self.token_to_id = {token: index for index, token in enumerate(self.tokens)}
        self._pieces = sentencepiece.SentencePieceProcessor(model_proto=self.subword_model)

    @staticmethod
    def build(texts_by_locale: dict[str, list[str]], subword_vocab_size: int = 256) -> "Tokenizer":
        """Build the joint table from normalised training text, grouped by locale."""
        latin = [run for texts in texts_by_locale.values() for t in texts for cjk, run in split_scripts(t) if not cjk]
        subword_model = train_subword_model(latin, subword_vocab_size)
        processor = sentencepiece.SentencePieceProcessor(model_proto=subword_model)
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size()) if not processor.is_unknown(i)]
        chars = sorted({c for texts in texts_by_locale.values() for t in texts for c in t if is_cjk(c)})
        locales = list(texts_by_locale)
        tokens = [*SPECIAL_TOKENS, *(locale_token(loc) for loc in locales), *pieces, *chars]
        return Tokenizer(tokens=tokens, locales=locales, subword_model=subword_model)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def locale_start_id(self, locale: str) -> int:
        return self.token_to_id[locale_token(locale)]

    def encode(self, text: str) -> list[int]:
        """Normalised text -> token ids (CJK characters one by one, other runs as subword pieces)."""
        ids: list[int] = []
        for cjk, run in split_scripts(text):
            units = list(run) if cjk else self._pieces.encode(run, out_type=str)
            ids.extend(self.token_to_id.get(unit, UNK_ID) for unit in units)
        return ids

    def can_spell(self, text: str) -> bool:
        """Every unit of the text has a token (training on a sentence that needs <unk> would teach <unk>)."""
        return UNK_ID not in self.encode(text)

    def token_text(self, token_id: int) -> str:
        """The surface text of one token as it appears in a transcript ("▁hello" -> " hello")."""
        return self.tokens[token_id].replace(WORD_BOUNDARY, " ")

    def decode(self, ids: Sequence[int]) -> str:
        text = ""
        for token_id in ids:
            if token_id < len(SPECIAL_TOKENS) or self.tokens[token_id].startswith("<"):
                continue
            piece = self.token_text(token_id)
            if text and is_cjk(piece[0]) != is_cjk(text[-1]) and not piece.startswith(" "):
                piece = " " + piece  # a script change is a word boundary
            text += piece
        return " ".join(text.split())

    def locale_token_mask(self, texts_by_locale: dict[str, list[str]]) -> torch.Tensor:
        """(locales, vocab) bool: the tokens each locale's training text uses, plus blank.
        Applied to CTC logits when a request names its locale, so Mandarin never emits Cantonese-only characters."""
        mask = torch.zeros(len(self.locales), self.vocab_size, dtype=torch.bool)
        mask[:, BLANK_ID] = True
        for row, locale in enumerate(self.locales):
            for text in texts_by_locale.get(locale, []):
                mask[row, self.encode(text)] = True
        mask[:, UNK_ID] = False
        return mask

    def to_payload(self) -> dict:
        """Plain tensors/strings so the checkpoint loads with torch.load(weights_only=True)."""
        return {
            "tokens": list(self.tokens),
            "locales": list(self.locales),
            "subword_model": torch.frombuffer(bytearray(self.subword_model), dtype=torch.uint8),
        }

    @staticmethod
    def from_payload(payload: dict) -> "Tokenizer":
        return Tokenizer(
            tokens=list(payload["tokens"]),
            locales=list(payload["locales"]),
            subword_model=bytes(payload["subword_model"].numpy().tobytes()),
        )
