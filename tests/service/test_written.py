"""Written numbers (`format=written`, service/written.py): the function per locale, and through the real server."""

import asyncio

import httpx
import pytest

from helpers import encode, finals, pcm16, stream_audio
from model.corpus.synthesize import VoiceSpec, synthesize
from service.written import written

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
    assert written(spoken, locale) == expected


def upload(live_server, audio, **fields) -> dict:
    response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", encode(audio, "WAV"))}, data=fields,
                          timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("voice,locale,said,expected", [
    ("yue", "yue-HK", "我一九九七年買咗三本書", "我1997年買咗三本書"),
    ("en-us", "en-US", "i bought three books in nineteen ninety seven", "i bought three books in 1997"),
])
def test_an_upload_in_written_form_keeps_the_text_as_heard(live_server, voice, locale, said, expected):
    audio = synthesize(said, VoiceSpec(voice))
    spoken = upload(live_server, audio, locale=locale)
    body = upload(live_server, audio, locale=locale, format="written", nbest="2")
    assert spoken["text"] == said and spoken["raw_text"] is None  # as the model hears it (0.14.0)
    assert body["text"] == expected and body["raw_text"] == said
    (segment,) = body["segments"]
    assert segment["text"] == expected and segment["raw_text"] == said
    assert segment["alternatives"][0]["text"] == expected
    assert [t["text"] for t in segment["tokens"]] == [t["text"] for t in spoken["segments"][0]["tokens"]]
    feedback = httpx.post(f"{live_server.url}/v1/feedback", json={"request_id": body["request_id"], "reference": said})
    assert feedback.json()["hypothesis"] == said and feedback.json()["errors"] == 0  # scored as heard


def test_written_and_masked_together(live_server):
    audio = synthesize("我嘅電話號碼係九一二三四五六七", VoiceSpec("yue"))
    body = upload(live_server, audio, locale="yue", format="written", redact="pii")
    assert body["text"] == body["raw_text"] == "我嘅電話號碼係[PHONE]"  # masked before it is written: no 9123 4567
    response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", encode(audio, "WAV"))},
                          data={"format": "digits"}, timeout=120)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_a_stream_writes_its_finals(live_server):
    audio = synthesize("我一九九七年買咗三本書", VoiceSpec("yue"))
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "yue", "format": "written"}, 3200))
    (final,) = finals(messages)
    assert final["text"] == "我1997年買咗三本書" and final["raw_text"] == "我一九九七年買咗三本書"
