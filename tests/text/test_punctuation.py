"""The punctuation and casing tagger (model.text.punctuation): its rules on given logits, and the bundled taggers on
fixed sentences."""

import pytest
import torch

from model.text.punctuation import Case, Mark, Tag, cased, decide, load_punctuator, units_of


def logits(*rows: int, classes: int = 4) -> torch.Tensor:
    """(T, classes) logits that favour the given class of each unit."""
    return torch.nn.functional.one_hot(torch.tensor(rows), classes).float()


def test_a_text_ends_with_its_likelier_sentence_end():
    marks = torch.tensor([[5.0, 0, 0, 0], [5.0, 0, 1.0, 2.0]])
    assert [t.mark for t in decide(["你", "呢"], marks, None)] == [Mark.NONE, Mark.QUESTION]
    assert decide(["好", "的"], logits(0, 0), None)[-1].mark == Mark.PERIOD


def test_no_mark_inside_a_spoken_number():
    tags = decide(["一", "三", "八", "好"], logits(1, 1, 1, 1), None)
    assert [t.mark for t in tags] == [Mark.NONE, Mark.NONE, Mark.COMMA, Mark.PERIOD]
    assert decide(["three", "hundred", "dollars"], logits(2, 2, 0), None)[0].mark == Mark.NONE


def test_a_sentence_starts_with_a_capital_and_a_tag_is_left_alone():
    tags = decide(["hello", "there", "[PHONE]", "ok"], logits(0, 2, 2, 0), logits(0, 0, 2, 2, classes=3))
    assert [t.case for t in tags] == [Case.CAPITALISED, Case.LOWER, Case.LOWER, Case.UPPER]
    assert [cased(w, c) for w, c in [("nasa", Case.UPPER), ("paris", Case.CAPITALISED), ("i", Case.LOWER)]] == [
        "NASA", "Paris", "i"]


def test_units_are_characters_words_and_tags():
    assert [m.group() for m in units_of("我用iphone 4s打给[PHONE]")] == ["我", "用", "iphone", "4s", "打", "给",
                                                                        "[PHONE]"]
    assert [m.group() for m in units_of("don't call [EMAIL] ok")] == ["don't", "call", "[EMAIL]", "ok"]


@pytest.fixture(scope="module")
def punctuator():
    return load_punctuator()


def punctuate(punctuator, text: str, locale: str) -> list[Tag]:
    return list(punctuator.tag([m.group() for m in units_of(text)], locale))


@pytest.mark.parametrize("locale,text", [("zh-CN", "你今天晚上想吃什么"), ("zh-CN", "这个问题你知道吗"),
                                         ("yue-HK", "你食咗飯未呀")])
def test_a_chinese_question_ends_with_a_question_mark(punctuator, locale, text):
    assert punctuate(punctuator, text, locale)[-1].mark == Mark.QUESTION


def test_a_chinese_statement_ends_with_a_full_stop(punctuator):
    assert punctuate(punctuator, "我们明天上午去北京开会", "zh-CN")[-1].mark == Mark.PERIOD


def test_an_english_sentence_is_capitalised_and_closed(punctuator):
    tags = punctuate(punctuator, "i think this is a very good idea", "en-US")
    assert tags[0].case == Case.UPPER or tags[0].case == Case.CAPITALISED  # "I"
    assert tags[-1].mark == Mark.PERIOD
    assert all(t.case == Case.LOWER for t in tags[2:])


def test_an_english_question(punctuator):
    assert punctuate(punctuator, "where are you going", "en-US")[-1].mark == Mark.QUESTION


def test_the_checkpoint_says_what_it_measured(punctuator):
    for locale in ("zh-CN", "yue-HK", "en-US"):
        held_out = punctuator.metadata["locales"][locale]["held_out"]
        assert held_out["marks"]["period"]["f1"] > 0.5
    assert punctuator.metadata["locales"]["en-US"]["held_out"]["casing_accuracy"] > 0.9
