"""Recognising an uploaded recording: each channel cut at silences (a call's channels at their parties' turns:
the one cut of an upload), the spans submitted to the batching scheduler as bounded units and decoded as they are,
and their segments merged in time order (`model.recognition.spans`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from model.decoding.results import Transcript
from model.frontend.features import SAMPLE_RATE
from model.frontend.segmenter import AudioSpan, speech_spans, split_at_silences
from model.recognition.recognizer import DecodeOptions
from model.recognition.spans import HeardSpan, merge_spans, vote_locale
from service.app_state import AppState
from service.channels import ChannelResult, turn_spans
from service.redaction import Redaction

Fields = TypeVar("Fields")

MIN_SPAN_SAMPLES = SAMPLE_RATE // 10  # the encoder needs 85 ms (7 feature frames); no word is shorter than 100 ms
DIGITAL_SILENCE = 2 / 32768  # within two steps of 16-bit zero: no signal at all


def decodable_spans(samples: torch.Tensor, spans: list[AudioSpan]) -> list[AudioSpan]:
    """The spans of `samples` worth a model step. A tail shorter than the encoder's input takes the end of its
    neighbour (the cut moves earlier); a recording that short, or a span of digital silence, is not decoded at
    all: it holds no speech, and the model is not asked to transcribe nothing."""
    if len(spans) > 1 and spans[-1].end - spans[-1].start < MIN_SPAN_SAMPLES and spans[-1].start == spans[-2].end:
        cut = spans[-1].end - MIN_SPAN_SAMPLES
        spans[-2:] = [AudioSpan(spans[-2].start, cut), AudioSpan(cut, spans[-1].end)]
    return [s for s in spans
            if s.end - s.start >= MIN_SPAN_SAMPLES and samples[s.start : s.end].abs().max() > DIGITAL_SILENCE]


def channel_spans(app_state: AppState, channels: torch.Tensor) -> list[tuple[int, AudioSpan]]:
    """Every channel's spans, in time order: a mono recording cut as ever (at pauses, where longer than a segment
    may be), the channels of a call each cut at its party's turns; each without the silence at its ends
    (`speech_spans`), as the recognizer's own offline path cuts them."""
    segmenter = app_state.recognizer.segmenter
    spans = []
    for channel, samples in enumerate(channels):
        cuts = (turn_spans(samples, segmenter, app_state.settings.min_trailing_silence_s) if len(channels) > 1
                else split_at_silences(samples, segmenter))
        spans += [(channel, span) for span in speech_spans(samples, decodable_spans(samples, cuts), segmenter)]
    return sorted(spans, key=lambda cs: (cs[1].start, cs[0]))


async def transcribe_recording(app_state: AppState, channels: torch.Tensor, options: DecodeOptions,
                               separate: bool) -> tuple[Transcript, tuple[ChannelResult, ...]]:
    """(channels, samples): cut at silences, submit bounded units to the scheduler concurrently, and merge them in
    time order under the voted locale (`model.recognition.spans`). A unit holds the spans of every channel of its
    stretch of the recording, so both parties of a call decode in the same device batch; with `separate`, each
    segment says its channel, and each channel has its own vote."""
    spans = channel_spans(app_state, channels)
    heard: list[HeardSpan] = []
    if spans:  # else silence only, or too short to hold a word: no text, no segments (the recogniser's convention)
        units = decoding_units(spans, app_state.settings.offline_unit_s)
        app_state.scheduler.check_offline_capacity(channels.numel() / SAMPLE_RATE)
        results = await asyncio.gather(*(
            app_state.scheduler.transcribe([channels[c][s.start : s.end] for c, s in unit], [options] * len(unit))
            for unit in units
        ))
        heard = [HeardSpan(span, t, c if separate else None)
                 for unit, transcripts in zip(units, results) for (c, span), t in zip(unit, transcripts)]
    transcript = merge_spans(heard, options.locale, app_state.recognizer.locales[0], channels.shape[-1] / SAMPLE_RATE)
    per_channel = tuple(ChannelResult(c, None, *vote_locale([h for h in heard if h.channel == c], options.locale,
                                                            transcript.locale))
                        for c in range(len(channels))) if separate else ()
    return transcript, per_channel


def decoding_units(spans: list[tuple[int, AudioSpan]], unit_s: float) -> list[list[tuple[int, AudioSpan]]]:
    """Consecutive spans grouped into units of at most `unit_s` of audio (a span longer than that is a unit alone)."""
    units: list[list[tuple[int, AudioSpan]]] = []
    current: list[tuple[int, AudioSpan]] = []
    current_s = 0.0
    for channel, span in spans:
        length_s = (span.end - span.start) / SAMPLE_RATE
        if current and current_s + length_s > unit_s:
            units.append(current)
            current, current_s = [], 0.0
        current.append((channel, span))
        current_s += length_s
    return units + [current]


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
class UploadResult(Generic[Fields]):
    shown: Shown
    channels: tuple[ChannelResult, ...]  # with channels=separate, one per channel of the audio
    request_id: str
    processing_s: float
    fields: Fields  # the upload's parameters (service/protocol.py UploadFields)
