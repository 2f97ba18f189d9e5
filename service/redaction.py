"""Masking personal data (service.pii) in everything a result carries: a segment's text, tokens, words and n-best,
a transcript's text, and a stream's partials and finals. Each entity becomes one tag in the text (`[PHONE]`) and
one token and one word spanning the entity's time, so neither its digits nor their count remain; the entity's
kind and time span are returned so that a caller can mute that audio.

Entities are found in the text's units (service.pii.split_units) and located in the tokens and words by their
characters without spaces, which the recogniser's text, tokens and words share. A number dictated in groups may be
cut into segments at its pauses: an upload's segments of one channel are searched together, a run of digits
continuing across a gap of up to MAX_GAP_S, and a stream carries the digits that ended its last final into the
next segment (that final was already sent; the rest of the number is masked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from model.decoding.results import Alternative, SegmentResult, TokenResult, Transcript, WordResult, join_texts
from service.pii import Entity, PiiOptions, digit_runs, find_entities, split_units
from service.protocol import EntityKind

TAGS: dict[EntityKind, str] = {"phone_number": "[PHONE]", "cn_resident_id": "[ID_NUMBER]", "bank_card": "[CARD]",
                               "email": "[EMAIL]", "digit_string": "[NUMBER]"}
# A pause between digit groups of one number (138, 0013, 8000) is shorter than this, measured from a group's last
# token to the next one's first: the pause, plus the last syllable (a token fires where its sound begins), plus a
# stream's endpoint silence (0.8 s) when the pause ended a segment.
MAX_GAP_S = 2.0
BREAK = ""  # a unit that is no digit and no part of an email: ends any run between far-apart segments


@dataclass(frozen=True)
class Redaction:
    kind: EntityKind
    start_s: float
    end_s: float
    segment: int  # the segment's index (an upload's) or number (a stream's)
    channel: int | None = None


@dataclass(frozen=True)
class Masked:
    text: str
    tokens: tuple[TokenResult, ...]
    words: tuple[WordResult, ...]
    spans: tuple[tuple[EntityKind, float, float], ...]  # (kind, start_s, end_s) per entity


def units_of(text: str) -> list[str]:
    return [text[a:b] for a, b in split_units(text)]


def mask(text: str, tokens: Sequence[TokenResult], words: Sequence[WordResult], entities: Sequence[Entity]) -> Masked:
    """`text` with each entity (indices into its units) replaced by its tag, and the tokens and words it covers
    replaced by one of each, timed from the first to the last."""
    if not entities:
        return Masked(text, tuple(tokens), tuple(words), ())
    spans = split_units(text)
    ranges = [(stripped_offset(text, spans[e.start][0]), stripped_offset(text, spans[e.stop - 1][1])) for e in entities]
    total = len("".join(text.split()))
    if stripped_length(tokens) not in (0, total) or stripped_length(words) not in (0, total):
        ranges = [(0, total)] * len(entities)  # tokens that do not spell the text: mask them all, never leak
    new_tokens, token_spans = collapsed(tokens, ranges, [TAGS[e.kind] for e in entities])
    new_words, word_spans = collapsed(words, ranges, [TAGS[e.kind] for e in entities])
    times = [merge_times(t, w) for t, w in zip(token_spans, word_spans)]
    return Masked(masked_text(text, spans, entities), new_tokens, new_words,
                  tuple((e.kind, *time) for e, time in zip(entities, times)))


def stripped_offset(text: str, index: int) -> int:
    return len("".join(text[:index].split()))


def stripped_length(pieces: Sequence[TokenResult | WordResult]) -> int:
    return sum(len("".join(p.text.split())) for p in pieces)


def masked_text(text: str, spans: list[tuple[int, int]], entities: Sequence[Entity]) -> str:
    for entity in reversed(entities):
        text = text[: spans[entity.start][0]] + TAGS[entity.kind] + text[spans[entity.stop - 1][1]:]
    return text


def collapsed(pieces: Sequence, ranges: list[tuple[int, int]], tags: list[str]) -> tuple[tuple, list]:
    """The pieces (tokens or words) with those inside each character range replaced by one piece with its tag,
    the earliest start, the latest end and the lowest confidence; and per range its (start_s, end_s) or None."""
    out: list = []
    times: list = [None] * len(ranges)
    position = 0
    for piece in pieces:
        length = len("".join(piece.text.split()))
        hit = next((n for n, (a, b) in enumerate(ranges) if position < b and a < position + length
                    or (length == 0 and a <= position < b)), None)
        position += length
        if hit is None:
            out.append(piece)
            continue
        if times[hit] is None:
            out.append(replace(piece, text=tags[hit]))
            times[hit] = (piece.start_s, piece.end_s)
        else:
            first = out[-1] if out and out[-1].text == tags[hit] else None
            if first is not None:
                out[-1] = replace(first, end_s=max(first.end_s, piece.end_s),
                                  confidence=min(first.confidence, piece.confidence))
            times[hit] = (times[hit][0], max(times[hit][1], piece.end_s))
    return tuple(out), times


def merge_times(tokens: tuple[float, float] | None, words: tuple[float, float] | None) -> tuple[float, float]:
    """An entity's span: tokens fire near where a sound begins and words end where it ends (model.decoding.results),
    so the earliest start and latest end of both cover its audio."""
    known = [t for t in (tokens, words) if t is not None]
    if not known:
        return (0.0, 0.0)
    return (round(min(t[0] for t in known), 3), round(max(t[1] for t in known), 3))


# ---------------------------------------------------------------------------------------------------- results


def redact_segments(segments: Sequence[SegmentResult], options: PiiOptions, context: Sequence[str] = (),
                    channel: int | None = None) -> tuple[list[SegmentResult], list[Redaction]]:
    """Segments of one channel in time order, searched together (runs continue across gaps up to MAX_GAP_S) after
    `context` (units heard just before the first, already sent): each segment masked, and its redactions."""
    sequence, offsets, previous_end = list(context), [], None
    for segment in segments:
        if previous_end is not None and first_time(segment) - previous_end > MAX_GAP_S:
            sequence.append(BREAK)
        offsets.append(len(sequence))
        sequence += units_of(segment.text)
        previous_end = last_time(segment)
    found = find_entities(sequence, options)
    out, redactions = [], []
    for segment, offset in zip(segments, offsets):
        own = local_entities(found, offset, offset + len(units_of(segment.text)))
        masked = mask(segment.text, segment.tokens, segment.words, own)
        alternatives = masked_alternatives(segment, options, trailing_digits(sequence[:offset]), {e.kind for e in own})
        out.append(replace(segment, text=masked.text, tokens=masked.tokens, words=masked.words,
                           alternatives=alternatives))
        redactions += [Redaction(kind, start, end, segment.index, channel) for kind, start, end in
                       with_fallback_times(masked.spans, segment)]
    return out, redactions


def masked_alternatives(segment: SegmentResult, options: PiiOptions, context: Sequence[str],
                        found: set[EntityKind]) -> tuple[Alternative, ...]:
    """The n-best texts, each masked after `context` (what the best text continues). Where the best text held an
    entity (`found`), an alternative is the same audio heard otherwise: a number may come out broken by a misheard
    unit (九一二三嘅五六七) and an email's domain as other words, so beside a number every digit run is masked however
    short, and beside an email the words after an "at"."""
    if found - {"email"}:
        options = replace(options, min_digits=options.pending_min_digits)
    if "email" in found:
        options = replace(options, loose_emails=True)
    return tuple(Alternative(redact_text(a.text, options, context), a.confidence) for a in segment.alternatives)


def local_entities(found: Sequence[Entity], start: int, stop: int) -> list[Entity]:
    """The entities' parts inside units [start, stop) of the joint sequence, in that segment's own unit indices."""
    return [Entity(e.kind, max(e.start, start) - start, min(e.stop, stop) - start)
            for e in found if e.start < stop and start < e.stop]


def with_fallback_times(spans, segment: SegmentResult):
    """A segment without tokens (nothing timed) gives its entities the segment's span."""
    return [(kind, start, end) if end > 0 else (kind, segment.start_s, segment.end_s) for kind, start, end in spans]


def trailing_digits(units: Sequence[str]) -> list[str]:
    """The units of the digit run that ends `units`, if one does: a number that the next piece may continue."""
    runs = digit_runs(units)
    return list(units[runs[-1][0]:]) if runs and runs[-1][1] == len(units) else []


def first_time(segment: SegmentResult) -> float:
    return segment.tokens[0].start_s if segment.tokens else segment.start_s


def last_time(segment: SegmentResult) -> float:
    return segment.tokens[-1].end_s if segment.tokens else segment.end_s


def redact_text(text: str, options: PiiOptions, context: Sequence[str] = (), open_end: bool = False) -> str:
    """Text alone (an n-best alternative): the entities in it, after `context`, replaced by their tags."""
    units = units_of(text)
    found = find_entities([*context, *units], options, open_end)
    entities = local_entities(found, len(context), len(context) + len(units))
    return masked_text(text, split_units(text), entities)


def redact_transcript(transcript: Transcript, options: PiiOptions) -> tuple[Transcript, tuple[Redaction, ...]]:
    """Every segment masked, each channel's segments searched together; the text joined again from them."""
    masked: dict[int, SegmentResult] = {}
    redactions: list[Redaction] = []
    for channel in dict.fromkeys(s.channel for s in transcript.segments):
        mine = [s for s in transcript.segments if s.channel == channel]
        out, found = redact_segments(mine, options, channel=channel)
        masked.update({s.index: s for s in out})
        redactions += found
    segments = tuple(masked[s.index] for s in transcript.segments)
    text = join_texts([s.text for s in segments])
    return replace(transcript, text=text, segments=segments), tuple(sorted(redactions, key=lambda r: r.start_s))


# ---------------------------------------------------------------------------------------------------- streams


class StreamRedactor:
    """One stream's masking: partials with their open end (a digit run that may still grow is masked), finals as
    segments, and the digits that ended the last final carried into the next segment."""

    def __init__(self, options: PiiOptions) -> None:
        self.options = options
        self.context: list[str] = []  # the last final's trailing digit units, unmasked, never sent on
        self.context_end_s = 0.0

    def context_for(self, tokens: Sequence[TokenResult]) -> list[str]:
        if tokens and tokens[0].start_s - self.context_end_s > MAX_GAP_S:
            return []
        return self.context

    def partial(self, segment: int, text: str, tokens: Sequence[TokenResult]) -> tuple[Masked, list[Redaction]]:
        context = self.context_for(tokens)
        units = units_of(text)
        found = find_entities([*context, *units], self.options, open_end=True)
        masked = mask(text, tokens, (), local_entities(found, len(context), len(context) + len(units)))
        return masked, [Redaction(kind, start, end, segment) for kind, start, end in masked.spans]

    def final(self, segment: SegmentResult) -> tuple[SegmentResult, list[Redaction]]:
        context = self.context_for(segment.tokens)
        (masked,), redactions = redact_segments([segment], self.options, context)
        self.context = trailing_digits([*context, *units_of(segment.text)])
        self.context_end_s = last_time(segment)
        return masked, redactions
