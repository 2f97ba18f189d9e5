"""What a caller chooses, torch-free so that the wire protocol (service/protocol.py, which the Python client
imports) reads the same defaults: how a request or stream is decoded (`DecodeOptions`), when a stream's segment
ends (`EndpointConfig`: k2-fsa/sherpa's `endpoint.h` rules, units in the names), and why it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Why a stream's segment ends: a pause after speech (endpoint), its length (max_segment), silence in which nothing was
# decoded (silence: the segment is dropped, no final), or the end of the stream (stop).
SegmentEnd = Literal["endpoint", "max_segment", "silence", "stop"]
FinalReason = Literal["endpoint", "max_segment", "stop"]  # the reason a final carries: every end but silence


@dataclass(frozen=True)
class DecodeOptions:
    locale: str | None = None  # a model locale, or None to detect
    nbest: int = 1
    hotwords: tuple[str, ...] = ()
    hotword_boost: float = 2.0  # log-probability bonus per hotword token
    beam_size: int | None = None  # prefixes kept per frame; None = the locale's tuned beam (Recognizer.beam_options)
    rescore: bool = True  # attention rescoring of finals (second pass)
    chunk_frames: int | None = None  # offline: None = full context; else the streaming chunk mask
    lm_weight: float | None = None  # n-gram LM fusion weight; None = the checkpoint's tuned value, 0 = off
    # Streams: decode each final again from its segment's audio at full context (second pass) instead of from the
    # chunked encoder's frames; partials stay streaming. model.recognition.stream_decoder.full_context_final.
    full_context_finals: bool = False

    @property
    def biases_hotwords(self) -> bool:
        """Hotwords given and switched on: boost 0 switches off their bonus, their lexicon words and the Chinese
        finals' correction alike."""
        return bool(self.hotwords) and self.hotword_boost > 0


@dataclass(frozen=True)
class EndpointConfig:
    min_trailing_silence_s: float = 0.8  # after something was decoded
    max_silence_without_speech_s: float = 5.0  # nothing decoded yet: give up on the segment and start afresh
    max_segment_s: float = 20.0
    # A segment this long ends at a shorter pause: a final rescores its whole segment, so its cost (and the wait
    # for it) grows with the segment's length, and running speech whose pauses never reach 0.8 s would otherwise
    # be cut mid-word at max_segment_s.
    long_segment_s: float = 10.0
    long_segment_trailing_silence_s: float = 0.4
