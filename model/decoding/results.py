"""Typed recognition results: every token carries its time span and confidence; every segment its n-best."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from model.decoding.rescoring import RescoredHypothesis
from model.network.encoder import ENCODER_FRAME_S
from model.text.tokenizer import Tokenizer, is_cjk


@dataclass(frozen=True)
class TokenResult:
    text: str
    start_s: float
    end_s: float
    confidence: float


@dataclass(frozen=True)
class WordResult:
    """A word: English subword pieces joined at their word-start markers, or one Chinese character (Chinese is
    written without spaces; a character is the unit CER counts and what Whisper's Chinese word timestamps give)."""

    text: str
    start_s: float
    end_s: float
    confidence: float  # the lowest of its tokens': a word is as sure as its least sure piece


@dataclass(frozen=True)
class Alternative:
    text: str
    confidence: float  # posterior of this hypothesis within the n-best


@dataclass(frozen=True)
class SegmentResult:
    index: int
    start_s: float
    end_s: float
    text: str
    confidence: float
    tokens: tuple[TokenResult, ...]
    alternatives: tuple[Alternative, ...]
    locale: str | None = None  # the locale it was decoded as (under `auto`, a segment may differ from the whole)
    words: tuple[WordResult, ...] = ()
    channel: int | None = None  # the recording's channel it was heard on, when channels are recognised apart


@dataclass(frozen=True)
class Transcript:
    text: str
    locale: str
    locale_probability: float | None  # set when the locale was detected
    duration_s: float
    segments: tuple[SegmentResult, ...]


def join_texts(texts: list[str]) -> str:
    return " ".join(t for t in texts if t).strip() if any(" " in t for t in texts) else "".join(texts)


def nbest_posteriors(scores: list[float]) -> list[float]:
    """Softmax of n-best scores: how sure the decoder is of each alternative relative to the others."""
    if not scores:
        return []
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    return [w / sum(weights) for w in weights]


def token_results(tokenizer: Tokenizer, ranked: RescoredHypothesis, offset_s: float) -> tuple[TokenResult, ...]:
    return tuple(
        TokenResult(tokenizer.token_text(t.token_id).strip() or tokenizer.token_text(t.token_id),
                    round(offset_s + t.start_frame * ENCODER_FRAME_S, 3),
                    round(offset_s + (t.end_frame + 1) * ENCODER_FRAME_S, 3), round(t.confidence, 4))
        for t in ranked.hypothesis.tokens
    )


def starts_word(surface: str, previous: str | None) -> bool:
    """Whether a token's surface text (Tokenizer.token_text: " hello" for "▁hello", " " for a bare "▁") begins a
    new word: after a word-start marker, and at every CJK character (Chinese is written without spaces)."""
    text, before = surface.strip(), (previous or "").strip()
    return (previous is None or surface[:1].isspace() or (bool(text) and is_cjk(text[0]))
            or (bool(before) and is_cjk(before[-1])))


# A CTC token fires for a frame or two near where its sound begins, so the last token of a word ends well before the
# word does: Mandarin and Cantonese word ends came out 150 ms early on average. A word's end is therefore its last
# token's end plus the usual rest of a syllable, never past the next word's start or the segment's end. Chosen on dev
# with bench_timestamps' reference (espeak-ng's word events; 25 utterances per locale, extensions 0.05-0.25 s): 0.2 s
# after a Chinese character (zh-CN median error 16 ms, 90% within 97 ms), 0.1 s after an English word's last piece.
WORD_END_EXTENSION_S = {"cjk": 0.2, "other": 0.1}


def word_results(tokenizer: Tokenizer, ranked: RescoredHypothesis, tokens: tuple[TokenResult, ...],
                 segment_end_s: float) -> tuple[WordResult, ...]:
    """The hypothesis' tokens (with their `token_results`) grouped into words, each ending as WORD_END_EXTENSION_S
    says."""
    words: list[WordResult] = []
    previous = None
    for timing, token in zip(ranked.hypothesis.tokens, tokens):
        surface = tokenizer.token_text(timing.token_id)
        if words and not starts_word(surface, previous):
            last = words[-1]
            words[-1] = WordResult(last.text + surface.strip(), last.start_s, token.end_s,
                                   min(last.confidence, token.confidence))
        else:
            words.append(WordResult(surface.strip(), token.start_s, token.end_s, token.confidence))
        previous = surface
    words = [word for word in words if word.text]  # a bare word-start marker with nothing after it
    limits = [word.start_s for word in words[1:]] + [segment_end_s]
    return tuple(replace(word, end_s=heard_end(word, limit)) for word, limit in zip(words, limits))


def heard_end(word: WordResult, limit_s: float) -> float:
    """Its last token's end plus the rest of a syllable (WORD_END_EXTENSION_S), but not past `limit_s`."""
    extension = WORD_END_EXTENSION_S["cjk" if is_cjk(word.text[-1]) else "other"]
    return round(max(word.end_s, min(limit_s, word.end_s + extension)), 3)


def segment_result(
    tokenizer: Tokenizer, ranked: list[RescoredHypothesis], index: int, start_s: float, end_s: float,
    nbest: int, frame_offset_s: float | None = None,
) -> SegmentResult:
    """The best hypothesis with token times (offset so times are relative to the whole audio) and n-best."""
    offset = start_s if frame_offset_s is None else frame_offset_s
    if not ranked:
        return SegmentResult(index, round(start_s, 3), round(end_s, 3), "", 0.0, (), ())
    best = ranked[0]
    tokens = token_results(tokenizer, best, offset)
    posteriors = nbest_posteriors([r.score for r in ranked])
    alternatives = tuple(
        Alternative(tokenizer.decode(r.hypothesis.token_ids), round(p, 4)) for r, p in zip(ranked[:nbest], posteriors)
    )
    confidence = sum(t.confidence for t in tokens) / len(tokens) if tokens else 0.0
    return SegmentResult(index, round(start_s, 3), round(end_s, 3), tokenizer.decode(best.hypothesis.token_ids),
                         round(confidence, 4), tokens, alternatives,
                         words=word_results(tokenizer, best, tokens, round(end_s, 3)))
