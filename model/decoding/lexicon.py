"""Word lexicons for locales written with spaces (English): a soft spelling constraint in beam search.

Why: the English tokens are word pieces, so CTC can spell words that do not exist. On the 0.2.0 model's test
split English CER was 22% but WER 43%: most word errors were near-miss spellings ("imagination" -> "godgation").
A WFST decoder (WeNet's TLG, k2's HLG) forbids words outside its lexicon outright; here the beam search charges
a penalty once per word that leaves the lexicon, so the LM's text vocabulary is preferred but an unknown name can
still be written when the audio insists (about 6% of held-out English words are outside the text sources; since
0.11.2 the English lexicon also holds the words of two spelling dictionaries, `word_list_entries`, which cover
three in four of those).

The penalty is charged as early as it is certain: as soon as the partial word is no longer the prefix of any
lexicon word, or when a word that is a valid prefix but not a word ends. Beams that misspell are thus demoted
before they crowd out the right spelling.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from model.text.normalize import normalize_text


@dataclass(frozen=True)
class Lexicon:
    words: frozenset[str]
    prefixes: frozenset[str] = field(init=False)  # every prefix of every word, the empty string included

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefixes", frozenset(w[:i] for w in self.words for i in range(len(w) + 1)))

    @staticmethod
    def from_sentences(sentences: Iterable[str]) -> "Lexicon":
        """Sentences as the tokenizer normalises them (tokenizer.decode(tokenizer.encode(text)))."""
        return Lexicon(frozenset(word for sentence in sentences for word in sentence.split()))

    def with_words(self, words: Iterable[str]) -> "Lexicon":
        return Lexicon(self.words | frozenset(words))

    def to_payload(self) -> torch.Tensor:
        """The sorted words, newline-separated, zlib-compressed, as a uint8 tensor: a checkpoint loads it with
        weights_only=True, and a 100k-word dictionary takes 0.3 MB instead of 1.6 MB as a list of strings."""
        data = zlib.compress("\n".join(sorted(self.words)).encode("utf-8"), 9)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    @staticmethod
    def from_payload(payload: torch.Tensor | Sequence[str]) -> "Lexicon":
        if isinstance(payload, torch.Tensor):  # to_payload's form
            text = zlib.decompress(payload.numpy().tobytes()).decode("utf-8")
            return Lexicon(frozenset(text.split("\n")) - {""})
        return Lexicon(frozenset(payload))  # checkpoints before 0.11.2 stored a list of words


@dataclass(frozen=True)
class LexiconPenalty:
    """Scores token extensions against a lexicon: `penalty` (a log-probability) per word outside it."""

    lexicon: Lexicon
    pieces: Sequence[str]  # token id -> surface text; a piece starting with " " starts a word (tokenizer.token_text)
    penalty: float
    # The words of the request's hotwords: a name the caller asks for is a word for that request (as a WFST decoder
    # adds context words to its lexicon), not a misspelling to charge against the hotword's boost.
    request_words: Lexicon | None = None

    def _is_word(self, text: str) -> bool:
        return text in self.lexicon.words or (self.request_words is not None and text in self.request_words.words)

    def _is_prefix(self, text: str) -> bool:
        return text in self.lexicon.prefixes or (self.request_words is not None and text in self.request_words.prefixes)

    def partial_word(self, prefix: Sequence[int]) -> str | None:
        """The word the prefix ends in, as spelled so far; None before the first word starts."""
        parts = []
        for token in reversed(prefix):
            piece = self.pieces[token]
            parts.append(piece.strip())
            if piece.startswith(" "):
                return "".join(reversed(parts))
        return "".join(reversed(parts)) if prefix else None

    def _ends_outside(self, word: str | None) -> bool:
        """A finished word that was still a valid prefix (so not yet charged) but is not a word."""
        return word is not None and self._is_prefix(word) and not self._is_word(word)

    def token_penalty(self, prefix: Sequence[int], token: int) -> float:
        piece = self.pieces[token]
        word = self.partial_word(prefix)
        if piece.startswith(" ") or word is None:  # the token starts a new word: the previous one is finished
            charged = self.penalty if self._ends_outside(word) else 0.0
            return charged + (0.0 if self._is_prefix(piece.strip()) else self.penalty)
        if self._is_prefix(word) and not self._is_prefix(word + piece):
            return self.penalty
        return 0.0

    def end_penalty(self, prefix: Sequence[int]) -> float:
        return self.penalty if self._ends_outside(self.partial_word(prefix)) else 0.0


def word_list_entries(lines: Iterable[str], locale: str) -> set[str]:
    """The entries of a spelling dictionary (one word per line, e.g. Debian's /usr/share/dict/american-english)
    written as transcripts write them (model.text.normalize): lower case, accents stripped. An entry that does not
    normalise to exactly one word is skipped.

    Why: a lexicon made of the LM's text alone calls about 6% of held-out English words misspellings (they are
    simply not in the fortunes), and the penalty then pushes the search to a lexicon word that sounds alike; a
    spelling dictionary of real English words lets those be written at no charge."""
    words = set()
    for line in lines:
        normalised = normalize_text(line.strip(), locale)
        if normalised and " " not in normalised:
            words.add(normalised)
    return words


MAX_REQUEST_WORD_CHARS = 50  # longer than any word; every prefix of a word is stored, so a 100k-letter "word"
# sent as a hotword would cost gigabytes


@lru_cache(maxsize=256)
def phrase_lexicon(phrases: tuple[str, ...]) -> Lexicon:
    """The words of a request's (normalised) hotword phrases, as a lexicon: built once per set of phrases, since
    the search asks on every chunk of every stream that carries them. Words over MAX_REQUEST_WORD_CHARS are left
    out (they still pay the penalty)."""
    words = {word for phrase in phrases for word in phrase.split() if len(word) <= MAX_REQUEST_WORD_CHARS}
    return Lexicon(frozenset(words))
