"""The Kokoro renderer (model/corpus/kokoro.py): phonemes in the notation the voice was trained on, and real clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf

from model.corpus.kokoro import cantonese_phonemes, english_phonemes, jyutping_syllable_ipa, load_kokoro, main
from model.corpus.manifest import Utterance, read_manifest, write_manifest
from model.corpus.rendering import renderer_parser, sentences_to_speak


@pytest.mark.parametrize("syllable, ipa", [
    (("g", "wo", "ng", "2"), None),  # not a Jyutping nucleus: the parser never yields it
    (("ng", "o", "", "5"), "ŋɔ↗"),  # 我: rising tones rise
    (("", "m", "", "4"), "m↓"),  # 唔: a syllabic nasal carries its low tone
    (("z", "i", "", "1"), "ʦi→"),  # 知: high level is level
    (("h", "eo", "i", "3"), "høy→"),  # 去: eoi ends in a rounded glide; mid level is level too
    (("s", "i", "k", "6"), "sɪ↓k"),  # 食: lax vowel before a velar coda, the tone before the stop
    (("gw", "o", "ng", "2"), "kwɔ↗ŋ"),  # 廣: labialised onset, the tone before the nasal coda
    (("c", "eo", "t", "1"), "ʦʰø→t"),  # 出: aspirated affricate, entering tone
    (("d", "aa", "i", "6"), "tai↓"),  # 大: long a in a diphthong
    (("d", "a", "i", "1"), "tɐi→"),  # 低: short a
])
def test_jyutping_syllables_map_onto_kokoros_inventory(syllable, ipa):
    if ipa is None:
        with pytest.raises(KeyError):
            jyutping_syllable_ipa(*syllable)
        return
    assert jyutping_syllable_ipa(*syllable) == ipa


def test_a_cantonese_sentence_is_spoken_word_by_word_and_unknown_text_is_refused():
    assert cantonese_phonemes("我唔知") == "ŋɔ↗ m↓ ʦi→"
    assert cantonese_phonemes("我唔知abc") is None  # no Jyutping: the clip is skipped, not mispronounced


def test_english_phonemes_are_in_kokoros_notation():
    phonemes = english_phonemes("the day was better")
    assert "A" in phonemes  # the diphthong of "day" as one symbol
    assert "T" in phonemes  # the American flap in "better"
    assert "^" not in phonemes


def test_every_phoneme_the_renderer_writes_is_in_the_voices_vocabulary():
    vocab = load_kokoro(threads=1).vocab
    for phonemes in (cantonese_phonemes("佢哋今日去咗邊度呀"), english_phonemes("she sells sea shells")):
        assert phonemes and set(phonemes) <= set(vocab) | {" "}


def test_cantonese_clips_are_rendered_resumably_and_listed(tmp_path):
    source = tmp_path / "plan.jsonl"
    write_manifest(source, [Utterance(f"u{i}", f"wav/u{i}.wav", text, "yue-HK", "x", 1.0, "clean")
                            for i, text in enumerate(["我唔知", "你食咗飯未呀", "我唔知"])])
    out = tmp_path / "kokoro"
    main(["--manifest", str(source), "--locale", "yue-HK", "--out", str(out), "--count", "5"])
    rows = list(read_manifest(out / "manifest.jsonl"))
    assert [r.text for r in rows] == ["我唔知", "你食咗飯未呀"]  # each distinct sentence once
    assert all(r.condition.startswith("kokoro-") and r.speaker.startswith("kokoro-") for r in rows)
    for row in rows:
        audio, rate = sf.read(out / row.audio)
        assert rate == 16_000 and 0.4 < len(audio) / rate < 5 and abs(audio).max() > 0.05
    first = out / rows[0].audio
    stamp = os.stat(first).st_mtime_ns
    first_row = json.dumps(rows[0].__dict__, ensure_ascii=False)
    main(["--manifest", str(source), "--locale", "yue-HK", "--out", str(out), "--count", "5",
          "--deadline-minutes", "0"])  # lists what is on disk, renders nothing
    assert os.stat(first).st_mtime_ns == stamp
    assert json.dumps(next(iter(read_manifest(out / "manifest.jsonl"))).__dict__, ensure_ascii=False) == first_row


def test_several_locales_render_into_one_corpus_each_from_its_own_sentences(tmp_path):
    source = tmp_path / "plan.jsonl"
    write_manifest(source, [Utterance("a", "wav/a.wav", "我唔知", "yue-HK", "x", 1.0, "clean"),
                            Utterance("b", "wav/b.wav", "今天天气很好", "zh-CN", "x", 1.0, "clean"),
                            Utterance("c", "wav/c.wav", "the day was better", "en-US", "x", 1.0, "clean")])
    out = tmp_path / "dev"
    main(["--manifest", str(source), "--locale", "zh-CN", "en-US", "--out", str(out), "--count", "1"])
    rows = list(read_manifest(out / "manifest.jsonl"))
    assert [(r.locale, r.text, Path(r.audio).name) for r in rows] == [
        ("zh-CN", "今天天气很好", "zh-CN_kokoro_00000.wav"), ("en-US", "the day was better", "en-US_kokoro_00000.wav")]


def test_a_renderer_speaks_each_distinct_sentence_once_past_the_ones_another_corpus_spoke():
    args = renderer_parser("", ("en-US",)).parse_args(["--manifest", "m", "--out", "o", "--skip", "2", "--count", "2"])
    assert sentences_to_speak(["a", "b", "a", "c", "d", "e"], args) == ["c", "d"]
