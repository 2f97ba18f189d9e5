"""The joint token table: CJK characters, English subwords, locale start tokens; round trips and locale masks."""

import pytest

from model.text.tokenizer import BLANK_ID, SPECIAL_TOKENS, Tokenizer, split_scripts

TEXTS = {
    "zh-CN": ["今天天气很好", "我们去北京", "用python写代码"],
    "yue-HK": ["你好嗎", "我哋去食飯"],
    "en-US": ["hello world", "the cat sat on the mat", "good morning to you all"],
}


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.build(TEXTS, subword_vocab_size=60)


def test_specials_and_locale_tokens_come_first(tokenizer):
    assert tuple(tokenizer.tokens[:3]) == SPECIAL_TOKENS
    assert tokenizer.tokens[tokenizer.locale_start_id("yue-HK")] == "<yue-HK>"


@pytest.mark.parametrize("text", ["今天天气很好", "hello world", "用python写代码", "我哋去食飯"])
def test_encode_decode_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(i > BLANK_ID for i in ids)
    assert tokenizer.decode(ids).replace(" ", "") == text.replace(" ", "")


def test_english_words_keep_their_spaces(tokenizer):
    assert tokenizer.decode(tokenizer.encode("the cat sat on the mat")) == "the cat sat on the mat"


def test_split_scripts_separates_cjk_and_latin_runs():
    assert split_scripts("我们用python写") == [(True, "我们用"), (False, "python"), (True, "写")]


def test_locale_mask_limits_each_locale_to_its_own_characters(tokenizer):
    mask = tokenizer.locale_token_mask(TEXTS)
    zh, yue = tokenizer.locales.index("zh-CN"), tokenizer.locales.index("yue-HK")
    hai = tokenizer.token_to_id["嗎"]
    assert mask[yue, hai] and not mask[zh, hai]
    assert mask[:, BLANK_ID].all()


def test_payload_round_trip(tokenizer):
    again = Tokenizer.from_payload(tokenizer.to_payload())
    assert again.tokens == tokenizer.tokens
    assert again.encode("hello world") == tokenizer.encode("hello world")
