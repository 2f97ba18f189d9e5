"""The compiled first-pass search (model/decoding/_ctc_search.cpp, the served one) against its Python reference: the
same beams in the same order, with the same path probabilities, hotword and LM scores, trie positions and token
timings, bit for bit, on random posteriors with LMs, hotwords and lexicons, and on the bundled model."""

import random

import pytest
import torch

from model.decoding import compiled_search
from model.decoding.hotwords import HotwordTrie
from model.decoding.kneser_ney import train_ngram
from model.decoding.lexicon import Lexicon, LexiconPenalty
from model.decoding.lm import InterpolatedLM
from model.decoding.search import BeamOptions, BeamState, LmFusion, prefix_beam_search, reference_prefix_beam_search

compiled = pytest.mark.skipif(not compiled_search.AVAILABLE, reason="the compiled search is not built (the test "
                              "below fails and says how to build it)")

VOCAB = 20
PIECE_POOL = (" a", "a", " b", "b", "c", " c", "ab", " ba", " the", "s", "é", " é", "中", " 中", "t ")


def test_the_install_built_the_compiled_search():
    assert compiled_search.AVAILABLE, ("model/decoding/_ctc_search.cpp is not compiled, so the server runs the slower "
                                       "Python search: `make install`, or `python setup.py build_ext --inplace` in a "
                                       "checkout (needs a C++ compiler and pybind11)")


def beams(state: BeamState) -> list:
    """Everything a state holds, in order."""
    return [(prefix, b.blank, b.non_blank, b.timings, b.node, b.bias, b.lm_score)
            for prefix, b in state.beams.items()] + [state.frames]


def streamed(search, log_probs: torch.Tensor, step: int, *args) -> BeamState:
    state = None
    for start in range(0, log_probs.shape[0], step):
        state = search(log_probs[start : start + step], state, *args)
    return state


def random_posteriors(rng: random.Random, frames: int) -> torch.Tensor:
    """Random posteriors, peaky or flat, with runs of frames sure of blank (which the search skips)."""
    logits = torch.randn(frames, VOCAB) * rng.choice([1.0, 3.0, 6.0])
    for frame in range(frames):
        if rng.random() < 0.3:
            logits[frame, 0] += 20.0
    return logits.log_softmax(-1)


def random_lexicon(rng: random.Random) -> LexiconPenalty:
    pieces = ("<blank>", "<unk>", "<sos/eos>") + tuple(rng.choice(PIECE_POOL) for _ in range(VOCAB - 3))
    spell = lambda: "".join(rng.choice(PIECE_POOL).strip() for _ in range(rng.randint(1, 3)))  # noqa: E731
    lexicon = Lexicon(frozenset(spell() for _ in range(15)))
    request = Lexicon(frozenset(spell() for _ in range(2))) if rng.random() < 0.5 else None
    return LexiconPenalty(lexicon, pieces, rng.choice([2.0, 4.0]), request)


@compiled
@pytest.mark.parametrize("seed", range(40))
def test_the_compiled_search_equals_the_python_search_on_random_posteriors(seed):
    """Beam sizes 1-24, with and without the pruning, LM fusion (none, an n-gram, with a lexicon), hotwords (none, or
    phrases that share tokens, boosted little or much), candidates per frame and chunk sizes all drawn at random."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    log_probs = random_posteriors(rng, rng.randint(10, 60))
    lm = train_ngram([[rng.randint(3, VOCAB - 1) for _ in range(rng.randint(2, 8))] for _ in range(300)], VOCAB,
                     order=rng.choice([1, 2, 3, 4]))
    kind = seed % 3
    fusion = None if kind == 0 else LmFusion(lm, *rng.choice([(0.3, 0.5), (1.2, 0.0), (0.8, 3.0)]),
                                             random_lexicon(rng) if kind == 2 else None)
    trie = HotwordTrie.build([[5, 6, 7], [5, 6], [9, 9], [11]], rng.choice([0.5, 3.0])) if seed % 2 else None
    options = BeamOptions(beam_size=rng.choice([1, 2, 4, 8, 16, 24]), token_candidates=rng.randint(1, 8),
                          skip_unrankable=rng.random() < 0.7)
    step = rng.randint(1, 20)
    expected = streamed(reference_prefix_beam_search, log_probs, step, options, trie, fusion)
    assert beams(streamed(prefix_beam_search, log_probs, step, options, trie, fusion)) == beams(expected)


@compiled
def test_a_language_model_the_compiled_search_does_not_know_is_asked_through_python():
    """A deployment's adapted LM (InterpolatedLM) is scored by its own Python code, from the compiled search."""
    rng = random.Random(7)
    sentences = lambda: [[rng.randint(3, VOCAB - 1) for _ in range(rng.randint(2, 8))] for _ in range(200)]  # noqa
    lm = InterpolatedLM(train_ngram(sentences(), VOCAB), train_ngram(sentences(), VOCAB), weight=0.5)
    fusion = LmFusion(lm, 0.8, 1.0)
    log_probs = random_posteriors(rng, 50)
    options = BeamOptions(beam_size=8)
    expected = streamed(reference_prefix_beam_search, log_probs, 7, options, None, fusion)
    assert beams(streamed(prefix_beam_search, log_probs, 7, options, None, fusion)) == beams(expected)


@compiled
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_compiled_search_equals_the_python_search_on_the_bundled_model(locale):
    """A bundled sample streamed in 640 ms chunks at the locale's tuned beam, with its LM fusion (English: and
    lexicon) and a hotword."""
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer

    recognizer = Recognizer(load_checkpoint())
    audio = load_audio_file(f"model/samples/{locale}_0.wav")
    log_probs = recognizer.ctc_log_probs(recognizer.encode_segments([audio], 16)[0], locale)
    decode = DecodeOptions(hotwords=("the weather",) if locale == "en-US" else ("北京",), hotword_boost=2.0)
    fusion, trie = recognizer.lm_fusion(locale, decode), recognizer.hotword_trie(decode)
    options = recognizer.beam_options(locale, DecodeOptions())
    assert fusion is not None and trie is not None and (fusion.lexicon is not None) == (locale == "en-US")
    expected = streamed(reference_prefix_beam_search, log_probs, 16, options, trie, fusion)
    assert len(expected.beams) == options.beam_size
    assert beams(streamed(prefix_beam_search, log_probs, 16, options, trie, fusion)) == beams(expected)


@compiled
def test_searches_on_two_threads_at_once_get_what_each_gets_alone():
    """The compiled frame loop runs without the GIL (the server's two search threads share the LM, lexicon and
    pieces), and an adapted LM is asked through Python from it: each stream still gets its own beams."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(3)
    sentences = lambda: [[rng.randint(3, VOCAB - 1) for _ in range(rng.randint(2, 8))] for _ in range(200)]  # noqa
    general = train_ngram(sentences(), VOCAB)
    fusions = [LmFusion(general, 0.8, 1.0, random_lexicon(rng)),
               LmFusion(InterpolatedLM(general, train_ngram(sentences(), VOCAB), weight=0.5), 0.8, 1.0)]
    trie = HotwordTrie.build([[5, 6, 7], [9, 9]], 2.0)
    jobs = [(random_posteriors(rng, 200), fusions[i % 2]) for i in range(8)]
    options = BeamOptions(beam_size=16)
    search = lambda job: beams(streamed(prefix_beam_search, job[0], 16, options, trie, job[1]))  # noqa: E731
    alone = [search(job) for job in jobs]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(search, jobs)) == alone
