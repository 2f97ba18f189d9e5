"""Per-stream decoding state and its transitions: audio in -> chunks out -> (after the batched encoder step)
partial and final results, with endpointing that splits one connection into segments.

Everything here is a pure function of (recognizer, state, inputs) -> (state, events); the service decides when
to call which, and batches the encoder step of many streams in between (`Recognizer.encode_chunks`).
Endpoint rules (`EndpointConfig`, model.recognition.options) follow k2-fsa/sherpa's (`endpoint.h`): units are in
the names.

A stream with `locale=auto` is searched without a token mask or LM only until the locale is known: as soon as the
locale head is sure (`LOCALE_SURE_PROBABILITY` after `LOCALE_COMMIT_S` of evidence, which starts with the first
chunk that holds speech; usually that chunk or the next), the
segment so far is searched again under that locale's tokens and LM, and the search goes on that way, as for a
stream that named its locale. Each final checks the choice against all the evidence: a segment that is surely
another locale on its own (code-switching between utterances), or a stream whose evidence as a whole now says
otherwise, is searched again under that locale before it is rescored.

With `DecodeOptions.full_context_finals` a stream also keeps its open segment's audio, and each final is decoded
again from it at full context (both passes, as an upload's segment is): the chunked encoder never sees past its
chunk, which costs accuracy (the model card's 640 ms column), while a final waits for the endpoint's silence anyway.
Partials stay streaming; the final costs one full-context encoder pass and search over its segment more.
That encoder pass is the device's work, not the search's: a segment that ends returns its state with
`pending_final` set and no events, the caller encodes `pending_segment_audio` (the service batches those of
many streams on its device thread, `service.scheduler`), and `finish_pending_final` makes the final from
the output. `run_pending_final` does all of it in place, for one stream (tests, evaluation, the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

import torch

from model.decoding.hotwords import HotwordTrie
from model.decoding.rescoring import RescoredHypothesis
from model.decoding.results import SegmentResult, TokenResult, segment_result, token_results
from model.decoding.search import BeamState, FramePosteriors, beam_hypotheses, prefix_beam_search
from model.frontend.features import SAMPLE_RATE
from model.frontend.segmenter import AudioSpan, SegmenterOptions, speech_spans
from model.network.encoder import ENCODER_FRAME_S, EncoderState
from model.recognition.options import DecodeOptions, EndpointConfig, FinalReason, SegmentEnd
from model.recognition.recognizer import Recognizer
from model.recognition.streaming import AudioChunk, SampleBuffer, take_audio_chunk
from model.text.locales import LOCALE_COMMIT_S, LOCALE_SURE_PROBABILITY
from model.text.tokenizer import BLANK_ID


HEARD_TOKENS_KEPT = 256


class StreamStatus(Enum):
    ACTIVE = "active"
    FINISHED = "finished"


@dataclass(frozen=True)
class PartialEvent:
    segment: int
    text: str
    tokens: tuple[TokenResult, ...]  # from the best current hypothesis
    start_s: float


@dataclass(frozen=True)
class FinalEvent:
    segment: SegmentResult
    reason: FinalReason
    locale_probability: float | None = None  # `auto`: the detection's probability (the locale is segment.locale)

    @property
    def locale(self) -> str:
        """The locale the segment was decoded as (a final's segment always says it)."""
        assert self.segment.locale is not None
        return self.segment.locale


@dataclass(frozen=True)
class StreamState:
    options: DecodeOptions
    endpoint: EndpointConfig
    chunk_frames: int
    audio: SampleBuffer  # raw samples; their MFCC is computed per chunk, batched across streams
    encoder: EncoderState
    search: BeamState = field(default_factory=BeamState)
    segment_index: int = 0
    segment_start_frame: int = 0  # stream encoder frame where the current segment began
    segment_encoded: tuple[torch.Tensor, ...] = ()  # encoder frames of the current segment, for rescoring
    segment_audio: tuple[torch.Tensor, ...] = ()  # the current segment's samples (only for full-context finals)
    frames: int = 0  # encoder frames decoded so far in the stream
    trailing_blank_frames: int = 0
    locale_sum: torch.Tensor | None = None  # (D,) running sum of encoder output, for `auto`
    locale_frames: int = 0  # the frames in locale_sum
    # `auto`: what the finished segments said with no locale imposed (Recognizer.heard_tokens), the newest
    # HEARD_TOKENS_KEPT: the locale's text evidence, beside the head's (Recognizer.detect_locale)
    locale_heard: tuple[int, ...] = ()
    detected_locale: str | None = None  # `auto`: the locale the search runs under, once the detection is sure
    detected_probability: float | None = None
    status: StreamStatus = StreamStatus.ACTIVE
    hotwords: HotwordTrie | None = None  # built once per stream from options.hotwords, not once per chunk
    # Full-context finals: the segment ended for this reason and its final waits for the segment's encoder pass
    # at full context (`pending_segment_audio` -> encoder -> `finish_pending_final`).
    pending_final: FinalReason | None = None

    @property
    def samples_received(self) -> int:
        return self.audio.received


StreamEvent = PartialEvent | FinalEvent
StreamStep = tuple[StreamState, list[StreamEvent]]  # a stream's next state and the events of its step


def new_stream(recognizer: Recognizer, options: DecodeOptions, chunk_frames: int,
               endpoint: EndpointConfig = EndpointConfig()) -> StreamState:
    return StreamState(options, endpoint, chunk_frames, SampleBuffer.empty(), recognizer.initial_encoder_state(),
                       hotwords=recognizer.hotword_trie(options))


def accept_samples(state: StreamState, samples: torch.Tensor) -> StreamState:
    """16 kHz mono float samples appended to the stream's buffer (cheap: no MFCC on the receiving side)."""
    return replace(state, audio=state.audio.append(samples))


def next_chunk(state: StreamState, final: bool = False) -> tuple[AudioChunk | None, StreamState]:
    chunk, audio = take_audio_chunk(state.audio, state.chunk_frames, final)
    if chunk is None or not state.options.full_context_finals:
        return chunk, replace(state, audio=audio)
    # The samples this chunk moves the stream past (what the buffer no longer holds), not its padded window: a
    # chunk shares its last frames' samples with the next one. A copy: a view would keep the whole buffer alive.
    consumed = state.audio.samples[: state.audio.samples.shape[0] - audio.samples.shape[0]].clone()
    return chunk, replace(state, audio=audio, segment_audio=state.segment_audio + (consumed,))


def search_locale(state: StreamState) -> str | None:
    """The locale whose tokens and LM the search uses: the request's, or under `auto` the detected one (None
    until the detection is sure: no mask, no LM)."""
    return state.options.locale or state.detected_locale


def segment_heard(recognizer: Recognizer, state: StreamState) -> tuple[int, ...]:
    """What the open segment said with no locale imposed (`Recognizer.heard_tokens`)."""
    return recognizer.heard_tokens(torch.cat(state.segment_encoded)) if state.segment_encoded else ()


def stream_locale(recognizer: Recognizer, state: StreamState, said: tuple[int, ...]) -> tuple[str, float]:
    """The locale of all the stream's evidence: its speech frames, and what it said: its finished segments' words
    and `said`, the open segment's (`segment_heard`)."""
    assert state.locale_sum is not None
    return recognizer.detect_locale(state.locale_sum, state.locale_frames,
                                    (state.locale_heard + said)[-HEARD_TOKENS_KEPT:])


def current_locale(recognizer: Recognizer, state: StreamState, said: tuple[int, ...]) -> tuple[str, float | None]:
    if state.options.locale is not None:
        return state.options.locale, None
    if state.detected_locale is not None:
        return state.detected_locale, state.detected_probability
    if state.locale_sum is None or state.locale_frames == 0:
        return recognizer.locales[0], 0.0
    return stream_locale(recognizer, state, said)


def search_segment_as(recognizer: Recognizer, state: StreamState, locale: str, probability: float | None,
                      locale_sum: torch.Tensor | None = None, locale_frames: int = 0,
                      search_again: bool = True) -> StreamState:
    """`auto` settles on `locale`: the open segment's frames are searched again from its start under the locale's
    tokens and LM (a search that is incremental gives what one pass over the same frames gives), and so is
    everything after. `locale_sum`: evidence to keep instead of the stream's (a switch starts afresh).
    `search_again=False` only adopts the locale, for a final whose segment is decoded again anyway (its search is
    then still the old locale's: see `finalize_segment`)."""
    state = replace(state, detected_locale=locale, detected_probability=probability)
    if locale_sum is not None:
        state = replace(state, locale_sum=locale_sum, locale_frames=locale_frames)
    if not search_again:
        return state
    if not state.segment_encoded:
        return replace(state, search=BeamState())
    log_probs = recognizer.ctc_log_probs(torch.cat(state.segment_encoded), locale)
    beam = recognizer.beam_options(locale, state.options)
    fusion = recognizer.lm_fusion(locale, state.options)
    return replace(state, search=prefix_beam_search(log_probs, None, beam, state.hotwords, fusion))


def settle_locale(recognizer: Recognizer, state: StreamState) -> StreamState:
    """`auto` before a decision: commit once the stream's evidence is sure enough."""
    if state.options.locale is not None or state.detected_locale is not None or state.locale_sum is None:
        return state
    if state.locale_frames * ENCODER_FRAME_S < LOCALE_COMMIT_S:
        return state
    locale, probability = stream_locale(recognizer, state, segment_heard(recognizer, state))
    if probability < LOCALE_SURE_PROBABILITY:
        return state
    return search_segment_as(recognizer, state, locale, probability)


def check_locale_before_final(recognizer: Recognizer, state: StreamState, said: tuple[int, ...],
                              search_again: bool = True) -> StreamState:
    """`auto` at a final: decide if still undecided (whatever the probability); switch to the segment's own locale
    when the segment alone is surely another one (LOCALE_SWITCH_S of it at LOCALE_SURE_PROBABILITY); or follow
    the stream's whole evidence where it now disagrees with an early decision. `said`: what the segment said
    (`segment_heard`). (`search_again`: search_segment_as)"""
    if state.options.locale is not None or state.locale_sum is None or state.locale_frames == 0:
        return state
    whole_locale, whole_probability = stream_locale(recognizer, state, said)
    if state.detected_locale is None:
        return search_segment_as(recognizer, state, whole_locale, whole_probability, search_again=search_again)
    segment = torch.cat(state.segment_encoded).float() if state.segment_encoded else None
    sure = recognizer.sure_locale(segment, said) if segment is not None else None
    if segment is not None and sure is not None and sure[0] != state.detected_locale:
        return search_segment_as(recognizer, state, *sure, segment.sum(0), segment.shape[0], search_again=search_again)
    if whole_locale != state.detected_locale:
        return search_segment_as(recognizer, state, whole_locale, whole_probability, search_again=search_again)
    return replace(state, detected_probability=whole_probability)


def apply_chunk(
    recognizer: Recognizer, state: StreamState, posteriors: FramePosteriors, encoded: torch.Tensor,
    encoder_state: EncoderState,
) -> StreamStep:
    """Consume the encoder step's output for this stream: search, then endpoint checks. Returns events."""
    trie = state.hotwords
    blank_run = trailing_blanks(posteriors.best_ids, state.trailing_blank_frames)
    # Blank means silence only where no other locale's token mask can have hidden the speech.
    unmasked = state.options.locale is not None or state.detected_locale is None
    if unmasked and blank_run >= state.frames + posteriors.frames - state.segment_start_frame:
        # The open segment has heard nothing, this chunk included: it begins again with this chunk (whose audio a
        # full-context final keeps: speech that starts late in a chunk is often heard only in the next), and the
        # encoder starts afresh with no context. The model learned from utterances with a fraction of a second of
        # silence before the speech; two seconds of a quiet room in its context raised its streamed error by up to
        # half and took its locale detection with it (docs/model_releases.md).
        state = replace(state, segment_start_frame=state.frames, segment_encoded=(),
                        segment_audio=state.segment_audio[-1:], search=BeamState())
        encoder_state = recognizer.initial_encoder_state()
    # The locale evidence starts with the first chunk that holds speech: leading silence says nothing about the
    # locale, and averaged in, it would keep the head unsure for seconds after the speech began.
    speaking = state.locale_frames > 0 or any(label != BLANK_ID for label in posteriors.best_ids)
    locale_sum, locale_frames = state.locale_sum, state.locale_frames
    if speaking:
        locale_sum = encoded.float().sum(0) + (locale_sum if locale_sum is not None else 0)
        locale_frames += posteriors.frames
    state = replace(state, encoder=encoder_state, frames=state.frames + posteriors.frames,
                    segment_encoded=state.segment_encoded + (encoded,), trailing_blank_frames=blank_run,
                    locale_sum=locale_sum, locale_frames=locale_frames)
    settled = settle_locale(recognizer, state)
    if settled.detected_locale != state.detected_locale:
        state = settled  # `auto` decided on this chunk: the segment, this chunk included, was searched as the locale
    else:
        locale = search_locale(state)
        fusion, beam = recognizer.lm_fusion(locale, state.options), recognizer.beam_options(locale, state.options)
        state = replace(state, search=prefix_beam_search(posteriors, state.search, beam, trie, fusion))
    reason = endpoint_reason(state)
    if reason is None:
        return state, [partial_event(recognizer, state, trie)]  # partial ranking includes LM and hotword scores
    return end_segment(recognizer, state, reason)


def end_segment(recognizer: Recognizer, state: StreamState, reason: SegmentEnd) -> StreamStep:
    """The open segment ends: its final now, or, for a full-context final, the state pending its encoder pass."""
    if state.options.full_context_finals and state.segment_audio and reason != "silence":
        return replace(state, pending_final=reason), []
    return finalize_segment(recognizer, state, reason)


def pending_segment_span(state: StreamState) -> AudioSpan:
    """What a segment whose final waits for its full-context encoder pass gives that pass of its samples: all but
    the silence at its ends beyond what an upload's span keeps (`speech_spans`), so that the final reads the
    segment as an upload reads it."""
    assert state.pending_final is not None
    samples = sum(len(piece) for piece in state.segment_audio)
    (span,) = speech_spans(torch.cat(state.segment_audio), [AudioSpan(0, samples)], SegmenterOptions())
    return span


def pending_segment_audio(state: StreamState) -> torch.Tensor:
    """The samples of a segment whose final waits for its full-context encoder pass (`pending_segment_span`)."""
    span = pending_segment_span(state)
    return torch.cat(state.segment_audio)[span.start : span.end]


def finish_pending_final(recognizer: Recognizer, state: StreamState, encoded: torch.Tensor) -> StreamStep:
    """The final of a pending segment, from its encoder output at full context (`pending_segment_audio`'s)."""
    reason = state.pending_final
    assert reason is not None
    offset_s = pending_segment_span(state).start / SAMPLE_RATE
    return finalize_segment(recognizer, replace(state, pending_final=None), reason, encoded, offset_s)


def run_pending_final(recognizer: Recognizer, state: StreamState, events: list[StreamEvent]) -> StreamStep:
    """A pending final made in place (one stream, the encoder called here); any other state passes through."""
    if state.pending_final is None:
        return state, events
    [encoded] = recognizer.encode_segments([pending_segment_audio(state)], None)
    state, more = finish_pending_final(recognizer, state, encoded)
    return state, events + more


def trailing_blanks(best_ids: list[int], previous: int) -> int:
    """Frames of blank (as the best label) at the end of the stream so far."""
    run = previous
    for label in best_ids:
        run = run + 1 if label == BLANK_ID else 0
    return run


def endpoint_reason(state: StreamState) -> SegmentEnd | None:
    segment_frames = state.frames - state.segment_start_frame
    silence_s = state.trailing_blank_frames * ENCODER_FRAME_S
    decoded = bool(next(iter(state.search.beams.values())).timings)  # the best hypothesis has tokens
    if segment_frames * ENCODER_FRAME_S >= state.endpoint.max_segment_s:
        return "max_segment"
    if decoded and silence_s >= state.endpoint.min_trailing_silence_s:
        return "endpoint"
    long = segment_frames * ENCODER_FRAME_S >= state.endpoint.long_segment_s
    if decoded and long and silence_s >= state.endpoint.long_segment_trailing_silence_s:
        return "endpoint"
    if not decoded and silence_s >= state.endpoint.max_silence_without_speech_s:
        return "silence"
    return None


def partial_event(recognizer: Recognizer, state: StreamState, trie: HotwordTrie | None) -> PartialEvent:
    best = beam_hypotheses(state.search, trie)[0]
    start_s = state.segment_start_frame * ENCODER_FRAME_S
    tokens = token_results(recognizer.tokenizer, RescoredHypothesis(best, 0.0, best.score), start_s)
    return PartialEvent(state.segment_index, recognizer.tokenizer.decode(best.token_ids), tokens, start_s)


def finalize_segment(recognizer: Recognizer, state: StreamState, reason: SegmentEnd,
                     full_context: torch.Tensor | None = None, full_context_offset_s: float = 0.0) -> StreamStep:
    """Rescore the segment's n-best with the attention decoder, emit the final, open the next segment.
    `full_context`: the encoder output at full context of the segment's audio from `full_context_offset_s` on, for a
    final decoded again from it."""
    events: list[StreamEvent] = []
    spoke = False
    said: tuple[int, ...] = ()
    start_s = state.segment_start_frame * ENCODER_FRAME_S
    end_s = state.frames * ENCODER_FRAME_S
    if reason != "silence":
        trie, second_pass = state.hotwords, full_context is not None
        searched_as = search_locale(state)
        # A final decoded again at full context needs no streaming search under a locale `auto` switches to here:
        # that search is only its fallback, made below if the fallback is taken.
        said = segment_heard(recognizer, state) if state.options.locale is None else ()
        state = check_locale_before_final(recognizer, state, said, search_again=not second_pass)
        locale, probability = current_locale(recognizer, state, said)
        ranked = full_context_final(recognizer, state, locale, full_context) if full_context is not None else []
        # (A second pass that hears nothing where the partials showed words falls back to the streaming pass: each
        # segment whose partials a client saw still ends with a final.)
        frame_offset_s = start_s + full_context_offset_s
        if not ranked or not ranked[0].hypothesis.token_ids:
            frame_offset_s = start_s
            if second_pass and search_locale(state) != searched_as:
                state = search_segment_as(recognizer, state, locale, probability)
            hypotheses = beam_hypotheses(state.search, trie, final=True,
                                         fusion=recognizer.lm_fusion(search_locale(state), state.options))
            encoded = torch.cat(state.segment_encoded) if state.segment_encoded else torch.zeros(0, 1)
            ranked = recognizer.finalize(encoded, hypotheses, locale, state.options)
        segment = segment_result(recognizer.tokenizer, ranked, state.segment_index, start_s, end_s, state.options.nbest,
                                 frame_offset_s)
        spoke = bool(segment.text)
        if spoke or reason == "stop":
            events.append(FinalEvent(replace(segment, locale=locale), reason, probability))
    heard = (state.locale_heard + said)[-HEARD_TOKENS_KEPT:] if spoke else state.locale_heard
    next_state = replace(
        state, search=BeamState(), segment_index=state.segment_index + (1 if spoke else 0),
        segment_start_frame=state.frames, segment_encoded=(), segment_audio=(), trailing_blank_frames=0,
        locale_heard=heard,
    )
    return next_state, events


def full_context_final(recognizer: Recognizer, state: StreamState, locale: str,
                       encoded: torch.Tensor) -> list[RescoredHypothesis]:
    """The open segment decoded again, from its encoder output at full context, as an upload's segment is: search
    under the locale's tokens, LM and the stream's hotwords, attention rescoring. Its token times count from the
    segment's first sample, as the streaming pass's do."""
    return recognizer.decode_segment(encoded, locale, state.options, state.hotwords)


def request_finish(recognizer: Recognizer, state: StreamState) -> StreamStep:
    """After the last chunk: the final of the open segment (possibly empty text), and the stream is done; for a
    full-context final, the finished state pending its encoder pass (`finish_pending_final`)."""
    return end_segment(recognizer, replace(state, status=StreamStatus.FINISHED), "stop")


def finish_stream(recognizer: Recognizer, state: StreamState) -> StreamStep:
    """After the last chunk, in place: the final of the open segment, and the stream is done."""
    return run_pending_final(recognizer, *request_finish(recognizer, state))


# What a one-stream caller does with a segment pending its full-context final (`run_pending_final` makes it).
PendingFinalHandler = Callable[[Recognizer, StreamState, list[StreamEvent]], StreamStep]


def decode_stream_offline(recognizer: Recognizer, samples: torch.Tensor, options: DecodeOptions,
                          chunk_frames: int, endpoint: EndpointConfig = EndpointConfig(),
                          piece_samples: int = 3200,
                          finish_pending: PendingFinalHandler = run_pending_final) -> StreamStep:
    """Run a whole recording through the streaming path one stream at a time (tests, CLI, benchmarks)."""
    state, events = new_stream(recognizer, options, chunk_frames, endpoint), []
    for start in range(0, len(samples), piece_samples):
        state = accept_samples(state, samples[start : start + piece_samples])
        state, more = drain(recognizer, state, final=False, finish_pending=finish_pending)
        events += more
    state, more = drain(recognizer, state, final=True, finish_pending=finish_pending)
    events += more
    state, more = finish_pending(recognizer, *request_finish(recognizer, state))
    return state, events + more


def drain(recognizer: Recognizer, state: StreamState, final: bool,
          finish_pending: PendingFinalHandler = run_pending_final) -> StreamStep:
    events: list[StreamEvent] = []
    while True:
        chunk, state = next_chunk(state, final)
        if chunk is None:
            return state, events
        [(posteriors, encoded, encoder_state)] = recognizer.encode_chunks([chunk], [state.encoder],
                                                                          [search_locale(state)])
        state, more = finish_pending(recognizer, *apply_chunk(recognizer, state, posteriors, encoded, encoder_state))
        events += more
