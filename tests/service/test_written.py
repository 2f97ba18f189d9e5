"""The written form (`format=written`, service/written.py): numbers per locale, punctuation and English case from the
bundled tagger, and both through the real server with the text as heard and every token's time kept."""

import asyncio

import httpx
import pytest

from helpers import encode, finals, pcm16, stream_audio
from model.corpus.synthesize import VoiceSpec, synthesize
from model.decoding.results import Alternative, SegmentResult, TokenResult, Transcript, WordResult
from model.text.punctuation import Case, Mark, Tag
from service.written import clause_spans, recased, written, written_numbers, written_transcript, written_words

CASES = [
    ("zh-CN", "一共三百五十块钱", "一共350块钱"),
    ("zh-CN", "二零二四年我去了北京", "2024年我去了北京"),
    ("zh-CN", "建设防洪屏障江苏决定投入四十亿", "建设防洪屏障江苏决定投入40亿"),
    ("zh-CN", "三点十五分", "3:15"),
    ("zh-CN", "我们一起去买了三本书", "我们一起去买了三本书"),  # single numerals stay words
    ("zh-CN", "万一下雨千万不要去", "万一下雨千万不要去"),
    ("zh-CN", "我的电话号码是[PHONE]", "我的电话号码是[PHONE]"),  # a masked entity's tag passes through
    ("yue-HK", "一共兩百五十萬", "一共250萬"),
    ("yue-HK", "廿三號", "23號"),
    ("yue-HK", "我一九九七年買咗三本書", "我1997年買咗三本書"),
    ("yue-HK", "萬一落雨千萬唔好去", "萬一落雨千萬唔好去"),
    ("yue-HK", "一兩個人", "一兩個人"),  # an unconverted numeral keeps its Traditional character
    ("en-US", "three hundred and fifty dollars", "$350"),
    ("en-US", "i bought three books in nineteen ninety seven", "i bought three books in 1997"),
    ("en-US", "one of them sent it to [EMAIL]", "one of them sent it to [EMAIL]"),
    ("en-US", "", ""),
]


@pytest.mark.parametrize("locale,spoken,expected", CASES, ids=[f"{c[0]}:{c[1][:12]}" for c in CASES])
def test_numbers_are_written(locale, spoken, expected):
    assert written_numbers(spoken, locale) == expected


PUNCTUATED = [
    ("zh-CN", "我的订单号是一二三四五", "我的订单号是12345。"),  # issue 29's example
    ("zh-CN", "你今天晚上想吃什么", "你今天晚上想吃什么？"),
    ("zh-CN", "我的电话号码是[PHONE]", "我的电话号码是[PHONE]。"),  # a tag passes through; the sentence still ends
    ("yue-HK", "我一九九七年買咗三本書", "我1997年買咗三本書。"),
    ("en-US", "i paid three hundred and fifty dollars", "I paid $350."),
    ("en-US", "one of them sent it to [EMAIL]", "One of them sent it to [EMAIL]."),
    ("en-US", "", ""),
]


@pytest.mark.parametrize("locale,spoken,expected", PUNCTUATED, ids=[f"{c[0]}:{c[1][:12]}" for c in PUNCTUATED])
def test_written_text_is_punctuated_cased_and_has_its_numbers_written(locale, spoken, expected):
    assert written(spoken, locale) == expected


def test_clauses_end_at_each_mark():
    tags = [Tag(Mark.NONE, Case.LOWER), Tag(Mark.COMMA, Case.LOWER), Tag(Mark.NONE, Case.LOWER),
            Tag(Mark.PERIOD, Case.LOWER)]
    assert clause_spans(tags) == [(0, 1), (2, 3)]


def test_a_case_rewrites_the_words_itn_left_and_not_a_written_number():
    tags = [Tag(Mark.NONE, Case.CAPITALISED), Tag(Mark.NONE, Case.LOWER), Tag(Mark.NONE, Case.CAPITALISED),
            Tag(Mark.NONE, Case.CAPITALISED), Tag(Mark.PERIOD, Case.UPPER)]
    heard = ["i", "paid", "three", "hundred", "nasa"]
    assert recased(heard, tags, "i paid 300 nasa") == "I paid 300 NASA"


def segment(index: int, text: str, start_s: float) -> SegmentResult:
    tokens = tuple(TokenResult(w, start_s + i * 0.3, start_s + i * 0.3 + 0.2, 0.9) for i, w in enumerate(text.split()))
    return SegmentResult(index, start_s, start_s + 3.0, text, 0.9, tokens, (Alternative(text, 1.0),), "en-US")


def test_each_segment_of_a_transcript_ends_its_own_sentence():
    heard = ("where are you going", "i think it leaves at nine")
    transcript = Transcript(" ".join(heard), "en-US", None, 6.0, (segment(0, heard[0], 0.0), segment(1, heard[1], 3.0)))
    shown, raw_texts = written_transcript(transcript)
    assert raw_texts == heard
    first, second = shown.segments
    assert first.text == "Where are you going?" and second.text.startswith("I think it leaves at")
    assert second.text.endswith(".") and shown.text == f"{first.text} {second.text}"
    assert [s.tokens for s in shown.segments] == [s.tokens for s in transcript.segments]  # timed as heard
    assert first.alternatives[0].text == first.text


def upload(live_server, audio, **fields) -> dict:
    response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", encode(audio, "WAV"))}, data=fields,
                          timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def timed(items: list[dict]) -> list[tuple]:
    return [(item["text"], item["start"], item["end"]) for item in items]


@pytest.mark.parametrize("voice,locale,said,expected", [
    ("yue", "yue-HK", "我一九九七年買咗三本書", "我1997年買咗三本書。"),
    ("en-us", "en-US", "i bought three books in two thousand and seven", "I bought three books in 2007."),
])
def test_an_upload_is_written_by_default_and_keeps_the_text_as_heard(live_server, voice, locale, said, expected):
    audio = synthesize(said, VoiceSpec(voice))
    spoken = upload(live_server, audio, locale=locale, format="spoken")
    body = upload(live_server, audio, locale=locale, nbest="2")  # the server's default, ASR_TEXT_FORMAT=written
    assert spoken["text"] == said and spoken["raw_text"] is None  # as the model hears it
    assert body["text"] == expected and body["raw_text"] == said
    (segment,) = body["segments"]
    assert segment["text"] == expected and segment["raw_text"] == said
    assert segment["alternatives"][0]["text"] == expected
    heard = spoken["segments"][0]
    assert timed(segment["tokens"]) == timed(heard["tokens"])  # tokens as heard
    words = [w["text"] for w in segment["words"]]
    assert (" " if locale == "en-US" else "").join(words) == expected  # words as written, each timed by its heard words
    said_for_year = [w for w in heard["words"] if w["text"] in ("一", "九", "七", "two", "thousand", "and", "seven")]
    (year,) = [w for w in segment["words"] if "1997" in w["text"] or "2007" in w["text"]]
    assert (year["start"], year["end"]) == (said_for_year[0]["start"], said_for_year[-1]["end"])
    feedback = httpx.post(f"{live_server.url}/v1/feedback", json={"request_id": body["request_id"], "reference": said})
    assert feedback.json()["hypothesis"] == said and feedback.json()["errors"] == 0  # scored as heard


def test_written_and_masked_together(live_server):
    audio = synthesize("我嘅電話號碼係九一二三四五六七", VoiceSpec("yue"))
    body = upload(live_server, audio, locale="yue", format="written", redact="pii")
    assert body["raw_text"] == "我嘅電話號碼係[PHONE]"  # masked before it is written: no 9123 4567
    assert body["text"] == "我嘅電話號碼係[PHONE]。"  # the tag untouched, the sentence closed after it
    response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", encode(audio, "WAV"))},
                          data={"format": "digits"}, timeout=120)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_a_stream_writes_its_finals_by_default(live_server):
    audio = synthesize("我一九九七年買咗三本書", VoiceSpec("yue"))
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "yue"}, 3200))
    (final,) = finals(messages)
    assert final["text"] == "我1997年買咗三本書。" and final["raw_text"] == "我一九九七年買咗三本書"
    partials = [m["text"] for m in messages if m["type"] == "partial"]
    assert partials and not any(p.endswith("。") or "1997" in p for p in partials)  # partials stay as heard
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "yue", "format": "spoken"}, 3200))
    (final,) = finals(messages)
    assert final["text"] == "我一九九七年買咗三本書" and final["raw_text"] is None


def test_the_openai_endpoint_writes_its_text(live_server):
    said = "i bought three books in two thousand and seven"
    audio = encode(synthesize(said, VoiceSpec("en-us")), "WAV")
    response = httpx.post(f"{live_server.url}/v1/audio/transcriptions", files={"file": ("a.wav", audio)}, timeout=120,
                          data={"language": "en", "format": "written", "response_format": "verbose_json",
                                "timestamp_granularities[]": "word"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "I bought three books in 2007."
    assert " ".join(w["word"] for w in body["words"]) == body["text"]  # its words as written, each with its time
    assert body["words"][-1]["start"] < body["words"][-1]["end"]  # 2007. spans "two thousand and seven"


def test_a_requests_names_are_written_as_it_spelled_them():
    assert written("my kubernetes account is locked", "en-US", ["Kubernetes"]) == "My Kubernetes account is locked."
    assert written("pay with paypal", "en-US", ["PayPal", "pal"]) == "Pay with PayPal."  # longest name first
    assert written("paypals", "en-US", ["PayPal"]) == "Paypals."  # a whole word or none


def test_written_words_are_timed_by_the_words_said_for_them():
    said = "i paid three hundred and fifty dollars".split()
    heard = [WordResult(w, i * 0.5, i * 0.5 + 0.4, 0.9 - i / 100) for i, w in enumerate(said)]
    words = written_words("I paid $350.", heard)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [("I", 0.0, 0.4), ("paid", 0.5, 0.9), ("$350.", 1.0, 3.4)]
    assert words[2].confidence == heard[-1].confidence  # as sure as the least sure word said for it
    heard = [WordResult(c, i * 0.2, i * 0.2 + 0.2, 0.8) for i, c in enumerate("我嘅電話號碼係[PHONE]")]
    assert [w.text for w in written_words("我嘅電話號碼係[PHONE]。", heard)][-2:] == ["係", "[PHONE]。"]
    assert written_words("Well, yes.", [WordResult("well", 0.0, 0.3, 1.0)])[1] == WordResult("yes.", 0.3, 0.3, 1.0)
