"""Recognising an uploaded recording: each channel cut at silences (a call's channels at their parties' turns),
the spans submitted to the batching scheduler as bounded units, and the segments merged in time order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import torch

from model.frontend.features import SAMPLE_RATE
from model.recognition.recognizer import DecodeOptions
from model.decoding.results import SegmentResult, Transcript, join_texts
from model.frontend.segmenter import AudioSpan, split_at_silences
from service.channels import ChannelResult, turn_spans
from service.redaction import Redaction
from service.runtime import Runtime

MIN_SPAN_SAMPLES = SAMPLE_RATE // 10  # the encoder needs 85 ms (7 feature frames); no word is shorter than 100 ms
DIGITAL_SILENCE = 2 / 32768  # within two steps of 16-bit zero: no signal at all


def shifted(segment: SegmentResult, offset_s: float, index: int) -> SegmentResult:
    """A span's segment with its times, its tokens' and its words' from the start of the recording."""
    def moved(items: tuple) -> tuple:
        return tuple(replace(x, start_s=round(x.start_s + offset_s, 3), end_s=round(x.end_s + offset_s, 3))
                     for x in items)
    return replace(segment, index=index, start_s=round(segment.start_s + offset_s, 3),
                   end_s=round(segment.end_s + offset_s, 3), tokens=moved(segment.tokens), words=moved(segment.words))


def decodable_spans(samples: torch.Tensor, spans: list[AudioSpan]) -> list[AudioSpan]:
    """The spans of `samples` worth a model step. A tail shorter than the encoder's input takes the end of its
    neighbour (the cut moves earlier); a recording that short, or a span of digital silence, is not decoded at
    all: it holds no speech, and the model is not asked to transcribe nothing."""
    if len(spans) > 1 and spans[-1].end - spans[-1].start < MIN_SPAN_SAMPLES and spans[-1].start == spans[-2].end:
        cut = spans[-1].end - MIN_SPAN_SAMPLES
        spans[-2:] = [AudioSpan(spans[-2].start, cut), AudioSpan(cut, spans[-1].end)]
    return [s for s in spans
            if s.end - s.start >= MIN_SPAN_SAMPLES and samples[s.start : s.end].abs().max() > DIGITAL_SILENCE]


@dataclass(frozen=True)
class Piece:
    """A span of one channel and what the model heard in it."""
    channel: int
    span: AudioSpan
    transcript: Transcript


def channel_spans(runtime: Runtime, channels: torch.Tensor) -> list[tuple[int, AudioSpan]]:
    """Every channel's spans, in time order: a mono recording cut as ever (at pauses, where longer than a segment
    may be), the channels of a call each cut at its party's turns."""
    segmenter = runtime.recognizer.segmenter
    spans = []
    for channel, samples in enumerate(channels):
        cuts = (turn_spans(samples, segmenter, runtime.settings.min_trailing_silence_s) if len(channels) > 1
                else split_at_silences(samples, segmenter))
        spans += [(channel, span) for span in decodable_spans(samples, cuts)]
    return sorted(spans, key=lambda cs: (cs[1].start, cs[0]))


async def transcribe_recording(runtime: Runtime, channels: torch.Tensor, options: DecodeOptions,
                               separate: bool) -> tuple[Transcript, tuple[ChannelResult, ...]]:
    """(channels, samples): cut at silences, submit bounded units to the scheduler concurrently, and merge them in
    time order. A unit holds the spans of every channel of its stretch of the recording, so both parties of a call
    decode in the same device batch; with `separate`, each segment says its channel."""
    duration_s = channels.shape[-1] / SAMPLE_RATE
    spans = channel_spans(runtime, channels)
    pieces: list[Piece] = []
    if spans:  # else silence only, or too short to hold a word: no text, no segments (the recogniser's convention)
        units = decoding_units(spans, runtime.settings.offline_unit_s)
        runtime.scheduler.check_offline_capacity(channels.numel() / SAMPLE_RATE)
        results = await asyncio.gather(*(
            runtime.scheduler.transcribe([channels[c][s.start : s.end] for c, s in unit], [options] * len(unit))
            for unit in units
        ))
        pieces = [Piece(c, span, t)
                  for unit, transcripts in zip(units, results) for (c, span), t in zip(unit, transcripts)]
    segments = sorted((replace(shifted(seg, p.span.start / SAMPLE_RATE, 0), channel=p.channel if separate else None)
                       for p in pieces for seg in p.transcript.segments), key=lambda s: (s.start_s, s.channel or 0))
    segments = [replace(s, index=i) for i, s in enumerate(segments)]
    locale, probability = pick_locale(pieces, options, runtime.recognizer.locales[0])
    per_channel = tuple(ChannelResult(c, None, *pick_locale([p for p in pieces if p.channel == c], options, locale))
                        for c in range(len(channels))) if separate else ()
    transcript = Transcript(join_texts([s.text for s in segments]), locale, probability, duration_s, tuple(segments))
    return transcript, per_channel


def decoding_units(spans: list[tuple[int, AudioSpan]], unit_s: float) -> list[list[tuple[int, AudioSpan]]]:
    """Consecutive spans grouped into units of at most `unit_s` of audio (a span longer than that is a unit alone)."""
    units, current, current_s = [], [], 0.0
    for channel, span in spans:
        length_s = (span.end - span.start) / SAMPLE_RATE
        if current and current_s + length_s > unit_s:
            units.append(current)
            current, current_s = [], 0.0
        current.append((channel, span))
        current_s += length_s
    return units + [current]


def pick_locale(pieces: list[Piece], options: DecodeOptions, silent: str) -> tuple[str, float | None]:
    """The named locale, or the one heard in most of the pieces' audio; `silent` (with probability 0) without any."""
    if options.locale is not None:
        return options.locale, None
    if not pieces:
        return silent, 0.0
    weights: dict[str, float] = {}
    for piece in pieces:
        length = piece.span.end - piece.span.start
        locale = piece.transcript.locale
        weights[locale] = weights.get(locale, 0.0) + length * (piece.transcript.locale_probability or 0.0)
    best = max(weights, key=weights.get)
    total = sum(p.span.end - p.span.start for p in pieces)
    return best, round(weights[best] / max(total, 1), 4)


@dataclass(frozen=True)
class Shown:
    """A transcript as the caller gets it: masked (redaction on), written (format=written), or as heard."""
    transcript: Transcript
    spoken_text: str  # the text as heard, masked when redaction is on
    raw_texts: tuple[str, ...] | None  # format=written: each segment's text as heard
    redactions: tuple[Redaction, ...] | None  # None: redaction off

    @classmethod
    def as_heard(cls, transcript: Transcript) -> Shown:
        return cls(transcript, transcript.text, None, None)


@dataclass(frozen=True)
class UploadResult:
    shown: Shown
    channels: tuple[ChannelResult, ...]  # with channels=separate, one per channel of the audio
    request_id: str
    processing_s: float
    fields: dict[str, list[str]]
