"""Call recordings with one party per channel (`channels=separate`), against the real server and model."""

import httpx
import numpy as np
import pytest

from helpers import SAMPLE_ERROR_BOUND, encode, read_mono16k, scrape, transcribe
from model.accuracy.scoring import count_errors

CUSTOMER_DELAY_S = 1.2  # the customer starts while the agent is still speaking


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def call(bundled_samples):
    """A Cantonese agent on channel 0 and an English customer on channel 1, overlapping in time."""
    agent, customer = bundled_samples[3], bundled_samples[7]
    left, right = read_mono16k(agent["path"]), read_mono16k(customer["path"])
    offset = int(CUSTOMER_DELAY_S * 16000)
    audio = np.zeros((max(len(left), offset + len(right)) + 8000, 2), dtype=np.float32)
    audio[: len(left), 0] = left
    audio[offset : offset + len(right), 1] = right
    return {"audio": audio, "agent": agent, "customer": customer}


def assert_heard(text: str, sample: dict) -> None:
    assert count_errors(sample["text"], text, sample["locale"]).rate <= SAMPLE_ERROR_BOUND[sample["locale"]], text


@pytest.mark.parametrize("container,rate,subtype", [("WAV", 16000, None), ("FLAC", 44100, None),
                                                     ("OGG", 48000, "VORBIS"), ("MP3", 22050, None)])
def test_each_channel_of_a_call_is_recognised_on_its_own(client, call, container, rate, subtype):
    body = transcribe(client, encode(call["audio"], container, rate, subtype=subtype), f"call.{container.lower()}",
                      channels="separate", channel_names="agent,customer", locale="auto").json()
    agent, customer = body["channels"]
    assert (agent["channel"], agent["name"], agent["locale"]) == (0, "agent", "yue-HK")
    assert (customer["channel"], customer["name"], customer["locale"]) == (1, "customer", "en-US")
    assert_heard(agent["text"], call["agent"])
    assert_heard(customer["text"], call["customer"])
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts)
    for segment in body["segments"]:
        assert segment["channel_name"] == ("agent", "customer")[segment["channel"]]
        mine = call["agent"] if segment["channel"] == 0 else call["customer"]
        begins = 0.0 if segment["channel"] == 0 else CUSTOMER_DELAY_S
        # every word lies within the time its party spoke (an MP3 encoder adds a few ms of delay)
        for word in segment["words"]:
            assert begins - 0.1 <= word["start"] < word["end"] <= begins + mine["duration"] + 0.15
    assert agent["text"] in body["text"] and customer["text"] in body["text"]


def test_both_channels_decode_in_one_device_batch(client, live_server, call):
    """The parties' turns are submitted together, as the spans of one upload are: one offline device step."""
    before = scrape(live_server)
    body = transcribe(client, encode(call["audio"], "WAV"), channels="separate", locale="auto").json()
    after = scrape(live_server)
    assert len(body["segments"]) == 2
    assert after['asr_batch_size_count{kind="offline"}'] - before['asr_batch_size_count{kind="offline"}'] == 1
    assert after['asr_batch_size_sum{kind="offline"}'] - before['asr_batch_size_sum{kind="offline"}'] == 2


def test_a_mono_file_recognised_by_channel_is_the_mono_transcript(client, bundled_samples):
    data = bundled_samples[1]["path"].read_bytes()
    mono = transcribe(client, data, locale="zh").json()
    separate = transcribe(client, data, locale="zh", channels="separate", channel_names="caller").json()
    assert separate["text"] == mono["text"] and mono["channels"] is None
    assert separate["channels"] == [{"channel": 0, "name": "caller", "text": mono["text"], "locale": "zh-CN",
                                     "locale_probability": None}]
    assert [s["channel"] for s in separate["segments"]] == [0] * len(mono["segments"])
    assert all(s["channel"] is None for s in mono["segments"])


def test_three_channels_with_two_names_and_a_silent_channel(client, call):
    audio = np.concatenate([call["audio"], np.zeros((len(call["audio"]), 1), dtype=np.float32)], axis=1)
    body = transcribe(client, encode(audio, "FLAC"), "call.flac", channels="separate", channel_names="agent,customer",
                      locale="auto").json()
    assert [(c["channel"], c["name"], c["text"]) for c in body["channels"]][2] == (2, None, "")
    assert {s["channel"] for s in body["segments"]} == {0, 1}


def test_more_channel_names_than_channels_is_a_clear_400(client, call):
    response = transcribe(client, encode(call["audio"], "WAV"), channels="separate",
                          channel_names="agent,customer,supervisor")
    assert response.status_code == 400
    assert response.json()["error"] == "too_many_channel_names" and "3 names" in response.json()["message"]


@pytest.mark.parametrize("params", [{"channels": "stereo"}, {"channel_names": "agent,customer"},
                                    {"channels": "separate", "channel_names": "agent,agent"},
                                    {"channels": "separate", "channel_names": "agent,,customer"}])
def test_bad_channel_parameters_get_json_errors(client, bundled_samples, params):
    response = transcribe(client, bundled_samples[0]["path"].read_bytes(), **params)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_the_openai_endpoint_names_each_segment_speaker(client, call):
    url, data = "/v1/audio/transcriptions", encode(call["audio"], "WAV")
    fields = {"channels": "separate", "channel_names": "agent,customer"}
    verbose = client.post(url, files={"file": ("a.wav", data)},
                          data={**fields, "response_format": "verbose_json"}).json()
    assert [(s["channel"], s["speaker"]) for s in verbose["segments"]] == [(0, "agent"), (1, "customer")]
    vtt = client.post(url, files={"file": ("a.wav", data)}, data={**fields, "response_format": "vtt"}).text
    assert "<v agent>" in vtt and "<v customer>" in vtt
    srt = client.post(url, files={"file": ("a.wav", data)},
                      data={"channels": "separate", "response_format": "srt"}).text
    assert "\nchannel 0: " in srt and "\nchannel 1: " in srt
