"""Personal data in recognised text (service.pii) and its masking in results (service.redaction): pure functions,
a table of written and spoken cases per locale and entity, and cases that must stay text."""

from dataclasses import replace

import pytest

from model.decoding.results import Alternative, SegmentResult, TokenResult, Transcript, WordResult
from service.pii import PiiOptions, find_entities, split_units
from service.redaction import StreamRedactor, TAGS, redact_segments, redact_text, redact_transcript

# (locale, text, [(entity, the units it covers, joined as the text writes them)])
CASES = [
    # Mandarin: spoken digits, 幺, written digits, the model's sound-alikes (measured: 领 for 零, 把 for 八, 要 for 幺)
    ("zh-CN", "我的电话号码是一三八零零一三八零零零", [("phone_number", "一三八零零一三八零零零")]),
    ("zh-CN", "我的电话号码是幺三八零零幺三八零零零", [("phone_number", "幺三八零零幺三八零零零")]),
    ("zh-CN", "我的电话是13800138000谢谢", [("phone_number", "13800138000")]),
    ("zh-CN", "我的电话号码是要三八零零要三把领领领", [("phone_number", "要三八零零要三把领领领")]),
    ("zh-CN", "身份证号码是一一零一零五一九四九一二三一零零二叉",
     [("cn_resident_id", "一一零一零五一九四九一二三一零零二叉")]),
    ("zh-CN", "身份证号码是11010519491231002X", [("cn_resident_id", "11010519491231002X")]),
    ("zh-CN", "身份证号是四四零三零四一九九零零一零一一二三三",
     [("cn_resident_id", "四四零三零四一九九零零一零一一二三三")]),
    ("zh-CN", "卡号是六二二二零二一二三四五六七八九零一二八",
     [("bank_card", "六二二二零二一二三四五六七八九零一二八")]),
    ("zh-CN", "验证码是三八二九一七", [("digit_string", "三八二九一七")]),
    ("zh-CN", "验证码是三巴尔就一起", [("digit_string", "三巴尔就一起")]),  # the model's hearing of 三八二九一七
    ("zh-CN", "身份证号码是四四零三零四一九九领另一零一一二三三",
     [("cn_resident_id", "四四零三零四一九九领另一零一一二三三")]),
    ("zh-CN", "我的邮箱是一二三四五六七八九艾特qq点com", [("email", "一二三四五六七八九艾特qq点com")]),
    ("zh-CN", "发到john@example.com就行", [("email", "john@example.com")]),
    # Cantonese: Traditional characters, a Hong Kong number
    ("yue-HK", "我嘅電話號碼係九一二三四五六七", [("phone_number", "九一二三四五六七")]),
    ("yue-HK", "卡號係四一一一一一一一一一一一一一一一", [("bank_card", "四一一一一一一一一一一一一一一一")]),
    ("yue-HK", "身份證號碼係一一零一零五一九四九一二三一零零二叉",
     [("cn_resident_id", "一一零一零五一九四九一二三一零零二叉")]),
    ("yue-HK", "我嘅電話係91234567", [("phone_number", "91234567")]),
    ("yue-HK", "我張卡嘅好碼係四一一一一一一一一一一一一一一日",
     [("bank_card", "四一一一一一一一一一一一一一一日")]),  # 日 for 一
    # English: digit words, "double", sound-alikes ("for", "too", "won"), written forms
    ("en-US", "my phone number is four one five five five five two six seven one",
     [("phone_number", "four one five five five five two six seven one")]),
    ("en-US", "my number is four one five five double five two six seven one",
     [("phone_number", "four one five five double five two six seven one")]),
    ("en-US", "my number is for one five five five five too six seven won",
     [("phone_number", "for one five five five five too six seven won")]),
    ("en-US", "my card number is four one one one one one one one one one one one one one one one",
     [("bank_card", "four one one one one one one one one one one one one one one one")]),
    ("en-US", "the card is 4111 1111 1111 1111", [("bank_card", "4111 1111 1111 1111")]),
    ("en-US", "call 415-555-2671 today", [("phone_number", "415-555-2671")]),
    ("en-US", "the code is three eight two nine one seven", [("digit_string", "three eight two nine one seven")]),
    ("en-US", "the code is three at too nine one seven", [("digit_string", "three at too nine one seven")]),
    ("en-US", "my phone number is for one five five five five two six sevenone",  # two words run together
     [("phone_number", "for one five five five five two six sevenone")]),
    ("en-US", "email me at john dot smith at example dot com", [("email", "john dot smith at example dot com")]),
    ("en-US", "email me at john at example dot come", [("email", "john at example dot come")]),
    ("en-US", "write to john.smith@example.co.uk please", [("email", "john.smith@example.co.uk")]),
    # Must stay text: years, short quantities, numbers said as quantities, sound-alikes without digits around them
    ("zh-CN", "二零二四年我去了北京", []),
    ("zh-CN", "一共三百五十块钱", []),
    ("zh-CN", "我今年买了三本书", []),
    ("zh-CN", "我们一起去吃饭要把门关好", []),
    ("zh-CN", "房间号是三零二", []),
    ("yue-HK", "我買咗三本書", []),
    ("yue-HK", "一九九七年", []),
    ("yue-HK", "今日係我生日", []),
    ("en-US", "i bought three apples in twenty twenty four", []),
    ("en-US", "i waited for one hour to see two or three of them", []),
    ("en-US", "room four one two", []),
    ("en-US", "pi is 3.14159", []),
    ("en-US", "look at this dot there", []),
    ("en-US", "meet me at one", []),
    ("en-US", "someone gave one to everyone", []),
]


def covered(text: str, entity) -> str:
    spans = split_units(text)
    return text[spans[entity.start][0] : spans[entity.stop - 1][1]]


@pytest.mark.parametrize("locale,text,expected", CASES, ids=[f"{c[0]}:{c[1][:24]}" for c in CASES])
def test_entities_written_and_spoken(locale, text, expected):
    units = [text[a:b] for a, b in split_units(text)]
    found = find_entities(units)
    assert [(e.kind, covered(text, e)) for e in found] == expected


def test_units_are_cjk_characters_and_runs_of_other_characters():
    text = "我的电话 13800138000 call me"
    assert [text[a:b] for a, b in split_units(text)] == ["我", "的", "电", "话", "13800138000", "call", "me"]


def test_the_digit_threshold_is_a_setting():
    units = list("验证码是三八二九")  # four digits
    assert find_entities(units) == []
    assert [e.kind for e in find_entities(units, PiiOptions(min_digits=4))] == ["digit_string"]


def test_an_open_end_masks_a_run_that_may_still_grow():
    """A partial's trailing digits are masked while the number is being said: the next partial may complete it,
    and what was shown cannot be taken back. Its first digit too (一 may begin 一起: the tag shows for a moment)."""
    assert [e.kind for e in find_entities(list("我的号码是一三"), open_end=True)] == ["digit_string"]
    assert find_entities(list("我的号码是一三"), open_end=False) == []
    assert [e.kind for e in find_entities(list("我们一"), open_end=True)] == ["digit_string"]
    assert find_entities(list("我们一起"), open_end=True) == []
    assert find_entities(list("我们一三本书"), open_end=True) == []  # closed by what follows


# ---------------------------------------------------------------------------------------------- results


def chinese_segment(text: str, index: int = 0, start_s: float = 0.0, step_s: float = 0.2,
                    channel=None) -> SegmentResult:
    tokens = tuple(TokenResult(c, round(start_s + i * step_s, 3), round(start_s + i * step_s + 0.04, 3), 0.9)
                   for i, c in enumerate(text))
    words = tuple(WordResult(t.text, t.start_s, round(t.end_s + 0.16, 3), t.confidence) for t in tokens)
    end_s = round(start_s + len(text) * step_s, 3)
    return SegmentResult(index, start_s, end_s, text, 0.9, tokens,
                         (Alternative(text, 0.8), Alternative(text[:-1], 0.2)), "zh-CN", words, channel)


def english_segment(words: list[str], pieces: dict[str, list[str]] | None = None) -> SegmentResult:
    """One token per word, except the words `pieces` splits (subword units, as the model's English tokens are)."""
    tokens, out = [], []
    for i, word in enumerate(words):
        parts = (pieces or {}).get(word, [word])
        for j, part in enumerate(parts):
            tokens.append(TokenResult(part, round(i * 0.3 + j * 0.1, 3), round(i * 0.3 + j * 0.1 + 0.04, 3),
                                      0.8 + 0.01 * j))
        out.append(WordResult(word, round(i * 0.3, 3), round(i * 0.3 + 0.25, 3), 0.8))
    text = " ".join(words)
    return SegmentResult(0, 0.0, len(words) * 0.3, text, 0.8, tuple(tokens), (Alternative(text, 1.0),), "en-US",
                         tuple(out))


def test_a_segment_is_masked_in_text_tokens_words_and_alternatives_with_the_entity_time():
    segment = chinese_segment("我的电话号码是一三八零零一三八零零零")
    (masked,), redactions = redact_segments([segment], PiiOptions())
    assert masked.text == "我的电话号码是[PHONE]"
    assert [t.text for t in masked.tokens] == list("我的电话号码是") + ["[PHONE]"]
    assert [w.text for w in masked.words] == list("我的电话号码是") + ["[PHONE]"]
    assert masked.alternatives[0].text == "我的电话号码是[PHONE]"
    assert masked.alternatives[1].text == "我的电话号码是[NUMBER]"  # ten digits: no valid number, still long
    (redaction,) = redactions
    assert redaction.kind == "phone_number"
    assert redaction.start_s == segment.tokens[7].start_s  # the first digit's token
    assert redaction.end_s == segment.words[-1].end_s  # the last digit's word end
    assert masked.tokens[-1].start_s == redaction.start_s and masked.tokens[-1].end_s == segment.tokens[-1].end_s
    assert not any(ch in "".join(t.text for t in masked.tokens) for ch in "一三八零")


def test_beside_an_entity_an_alternative_hearing_is_masked_more_strictly():
    """An n-best alternative is the same audio heard otherwise: a number broken by a misheard unit, or an email's
    domain heard as other words, is masked where the best text held an entity."""
    segment = chinese_segment("我的电话号码是一三八零零一三八零零零")
    broken = replace(segment, alternatives=(Alternative("我的电话号码是一三八零零嘅一三八零", 0.5),))
    (masked,), _ = redact_segments([broken], PiiOptions())
    assert masked.alternatives[0].text == "我的电话号码是[NUMBER]嘅[NUMBER]"
    segment = english_segment("send it to john at example dot com".split())
    segment = replace(segment, alternatives=(Alternative(segment.text, 0.6),
                                             Alternative("send it to john at example doubt come", 0.4)))
    (masked,), redactions = redact_segments([segment], PiiOptions())
    assert [a.text for a in masked.alternatives] == ["send it to [EMAIL]", "send it to [EMAIL]"]
    assert [r.kind for r in redactions] == ["email"]
    assert redact_text("look at this one", PiiOptions()) == "look at this one"  # not without an entity


def test_english_words_of_several_tokens_collapse_into_one_masked_token():
    words = "my card is four one one one one one one one one one one one one one one one thanks".split()
    segment = english_segment(words, {"thanks": ["than", "ks"], "four": ["fo", "ur"]})
    (masked,), redactions = redact_segments([segment], PiiOptions())
    assert masked.text == "my card is [CARD] thanks"
    assert [t.text for t in masked.tokens] == ["my", "card", "is", "[CARD]", "than", "ks"]
    assert [w.text for w in masked.words] == ["my", "card", "is", "[CARD]", "thanks"]
    assert redactions[0].kind == "bank_card" and redactions[0].start_s == 0.9
    assert redactions[0].end_s == pytest.approx(18 * 0.3 + 0.25)


def test_a_number_cut_into_segments_at_its_pauses_is_masked_in_both():
    """An upload is cut at pauses: 一三八零 | 零一三八零零零 are one phone number in two segments 0.5 s apart, while
    the same pieces 5 s apart are two numbers (the second long enough to mask on its own)."""
    first = chinese_segment("电话一三八零", 0, 0.0)
    near = chinese_segment("零一三八零零零", 1, first.end_s + 0.5)
    far = chinese_segment("零一三八零零零", 1, first.end_s + 5.0)
    masked, redactions = redact_segments([first, near], PiiOptions())
    assert [s.text for s in masked] == ["电话[PHONE]", "[PHONE]"]
    assert [r.kind for r in redactions] == ["phone_number", "phone_number"]
    masked, redactions = redact_segments([first, far], PiiOptions())
    assert [s.text for s in masked] == ["电话一三八零", "[NUMBER]"]


def test_a_transcript_is_masked_per_channel_and_its_text_joined_again():
    agent = chinese_segment("请问您的电话", 0, 0.0, channel=0)
    customer = chinese_segment("一三八零零一三八零零零", 1, 0.5, channel=1)
    transcript = Transcript(agent.text + customer.text, "zh-CN", None, 3.0, (agent, customer))
    masked, redactions = redact_transcript(transcript, PiiOptions())
    assert masked.text == "请问您的电话[PHONE]"
    assert [(r.kind, r.segment, r.channel) for r in redactions] == [("phone_number", 1, 1)]


def test_tokens_that_do_not_spell_the_text_are_all_masked():
    segment = chinese_segment("电话一三八零零一三八零零零")
    odd = SegmentResult(0, 0.0, 3.0, segment.text, 0.9, segment.tokens[:3], (), "zh-CN", segment.words[:3])
    (masked,), _ = redact_segments([odd], PiiOptions())
    assert [t.text for t in masked.tokens] == ["[PHONE]"] and [w.text for w in masked.words] == ["[PHONE]"]


def test_text_alone_is_masked():
    assert redact_text("call four one five five five five two six seven one", PiiOptions()) == "call [PHONE]"
    assert redact_text("一三八零零零", PiiOptions(), context=list("一三八零零")) == "[PHONE]"


def test_a_stream_masks_a_number_split_across_partials_and_carries_it_into_the_next_final():
    redactor = StreamRedactor(PiiOptions())
    said = "我的电话号码是一三八零零一三八零零零"
    shown = []
    for length in (5, 7, 8, 9, 12, 15, len(said)):  # the partials of one segment as the number is said
        partial = chinese_segment(said[:length])
        masked, redactions = redactor.partial(0, partial.text, partial.tokens)
        shown.append(masked.text)
        assert "".join(t.text for t in masked.tokens) == masked.text
        assert len(redactions) == masked.text.count("[")
    assert shown == ["我的电话号", "我的电话号码是", "我的电话号码是[NUMBER]", "我的电话号码是[NUMBER]",
                     "我的电话号码是[NUMBER]", "我的电话号码是[NUMBER]", "我的电话号码是[PHONE]"]
    final, redactions = redactor.final(chinese_segment(said))
    assert final.text == "我的电话号码是[PHONE]" and redactions[0].kind == "phone_number"
    # A number said over an endpoint: the first final's 5 digits were sent; the rest is masked as that phone number.
    redactor = StreamRedactor(PiiOptions())
    first, _ = redactor.final(chinese_segment("电话一三八零零", 0, 0.0))
    assert first.text == "电话一三八零零"
    partial = chinese_segment("一三八零零零", 1, 2.0)
    masked, _ = redactor.partial(1, partial.text, partial.tokens)
    assert masked.text == "[PHONE]"
    second, redactions = redactor.final(partial)
    assert second.text == "[PHONE]" and redactions[0].segment == 1


def test_every_entity_has_a_tag():
    assert set(TAGS) == {"phone_number", "cn_resident_id", "bank_card", "email", "digit_string"}
