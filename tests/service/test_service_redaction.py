"""Personal data masked through the real server and model: uploads (`redact=pii`), streams, and a server that masks
everything (`ASR_REDACT=pii`), whose logs, feedback store and metrics must hold nothing unmasked.

The utterances are spoken by espeak-ng (the voices of the synthetic test); the comments say what the default model
writes for them unmasked, sound-alikes included. It hears espeak-ng's Cantonese digits in a resident ID too poorly to
mask one there (四 as 死, 零零 as 另, digits dropped), so the Cantonese entity is the phone number."""

import asyncio
import json
import re

import httpx
import numpy as np
import pytest

from helpers import encode, finals, pcm16, scrape, start_server, stream_audio
from model.corpus.synthesize import VoiceSpec, synthesize
from service.pii import DIGITS

CHINESE_DIGITS = "".join(k for k in DIGITS if len(k) == 1)
ENGLISH_DIGITS = re.compile(r"\b(zero|one|two|three|four|five|six|seven|eight|nine)+\b")

# (espeak voice, locale, what is said, the entities expected in the masked result)
SAID = [
    ("yue", "yue-HK", "我嘅電話號碼係九一二三四五六七", ["phone_number"]),
    ("cmn-latn-pinyin", "zh-CN", "我的电话号码是一三八零零一三八零零零", ["phone_number"]),  # …八领另一三八领领领
    ("cmn-latn-pinyin", "zh-CN", "身份证号码是四四零三零四一九九零零一零一一二三三", ["cn_resident_id"]),  # 领另
    ("cmn-latn-pinyin", "zh-CN", "验证码是三八二九一七", ["digit_string"]),  # 验证马是三八二就一期
    ("cmn-latn-pinyin+m3", "zh-CN", "我的卡号是四一一一一一一一一一一一一一一一", ["bank_card"]),  # 卡好
    ("en-us", "en-US", "my phone number is four one five five five five two six seven one",
     ["phone_number"]),  # for one … too six
    ("en-us", "en-US", "send it to john at example dot com", ["email"]),  # dot come
    ("en-us", "en-US", "the code is three eight two nine one seven", ["digit_string"]),
]
KEPT = [  # a year and short quantities stay as said
    ("cmn-latn-pinyin+f2", "zh-CN", "二零二四年我买了三本书"),
    ("yue", "yue-HK", "我一九九七年買咗三本書"),
    ("en-us", "en-US", "i bought three books in two thousand and seven"),
]


def spoken(voice: str, text: str) -> np.ndarray:
    language, _, variant = voice.partition("+")
    return synthesize(text, VoiceSpec(language, variant or None))


def upload(server, audio: np.ndarray, **fields) -> dict:
    response = httpx.post(f"{server.url}/transcribe", files={"file": ("a.wav", encode(audio, "WAV"))},
                          data=fields, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def assert_nothing_unmasked(body: dict, said: str) -> None:
    """No digit (Chinese or English, a sound-alike's digit aside), and no word of an email, anywhere in the body."""
    dumped = json.dumps({k: v for k, v in body.items() if k not in ("request_id", "model")}, ensure_ascii=False)
    assert not set(dumped) & set(CHINESE_DIGITS), dumped
    assert not ENGLISH_DIGITS.search(dumped), dumped
    if "example" in said:
        assert "john" not in dumped and "example" not in dumped


@pytest.mark.parametrize("voice,locale,text,entities", SAID, ids=[f"{s[1]}:{s[3][0]}" for s in SAID])
def test_each_entity_is_masked_in_every_output_with_its_time(live_server, voice, locale, text, entities):
    audio = spoken(voice, text)
    plain = upload(live_server, audio, locale=locale, nbest="3")
    body = upload(live_server, audio, locale=locale, nbest="3", redact="pii")
    assert plain["redactions"] is None
    assert [r["entity"] for r in body["redactions"]] == entities
    assert_nothing_unmasked(body, text)
    # The entity's span is the time of the tokens it replaced: where the number began, to its last word's end.
    (segment,), (plain_segment,) = body["segments"], plain["segments"]
    masked_at = next(i for i, t in enumerate(segment["tokens"]) if t["text"].startswith("["))
    redaction = body["redactions"][0]
    assert redaction["start"] == plain_segment["tokens"][masked_at]["start"] == segment["tokens"][masked_at]["start"]
    assert plain_segment["tokens"][-1]["end"] <= redaction["end"] <= body["duration_s"]
    assert redaction["segment"] == 0 and redaction["channel"] is None
    assert segment["text"] == body["text"] and segment["alternatives"][0]["text"] == body["text"]


@pytest.mark.parametrize("voice,locale,text", KEPT, ids=[k[1] for k in KEPT])
def test_a_year_and_short_quantities_are_not_masked(live_server, voice, locale, text):
    audio = spoken(voice, text)
    plain = upload(live_server, audio, locale=locale)
    body = upload(live_server, audio, locale=locale, redact="pii")
    assert body["redactions"] == [] and body["text"] == plain["text"]


def test_a_call_is_masked_per_channel(live_server):
    agent = spoken("yue", "請問你嘅電話號碼係幾多")
    customer = spoken("yue", "我嘅電話號碼係九一二三四五六七")
    audio = np.zeros((len(agent) + len(customer) + 8000, 2), dtype=np.float32)
    audio[: len(agent), 0] = agent
    audio[len(agent) + 4000 : len(agent) + 4000 + len(customer), 1] = customer
    body = upload(live_server, audio, locale="yue", channels="separate", channel_names="agent,customer", redact="pii",
                  format="spoken")
    assert [(r["entity"], r["channel"]) for r in body["redactions"]] == [("phone_number", 1)]
    assert body["channels"][1]["text"].endswith("[PHONE]") and "[" not in body["channels"][0]["text"]
    assert body["redactions"][0]["start"] > len(agent) / 16000
    assert_nothing_unmasked(body, "")


def test_the_openai_endpoint_masks_every_format(live_server):
    data = encode(spoken("yue", "我嘅電話號碼係九一二三四五六七"), "WAV")
    url = f"{live_server.url}/v1/audio/transcriptions"
    for response_format in ("json", "text", "srt", "vtt", "verbose_json"):
        fields = {"language": "yue", "redact": "pii", "response_format": response_format,
                  "timestamp_granularities[]": "word"}
        reply = httpx.post(url, files={"file": ("a.wav", data)}, data=fields, timeout=120)
        assert "[PHONE]" in reply.text and not set(reply.text) & set(CHINESE_DIGITS), reply.text
    assert reply.json()["redactions"][0]["entity"] == "phone_number"


def test_a_stream_masks_a_number_split_across_partials(live_server):
    """The number grows over several partials: each shows it masked (a trailing run of digits may still grow),
    never a digit of it; the final names it with its time."""
    audio = spoken("yue", "我嘅電話號碼係九一二三四五六七")
    heard = {"locale": "yue", "redact": "pii", "format": "spoken"}
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), heard, 1600))
    assert messages[0]["redact"] == "pii"
    partials = [m for m in messages if m["type"] == "partial"]
    masked = [m for m in partials if "[" in m["text"]]
    assert len(masked) >= 2 and all(m["redactions"] for m in masked)
    for message in messages:
        assert not set(json.dumps(message, ensure_ascii=False)) & set(CHINESE_DIGITS), message
    (final,) = finals(messages)
    assert final["text"].endswith("[PHONE]") and final["redactions"][0]["entity"] == "phone_number"
    assert 1.0 < final["redactions"][0]["start"] < final["redactions"][0]["end"] <= len(audio) / 16000 + 0.1


def test_a_number_said_over_an_endpoint_is_masked_in_the_next_final(live_server):
    """A pause long enough to end the segment splits the number: the first final's four digits are no number and
    were sent as heard, and the next final, which completes a Hong Kong number with them, is masked."""
    first, second = spoken("yue", "我嘅電話號碼係九一二三"), spoken("yue", "五六七八")
    audio = np.concatenate([first, np.zeros(12800, dtype=np.float32), second])  # 0.8 s and the voice's 0.2 s
    heard = {"locale": "yue", "redact": "pii", "format": "spoken"}
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), heard, 3200))
    texts = [m["text"] for m in finals(messages)]
    assert len(texts) == 2 and texts[0].endswith("九一二三") and texts[1] == "[PHONE]"


# ---------------------------------------------------------------------------------- ASR_REDACT=pii


@pytest.fixture(scope="module")
def masking_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("masking"), env={"ASR_REDACT": "pii"})
    yield server
    server.stop()


def test_a_masking_server_masks_every_request_and_keeps_nothing_unmasked(masking_server):
    audio = spoken("yue", "我嘅電話號碼係九一二三四五六七")
    for fields in ({}, {"redact": "none"}):  # a request cannot unmask what the server masks
        body = upload(masking_server, audio, locale="yue", **fields)
        assert body["text"].endswith("[PHONE]。") and body["redactions"][0]["entity"] == "phone_number"  # written
    messages = asyncio.run(stream_audio(masking_server.ws_url, pcm16(audio), {"locale": "yue", "redact": "none"}, 3200))
    assert messages[0]["redact"] == "pii" and finals(messages)[0]["text"].endswith("[PHONE]。")
    session = messages[0]["session_id"]
    # The feedback store holds the masked hypotheses: scoring returns them as they were sent.
    for target in ({"request_id": body["request_id"]}, {"session_id": session, "segment": 0}):
        scored = httpx.post(f"{masking_server.url}/v1/feedback", json={**target, "reference": "我嘅電話號碼係"}).json()
        assert scored["hypothesis"].endswith("[PHONE]")
    metrics = httpx.get(f"{masking_server.url}/metrics").text
    assert not set(metrics) & set(CHINESE_DIGITS) and "PHONE" not in metrics
    assert scrape(masking_server)  # the metrics still parse
    log = masking_server.log()
    assert not set(log) & set(CHINESE_DIGITS) and "九一二三" not in log
