"""The punctuation tagger's examples: units exactly as the transcript normal form writes them, each labelled with the
mark that follows it and (English) its case, and a held-out split that depends on the text alone."""

import pytest

from model.text.normalize import normalize_text
from model.text.punctuation import TAG, Case, Mark, units_of
from model.training.punctuation_data import entities_tagged, is_held_out, labelled, sentences, windows

RAW = [
    ("zh-CN", "我爱北京天安门，你呢？iPhone４S手机很好用。"),
    ("zh-CN", "“一九九七年”是不平凡的一年、很重要；好！"),
    ("yue-HK", "喂遲啲去唔去旅行啊?你老公有冇平機票啊?"),
    ("en-US", "\"He said: 'I don't know.' Why?\" -- Mr. Smith, the A-Team's NASA guy..."),
    ("en-US", "Café au lait, s'il vous plaît; it's 3 o'clock!"),
]


@pytest.mark.parametrize("locale,raw", RAW, ids=[r[1][:10] for r in RAW])
def test_units_are_the_normal_form_the_recogniser_writes(locale, raw):
    example = labelled(raw, chinese=locale != "en-US")
    assert list(example.units) == [m.group() for m in units_of(normalize_text(raw, locale))]
    assert len(example.marks) == len(example.cases) == len(example.units)


def test_a_mark_labels_the_unit_before_it_the_strongest_winning():
    example = labelled("我爱北京，你呢？！好。", chinese=True)
    assert dict(zip(example.units, example.marks)) == {"我": Mark.NONE, "爱": Mark.NONE, "北": Mark.NONE,
                                                       "京": Mark.COMMA, "你": Mark.NONE, "呢": Mark.QUESTION,
                                                       "好": Mark.PERIOD}


def test_english_words_carry_their_case():
    example = labelled("NASA said Hello to the world.", chinese=False)
    assert example.units == ("nasa", "said", "hello", "to", "the", "world")
    assert example.cases == (Case.UPPER, Case.LOWER, Case.CAPITALISED, Case.LOWER, Case.LOWER, Case.LOWER)
    assert example.marks[-1] == Mark.PERIOD


def test_windows_hold_whole_sentences_and_the_split_is_by_text():
    doc = "我们走吧。你去吗？我不去，太远了。" * 5
    for window in windows([doc], chinese=True, seed=0):
        assert window.marks[-1] in (Mark.PERIOD, Mark.QUESTION)
    assert len(list(sentences(labelled(doc, chinese=True)))) == 15
    assert is_held_out(doc) == is_held_out(str(doc))  # a function of the text, not of chance or order


def test_a_number_becomes_one_tag_keeping_the_mark_after_it():
    import random

    example = labelled("我的电话是一三八一二三四，好的。号码2024。", chinese=True)
    tagged = entities_tagged(example, random.Random(0), rate=1.0)
    assert tagged.units == ("我", "的", "电", "话", "是", TAG, "好", "的", "号", "码", TAG)
    assert tagged.marks[5] == Mark.COMMA and tagged.marks[-1] == Mark.PERIOD
    assert entities_tagged(example, random.Random(0), rate=0.0) == example
