"""model.evaluation.tone_errors splits a tonal locale's character errors into wrong syllables, right syllables with the
wrong tone, and homophones (right syllable and tone, wrong character)."""

import pytest

from model.evaluation.tone_errors import ToneErrorCounts

pytest.importorskip("pypinyin")
pytest.importorskip("pycantonese")


@pytest.mark.parametrize("locale, reference, hypothesis, syllable, tone", [
    ("zh-CN", "妈妈骂马", "妈妈马马", 0, 1),  # 骂 ma4 read as 马 ma3: a tone error
    ("zh-CN", "这是我的", "这事我的", 0, 0),  # 是/事 are both shi4: a homophone
    ("zh-CN", "很好", "很跑", 1, 0),  # hao3 -> pao3: a syllable error
    ("yue-HK", "你好", "尼好", 0, 1),  # nei5 -> nei4
    ("yue-HK", "你好", "你好", 0, 0),
])
def test_errors_split_into_syllable_tone_and_homophone(locale, reference, hypothesis, syllable, tone):
    counts = ToneErrorCounts()
    counts.add(locale, reference, hypothesis)
    rates = counts.rates()
    n = len(reference)
    assert rates["syllable_error_rate"] == pytest.approx(syllable / n, abs=1e-4)
    assert rates["tone_error_rate"] == pytest.approx(tone / n, abs=1e-4)
    assert rates["cer"] >= rates["syllable_error_rate"] + rates["tone_error_rate"]


def test_the_syllable_head_is_scored_per_reference_syllable(tiny_loaded):
    """A model with the auxiliary tonal-syllable head: its own greedy output is scored against the reference's
    pinyin / Jyutping (a random head hears nonsense: the rates are counted, not good)."""
    from types import SimpleNamespace

    import torch

    from model.evaluation.tone_errors import syllable_head_errors
    from model.recognition.recognizer import Recognizer

    utterances = [SimpleNamespace(text="今天天气很好", locale="zh-CN"), SimpleNamespace(text="你好嗎", locale="yue-HK")]
    audio = [torch.randn(16000) * 0.1, torch.randn(12000) * 0.1]
    result = syllable_head_errors(Recognizer(tiny_loaded), utterances, audio)
    assert result["zh-CN"]["syllables"] == 6 and result["yue-HK"]["syllables"] == 3
    for rates in result.values():
        assert rates["syllable_error_rate"] >= 0 and rates["syllable_error_rate"] + rates["tone_error_rate"] >= 0


def test_the_model_card_shows_where_the_chinese_errors_come_from():
    from model.evaluation.model_card import tone_lines

    stored = {"manifest": "dev.jsonl", "utterances_per_locale": 150, "modes": {
        "with_pitch": {"zh-CN": {"cer": 0.285, "syllable_error_rate": 0.043, "tone_error_rate": 0.151}},
        "pitch_path_zeroed": {"zh-CN": {"cer": 0.32, "syllable_error_rate": 0.052, "tone_error_rate": 0.194}},
        "served": {"zh-CN": {"cer": 0.183, "syllable_error_rate": 0.06, "tone_error_rate": 0.075}}},
        "syllable_head": {"zh-CN": {"syllable_error_rate": 0.1, "tone_error_rate": 0.2, "syllables": 900}}}
    lines = tone_lines({"tone_errors": stored})
    assert "| zh-CN | 28.5% | 4.3% | 15.1% | 9.1% | 32.0% | 10.0% / 20.0% |" in lines
    assert "| zh-CN | 18.3% | 6.0% | 7.5% | 4.8% |" in lines  # after the LM and rescoring
    assert tone_lines({}) == []  # a model measured before the analysis was stored: no table
