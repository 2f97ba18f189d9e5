"""A recording recognised span by span: cut at silences (a call's channels at their parties' turns), each span
decoded on its own (under `auto`, as the locale it is heard as), then the spans' segments merged in time order
under one locale for the whole, the spans' vote. `Recognizer.transcribe_batch` merges its recordings here, and so
does the service's upload path (service/recording.py), which cuts and batches the spans itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from model.decoding.results import SegmentResult, TokenResult, Transcript, WordResult, join_texts
from model.frontend.features import SAMPLE_RATE
from model.frontend.segmenter import AudioSpan

Timed = TypeVar("Timed", TokenResult, WordResult)


@dataclass(frozen=True)
class HeardSpan:
    """A span of a recording and what the model heard in it, decoded alone (its times from the span's start)."""

    span: AudioSpan  # samples of the recording (of its channel)
    transcript: Transcript
    channel: int | None = None  # the channel, when a call's channels are recognised apart


def shifted(segment: SegmentResult, offset_s: float, index: int) -> SegmentResult:
    """A span's segment with its times, its tokens' and its words' from the start of the recording."""
    def moved(items: tuple[Timed, ...]) -> tuple[Timed, ...]:
        return tuple(replace(x, start_s=round(x.start_s + offset_s, 3), end_s=round(x.end_s + offset_s, 3))
                     for x in items)
    return replace(segment, index=index, start_s=round(segment.start_s + offset_s, 3),
                   end_s=round(segment.end_s + offset_s, 3), tokens=moved(segment.tokens), words=moved(segment.words))


def vote_locale(heard: Sequence[HeardSpan], named: str | None, silent: str) -> tuple[str, float | None]:
    """The locale of a recording: the `named` one (probability None); or the one heard in most of its spans'
    audio, weighted by each span's detection probability; `silent` (probability 0) without any span."""
    if named is not None:
        return named, None
    if not heard:
        return silent, 0.0
    weights: dict[str, float] = {}
    for piece in heard:
        length = piece.span.end - piece.span.start
        locale = piece.transcript.locale
        weights[locale] = weights.get(locale, 0.0) + length * (piece.transcript.locale_probability or 0.0)
    best = max(weights, key=weights.__getitem__)
    total = sum(p.span.end - p.span.start for p in heard)
    return best, round(weights[best] / max(total, 1), 4)


def merge_spans(heard: Sequence[HeardSpan], named: str | None, silent: str, duration_s: float) -> Transcript:
    """One transcript of a recording from its spans: their segments in time order (channel breaking ties), numbered
    afresh and timed from the recording's start, their text joined, and the locale voted (`vote_locale`)."""
    segments = sorted((replace(shifted(seg, h.span.start / SAMPLE_RATE, 0), channel=h.channel)
                       for h in heard for seg in h.transcript.segments), key=lambda s: (s.start_s, s.channel or 0))
    segments = [replace(s, index=i) for i, s in enumerate(segments)]
    locale, probability = vote_locale(heard, named, silent)
    return Transcript(join_texts([s.text for s in segments]), locale, probability, duration_s, tuple(segments))
