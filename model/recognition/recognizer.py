"""The shared recognition engine: weights, device, tokenizer and the batched compute steps. Thread-safe in the
sense that matters here: it holds no per-request state (WeNet's `DecodeResource`); per-stream state lives in
`model.recognition.stream_decoder.StreamState` and is passed in and returned.

Offline: `transcribe_batch` cuts each recording at silences, encodes all spans of all requests together (sorted
by length), decodes each span on its own (detecting its locale where asked: search, then rescoring) and merges each
recording's spans under the locale they vote for (`model.recognition.spans`). `transcribe_spans` does the same for
spans a caller has cut (the service's uploads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from model.decoding.hotwords import HotwordTrie, correct_to_hotwords, normalise_phrase
from model.decoding.lexicon import Lexicon, LexiconPenalty, phrase_lexicon
from model.decoding.lm import language_model
from model.decoding.rescoring import RescoredHypothesis, RescoreWeights, rescore
from model.decoding.results import Transcript, join_texts, segment_result
from model.decoding.search import (DEFAULT_BEAM_SIZE, BeamOptions, FramePosteriors, Hypothesis, LmFusion,
                                   beam_hypotheses, frame_posteriors, greedy_hypothesis, greedy_search,
                                   prefix_beam_search)
from model.frontend.features import SAMPLE_RATE, pad_features
from model.frontend.segmenter import AudioSpan, SegmenterOptions, speech_spans, split_at_silences
from model.network.checkpoint import LoadedModel
from model.network.encoder import ENCODER_FRAME_S, EncoderState, stack_states, unstack_states
from model.network.precision import Quantization, quantize_linear_layers
from model.recognition.options import DecodeOptions
from model.recognition.spans import HeardSpan, merge_spans
from model.recognition.streaming import AudioChunk, chunk_features
from model.text.locales import LOCALE_SURE_PROBABILITY, LOCALE_SWITCH_S
from model.text.normalize import is_chinese_locale
from model.text.tokenizer import BLANK_ID, is_cjk


# What the batched streaming step gives each stream: what the search reads of its CTC posteriors (C_valid frames),
# its encoder output (C_valid, D) and its next encoder state.
ChunkOutput = tuple[FramePosteriors, torch.Tensor, EncoderState]


@dataclass(frozen=True)
class FusionSetting:
    """LM shallow-fusion weight and length bonus of one locale, and the beam its search keeps (tuned on dev:
    model.evaluation.evaluate --tune-lm-on)."""

    weight: float
    bonus: float
    oov_penalty: float = 0.0  # per word outside the locale's lexicon (model.decoding.lexicon); 0: no spelling rule
    beam_size: int = DEFAULT_BEAM_SIZE
    rescore: RescoreWeights = RescoreWeights()  # how a final ranks the beam's n-best


@dataclass
class Recognizer:
    loaded: LoadedModel
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    # "int8": the model's linear layers quantised in place (model.network.precision; a float32 model on the CPU)
    quantization: Quantization = "none"
    segmenter: SegmenterOptions = field(default_factory=SegmenterOptions)
    max_batch_frames: int = 60_000  # feature frames per encoder batch (offline)

    def __post_init__(self) -> None:
        self.model = self.loaded.model.to(self.device, self.dtype).eval()
        quantize_linear_layers(self.model, self.quantization)
        self.tokenizer = self.loaded.tokenizer
        self.extractor = self.model.config.feature_extractor()
        self.locales = list(self.tokenizer.locales)
        self.language_models = {loc: language_model(p) for loc, p in self.loaded.language_models.items()}
        self.lexicons = {loc: Lexicon.from_payload(p["lexicon"])
                         for loc, p in self.loaded.language_models.items() if p.get("lexicon") is not None}
        self.token_pieces = tuple(self.tokenizer.token_text(i) for i in range(self.tokenizer.vocab_size))
        self._hotword_phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
        tuned = self.loaded.metadata.get("lm_fusion", {})
        self.default_fusion = FusionSetting(float(tuned.get("weight", 0.3)), float(tuned.get("bonus", 0.5)))
        self.fusion_settings = {loc: FusionSetting(float(v["weight"]), float(v["bonus"]),
                                                   float(v.get("oov_penalty", 0.0)),
                                                   int(v.get("beam_size", DEFAULT_BEAM_SIZE)),
                                                   RescoreWeights(**v.get("rescore", {})))
                                for loc, v in tuned.get("per_locale", {}).items()}

    # ------------------------------------------------------------------------------------------- shared pieces

    def locale_index(self, locale: str | None) -> int:
        return self.locales.index(locale) if locale in self.locales else -1

    def lm_fusion(self, locale: str | None, options: DecodeOptions) -> LmFusion | None:
        """The locale's n-gram LM with its tuned weight, bonus and out-of-lexicon penalty (a request's lm_weight
        overrides the weight); none for an undetected locale or when switched off."""
        setting = self.fusion_settings.get(locale, self.default_fusion)
        weight = setting.weight if options.lm_weight is None else options.lm_weight
        lm = self.language_models.get(locale) if locale else None
        if lm is None or weight <= 0:
            return None
        lexicon = self.lexicons.get(locale) if setting.oov_penalty > 0 else None
        if lexicon is None:
            return LmFusion(lm, weight, setting.bonus, None)
        # The request's hotwords are words of the lexicon for this request (LexiconPenalty.request_words).
        request_words = phrase_lexicon(self.hotword_phrases(options.hotwords)) if options.biases_hotwords else None
        penalty = LexiconPenalty(lexicon, self.token_pieces, setting.oov_penalty, request_words)
        return LmFusion(lm, weight, setting.bonus, penalty)

    def beam_options(self, locale: str | None, options: DecodeOptions) -> BeamOptions:
        """The request's beam, or the locale's tuned one (English subwords under a lexicon gain from a wider beam
        than Chinese characters do), never narrower than the n-best asked for."""
        size = options.beam_size or self.fusion_settings.get(locale, self.default_fusion).beam_size
        return BeamOptions(beam_size=max(size, options.nbest))

    def final_ranking(self, locale: str | None, options: DecodeOptions) -> RescoreWeights:
        """How a final ranks its n-best: the locale's tuned weights, or WeNet's rule where the request switches the LM
        off (the weights were tuned together with the locale's LM fusion, and weigh its score)."""
        if self.lm_fusion(locale, options) is None:
            return RescoreWeights()
        return self.fusion_settings.get(locale, self.default_fusion).rescore

    def decoding_settings(self, options: DecodeOptions = DecodeOptions()) -> dict[str, dict]:
        """Per locale, how a request with `options` is decoded (what `GET /v1/models` tells operators): the beam, the
        LM fusion (None: switched off) with the deployment text its LM was adapted to, and the weights by which a
        final ranks its n-best."""
        described = {}
        for locale in self.locales:
            fusion = self.lm_fusion(locale, options)
            described[locale] = {
                "beam_size": self.beam_options(locale, options).beam_size,
                "lm_fusion": None if fusion is None else {
                    "order": fusion.lm.order, "weight": fusion.weight, "length_bonus": fusion.bonus,
                    "out_of_lexicon_penalty": fusion.lexicon.penalty if fusion.lexicon else None,
                    "domain_adaptation": fusion.lm.adaptation},  # model.decoding.adaptation; None: not adapted
                "final_ranking": asdict(self.final_ranking(locale, options)),
            }
        return described

    def hotword_trie(self, options: DecodeOptions) -> HotwordTrie | None:
        phrases = [self.tokenizer.encode(p) for p in self.hotword_phrases(options.hotwords)]
        return HotwordTrie.build(phrases, options.hotword_boost) if phrases else None

    def hotword_phrases(self, hotwords: tuple[str, ...]) -> tuple[str, ...]:
        """The request's hotwords as transcripts write them (`normalise_phrase`), those the tokenizer can spell (a
        phrase with a character outside the model's tokens could never be matched), duplicates dropped. Memoised:
        the search asks again on every chunk of a stream."""
        phrases = self._hotword_phrases.get(hotwords)  # search threads share it: read once, write whole values
        if phrases is None:
            normalised = (normalise_phrase(p) for p in hotwords)
            phrases = tuple(dict.fromkeys(p for p in normalised if p and self.tokenizer.can_spell(p)))
            if len(self._hotword_phrases) >= 1024:
                self._hotword_phrases.clear()
            self._hotword_phrases[hotwords] = phrases
        return phrases

    @torch.no_grad()
    def detect_locale(self, encoded_sum: torch.Tensor, frames: int, heard: Sequence[int] = ()) -> tuple[str, float]:
        """The locale of `frames` encoder frames (their sum) and its probability: the locale head's posterior times
        each locale's LM probability of `heard`, what the model wrote with no locale imposed (`heard_tokens`). The
        head alone reads the voice, and learned it from synthesisers: it takes Kokoro's Mandarin for Cantonese and,
        after a second or two of a quiet room, nearly everything for Mandarin. What the words are is evidence it
        lacks: Cantonese writes 嘅, 係 and 唔 where Mandarin writes 的, 是 and 不, and neither LM has English."""
        log_probs = self.model.locale_log_probs(encoded_sum[None].float(),
                                                torch.tensor([frames], device=encoded_sum.device))[0].cpu()
        if heard:
            log_probs = torch.log_softmax(log_probs + self.text_evidence(heard), dim=-1)
        probability, index = log_probs.exp().max(dim=-1)
        return self.locales[int(index)], float(probability)

    def text_evidence(self, tokens: Sequence[int]) -> torch.Tensor:
        """(G,) log-probability of `tokens` under each locale's LM (0 where a locale has none)."""
        scores = []
        for locale in self.locales:
            lm = self.language_models.get(locale)
            scores.append(0.0 if lm is None else
                          sum(lm.log_prob_after(lm.context_of(tokens[:k]), token) for k, token in enumerate(tokens)))
        return torch.tensor(scores)

    @torch.no_grad()
    def heard_tokens(self, encoded: torch.Tensor) -> tuple[int, ...]:
        """The best path of the CTC head over (S, D) encoder frames with no locale's mask, collapsed: what the model
        hears when no locale is imposed on it."""
        if encoded.shape[0] == 0:
            return ()
        best = self.ctc_log_probs(encoded, None).argmax(dim=-1).tolist()
        return tuple(label for k, label in enumerate(best) if label != BLANK_ID and (k == 0 or label != best[k - 1]))

    @torch.no_grad()
    def ctc_log_probs(self, encoded: torch.Tensor, locale: str | None) -> torch.Tensor:
        """(S, D) -> (S, V) on CPU, restricted to the locale's tokens when it is known."""
        locale_ids = torch.tensor([self.locale_index(locale)], device=encoded.device)
        return self.model.ctc_log_probs(encoded[None], locale_ids)[0].float().cpu()

    def search(self, log_probs: torch.Tensor, locale: str, options: DecodeOptions, trie: HotwordTrie | None,
               fusion: LmFusion | None = None) -> list[Hypothesis]:
        if options.nbest == 1 and trie is None and fusion is None and not options.rescore:
            return [greedy_hypothesis(greedy_search(log_probs))]
        beam = self.beam_options(locale, options)
        return beam_hypotheses(prefix_beam_search(log_probs, None, beam, trie, fusion), trie, final=True, fusion=fusion)

    def finalize(self, encoded: torch.Tensor, hypotheses: list[Hypothesis], locale: str,
                 options: DecodeOptions) -> list[RescoredHypothesis]:
        if options.rescore and len(hypotheses) > 1:
            allowed = self.model.locale_token_mask[self.locales.index(locale)]  # normalised like the first pass
            ranked = rescore(self.model, encoded.to(self.dtype), hypotheses, self.tokenizer.locale_start_id(locale),
                             self.final_ranking(locale, options), allowed=allowed)
        else:
            ranked = [RescoredHypothesis(h, 0.0, h.score) for h in hypotheses]
        return self.corrected_to_hotwords(ranked, locale, options)

    def corrected_to_hotwords(self, ranked: list[RescoredHypothesis], locale: str,
                              options: DecodeOptions) -> list[RescoredHypothesis]:
        """Chinese finals: a run of characters that sounds like one of the request's hotwords but for the tones is
        written as the hotword (`correct_to_hotwords`), token times and scores kept; n-best entries that become
        the same are kept once."""
        if not options.biases_hotwords or not is_chinese_locale(locale):
            return ranked
        phrases = self.hotword_phrases(options.hotwords)
        corrected, seen = [], set()
        for entry in ranked:
            hypothesis = replace(entry.hypothesis,
                                 tokens=corrected_tokens(entry.hypothesis.tokens, self.tokenizer, phrases, locale))
            if hypothesis.token_ids not in seen:
                seen.add(hypothesis.token_ids)
                corrected.append(replace(entry, hypothesis=hypothesis))
        return corrected

    def decode_segment(self, encoded: torch.Tensor, locale: str, options: DecodeOptions,
                       trie: HotwordTrie | None) -> list[RescoredHypothesis]:
        """Both passes over one segment's encoder output (S, D): the search under the locale's tokens, LM and the
        hotwords, then attention rescoring of its n-best. Nothing for a segment without frames."""
        if not encoded.shape[0]:
            return []
        hypotheses = self.search(self.ctc_log_probs(encoded, locale), locale, options, trie,
                                 self.lm_fusion(locale, options))
        return self.finalize(encoded, hypotheses, locale, options) if hypotheses else []

    # ------------------------------------------------------------------------------------------------ offline

    @torch.no_grad()
    def encode_segments(self, segments: list[torch.Tensor], chunk_frames: int | None) -> list[torch.Tensor]:
        """Waveforms -> encoder outputs (S_i, D), batched by length."""
        features = [self.extractor(s) for s in segments]
        order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
        outputs: list[torch.Tensor | None] = [None] * len(features)
        left = self.model.config.encoder.left_context_frames if chunk_frames else None
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and features[order[end]].shape[0] * (end - start + 1) <= self.max_batch_frames:
                end += 1
            batch, lengths = pad_features([features[i] if features[i].shape[0]
                                           else torch.zeros(1, features[i].shape[1]) for i in order[start:end]])
            encoded, encoded_lengths = self.model.encode(batch.to(self.device, self.dtype), lengths.to(self.device),
                                                         chunk_frames, left)
            for row, index in enumerate(order[start:end]):
                outputs[index] = encoded[row, : int(encoded_lengths[row])]
            start = end
        return outputs  # type: ignore[return-value]

    def transcribe_batch(self, recordings: list[torch.Tensor], options: list[DecodeOptions]) -> list[Transcript]:
        """Many recordings (16 kHz mono) at once, each with its own options: each cut at silences, every span of
        every recording decoded on its own (`span_transcript`), and each recording's spans merged with its locale
        voted (`model.recognition.spans.merge_spans`), as the service merges an upload's spans."""
        tries = {o: self.hotword_trie(o) for o in set(options)}
        encoded = self.encode_recordings(recordings, [o.chunk_frames for o in options])
        return [merge_spans([HeardSpan(span, self.span_transcript(span.end - span.start, enc, opts, tries[opts]))
                             for span, enc in spans], opts.locale, self.locales[0], len(recording) / SAMPLE_RATE)
                for recording, spans, opts in zip(recordings, encoded, options)]

    def transcribe_spans(self, spans: list[torch.Tensor], options: list[DecodeOptions]) -> list[Transcript]:
        """Spans of recordings that the caller has cut (the service cuts an upload at pauses, a call at its turns):
        each decoded whole, as one segment (`span_transcript`), all encoded in batches together."""
        tries = {o: self.hotword_trie(o) for o in set(options)}
        encoded = self.encode_spans(spans, [o.chunk_frames for o in options])
        return [self.span_transcript(len(s), e, o, tries[o]) for s, e, o in zip(spans, encoded, options)]

    def encode_recordings(self, recordings: list[torch.Tensor],
                          chunk_frames: list[int | None]) -> list[list[tuple[AudioSpan, torch.Tensor]]]:
        """Per recording, its spans cut at silences (`split_at_silences`: the one cut of the model's offline path),
        without the silence at their ends (`speech_spans`), each with its encoder output (at that recording's chunk
        size; None: full context): every recording's spans are encoded in batches together."""
        pieces = [(i, span) for i, r in enumerate(recordings)
                  for span in speech_spans(r, split_at_silences(r, self.segmenter), self.segmenter)]
        encoded = self.encode_spans([recordings[i][span.start : span.end] for i, span in pieces],
                                    [chunk_frames[i] for i, _ in pieces])
        return [[(span, enc) for (i, span), enc in zip(pieces, encoded) if i == request]
                for request in range(len(recordings))]

    def encode_spans(self, spans: list[torch.Tensor], chunk_frames: list[int | None]) -> list[torch.Tensor]:
        """Waveforms -> encoder outputs (S_i, D), one encoder batch per attention geometry (chunk size)."""
        encoded: list[torch.Tensor | None] = [None] * len(spans)
        for size in set(chunk_frames):
            rows = [n for n, frames in enumerate(chunk_frames) if frames == size]
            for n, output in zip(rows, self.encode_segments([spans[n] for n in rows], size)):
                encoded[n] = output
        return encoded  # type: ignore[return-value]

    def span_transcript(self, samples: int, encoded: torch.Tensor, options: DecodeOptions,
                        trie: HotwordTrie | None) -> Transcript:
        """One span (`samples` long, its encoder output (S, D)) decoded whole, as one segment timed from the span's
        start; under `auto` as the locale it is heard as. A span in which nothing is heard has no segment."""
        locale, probability = options.locale, None
        if locale is None:
            locale, probability = self.locales[0], 0.0
            if encoded.shape[0] > 0:
                locale, probability = self.detect_locale(encoded.float().sum(0), encoded.shape[0],
                                                         self.heard_tokens(encoded))
        ranked = self.decode_segment(encoded, locale, options, trie)
        duration_s = samples / SAMPLE_RATE
        segment = replace(segment_result(self.tokenizer, ranked, 0, 0.0, duration_s, options.nbest), locale=locale)
        return Transcript(join_texts([segment.text]), locale, probability, duration_s,
                          (segment,) if segment.text else ())

    def sure_locale(self, encoded: torch.Tensor, heard: Sequence[int]) -> tuple[str, float] | None:
        """`auto`, one segment of a stream, its encoder output (S, D): its own locale and probability when it is
        LOCALE_SWITCH_S or longer and surely that locale, which then decodes it whatever the stream's locale (a caller
        who changes language between utterances); else None. `heard`: what it said with no locale imposed
        (`heard_tokens`). (Offline, every span is decoded as its own locale.)"""
        if encoded.shape[0] * ENCODER_FRAME_S < LOCALE_SWITCH_S:
            return None
        locale, probability = self.detect_locale(encoded.float().sum(0), encoded.shape[0], heard)
        return (locale, probability) if probability >= LOCALE_SURE_PROBABILITY else None

    def transcribe(self, recording: torch.Tensor, options: DecodeOptions = DecodeOptions()) -> Transcript:
        return self.transcribe_batch([recording], [options])[0]

    # ---------------------------------------------------------------------------------------------- streaming

    def initial_encoder_state(self) -> EncoderState:
        return self.model.initial_state(1, self.device, self.dtype)

    @torch.no_grad()
    def encode_chunks(
        self, chunks: list[AudioChunk], states: list[EncoderState], locales: list[str | None]
    ) -> list[ChunkOutput]:
        """One batched streaming step over many streams (one chunk each, any ages), MFCC included; per stream, its
        `ChunkOutput`."""
        features = chunk_features(self.extractor, chunks).to(self.device, self.dtype)  # (B, 4C+3, F)
        lengths = torch.tensor([c.valid_frames for c in chunks], device=self.device)
        encoded, valid, state = self.model.encode_chunk(features, lengths, stack_states(states))
        locale_ids = torch.tensor([self.locale_index(loc) for loc in locales], device=self.device)
        log_probs = self.model.ctc_log_probs(encoded, locale_ids).float().cpu()
        frames = valid.tolist()
        posteriors = frame_posteriors(log_probs, frames)
        return [(posteriors[row], encoded[row, : frames[row]], next_state)
                for row, next_state in enumerate(unstack_states(state))]


def corrected_tokens(tokens: tuple, tokenizer, phrases: tuple[str, ...], locale: str) -> tuple:
    """`correct_to_hotwords` over each run of one-character Chinese tokens (a Latin piece breaks a run), each
    rewritten character taking the hotword character's token id and keeping its timing and confidence."""
    out, run = list(tokens), []
    for index in range(len(tokens) + 1):
        piece = tokenizer.token_text(tokens[index].token_id) if index < len(tokens) else ""
        if len(piece) == 1 and is_cjk(piece):
            run.append(index)
            continue
        if len(run) >= 2:
            text = "".join(tokenizer.token_text(tokens[i].token_id) for i in run)
            fixed = correct_to_hotwords(text, phrases, locale)
            for i, (before, after) in zip(run, zip(text, fixed)):
                if before != after:
                    out[i] = tokens[i]._replace(token_id=tokenizer.token_to_id[after])
        run = []
    return tuple(out)
