"""The out-of-lexicon penalty: charged once per word the search spells outside the lexicon, as soon as that is
certain, and strong enough in beam search to turn a near-miss spelling into the lexicon's word."""


import pytest
import torch

from model.decoding.lexicon import Lexicon, LexiconPenalty
from model.decoding.search import BeamOptions, LmFusion, beam_hypotheses, prefix_beam_search
from model.decoding.kneser_ney import train_ngram

# Token ids -> surface text as tokenizer.token_text gives it: a leading space starts a word.
PIECES = ("<blank>", "<unk>", "<sos/eos>", " c", " k", "a", "t", " the", "s")
C, K, A, T, THE, S = 3, 4, 5, 6, 7, 8


@pytest.fixture
def penalty() -> LexiconPenalty:
    return LexiconPenalty(Lexicon.from_sentences(["the cat", "the cats"]), PIECES, penalty=4.0)


def test_lexicon_holds_words_and_every_prefix():
    lexicon = Lexicon.from_sentences(["the cat sat"])
    assert lexicon.words == {"the", "cat", "sat"}
    assert {"", "c", "ca", "cat", "s", "sa"} <= lexicon.prefixes and "at" not in lexicon.prefixes
    assert Lexicon.from_payload(lexicon.to_payload()) == lexicon


def test_words_in_the_lexicon_cost_nothing(penalty):
    spelled = (THE, C, A, T, S)
    assert sum(penalty.token_penalty(spelled[:i], spelled[i]) for i in range(len(spelled))) == 0.0
    assert penalty.end_penalty(spelled) == 0.0


def test_a_misspelling_is_charged_once_as_soon_as_it_leaves_the_lexicon(penalty):
    assert penalty.token_penalty((), K) == 4.0  # "k" starts no lexicon word
    assert penalty.token_penalty((K,), A) == 0.0  # already charged for this word
    assert penalty.token_penalty((K, A), T) == 0.0
    assert penalty.token_penalty((K, A, T), THE) == 0.0  # the next word is fine
    assert penalty.token_penalty((THE, C), T) == 4.0  # "ct" leaves the lexicon mid-word


def test_a_word_cut_short_is_charged_when_it_ends(penalty):
    assert penalty.token_penalty((THE, C), A) == 0.0  # "ca" may still become "cat"
    assert penalty.token_penalty((THE, C, A), THE) == 4.0  # ...but the word ended as "ca"
    assert penalty.end_penalty((THE, C, A)) == 4.0  # ...or the utterance did
    assert penalty.partial_word(()) is None and penalty.partial_word((THE, C, A)) == "ca"


def near_miss_log_probs() -> torch.Tensor:
    """CTC posteriors of "the kat" where the audio slightly prefers " k" over " c" (0.5 against 0.45)."""
    posteriors = torch.full((7, len(PIECES)), 1e-4)
    for frame, probs in enumerate([{THE: 0.97}, {0: 0.97}, {K: 0.5, C: 0.45}, {0: 0.97}, {A: 0.97}, {0: 0.97},
                                   {T: 0.97}]):
        for token, p in probs.items():
            posteriors[frame, token] = p
    return (posteriors / posteriors.sum(-1, keepdim=True)).log()


def test_beam_search_turns_a_near_miss_spelling_into_the_lexicon_word(penalty):
    # The audio slightly prefers " k" over " c": without the lexicon the result is "the kat".
    log_probs = near_miss_log_probs()
    lm = train_ngram([[THE, C, A, T], [THE, K, A, T]] * 5, vocab_size=len(PIECES))  # no spelling preference
    options = BeamOptions(beam_size=4, blank_skip_prob=1.0)

    def best(fusion: LmFusion) -> tuple[int, ...]:
        state = prefix_beam_search(log_probs, None, options, fusion=fusion)
        return beam_hypotheses(state, final=True, fusion=fusion)[0].token_ids

    assert best(LmFusion(lm, 0.1, 0.0)) == (THE, K, A, T)
    assert best(LmFusion(lm, 0.1, 0.0, penalty)) == (THE, C, A, T)


def test_a_lexicon_is_stored_compressed_and_older_word_lists_still_load():
    lexicon = Lexicon.from_sentences(["the cat sat", "don't panic"])
    payload = lexicon.to_payload()
    assert payload.dtype == torch.uint8 and Lexicon.from_payload(payload) == lexicon
    assert Lexicon.from_payload(sorted(lexicon.words)) == lexicon  # checkpoints before 0.11.2
    assert Lexicon.from_payload(Lexicon(frozenset()).to_payload()).words == frozenset()


def test_spelling_dictionary_entries_are_written_as_transcripts_write_words():
    from model.decoding.lexicon import word_list_entries

    lines = ["Zürich\n", "law's\n", "AA\n", "ice cream\n", "'tis\n", "\n", "café"]
    assert word_list_entries(lines, "en-US") == {"zurich", "law's", "aa", "tis", "cafe"}


def test_word_lists_join_the_lexicon_built_from_the_lm_text(tiny_loaded, tmp_path, monkeypatch):
    """`python -m model.training.build_lm --lexicon en-US --word-list en-US=PATH`: the dictionary's words (those the
    tokenizer can spell) join the words of the LM text, the report says how many each list added, and the recognizer
    reads them."""
    import model.training.build_lm as build_lm
    from conftest import TINY_TEXTS
    from model.network.checkpoint import load_checkpoint, save_checkpoint
    from model.recognition.recognizer import Recognizer

    monkeypatch.setattr(build_lm, "load_sentences", lambda locale: TINY_TEXTS[locale])
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, tiny_loaded.model, tiny_loaded.tokenizer, tiny_loaded.name, tiny_loaded.version, {},
                    tiny_loaded.language_models)
    words = tmp_path / "words"
    words.write_text("Hat\nworld\nsat's\ncat\n", encoding="utf-8")  # "sat's": the tiny tokenizer has no apostrophe
    build_lm.main(["--checkpoint", str(checkpoint), "--lexicon", "en-US", "--word-list", f"en-US={words}"])
    loaded = load_checkpoint(checkpoint)
    recognizer = Recognizer(loaded)
    assert recognizer.lexicons["en-US"].words == {"hello", "world", "the", "cat", "sat", "on", "mat", "hat"}
    report = loaded.metadata["language_models"]["en-US"]
    assert report["lexicon_words"] == 8 and report["lexicon_word_lists"] == {"words": 1}
    assert set(recognizer.lexicons) == {"en-US"}


def test_a_requests_hotword_words_are_lexicon_words_for_that_request(penalty):
    """A name the caller asks for ("kat", outside the lexicon) costs no penalty in that request: the audio's
    spelling wins again, where the lexicon alone turned it into "cat"."""
    from dataclasses import replace

    from model.decoding.lexicon import phrase_lexicon

    requested = replace(penalty, request_words=phrase_lexicon(("the kat",)))
    assert requested.token_penalty((THE,), K) == 0.0 and requested.end_penalty((THE, K, A, T)) == 0.0
    assert requested.token_penalty((THE, C), T) == 4.0  # the lexicon still charges what neither holds
    assert phrase_lexicon(("kat " + "k" * 100_000,)).words == {"kat"}  # no word is that long: not stored
    log_probs = near_miss_log_probs()
    lm = train_ngram([[THE, C, A, T], [THE, K, A, T]] * 5, vocab_size=len(PIECES))
    options = BeamOptions(beam_size=4, blank_skip_prob=1.0)
    for lexicon, expected in ((penalty, (THE, C, A, T)), (requested, (THE, K, A, T))):
        fusion = LmFusion(lm, 0.1, 0.0, lexicon)
        state = prefix_beam_search(log_probs, None, options, fusion=fusion)
        assert beam_hypotheses(state, final=True, fusion=fusion)[0].token_ids == expected
