"""model.evaluation.sound_alike splits English word errors into words heard wrong and words that sound right but are
written wrong (homophones and phonetic spellings, judged by espeak-ng, the synthesiser that spoke the corpus)."""

from types import SimpleNamespace

import pytest

from model.decoding.pronunciation import pronounce
from model.evaluation.sound_alike import count, measure


def test_homophones_and_phonetic_spellings_sound_alike():
    sounds = pronounce(["night", "knight", "nite", "there", "their", "red", "read"])
    assert sounds["night"] == sounds["knight"] == sounds["nite"] and sounds["there"] == sounds["their"]
    assert sounds["red"] != sounds["read"] and "'" not in sounds["night"]  # stress marks dropped


@pytest.mark.parametrize("reference, hypothesis, wer, heard_wrong, one_off, wrong_phonemes", [
    ("i saw the night sky", "i saw the knight sky", 1, 0, 0, 0),  # written wrong, heard right
    ("there is a cat", "their is a hat", 2, 1, 1, 1),  # one homophone, one word heard one phoneme off: k -> h
    ("there is a cat", "there is cat", 1, 1, 0, 1),  # a deleted word is heard wrong, not one phoneme off
    ("brain damage", "brain darmage", 1, 1, 1, 1),  # a misspelling that changes one sound
    ("a big dog", "a bag cat", 2, 2, 1, 4),  # big -> bag: one phoneme; dog -> cat: three
    ("good night", "good night", 0, 0, 0, 0),
])
def test_word_errors_split_into_heard_wrong_and_sounds_alike(reference, hypothesis, wer, heard_wrong, one_off,
                                                             wrong_phonemes):
    rates = count([(reference, hypothesis)])
    n = len(reference.split())
    assert rates["words"] == n
    assert rates["wer"] == pytest.approx(wer / n, abs=1e-4)
    assert rates["sound_error_rate"] == pytest.approx(heard_wrong / n, abs=1e-4)
    assert rates["near_miss_rate"] == pytest.approx(one_off / n, abs=1e-4)
    assert rates["homophone_rate"] == pytest.approx((wer - heard_wrong) / n, abs=1e-4)
    phonemes = sum(len(p) for p in pronounce(reference.split()).values())  # each reference word occurs once
    assert rates["phoneme_error_rate"] == pytest.approx(wrong_phonemes / phonemes, abs=1e-4)


def test_the_bundled_model_is_measured_greedy_and_served(bundled_samples):
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import Recognizer

    english = [s for s in bundled_samples if s["locale"] == "en-US"]
    utterances = [SimpleNamespace(text=s["text"], locale="en-US") for s in english]
    audio = [load_audio_file(s["path"]) for s in english]
    recognizer = Recognizer(load_checkpoint("model/checkpoints/default.pt"))
    for served in (False, True):
        rates = measure(recognizer, utterances, audio, served)
        assert rates["words"] == sum(len(s["text"].split()) for s in english)
        assert 0 <= rates["sound_error_rate"] <= rates["wer"] and rates["homophone_rate"] >= 0


def test_the_model_card_shows_where_the_english_errors_come_from():
    from model.evaluation.model_card import sound_alike_lines

    stored = {"manifest": "dev.jsonl", "utterances": 150, "voice": "en-us", "modes": {
        "greedy": {"wer": 0.32, "sound_error_rate": 0.25, "homophone_rate": 0.07, "words": 1500,
                   "phoneme_error_rate": 0.11, "near_miss_rate": 0.08},
        "served": {"wer": 0.14, "sound_error_rate": 0.12, "homophone_rate": 0.02, "words": 1500}}}
    lines = sound_alike_lines({"sound_alike_errors": stored})
    assert "| greedy CTC (the acoustic model) | 32.0% | 25.0% | 8.0% | 7.0% | 11.0% |" in lines
    assert "| served (beam search, LM, rescoring) | 14.0% | 12.0% | n/a | 2.0% | n/a |" in lines  # stored before both
    assert sound_alike_lines({}) == []  # a model measured before the analysis was stored: no table
