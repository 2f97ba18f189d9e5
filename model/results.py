"""Typed recognition results: every token carries its time span and confidence; every segment its n-best."""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.encoder import SUBSAMPLING
from model.features import FRAME_SHIFT_S
from model.rescoring import RescoredHypothesis
from model.tokenizer import Tokenizer

ENCODER_FRAME_S = SUBSAMPLING * FRAME_SHIFT_S  # 40 ms


@dataclass(frozen=True)
class TokenResult:
    text: str
    start_s: float
    end_s: float
    confidence: float


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
                         round(confidence, 4), tokens, alternatives)
