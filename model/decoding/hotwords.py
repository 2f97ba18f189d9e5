"""Hotword biasing for CTC prefix beam search: a token trie of the requested phrases. A hypothesis earns `boost`
per token while it follows a phrase and gives the partial bonus back if it leaves the phrase before finishing
(the contextual-biasing scheme of icefall's ContextGraph, without the Aho-Corasick fail arcs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from model.decoding.syllables import cantonese_syllables, mandarin_syllables
from model.text.normalize import normalize_text
from model.text.tokenizer import is_cjk

NO_MATCH = 0  # trie node id of the root: not inside any phrase


@dataclass
class HotwordTrie:
    boost: float = 0.0
    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    depth: list[int] = field(default_factory=lambda: [0])
    terminal: list[bool] = field(default_factory=lambda: [False])

    @staticmethod
    def build(phrases: list[list[int]], boost: float) -> "HotwordTrie":
        trie = HotwordTrie(boost=boost)
        for phrase in phrases:
            trie.add(phrase)
        return trie

    def add(self, token_ids: list[int]) -> None:
        node = NO_MATCH
        for token_id in token_ids:
            if token_id not in self.children[node]:
                self.children.append({})
                self.depth.append(self.depth[node] + 1)
                self.terminal.append(False)
                self.children[node][token_id] = len(self.children) - 1
            node = self.children[node][token_id]
        self.terminal[node] = True

    @property
    def max_gain(self) -> float:
        """The most one token can add to a hypothesis' bias: `boost` (a refund only gives back; with a negative
        boost, which the service does not accept, falling off the deepest phrase gives the most)."""
        return max(self.boost, -self.boost * max(self.depth))

    @property
    def empty(self) -> bool:
        return not self.children[NO_MATCH]

    def advance(self, node: int, token_id: int) -> tuple[int, float]:
        """Follow `token_id` from `node`: (next node, score change). Completing a phrase keeps its bonus and
        returns to the root; falling off a phrase refunds the bonus collected inside it."""
        child = self.children[node].get(token_id)
        if child is None:
            restart = self.children[NO_MATCH].get(token_id)
            refund = -self.boost * self.depth[node]
            if restart is None:
                return NO_MATCH, refund
            return self._settle(restart, refund + self.boost)
        return self._settle(child, self.boost)

    def _settle(self, node: int, delta: float) -> tuple[int, float]:
        if self.terminal[node] and not self.children[node]:
            return NO_MATCH, delta
        return node, delta


def normalise_phrase(phrase: str) -> str:
    """A requested phrase written as transcripts are (model.text.normalize), so that the tokenizer has pieces for
    it: "Zendesk" -> "zendesk", "Café" -> "cafe", "北京，天安门" -> "北京天安门". (Encoded as given, a capital letter
    or a comma is <unk>, a token the search never emits: such a phrase could never be matched.) A phrase with any
    CJK character is normalised as Chinese text (Latin runs inside it lower-cased), any other as English."""
    return normalize_text(phrase, "zh-CN" if any(is_cjk(c) for c in phrase) else "en-US")


# ------------------------------------------------------------------ Chinese finals: hotwords heard with the wrong tone

MIN_SYLLABLE_MATCH_CHARS = 2  # a single character would match far too often


def toneless_syllables(text: str, locale: str) -> list[str]:
    """Jyutping for Cantonese, pinyin for the other Chinese locales, without tones (model.decoding.syllables)."""
    return (cantonese_syllables if locale.startswith("yue") else mandarin_syllables)(text, False)


@lru_cache(maxsize=65536)
def character_reading(char: str, locale: str) -> str | None:
    """A Chinese character's usual toneless syllable (pinyin for Mandarin, Jyutping for Cantonese), None without
    one. The usual reading only: with every heteronym, 的 (de, also di) would match the 滴 of 滴滴."""
    [syllable] = toneless_syllables(char, locale) or [char]
    return syllable if syllable != char else None


@lru_cache(maxsize=4096)
def phrase_syllables(phrase: str, locale: str) -> tuple[str, ...] | None:
    """The toneless syllables of an all-Chinese phrase as read in context (one per character), or None for a
    phrase this correction does not apply to (other scripts, too short, a character without a reading). Cached:
    every final of a request asks again for each of its hotwords and each n-best entry (romanising 100 Cantonese
    phrases took about 36 ms per final)."""
    if len(phrase) < MIN_SYLLABLE_MATCH_CHARS or not all(is_cjk(c) for c in phrase):
        return None
    syllables = toneless_syllables(phrase, locale)
    return tuple(syllables) if len(syllables) == len(phrase) and all(s not in phrase for s in syllables) else None


def correct_to_hotwords(text: str, phrases: tuple[str, ...], locale: str) -> str:
    """Chinese: where the text holds a run of characters that sounds like a hotword but for the tones (or is a
    homophone of it), write the hotword. Why: the acoustic model confuses tones (espeak-ng's and real speakers'),
    and the search's boost cannot lift a character the audio scores far below its wrong-tone twin (港鐵 heard as
    講鐵, gong2 tit3 as gong3 tit3); the caller who named 港鐵 means it. Only all-Chinese phrases of two or more
    characters, matched syllable for syllable in the same length; the text keeps its length, so token times hold."""
    chars, written = list(text), [False] * len(text)  # a character written from one hotword is not rewritten
    readings = [character_reading(char, locale) for char in chars]  # of the text as heard: rewriting keeps them
    heard = set(readings)
    for phrase in sorted(phrases, key=len, reverse=True):  # longest first: a longer name wins an overlap
        syllables = phrase_syllables(phrase, locale)
        if syllables is None or syllables[0] not in heard:
            continue
        start = 0
        while start + len(phrase) <= len(chars):
            span = range(start, start + len(phrase))
            if not any(written[i] for i in span) and tuple(readings[start : start + len(phrase)]) == syllables:
                chars[start : start + len(phrase)] = list(phrase)
                for i in span:
                    written[i] = True
                start += len(phrase)
            else:
                start += 1
    return "".join(chars)
