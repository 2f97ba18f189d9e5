"""The engine: offline transcription returns timed, confident tokens; the streaming path gives the same finals as
offline decoding at the same chunk size; long recordings are cut at silences; endpointing splits segments."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.decoding.results import join_texts
from model.frontend.features import SAMPLE_RATE
from model.frontend.segmenter import AudioSpan, SegmenterOptions, speech_spans, split_at_silences
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.recognition.stream_decoder import EndpointConfig, FinalEvent, PartialEvent, decode_stream_offline


@pytest.fixture(scope="module")
def recognizer(tiny_loaded):
    return Recognizer(tiny_loaded)


def noise_burst(seconds: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return torch.from_numpy((0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.3 * rng.standard_normal())) +
                             0.1 * rng.standard_normal(len(t))).astype(np.float32))


def test_offline_transcript_has_timed_tokens_and_confidences(recognizer):
    transcript = recognizer.transcribe(noise_burst(2.0, 0), DecodeOptions(locale="zh-CN", nbest=3))
    assert transcript.locale == "zh-CN" and transcript.duration_s == pytest.approx(2.0)
    for segment in transcript.segments:
        assert 0 <= segment.start_s <= segment.end_s <= 2.0 + 1e-6
        assert len(segment.alternatives) <= 3
        for token in segment.tokens:
            assert segment.start_s <= token.start_s < token.end_s <= segment.end_s + 0.05
            assert 0.0 <= token.confidence <= 1.0


def test_auto_locale_reports_a_probability(recognizer):
    transcript = recognizer.transcribe(noise_burst(1.0, 1), DecodeOptions(locale=None))
    assert transcript.locale in recognizer.locales
    assert 0.0 < transcript.locale_probability <= 1.0


@pytest.mark.parametrize("chunk_frames", [4, 8])
def test_streamed_finals_equal_offline_decoding_at_the_same_chunk_size(recognizer, chunk_frames):
    audio = noise_burst(3.3, 2)
    options = DecodeOptions(locale="en-US", nbest=2, chunk_frames=chunk_frames)
    offline = recognizer.transcribe(audio, options)
    never = EndpointConfig(min_trailing_silence_s=1e9, max_silence_without_speech_s=1e9, max_segment_s=1e9)
    _, events = decode_stream_offline(recognizer, audio, options, chunk_frames, never, piece_samples=1234)
    finals = [e for e in events if isinstance(e, FinalEvent)]
    assert len(finals) == 1 and offline.text  # a random model still emits tokens, so this compares something
    assert finals[0].segment.text == offline.text
    assert [t.text for t in finals[0].segment.tokens] == [t.text for s in offline.segments for t in s.tokens]
    assert any(isinstance(e, PartialEvent) for e in events)


@pytest.mark.parametrize("chunk_frames", [4, 16])
def test_full_context_finals_equal_the_upload_of_the_same_audio(recognizer, chunk_frames):
    """With `full_context_finals` a stream's final is its segment decoded again at full context: text, tokens and
    their times are what an upload of the same audio gives, whatever the chunk size and however the audio arrives."""
    audio = noise_burst(3.3, 2)
    offline = recognizer.transcribe(audio, DecodeOptions(locale="en-US", nbest=2))
    never = EndpointConfig(min_trailing_silence_s=1e9, max_silence_without_speech_s=1e9, max_segment_s=1e9)
    options = DecodeOptions(locale="en-US", nbest=2, full_context_finals=True)
    _, events = decode_stream_offline(recognizer, audio, options, chunk_frames, never, piece_samples=1234)
    [final] = [e for e in events if isinstance(e, FinalEvent)]
    assert offline.text and final.segment.text == offline.text
    [segment] = offline.segments
    def timed(tokens: tuple) -> list[tuple]:
        return [(t.text, t.start_s, t.end_s) for t in tokens]
    assert timed(final.segment.tokens) == timed(segment.tokens)
    assert [a.text for a in final.segment.alternatives] == [a.text for a in segment.alternatives]
    streamed = decode_stream_offline(recognizer, audio, replace(options, full_context_finals=False), chunk_frames,
                                     never)[1]
    assert [e.text for e in events if isinstance(e, PartialEvent)] == [e.text for e in streamed
                                                                       if isinstance(e, PartialEvent)]


def test_a_full_context_final_that_hears_nothing_keeps_the_streaming_final(recognizer, monkeypatch):
    """A client that saw partials of a segment gets its final: where the second pass hears nothing, the streaming
    pass's final stands."""
    import model.recognition.stream_decoder as stream_decoder

    audio = noise_burst(3.3, 2)
    never = EndpointConfig(min_trailing_silence_s=1e9, max_silence_without_speech_s=1e9, max_segment_s=1e9)
    options = DecodeOptions(locale="en-US", nbest=2)
    streamed = decode_stream_offline(recognizer, audio, options, 8, never)[1]
    monkeypatch.setattr(stream_decoder, "full_context_final", lambda *args: [])
    second = decode_stream_offline(recognizer, audio, replace(options, full_context_finals=True), 8, never)[1]
    [final] = [e for e in streamed if isinstance(e, FinalEvent)]
    assert final.segment.text and [e for e in second if isinstance(e, FinalEvent)] == [final]


def test_a_locale_switch_at_a_full_context_final_searches_the_streaming_segment_again_only_for_the_fallback(
        bundled_samples, monkeypatch):
    """Cantonese, a pause, then English, streamed with `auto`: at the English segment's final the stream switches
    from Cantonese to English. Without the second pass the streaming segment is searched again as English; with it,
    that search would be thrown away, so it is made only where the second pass hears nothing and its fallback, the
    streaming final, is taken: then the final is the one a stream without the second pass gives."""
    from model.network.checkpoint import load_checkpoint
    import model.recognition.stream_decoder as stream_decoder
    from helpers import read_mono16k, with_pauses

    recognizer = Recognizer(load_checkpoint())
    cantonese = next(s for s in bundled_samples if s["locale"] == "yue-HK")
    english = next(s for s in bundled_samples if s["locale"] == "en-US")
    audio = torch.from_numpy(with_pauses([read_mono16k(cantonese["path"]), read_mono16k(english["path"])], pause_s=1.5))
    whole_segment_searches = []
    search = stream_decoder.prefix_beam_search

    def counting_search(log_probs, previous, *args):
        whole_segment_searches.extend([1] if previous is None else [])
        return search(log_probs, previous, *args)

    def spoken_finals(options: DecodeOptions) -> list[tuple[str, str]]:
        whole_segment_searches.clear()
        events = decode_stream_offline(recognizer, audio, options, 16)[1]
        return [(e.segment.locale, e.segment.text) for e in events if isinstance(e, FinalEvent) and e.segment.text]

    monkeypatch.setattr(stream_decoder, "prefix_beam_search", counting_search)
    streaming = spoken_finals(DecodeOptions(locale=None))
    assert [locale for locale, _ in streaming] == ["yue-HK", "en-US"]
    assert len(whole_segment_searches) == 2  # auto settling on Cantonese, then the switch to English at the final
    second_pass = DecodeOptions(locale=None, full_context_finals=True)
    assert [locale for locale, _ in spoken_finals(second_pass)] == ["yue-HK", "en-US"]
    assert len(whole_segment_searches) == 1  # only the settling, which the partials show
    monkeypatch.setattr(stream_decoder, "full_context_final", lambda *args: [])
    assert spoken_finals(DecodeOptions(locale=None, full_context_finals=True)) == streaming
    assert len(whole_segment_searches) == 2


def test_full_context_finals_of_endpointed_speech_read_as_the_upload_does(bundled_samples):
    """The bundled model, samples with silence around them streamed in 640 ms chunks with endpointing: each
    final decoded again from its segment's audio says what the upload of that sample says, at the same word times
    (the segment's audio starts on the stream's timeline, after the leading silence)."""
    import soundfile

    from model.network.checkpoint import load_checkpoint

    recognizer = Recognizer(load_checkpoint())
    silence = torch.zeros(SAMPLE_RATE)
    for sample in bundled_samples[::3]:
        speech = torch.from_numpy(soundfile.read(sample["path"], dtype="float32")[0])
        audio = torch.cat([silence, speech, silence, silence])
        options = DecodeOptions(locale=sample["locale"], full_context_finals=True)
        upload = recognizer.transcribe(audio, replace(options, full_context_finals=False))
        _, events = decode_stream_offline(recognizer, audio, options, 16)
        finals = [e.segment for e in events if isinstance(e, FinalEvent) and e.segment.text]
        assert join_texts([f.text for f in finals]) == upload.text != ""
        streamed_words = [(w.text, round(w.start_s, 2)) for f in finals for w in f.words]
        upload_words = [(w.text, round(w.start_s, 2)) for s in upload.segments for w in s.words]
        assert [w for w, _ in streamed_words] == [w for w, _ in upload_words]
        assert all(abs(a - b) <= 0.08 for (_, a), (_, b) in zip(streamed_words, upload_words))  # 2 encoder frames


def test_long_recordings_are_cut_at_silences():
    speech, pause = noise_burst(8.0, 3), torch.zeros(SAMPLE_RATE // 2)
    audio = torch.cat([speech, pause, speech, pause, speech])  # 25 s with two half-second pauses
    spans = split_at_silences(audio, SegmenterOptions(max_segment_s=20.0))
    assert len(spans) == 2
    assert spans[0].start == 0 and spans[-1].end == len(audio)
    cut = spans[0].end / SAMPLE_RATE
    assert 16.0 <= cut <= 17.0  # inside the second pause
    assert all((s.end - s.start) / SAMPLE_RATE <= 20.0 for s in spans)


def test_a_span_keeps_a_quarter_second_of_the_silence_at_either_end_and_a_silent_one_stays_whole():
    speech = noise_burst(2.0, 5)
    audio = torch.cat([torch.zeros(2 * SAMPLE_RATE), speech, torch.zeros(SAMPLE_RATE)])
    options = SegmenterOptions()
    (span,) = speech_spans(audio, split_at_silences(audio, options), options)
    kept = int(options.kept_silence_s * SAMPLE_RATE)
    assert (span.start, span.end) == (2 * SAMPLE_RATE - kept, 4 * SAMPLE_RATE + kept)
    silence = torch.zeros(SAMPLE_RATE)
    assert speech_spans(silence, [AudioSpan(0, SAMPLE_RATE)], options) == [AudioSpan(0, SAMPLE_RATE)]


def test_hour_long_silence_free_audio_is_hard_cut(recognizer):
    spans = split_at_silences(noise_burst(61.0, 4), SegmenterOptions(max_segment_s=20.0))
    assert [round((s.end - s.start) / SAMPLE_RATE) for s in spans] == [20, 20, 20, 1]


def test_rescoring_keeps_first_pass_ranking_beyond_the_decoders_positions(tiny_loaded):
    from model.decoding.rescoring import rescore
    from model.decoding.search import Hypothesis, TokenTiming

    too_long = Hypothesis(tuple(TokenTiming(5, i, i, 0.9) for i in range(600)), -10.0)
    short = Hypothesis((TokenTiming(6, 0, 0, 0.9),), -12.0)
    ranked = rescore(tiny_loaded.model, torch.zeros(700, 64), [too_long, short], start_id=3)
    assert [r.hypothesis for r in ranked] == [too_long, short]


def test_prefix_tree_rescoring_equals_scoring_each_hypothesis_alone(tiny_loaded):
    """The n-best scored as one prefix tree (shared prefixes and memory computed once) == the padded batch."""
    import torch.nn.functional as F

    from model.decoding.rescoring import attention_log_probs
    from model.decoding.search import Hypothesis, TokenTiming
    from model.network.decoder import decoder_io

    model = tiny_loaded.model
    torch.manual_seed(3)
    base = torch.randint(4, model.config.vocab_size, (12,)).tolist()
    sequences = [base, base[:-1], base[:-2] + [5], base[:6] + base[7:], [9], base]  # shared prefixes, a duplicate
    hypotheses = [Hypothesis(tuple(TokenTiming(t, 0, 0, 0.9) for t in s), 0.0) for s in sequences]
    encoded = torch.randn(37, model.config.encoder.d_model)
    inputs, outputs, lengths = decoder_io(sequences, [3] * len(sequences))
    with torch.no_grad():
        logits = model.decoder(inputs, lengths, encoded[None].expand(len(sequences), -1, -1),
                               torch.full((len(sequences),), encoded.shape[0]))
    picked = F.log_softmax(logits, dim=-1).gather(-1, outputs.clamp(min=0)[..., None])[..., 0]
    expected = picked.masked_fill(outputs < 0, 0.0).sum(dim=-1)
    torch.testing.assert_close(torch.tensor(attention_log_probs(model, encoded, hypotheses, 3)), expected,
                               atol=1e-4, rtol=1e-5)


def test_the_finals_ranking_weighs_decoder_ctc_lm_and_length_as_tuned_on_dev(tiny_loaded):
    """A final ranks its n-best by decoder + ctc * CTC + lm * LM fusion score + length * tokens (+ hotword bias);
    the dev tuning ranks the decoded n-best again under each candidate weighting, without decoding, and keeps the
    one with the fewest errors, the default (WeNet's decoder + 0.5 CTC) where it ties."""
    from model.corpus.manifest import Utterance
    from model.decoding.rescoring import RescoredHypothesis, RescoreWeights, rescore
    from model.decoding.search import Hypothesis, TokenTiming
    from model.evaluation.evaluate import tune_rescoring

    tokenizer = tiny_loaded.tokenizer
    def hypothesis(text: str, ctc: float, lm: float) -> Hypothesis:
        return Hypothesis(tuple(TokenTiming(t, 0, 0, 0.9) for t in tokenizer.encode(text)), ctc, lm_score=lm)

    # The decoder and CTC prefer a sound-alike (去 for 气: both among the tiny model's characters); the LM knows better.
    heard, meant = hypothesis("天去", -2.0, -10.0), hypothesis("天气", -2.5, -9.0)
    segment = [RescoredHypothesis(heard, -3.0, 0.0), RescoredHypothesis(meant, -4.0, 0.0)]
    assert RescoreWeights().score(heard, -3.0) == -3.0 - 0.5 * 2.0 - 10.0 > RescoreWeights().score(meant, -4.0)
    assert RescoreWeights(lm=2.0).score(meant, -4.0) > RescoreWeights(lm=2.0).score(heard, -3.0)
    utterance = Utterance("u", "", "天气", "zh-CN", "s", 1.0)
    recognizer = Recognizer(tiny_loaded)
    default, heavier_lm = RescoreWeights(), RescoreWeights(0.5, 2.0, 0.0)
    assert tune_rescoring(recognizer, [utterance], [[segment]], (default, heavier_lm)) == (heavier_lm, 0.0)
    chosen = tune_rescoring(recognizer, [replace(utterance, text="天去")], [[segment]], (default, heavier_lm))
    assert chosen == (default, 0.0)
    # rescore() applies the weights to the decoder's own scores: a large length weight ranks the longest first.
    model = tiny_loaded.model
    short, long = (Hypothesis(tuple(TokenTiming(t, 0, 0, 0.9) for t in ids), 0.0) for ids in ([5], [5, 6, 7, 8]))
    ranked = rescore(model, torch.randn(20, model.config.encoder.d_model), [short, long], 3,
                     RescoreWeights(length=100.0))
    assert ranked[0].hypothesis == long and ranked[0].score == pytest.approx(ranked[0].attention_log_prob + 400.0)


def test_rescoring_within_a_locale_normalises_the_decoder_over_its_tokens_only(tiny_loaded):
    """With the locale's token mask, the decoder's output layer computes only the locale's rows (and the
    hypotheses' tokens and end-of-sentence): each hypothesis scores what a softmax over those rows gives, which
    is at least the full softmax's score; an all-True mask changes nothing."""
    import torch.nn.functional as F

    from model.decoding.rescoring import ancestors_mask, attention_log_probs, prefix_tree
    from model.decoding.search import Hypothesis, TokenTiming
    from model.text.tokenizer import SOS_EOS_ID

    model = tiny_loaded.model
    torch.manual_seed(4)
    allowed = model.locale_token_mask[tiny_loaded.tokenizer.locales.index("en-US")]
    english = allowed.nonzero()[:, 0]
    english = english[english > SOS_EOS_ID]
    sequences = [english[:5].tolist(), english[:4].tolist() + [english[6].item()],
                 [english[2].item(), 7]]  # 7: not English
    hypotheses = [Hypothesis(tuple(TokenTiming(t, 0, 0, 0.9) for t in s), 0.0) for s in sequences]
    encoded = torch.randn(29, model.config.encoder.d_model)
    full = attention_log_probs(model, encoded, hypotheses, 3)
    assert attention_log_probs(model, encoded, hypotheses, 3, torch.ones_like(allowed)) == pytest.approx(full, abs=1e-5)
    restricted = attention_log_probs(model, encoded, hypotheses, 3, allowed)
    assert all(r >= f - 1e-6 for r, f in zip(restricted, full)) and restricted != pytest.approx(full, abs=1e-3)

    vocabulary = allowed.clone()  # the same numbers by hand: a softmax over the kept rows
    vocabulary[[SOS_EOS_ID, 7]] = True
    tree = prefix_tree([[3, *s] for s in sequences])
    with torch.no_grad():
        logits = model.decoder.forward_tree(torch.tensor(tree.tokens), torch.tensor(tree.depths),
                                            ancestors_mask(tree.parents), encoded)
    log_probs = F.log_softmax(logits.masked_fill(~vocabulary, float("-inf")), dim=-1)
    expected = [float(log_probs[torch.tensor(path), torch.tensor([*s, SOS_EOS_ID])].sum())
                for s, path in zip(sequences, tree.paths)]
    assert restricted == pytest.approx(expected, abs=1e-4)


def test_half_precision_decodes_like_float32():
    """The GPU serving dtype (float16, service/loading.py) through the same code on CPU: offline texts at full
    context and at 640 ms chunks are float32's up to a rare beam decision that rounding flips (under 5% of the
    characters/words), and a batched streaming step of two streams stays close to float32 and keeps its cache in
    float16. (CUDA kernels themselves need a GPU.)"""
    import json
    from pathlib import Path

    from model.accuracy.scoring import count_errors
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from model.network.encoder import chunk_feature_frames
    from model.recognition.recognizer import DecodeOptions, Recognizer
    from model.recognition.streaming import AudioChunk, chunk_samples

    samples = Path("model/samples")
    rows = [json.loads(line) for line in (samples / "samples.jsonl").read_text().splitlines()]
    full = Recognizer(load_checkpoint(DEFAULT_CHECKPOINT))
    half = Recognizer(load_checkpoint(DEFAULT_CHECKPOINT), dtype=torch.float16)
    audio = [load_audio_file(str(samples / row["audio"])) for row in rows]
    for chunk_frames in (None, 16):
        options = [DecodeOptions(locale=row["locale"], chunk_frames=chunk_frames) for row in rows]
        pairs = zip(full.transcribe_batch(audio, options), half.transcribe_batch(audio, options), rows)
        counts = [count_errors(a.text, b.text, row["locale"]) for a, b, row in pairs]
        assert sum(c.errors for c in counts) <= 0.05 * sum(c.reference_units for c in counts)
        assert sum(c.errors == 0 for c in counts) >= len(counts) - 2
    for recording, row in zip(audio, rows):  # locale detection: float32 pooled sums into the float16 head
        assert half.transcribe(recording, DecodeOptions(locale=None)).locale == row["locale"]

    chunks = [AudioChunk(a[: chunk_samples(16)], chunk_feature_frames(16)) for a in audio[:2]]
    locales = [row["locale"] for row in rows[:2]]
    outputs = {}
    for name, recognizer in (("full", full), ("half", half)):
        states = [recognizer.initial_encoder_state() for _ in chunks]
        outputs[name] = recognizer.encode_chunks(chunks, states, locales)
    for (_, enc32, state32), (_, enc16, state16) in zip(outputs["full"], outputs["half"]):
        assert state16.cache.dtype == torch.float16 and state32.cache.dtype == torch.float32
        assert (enc16.float() - enc32).abs().max() < 0.05 * enc32.abs().max()


def test_silence_before_speech_leaves_a_stream_no_context(bundled_samples):
    """Four 640 ms chunks of a quiet room, then a sample: each chunk that hears nothing starts the encoder afresh, so
    the sample is heard as it is heard alone, its words 2.56 s later (a chunk's features near its start aside)."""
    import soundfile

    from model.network.checkpoint import load_checkpoint

    recognizer = Recognizer(load_checkpoint())
    room = 0.003 * torch.randn(4 * 16 * 640, generator=torch.Generator().manual_seed(0))
    for sample in bundled_samples[::3]:
        speech = torch.from_numpy(soundfile.read(sample["path"], dtype="float32")[0])
        heard = []
        for audio in (speech, torch.cat([room, speech])):
            _, events = decode_stream_offline(recognizer, audio, DecodeOptions(locale=sample["locale"]), 16)
            heard.append([(w.text, w.start_s) for e in events if isinstance(e, FinalEvent) for w in e.segment.words])
        alone, after_room = heard
        assert [w for w, _ in after_room] == [w for w, _ in alone] != []
        assert all(abs(late - (early + 2.56)) <= 0.08 for (_, early), (_, late) in zip(alone, after_room))


def test_a_spans_locale_weighs_what_it_said(tiny_loaded):
    """`auto`: each locale's LM probability of the words heard with no locale imposed weighs in beside the locale
    head, whatever the head made of the voice."""
    recognizer = Recognizer(tiny_loaded)
    silence = torch.zeros(tiny_loaded.model.config.encoder.d_model)
    for locale, text in (("yue-HK", "我哋去食飯"), ("en-US", "the cat sat on the mat"), ("zh-CN", "今天天气很好")):
        said = tiny_loaded.tokenizer.encode(text)
        assert recognizer.detect_locale(silence, 1, said)[0] == locale
    assert recognizer.text_evidence(()).tolist() == [0.0, 0.0, 0.0]


def test_an_auto_stream_settles_on_its_locale_within_two_chunks_of_speech_after_any_silence(bundled_samples):
    """The locale evidence starts with speech: after 3 s of near-silence, the bundled model still settles on the
    sample's locale within two 640 ms chunks of speech, and its final is decoded as that locale."""
    import soundfile

    from model.network.checkpoint import load_checkpoint
    from model.recognition.stream_decoder import accept_samples, drain, finish_stream, new_stream

    recognizer = Recognizer(load_checkpoint())
    chunk = 16 * 640  # samples in 640 ms
    for sample in bundled_samples[::4]:
        speech = torch.from_numpy(soundfile.read(sample["path"], dtype="float32")[0])
        audio = torch.cat([0.003 * torch.randn(3 * SAMPLE_RATE, generator=torch.Generator().manual_seed(0)), speech])
        state, settled_at = new_stream(recognizer, DecodeOptions(locale=None), 16), None
        for start in range(0, len(audio), chunk):
            state, _ = drain(recognizer, accept_samples(state, audio[start : start + chunk]), final=False)
            if state.detected_locale is not None and settled_at is None:
                settled_at = (start + chunk) / SAMPLE_RATE
        state, _ = drain(recognizer, state, final=True)
        _, events = finish_stream(recognizer, state)
        assert state.detected_locale == sample["locale"] and settled_at is not None
        assert settled_at <= 3.0 + 3 * 0.64  # two chunks of speech, plus the one the speech began in
        assert [e.segment.locale for e in events if isinstance(e, FinalEvent)] == [sample["locale"]]


def test_the_partial_of_the_chunk_where_auto_decides_is_the_named_locale_partial(bundled_samples):
    """On the chunk where an `auto` stream becomes sure of its locale, the segment is searched once, as that
    locale, from its start (not first without the locale and then again): its partial, and every later one, is
    what a stream with the locale named gives."""
    import soundfile

    from model.network.checkpoint import load_checkpoint
    from model.recognition.stream_decoder import accept_samples, drain, new_stream

    recognizer = Recognizer(load_checkpoint())
    chunk = 16 * 640
    for sample in bundled_samples[::4]:
        audio = torch.from_numpy(soundfile.read(sample["path"], dtype="float32")[0])
        auto = new_stream(recognizer, DecodeOptions(locale=None), 16)
        named = new_stream(recognizer, DecodeOptions(locale=sample["locale"]), 16)
        decided = False
        for start in range(0, len(audio) - chunk, chunk):
            auto, auto_events = drain(recognizer, accept_samples(auto, audio[start : start + chunk]), final=False)
            named, named_events = drain(recognizer, accept_samples(named, audio[start : start + chunk]), final=False)
            decided = decided or auto.detected_locale is not None
            if decided:
                assert auto.detected_locale == sample["locale"]
                assert [e.text for e in auto_events] == [e.text for e in named_events]
        assert decided


def test_words_join_english_pieces_and_keep_each_chinese_character(bundled_samples):
    """`words` are what a caption or an OpenAI `timestamp_granularities=word` client wants: an English word is its
    pieces joined (first piece's start, the least sure piece's confidence); Chinese has one word per character. A
    word ends after its last token (bench_timestamps measures how well). On the bundled model's own samples."""
    from model.decoding.results import WORD_END_EXTENSION_S
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import load_checkpoint

    bundled = Recognizer(load_checkpoint())
    for locale in ("en-US", "zh-CN"):
        sample = next(s for s in bundled_samples if s["locale"] == locale)
        (segment,) = bundled.transcribe(load_audio_file(sample["path"]), DecodeOptions(locale=locale)).segments
        words, tokens = segment.words, list(segment.tokens)
        if locale == "en-US":
            # some words have pieces
            assert [w.text for w in words] == segment.text.split() and len(tokens) > len(words)
        else:
            assert [w.text for w in words] == [t.text for t in tokens] == list(segment.text)
        for word, following in zip(words, [*words[1:], None]):  # each word covers the next run of tokens spelling it
            run = []
            while "".join(t.text for t in run) != word.text:
                run.append(tokens.pop(0))
            assert word.start_s == run[0].start_s and word.confidence == min(t.confidence for t in run)
            # ...and ends after its last token, by the rest of a syllable, up to the next word or the segment's end
            extension = WORD_END_EXTENSION_S["cjk" if locale == "zh-CN" else "other"]
            limit = following.start_s if following else segment.end_s
            assert word.end_s == pytest.approx(max(run[-1].end_s, min(limit, run[-1].end_s + extension)), abs=1e-6)
        assert not tokens


def test_a_bare_word_start_piece_begins_the_word_its_next_pieces_spell():
    """SentencePiece may spell a word as a bare "▁" and then pieces without a marker ("▁" + "x" + "y"): the word
    is "xy", from the bare piece's start; a bare piece at the end of a segment adds no empty word."""
    from model.decoding.rescoring import RescoredHypothesis
    from model.decoding.results import token_results, word_results
    from model.decoding.search import Hypothesis, TokenTiming
    from model.network.checkpoint import load_checkpoint

    tokenizer = load_checkpoint().tokenizer
    pieces = ["▁the", "▁", "x", "y", "你", "▁"]
    timings = tuple(TokenTiming(tokenizer.token_to_id[p], 2 * i, 2 * i + 1, 0.9 - 0.1 * i)
                    for i, p in enumerate(pieces))
    ranked = RescoredHypothesis(Hypothesis(timings, 0.0), 0.0, 0.0)
    words = word_results(tokenizer, ranked, token_results(tokenizer, ranked, 0.0), segment_end_s=0.5)
    assert [(w.text, w.start_s, w.end_s, w.confidence) for w in words] == [
        ("the", 0.0, 0.08, 0.9), ("xy", 0.08, 0.32, 0.6), ("你", 0.32, 0.5, 0.5)]  # 你 runs on to the segment's end


def test_hotwords_are_written_as_transcripts_are_and_join_the_requests_lexicon():
    """Callers write hotwords as names are written ("Kubernetes", "PayPal", "北京，天安门"); the tokenizer only has
    pieces for normalised text, so encoded as given a capital or a comma is <unk> and the phrase never matches
    (capitalised hotwords used to do nothing). They are normalised first, phrases the model cannot spell are
    dropped, and their words count as lexicon words for that request only."""
    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer
    from model.text.tokenizer import UNK_ID

    recognizer = Recognizer(load_checkpoint())
    options = DecodeOptions(locale="en-US",
                            hotwords=("Kubernetes", "PayPal support", "kubernetes", "北京，天安门", "Ʃ"))
    assert recognizer.hotword_phrases(options.hotwords) == ("kubernetes", "paypal support", "北京天安门")
    trie = recognizer.hotword_trie(options)
    lowered = recognizer.hotword_trie(DecodeOptions(hotwords=("kubernetes", "paypal support", "北京天安门")))
    assert trie == lowered and all(UNK_ID not in child for child in trie.children)
    penalty = recognizer.lm_fusion("en-US", options).lexicon
    assert "kubernetes" not in recognizer.lexicons["en-US"].words and "kubernetes" in penalty.request_words.words
    assert recognizer.lm_fusion("en-US", DecodeOptions(locale="en-US")).lexicon.request_words is None
    switched_off = DecodeOptions(locale="en-US", hotwords=("Kubernetes",), hotword_boost=0.0)
    assert recognizer.lm_fusion("en-US", switched_off).lexicon.request_words is None


def test_chinese_hotwords_heard_with_the_wrong_tone_are_written_as_asked():
    """Mandarin and Cantonese: a run of characters that sounds like a requested name but for the tones (or is a
    homophone of it) is written as the name, the same length, so token times hold; characters are compared by their
    usual reading only (的, usually de, is no 滴 di), single characters and other scripts are left alone."""
    from model.decoding.hotwords import correct_to_hotwords

    assert correct_to_hotwords("唔該幫我轉去講鐵客服", ("港鐵",), "yue-HK") == "唔該幫我轉去港鐵客服"  # gong3 for gong2
    assert correct_to_hotwords("我的每团账号被锁了", ("美团",), "zh-CN") == "我的美团账号被锁了"  # mei3 for mei2
    assert correct_to_hotwords("我的低低账号", ("滴滴",), "zh-CN") == "我的滴滴账号"
    assert correct_to_hotwords("今天天气很好", ("美团", "京", "iphone"), "zh-CN") == "今天天气很好"


def test_a_chinese_final_is_corrected_to_the_hotword_with_its_token_times():
    from model.decoding.search import Hypothesis, TokenTiming
    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer

    recognizer = Recognizer(load_checkpoint())
    ids = [recognizer.tokenizer.token_to_id[c] for c in "轉去講鐵客服"]
    heard = Hypothesis(tuple(TokenTiming(t, 2 * i, 2 * i + 1, 0.9) for i, t in enumerate(ids)), -3.0)
    twin_ids = ids[:2] + [recognizer.tokenizer.token_to_id["港"]] + ids[3:]  # one character already right
    twin = Hypothesis(tuple(TokenTiming(t, 2 * i, 2 * i + 1, 0.8) for i, t in enumerate(twin_ids)), -4.0)
    options = DecodeOptions(locale="yue-HK", hotwords=("港鐵",), rescore=False)
    [final] = recognizer.finalize(torch.zeros(12, 1), [heard, twin], "yue-HK", options)  # both become one
    assert recognizer.tokenizer.decode(final.hypothesis.token_ids) == "轉去港鐵客服"
    assert [(t.start_frame, t.end_frame, t.confidence) for t in final.hypothesis.tokens] == \
        [(t.start_frame, t.end_frame, t.confidence) for t in heard.tokens]
    unasked = recognizer.finalize(torch.zeros(12, 1), [heard], "yue-HK", DecodeOptions(locale="yue-HK", rescore=False))
    assert recognizer.tokenizer.decode(unasked[0].hypothesis.token_ids) == "轉去講鐵客服"
    switched_off = DecodeOptions(locale="yue-HK", hotwords=("港鐵",), hotword_boost=0.0, rescore=False)
    [kept] = recognizer.finalize(torch.zeros(12, 1), [heard], "yue-HK", switched_off)
    assert recognizer.tokenizer.decode(kept.hypothesis.token_ids) == "轉去講鐵客服"
