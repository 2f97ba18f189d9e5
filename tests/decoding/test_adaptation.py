"""Adapting a locale's LM to a deployment's own sentences (model.decoding.adaptation): the mixture is a proper
distribution that follows the words just heard, its weight is tuned on held-out lines, and a domain text is read the
way the general LM's text was."""

import random

import pytest

from model.decoding.adaptation import (HELD_OUT_EVERY, MIN_LINES, WEIGHTS, DomainTextError, adapt_checkpoint,
                                       read_domain_text, split_held_out, tune_weight)
from model.decoding.kneser_ney import perplexity, train_ngram
from model.decoding.lm import DOMAIN_PRIOR, InterpolatedLM, NgramLM, language_model

VOCAB = 40


def corpus(tokens: range, sentences: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.choice(tokens) for _ in range(rng.randint(3, 8))] for _ in range(sentences)]


@pytest.fixture(scope="module")
def general() -> NgramLM:
    """Everyday text: tokens 10-39 (3-9, the domain's names, are never in it)."""
    return train_ngram(corpus(range(10, VOCAB), 1500, seed=0), VOCAB, order=3)


@pytest.fixture(scope="module")
def domain() -> NgramLM:
    """A domain that says a few things over and over: its names 3-9 and everyday 10-12, in fixed phrases."""
    scripts = [[3, 4, 5, 6], [7, 8, 9, 3, 4], [10, 11, 12, 5]] * 40
    return train_ngram(scripts, VOCAB, order=3, min_count=1)


def test_the_mixture_is_a_distribution_after_any_history(general, domain):
    mixture = InterpolatedLM(general, domain, 0.9)
    for history in ([], [2, 2], [3, 4], [20, 31], [4, 5, 6]):
        assert sum(mixture.prob(history, w) for w in range(VOCAB)) == pytest.approx(1.0, abs=1e-9)


def test_the_domain_leads_where_the_words_read_like_it_and_yields_elsewhere(general, domain):
    mixture = InterpolatedLM(general, domain, 0.9, prior=DOMAIN_PRIOR)
    start = mixture.domain_share(mixture.context_of([]))
    assert start == pytest.approx(0.9 * DOMAIN_PRIOR)  # before a word is heard: presumed general
    assert mixture.domain_share(mixture.context_of([3, 4])) > 0.75  # most of the weight: a script's words
    assert mixture.domain_share(mixture.context_of([25, 31])) < 1e-3  # words the domain never says
    assert mixture.domain_share(mixture.context_of([25, 10])) < 0.05  # one everyday word it says too
    # so a script's next word is far likelier than the general model alone makes it, and other speech keeps nearly
    # all of the general model's probability (a fixed 0.9 mixture would leave it a tenth of it)
    assert mixture.prob([3, 4], 5) > 0.4 > 10 * general.prob([3, 4], 5)  # [3, 4] ends a script as often
    assert mixture.prob([25, 31], 17) > 0.999 * general.prob([25, 31], 17)
    assert mixture.prob([], 20) > (1 - DOMAIN_PRIOR) * general.prob([], 20)


def test_the_weight_is_the_grid_point_least_perplexed_by_held_out_lines(general, domain):
    held_out = [[3, 4, 5, 6], [7, 8, 9, 3, 4], [12, 30, 7]]
    weight = tune_weight(general, domain, held_out)
    scores = {w: perplexity(InterpolatedLM(general, domain, w), held_out) for w in WEIGHTS}
    assert weight in WEIGHTS and scores[weight] == min(scores.values())
    assert scores[weight] < perplexity(general, held_out) / 2


def test_a_mixture_needs_the_same_tokens_and_a_weight_within_0_and_1(general, domain):
    with pytest.raises(ValueError, match="tokens"):
        InterpolatedLM(general, train_ngram([[3, 4]] * 5, VOCAB, order=2), 0.2)
    with pytest.raises(ValueError, match="within"):
        InterpolatedLM(general, domain, 1.5)
    with pytest.raises(ValueError, match="within"):
        InterpolatedLM(general, domain, 0.5, prior=1.0)


# ------------------------------------------------------------------------------------------ reading a text


@pytest.fixture(scope="module")
def tokenizer(tiny_loaded):
    return tiny_loaded.tokenizer  # a real tokenizer over conftest's TINY_TEXTS


def test_chinese_lines_are_split_into_clauses_and_unspellable_lines_are_counted(tmp_path, tokenizer):
    lines = ["今天天气很好，我们去北京。"] * (MIN_LINES - 1) + ["我们去火星", "", "今天很好"]
    path = tmp_path / "calls.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    text = read_domain_text(path, "zh-CN", tokenizer)
    assert len(text.lines) == MIN_LINES and text.skipped_lines == 1  # 火星: no token for 火; the empty line is no line
    assert text.lines[0] == (tuple(tokenizer.encode("今天天气很好")), tuple(tokenizer.encode("我们去北京")))
    assert text.name == "calls.txt" and len(text.sha256) == 64
    fit, held_out = split_held_out(text)
    assert held_out == [*text.lines[HELD_OUT_EVERY - 1], *text.lines[2 * HELD_OUT_EVERY - 1]]  # whole lines
    assert len(fit) + len(held_out) == len(text.sentences)


def test_a_text_too_short_or_missing_is_a_clear_error(tmp_path, tokenizer):
    short = tmp_path / "short.txt"
    short.write_text("hello world\n" * (MIN_LINES - 1))
    with pytest.raises(DomainTextError, match=f"{MIN_LINES - 1} usable lines .* at least {MIN_LINES}"):
        read_domain_text(short, "en-US", tokenizer)
    with pytest.raises(DomainTextError, match="cannot read the domain text"):
        read_domain_text(tmp_path / "absent.txt", "en-US", tokenizer)


def test_adapting_a_checkpoint_mixes_in_the_text_and_replaces_an_earlier_adaptation(tmp_path, tiny_loaded):
    from dataclasses import replace

    loaded = replace(tiny_loaded, metadata={}, language_models=dict(tiny_loaded.language_models))
    path = tmp_path / "en.txt"
    path.write_text("the cat sat on the mat\nhello world\nthe mat\n" * 10)
    report = adapt_checkpoint(loaded, {"en": path})["en-US"]  # an alias names the locale
    assert report["lines"] == 30 and report["held_out_lines"] == 3 and report["weight"] in WEIGHTS
    # (tests/service/test_service_adaptation.py checks the gain on the bundled model; this tiny one knows these words
    # already)
    assert report["held_out_perplexity"]["adapted"] <= report["held_out_perplexity"]["general"]
    assert loaded.metadata["language_model_adaptation"] == {"en-US": report}
    lm = language_model(loaded.language_models["en-US"])
    assert isinstance(lm, InterpolatedLM) and lm.adaptation["text"] == "en.txt"
    assert isinstance(language_model(loaded.language_models["zh-CN"]), NgramLM)  # the other locales as built

    path.write_text("hello world\n" * 20)
    again = adapt_checkpoint(loaded, {"en-US": path})["en-US"]
    assert again["lines"] == 20 and loaded.language_models["en-US"]["domain"]["source"]["lines"] == 20
    # the new text is mixed into the general LM, not into the earlier mixture
    assert NgramLM.from_payload(loaded.language_models["en-US"]).alpha == NgramLM.from_payload(
        tiny_loaded.language_models["en-US"]).alpha
    with pytest.raises(ValueError, match="unsupported locale"):
        adapt_checkpoint(loaded, {"fr": path})
