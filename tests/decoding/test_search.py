"""CTC search: greedy collapse and timings; prefix beam search is exact when nothing is pruned, incremental over
chunks, and hotwords lift a phrase in partial and final results."""

import math

import pytest
import torch
import torch.nn.functional as F

from model.decoding.hotwords import HotwordTrie
from model.decoding.search import (BeamOptions, beam_hypotheses, greedy_search, prefix_beam_search,
                                   reference_prefix_beam_search)

EXHAUSTIVE = BeamOptions(beam_size=10_000, token_candidates=100, min_token_log_prob=-math.inf, blank_skip_prob=1.0)


def one_hot_log_probs(frames: list[int], vocab: int = 6, peak: float = 0.9) -> torch.Tensor:
    probs = torch.full((len(frames), vocab), (1 - peak) / (vocab - 1))
    probs[torch.arange(len(frames)), torch.tensor(frames)] = peak
    return probs.log()


def test_greedy_collapses_repeats_and_blanks_with_timings():
    state = greedy_search(one_hot_log_probs([0, 3, 3, 0, 3, 4, 4, 0]))
    assert [t.token_id for t in state.tokens] == [3, 3, 4]
    assert [(t.start_frame, t.end_frame) for t in state.tokens] == [(1, 2), (4, 4), (5, 6)]
    assert all(abs(t.confidence - 0.9) < 1e-6 for t in state.tokens)


def test_greedy_is_incremental_across_chunk_boundaries():
    log_probs = one_hot_log_probs([0, 3, 3, 3, 0, 5, 5, 2])
    whole = greedy_search(log_probs)
    split = greedy_search(log_probs[3:], greedy_search(log_probs[:3]))
    assert whole.tokens == split.tokens and whole.last_id == split.last_id
    assert whole.log_prob == pytest.approx(split.log_prob)


def test_prefix_beam_search_probabilities_equal_ctc_forward_algorithm():
    torch.manual_seed(0)
    log_probs = torch.randn(7, 4).mul(2).log_softmax(-1)
    hypotheses = beam_hypotheses(prefix_beam_search(log_probs, options=EXHAUSTIVE))
    for hypothesis in hypotheses[:10]:
        labels = torch.tensor(hypothesis.token_ids or (1,))
        if not hypothesis.token_ids:
            expected = float(log_probs[:, 0].sum())
        else:
            expected = -float(F.ctc_loss(log_probs[:, None], labels[None], torch.tensor([7]),
                                         torch.tensor([len(labels)]), reduction="sum"))
        assert hypothesis.log_prob == pytest.approx(expected, abs=1e-4)
    total = math.log(sum(math.exp(h.log_prob) for h in hypotheses))
    assert total == pytest.approx(0.0, abs=1e-4)  # every label sequence, probabilities sum to one


def test_prefix_beam_search_is_incremental_across_chunks():
    torch.manual_seed(1)
    log_probs = torch.randn(40, 12).mul(3).log_softmax(-1)
    whole = beam_hypotheses(prefix_beam_search(log_probs))
    state = None
    for start in range(0, 40, 7):
        state = prefix_beam_search(log_probs[start : start + 7], state)
    chunked = beam_hypotheses(state)
    assert [h.token_ids for h in whole] == [h.token_ids for h in chunked]
    assert [h.log_prob for h in whole] == pytest.approx([h.log_prob for h in chunked])


def test_hotword_boost_promotes_a_phrase_and_refunds_unfinished_ones():
    # Frames favour token 3 slightly over 4 at two places; the hotword [4, 5] should win with a boost.
    log_probs = torch.tensor([
        [0.1, 0.0, 0.0, 0.5, 0.4, 0.0],
        [0.9, 0.0, 0.0, 0.05, 0.05, 0.0],
        [0.1, 0.0, 0.0, 0.0, 0.0, 0.9],
    ]).clamp(min=1e-6).log()
    plain = beam_hypotheses(prefix_beam_search(log_probs))[0]
    trie = HotwordTrie.build([[4, 5]], boost=1.5)
    biased = beam_hypotheses(prefix_beam_search(log_probs, trie=trie), trie, final=True)[0]
    assert plain.token_ids == (3, 5)
    assert biased.token_ids == (4, 5)
    # After only the first frame the partial already shows the hotword's first token.
    partial = beam_hypotheses(prefix_beam_search(log_probs[:1], trie=trie), trie)[0]
    assert partial.token_ids == (4,)


def test_hotword_trie_refunds_bonus_when_leaving_a_phrase():
    trie = HotwordTrie.build([[1, 2, 3]], boost=2.0)
    node, delta = trie.advance(0, 1)
    node, delta2 = trie.advance(node, 2)
    node, delta3 = trie.advance(node, 9)
    assert (delta, delta2, delta3) == (2.0, 2.0, -4.0) and node == 0


def test_the_search_builds_and_lm_scores_only_candidates_that_can_rank_and_ranks_as_if_it_scored_all():
    """An extension is built only if, with the largest LM step and hotword bonus any token can get, it could beat
    the floor its frame's kept prefixes guarantee, and a frame's candidates are LM-scored best-first only while one
    could still reach the beam: the same beams, scores and timings as building and scoring every candidate (the
    bundled English LM, lexicon and tuned wide beam on a bundled sample, streamed in 640 ms chunks, with a hotword),
    for about half the LM lookups. (The Python search, whose LM lookups a subclass can count; the compiled one
    prunes alike: the test below, and test_compiled_search.py.)"""
    from dataclasses import dataclass

    from model.decoding.search import LmFusion
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer

    calls = {"pruned": 0, "all": 0}

    @dataclass(frozen=True)
    class Counting(LmFusion):
        kind: str = "pruned"

        def token_score(self, prefix, token):
            calls[self.kind] += 1
            return super().token_score(prefix, token)

    recognizer = Recognizer(load_checkpoint())
    encoded = recognizer.encode_segments([load_audio_file("model/samples/en-US_0.wav")], 16)[0]
    log_probs = recognizer.ctc_log_probs(encoded, "en-US")
    tuned = recognizer.lm_fusion("en-US", DecodeOptions())
    beam = recognizer.beam_options("en-US", DecodeOptions()).beam_size
    assert tuned.lexicon is not None and beam > 8
    trie = recognizer.hotword_trie(DecodeOptions(hotwords=("the weather",), hotword_boost=2.0))
    results = []
    for kind in ("pruned", "all"):
        fusion = Counting(tuned.lm, tuned.weight, tuned.bonus, tuned.lexicon, kind=kind)
        options = BeamOptions(beam_size=beam, skip_unrankable=kind == "pruned")
        state = None
        for start in range(0, log_probs.shape[0], 16):
            state = reference_prefix_beam_search(log_probs[start : start + 16], state, options, trie, fusion)
        results.append([(h.tokens, h.log_prob, h.bias, h.lm_score) for h in beam_hypotheses(state, trie, True, fusion)])
    assert results[0] == results[1] and len(results[0]) == beam
    assert 0 < calls["pruned"] < 0.6 * calls["all"]


@pytest.mark.parametrize("search", [prefix_beam_search, reference_prefix_beam_search], ids=["served", "python"])
@pytest.mark.parametrize("seed", range(12))
def test_pruned_candidates_never_change_the_beams_for_any_beam_size_lm_or_hotwords(seed, search):
    """Random posteriors, small LMs (a third of the cases none), hotwords and beam sizes, streamed in random chunks:
    the search with its floor and best-first LM scoring keeps exactly the beams (timings included) of building and
    scoring every candidate (BeamOptions.skip_unrankable=False), compiled (served) and in Python."""
    import random

    from model.decoding.search import LmFusion
    from model.decoding.kneser_ney import train_ngram

    rng = random.Random(seed)
    torch.manual_seed(seed)
    lm = train_ngram([[rng.randint(3, 19) for _ in range(rng.randint(2, 8))] for _ in range(300)], 20, order=3)
    frames = rng.randint(10, 50)
    log_probs = (torch.randn(frames, 20) * rng.choice([1.0, 3.0, 6.0])).log_softmax(-1)
    beam_size = rng.choice([1, 2, 4, 8, 16])
    trie = HotwordTrie.build([[5, 6, 7], [9, 9]], rng.choice([0.5, 3.0])) if seed % 2 else None
    weight, bonus = rng.choice([(0.3, 0.5), (1.2, 0.0), (0.8, 3.0)])
    step = rng.randint(1, 16)
    results = []
    fusion = LmFusion(lm, weight, bonus) if seed % 3 else None
    for skip_unrankable in (True, False):
        options = BeamOptions(beam_size=beam_size, skip_unrankable=skip_unrankable)
        state = None
        for start in range(0, frames, step):
            state = search(log_probs[start : start + step], state, options, trie, fusion)
        results.append([(h.tokens, h.log_prob, h.bias, h.lm_score) for h in beam_hypotheses(state, trie, True, fusion)])
    assert results[0] == results[1]
