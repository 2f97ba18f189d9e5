"""The n-gram language model: a proper distribution (Kneser-Ney), storable without pickle, and fused into beam
search so that context picks between acoustically tied tokens."""

import math
import random

import pytest
import torch

from model.decoding.lm import NgramLM
from model.decoding.search import BeamOptions, LmFusion, beam_hypotheses, prefix_beam_search
from model.decoding.kneser_ney import perplexity, train_ngram


def random_corpus(vocab: int = 40, sentences: int = 1500, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(3, vocab - 1) for _ in range(rng.randint(2, 9))] for _ in range(sentences)]


def test_probabilities_sum_to_one_after_pruning():
    lm = train_ngram(random_corpus(), 40, order=3)
    for history in ([2, 2], [5, 7], [11]):
        assert sum(lm.prob(history, w) for w in range(40)) == pytest.approx(1.0, abs=1e-9)


def test_payload_round_trip_keeps_every_probability():
    corpus = random_corpus()
    lm = train_ngram(corpus, 40)
    payload = lm.to_payload()
    assert payload["alpha_values"].dtype == torch.float16  # half the bytes of float32 in the checkpoint
    again = NgramLM.from_payload(payload)
    assert again.alpha.keys() == lm.alpha.keys() and again.gamma.keys() == lm.gamma.keys()
    for key, value in lm.alpha.items():
        assert again.alpha[key] == pytest.approx(value, rel=1e-3)
    assert perplexity(again, corpus[:50]) == pytest.approx(perplexity(lm, corpus[:50]), rel=1e-3)


def test_cached_lookups_by_context_equal_the_probabilities_of_the_whole_history():
    """The search asks log P(token | the prefix's last order-1 tokens, <sos>-padded) through a bounded cache shared
    by every stream: the same numbers as the full history gives, for histories shorter and longer than the order."""
    lm = train_ngram(random_corpus(), 40, order=4)
    lm.cache_limit = 50
    rng = random.Random(3)
    for _ in range(400):
        prefix = tuple(rng.randint(3, 39) for _ in range(rng.randint(0, 7)))
        token = rng.randint(3, 39)
        history = (lm.end_id,) * 3 + prefix
        assert lm.log_prob_after(lm.context_of(prefix), token) == pytest.approx(lm.log_prob(history, token), abs=1e-12)
        assert len(lm.cache) <= lm.cache_limit


@pytest.mark.parametrize("min_count", [1, 2, 3, 5])
def test_pruning_the_highest_order_by_count_keeps_a_distribution(min_count):
    corpus = random_corpus(vocab=12)  # few tokens: many trigrams are seen several times
    lm = train_ngram(corpus, 12, order=3, min_count=min_count)
    for history in ([2, 2], [5, 7], [11, 3], [9]):
        assert sum(lm.prob(history, w) for w in range(12)) == pytest.approx(1.0, abs=1e-9)


def test_contexts_that_kept_no_ngram_are_not_stored_and_change_nothing():
    """Pruning every trigram of a context leaves it gamma = 1: the back-off of an unseen context, so dropping the
    entry is exact and saves its bytes."""
    corpus = random_corpus()
    pruned = train_ngram(corpus, 40, order=3, min_count=3)
    kept_all = train_ngram(corpus, 40, order=3, min_count=1)
    assert len(pruned.gamma) < len(kept_all.gamma) and len(pruned.alpha) < len(kept_all.alpha)
    counts = {}
    for tokens in corpus:
        padded = [2, 2, *tokens, 2]
        for i in range(len(padded) - 2):
            counts.setdefault(tuple(padded[i:i + 2]), []).append(padded[i + 2])
    dropped = [c for c, nexts in counts.items() if max(nexts.count(w) for w in set(nexts)) < 3]
    assert dropped
    for context in dropped[:20]:
        for w in (3, 10, 20):
            assert pruned.prob(list(context), w) == pytest.approx(pruned.prob(list(context[1:]), w), rel=1e-12)


def test_fusion_picks_the_homophone_the_context_predicts():
    # Tokens 5 and 6 are acoustically tied on the last frame; the LM has only ever seen 4 followed by 6.
    lm = train_ngram([[3, 4, 6]] * 50 + [[3, 7, 5]] * 50, vocab_size=8)
    frames = torch.tensor([
        [0.02, 0, 0, 0.96, 0.01, 0.005, 0.005, 0.0],
        [0.02, 0, 0, 0.01, 0.96, 0.005, 0.005, 0.0],
        [0.02, 0, 0, 0.01, 0.01, 0.48, 0.48, 0.0],
    ]).clamp(min=1e-6).log()
    options = BeamOptions(beam_size=4, blank_skip_prob=1.0)
    fused = beam_hypotheses(prefix_beam_search(frames, None, options, fusion=LmFusion(lm, 0.5, 0.0)), final=True,
                            fusion=LmFusion(lm, 0.5, 0.0))
    assert fused[0].token_ids == (3, 4, 6)
    assert math.isfinite(fused[0].lm_score) and fused[0].lm_score < 0


def test_lm_fusion_is_tuned_and_applied_per_locale():
    """The dev grid search picks each locale's own best weight and bonus, the recognizer applies them per locale,
    a request's lm_weight still overrides the weight, the finals' n-best ranking and a wider beam are kept per
    locale only where they help (a request's beam overrides it), and the choice survives the checkpoint's metadata."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from model.corpus.manifest import Utterance
    from model.decoding.rescoring import RescoreWeights
    from model.evaluation.evaluate import tune_lm_fusion
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer

    samples = Path("model/samples")
    utterances = [Utterance(id=row["audio"], **{**row, "audio": str(samples / row["audio"])})
                  for row in map(json.loads, (samples / "samples.jsonl").read_text().splitlines())]
    loaded = load_checkpoint(DEFAULT_CHECKPOINT)
    recognizer = Recognizer(loaded)
    grid = (RescoreWeights(), RescoreWeights(1.0, 2.0, 1.0))
    tuned = tune_lm_fusion(recognizer, utterances, weights=(0.0, 0.5), bonuses=(0.5, 2.5), oov_penalties=(3.0,),
                           wider_beams=(16,), beam_gain=0.0, rescore_grid=grid)
    assert [(t["weight"], t["bonus"]) for t in tuned["trials"][:3]] == [(0.0, 0.5), (0.5, 0.5), (0.5, 2.5)]
    # Then the out-of-lexicon penalty, only for locales with a lexicon, at their chosen weight and bonus.
    lexicon_trials = [t for t in tuned["trials"][3:] if "rescore" not in t]
    assert lexicon_trials and all(set(t["per_locale"]) <= set(recognizer.lexicons) and t["oov_penalty"] == 3.0
                                  for t in lexicon_trials)
    # Last, the finals' ranking at the beam so far, then at beam 16, once per locale at its chosen setting.
    rescore_trials = [t for t in tuned["trials"] if "rescore" in t]
    beam_trials = [t for t in rescore_trials if "beam_size" in t]
    assert sorted(locale for t in beam_trials for locale in t["per_locale"]) == sorted(tuned["per_locale"])
    assert len(rescore_trials) == 2 * len(beam_trials) and all(RescoreWeights(**t["rescore"]) in grid
                                                               for t in rescore_trials)
    assert set(tuned["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}
    for locale, chosen in tuned["per_locale"].items():
        assert chosen["dev_error_rate"] == min(t["per_locale"].get(locale, math.inf) for t in tuned["trials"])
        fusion = recognizer.lm_fusion(locale, DecodeOptions())
        if chosen["weight"] == 0:
            assert fusion is None
        else:
            assert (fusion.weight, fusion.bonus) == (chosen["weight"], chosen["bonus"])
            assert (fusion.lexicon is not None) == (chosen.get("oov_penalty", 0.0) > 0)
        assert recognizer.lm_fusion(locale, DecodeOptions(lm_weight=0.9)).weight == 0.9
        assert recognizer.beam_options(locale, DecodeOptions()).beam_size == chosen.get("beam_size", 8)
        assert recognizer.fusion_settings[locale].rescore == RescoreWeights(**chosen.get("rescore", {}))
        described = recognizer.decoding_settings()[locale]  # what GET /v1/models says
        tuned_ranking = recognizer.fusion_settings[locale].rescore if chosen["weight"] > 0 else RescoreWeights()
        assert recognizer.final_ranking(locale, DecodeOptions()) == tuned_ranking
        assert recognizer.final_ranking(locale, DecodeOptions(lm_weight=0.0)) == RescoreWeights()  # tuned with the LM
        assert described["final_ranking"] == asdict(tuned_ranking)
        assert described["beam_size"] == recognizer.beam_options(locale, DecodeOptions()).beam_size
        assert recognizer.decoding_settings(DecodeOptions(beam_size=4))[locale]["beam_size"] == 4
        assert recognizer.beam_options(locale, DecodeOptions(beam_size=4)).beam_size == 4
        assert recognizer.beam_options(locale, DecodeOptions(beam_size=4, nbest=10)).beam_size == 10
    assert tuned["dev_mean_error_rate"] <= tuned["shared_dev_mean_error_rate"]
    loaded.metadata["lm_fusion"] = tuned
    assert Recognizer(loaded).fusion_settings == recognizer.fusion_settings


def test_orders_are_given_for_all_locales_or_per_locale():
    from model.training.build_lm import parse_per_locale

    assert parse_per_locale(["3", "en-US=4", "yue-HK=5"], 3) == {None: 3, "en-US": 4, "yue-HK": 5}
    assert parse_per_locale(["4"], 3) == {None: 4}
    assert parse_per_locale(["zh-CN=3"], 2) == {None: 2, "zh-CN": 3}
    lm = train_ngram(random_corpus(), 40, order=4)
    assert NgramLM.from_payload(lm.to_payload()).order == 4
    assert sum(lm.prob([5, 7, 9], w) for w in range(40)) == pytest.approx(1.0, abs=1e-9)


def test_an_order_whose_keys_overflow_int64_is_refused_up_front():
    """4,300 tokens: 5-gram keys fit in int64, 6-gram keys do not (found as an overflow while storing)."""
    from model.decoding.lm import max_order

    assert max_order(4300) == 5
    with pytest.raises(ValueError, match="outside 1..5"):
        train_ngram(random_corpus(), 4300, order=6)
