"""REST transcription against a real uvicorn server running the bundled model."""

import socket

import httpx
import numpy as np
import pytest

from helpers import SAMPLE_ERROR_BOUND, encode, read_mono16k, transcribe, with_pauses
from model.accuracy.scoring import count_errors


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        yield client


def test_health_readiness_and_model_card(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    card = client.get("/v1/models").json()["data"][0]
    assert set(card["locales"]) >= {"zh-CN", "yue-HK", "en-US"}
    assert card["token_set_size"] > 1000
    assert card["streaming"]["encoder_frame_ms"] == 40
    assert card["device"] == "cpu" and card["precision"] == "float32"  # CPUs serve in float32 (model.network.precision)
    assert card["quantization"] == "none"  # int8 is opted into (ASR_QUANTIZE: tests/network/test_quantization.py)
    assert set(card["training_data"]["hours_per_locale"]) >= {"zh-CN", "yue-HK", "en-US"}
    # real speech beside the synthetic test, per locale, as the model card shows it (model.evaluation.evaluate
    # --store-as)
    real = card["real_speech_evaluation"]["modes"]["full_context"]["per_locale"]
    assert set(real) == {"zh-CN", "yue-HK", "en-US"} and all(0 <= row["error_rate"] for row in real.values())


def test_the_model_card_says_how_each_locale_is_decoded(client):
    """Operators comparing locales see each one's decoding: the beam, the LM fusion, the finals' ranking, as tuned
    on dev and stored in the checkpoint (the served model's own settings, the evaluation's too)."""
    from model.network.checkpoint import load_checkpoint

    tuned = load_checkpoint().metadata["lm_fusion"]["per_locale"]
    decoding = client.get("/v1/models").json()["data"][0]["decoding"]
    assert set(decoding) == {"zh-CN", "yue-HK", "en-US"}
    for locale, served in decoding.items():
        assert served["beam_size"] == tuned[locale].get("beam_size", 8)
        assert served["final_ranking"] == {"ctc": 0.5, "lm": 1.0, "length": 0.0, **tuned[locale].get("rescore", {})}
        fusion = served["lm_fusion"]
        assert (fusion["weight"], fusion["length_bonus"]) == (tuned[locale]["weight"], tuned[locale]["bonus"])
        assert fusion["out_of_lexicon_penalty"] == tuned[locale].get("oov_penalty")  # English only
        assert fusion["order"] >= 3


def test_upload_returns_text_segments_timestamps_and_confidences(client, bundled_samples):
    sample = bundled_samples[0]
    body = transcribe(client, sample["path"].read_bytes(), locale=sample["locale"]).json()
    assert body["locale"] == sample["locale"] and body["locale_probability"] is None
    assert body["duration_s"] == pytest.approx(sample["duration"], abs=0.01)
    assert body["model"]["name"] and body["request_id"] and body["processing_s"] > 0
    assert body["text"] == "".join(s["text"] for s in body["segments"])
    for segment in body["segments"]:
        assert 0 <= segment["start"] <= segment["end"] <= body["duration_s"] + 0.05
        assert 0 < segment["confidence"] <= 1
        for token in segment["tokens"]:
            assert segment["start"] <= token["start"] < token["end"] <= segment["end"] + 0.05
            assert 0 < token["confidence"] <= 1
        assert "".join(w["text"] for w in segment["words"]) == segment["text"]  # Chinese: words joined are the text
        assert "".join(t["text"] for t in segment["tokens"]) == segment["raw_text"]  # tokens as heard


def test_raw_body_upload_equals_multipart(client, bundled_samples):
    data = bundled_samples[3]["path"].read_bytes()
    raw = client.post("/transcribe?locale=yue", content=data, headers={"content-type": "audio/wav"}).json()
    multipart = transcribe(client, data, locale="yue-HK").json()
    assert raw["text"] == multipart["text"] and raw["locale"] == "yue-HK"
    # every parameter reads from the query string as from a form field (service/protocol.py TranscribeFields)
    untimed = client.post("/transcribe?locale=yue&timestamps=false", content=data,
                          headers={"content-type": "audio/wav"}).json()
    assert untimed["text"] == raw["text"] and not any(s["tokens"] for s in untimed["segments"])
    refused = client.post("/transcribe?nbest=0", content=data, headers={"content-type": "audio/wav"})
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_request"
    assert refused.json()["message"].startswith("nbest: ")


@pytest.mark.parametrize("container,rate,channels,subtype", [
    ("FLAC", 44100, 2, None), ("OGG", 48000, 1, "VORBIS"), ("OGG", 48000, 1, "OPUS"), ("MP3", 22050, 2, None),
    ("WAV", 8000, 1, "PCM_16"),
])
def test_containers_rates_and_channels_are_accepted(client, bundled_samples, container, rate, channels, subtype):
    sample = bundled_samples[6]
    audio = read_mono16k(sample["path"])
    response = transcribe(client, encode(audio, container, rate, channels, subtype), f"a.{container.lower()}",
                          locale="en")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duration_s"] == pytest.approx(sample["duration"], abs=0.08)
    assert body["locale"] == "en-US"


def test_bundled_model_transcribes_its_samples(client, bundled_samples):
    """A regression guard on the real model: the bundled samples (held-out voices and sentences of the synthetic
    test split) are decoded with an error rate per locale no worse than SAMPLE_ERROR_BOUND, set a little above
    what the shipped model measures on them (the model card gives the corpus-wide rates)."""
    totals = {}
    for sample in bundled_samples:
        body = transcribe(client, sample["path"].read_bytes(), locale=sample["locale"], format="spoken").json()
        count = count_errors(sample["text"], body["text"], sample["locale"])
        totals[sample["locale"]] = totals.get(sample["locale"], count.__class__(0, 0)) + count
    rates = {locale: count.rate for locale, count in totals.items()}
    assert all(rates[locale] <= SAMPLE_ERROR_BOUND[locale] for locale in rates), rates


def test_auto_locale_is_detected_with_a_probability(client, bundled_samples):
    for sample in bundled_samples[::3]:
        body = transcribe(client, sample["path"].read_bytes(), locale="auto").json()
        assert body["locale"] == sample["locale"]
        assert 0.5 < body["locale_probability"] <= 1


def test_an_auto_upload_that_changes_language_decodes_each_segment_as_its_own_locale(client, bundled_samples):
    """A call that changes language: 19 s of Cantonese, a pause (the segmenter's cut), 8 s of English. The
    recording as a whole is Cantonese, but the English segment is surely English on its own, so it is decoded
    under English tokens and LM and says so; with the locale named, every segment is that locale."""
    cantonese = [read_mono16k(s["path"]) for s in bundled_samples if s["locale"] == "yue-HK"]
    english = [read_mono16k(s["path"]) for s in bundled_samples if s["locale"] == "en-US"]
    first = with_pauses((cantonese * 3)[:8], 0.2)  # pauses of 0.2 s are no cut point (min_silence_s 0.3)
    audio = np.concatenate([first, np.zeros(16000, dtype=np.float32), with_pauses(english, 0.2)])
    assert 18.0 < len(first) / 16000 < 19.4 and len(audio) / 16000 > 20.0
    body = transcribe(client, encode(audio, "FLAC"), "call.flac", locale="auto").json()
    assert body["locale"] == "yue-HK"
    assert [s["locale"] for s in body["segments"]] == ["yue-HK", "en-US"]
    assert body["segments"][1]["text"].isascii() and body["segments"][1]["start"] > 18.0
    named = transcribe(client, encode(audio, "FLAC"), "call.flac", locale="yue").json()
    # the English segment, heard through Cantonese tokens only, may come out empty (0.10.0: it does) and is dropped
    assert named["segments"][0]["start"] < 1.0 and {s["locale"] for s in named["segments"]} == {"yue-HK"}


def test_nbest_alternatives_and_hotwords(client, bundled_samples):
    sample = bundled_samples[7]
    body = transcribe(client, sample["path"].read_bytes(), locale="en", nbest="3", hotwords="shape,forest").json()
    alternatives = [a for s in body["segments"] for a in s["alternatives"]]
    assert 1 <= len(alternatives) <= 3 * len(body["segments"])
    assert alternatives[0]["text"] == body["segments"][0]["text"]


def test_long_recording_is_cut_at_silences_and_times_are_absolute(client, bundled_samples):
    pieces = [read_mono16k(s["path"]) for s in bundled_samples if s["locale"] == "en-US"] * 4  # ~40 s
    audio = with_pauses(pieces, 0.6)
    body = transcribe(client, encode(audio, "FLAC"), "long.flac", locale="en-US").json()
    assert body["duration_s"] == pytest.approx(len(audio) / 16000, abs=0.01)
    starts = [s["start"] for s in body["segments"]]
    assert len(starts) >= 2 and starts == sorted(starts)
    assert body["segments"][-1]["end"] > 20.0
    for segment in body["segments"]:  # tokens and words too are timed from the start of the recording
        assert all(segment["start"] <= x["start"] <= x["end"] <= segment["end"] + 0.05 for x in segment["tokens"]
                   + segment["words"])


def test_openai_compatible_formats(client, bundled_samples):
    data = bundled_samples[8]["path"].read_bytes()
    url = "/v1/audio/transcriptions"
    common = {"model": "whisper-1", "language": "en", "format": "spoken"}  # words joined are the text as heard
    plain = client.post(url, files={"file": ("a.wav", data)}, data={**common, "response_format": "json"}).json()
    assert set(plain) == {"text"}
    text = client.post(url, files={"file": ("a.wav", data)}, data={**common, "response_format": "text"}).text
    assert text.strip() == plain["text"]
    srt = client.post(url, files={"file": ("a.wav", data)}, data={**common, "response_format": "srt"}).text
    assert srt.startswith("1\n00:00:") and " --> " in srt
    vtt = client.post(url, files={"file": ("a.wav", data)}, data={**common, "response_format": "vtt"}).text
    assert vtt.startswith("WEBVTT")
    verbose = client.post(url, files={"file": ("a.wav", data)},
                          data={**common, "response_format": "verbose_json",
                                "timestamp_granularities[]": "word"}).json()
    assert verbose["language"] == "english" and verbose["words"] and verbose["duration"] > 0
    assert " ".join(w["word"] for w in verbose["words"]) == verbose["text"]  # whole words, not subword pieces


@pytest.mark.parametrize("params,status,code", [
    ({"locale": "klingon"}, 400, "unsupported_locale"),
    ({"nbest": "0"}, 422, "invalid_request"),
    ({"chunk_ms": "33"}, 422, "invalid_request"),
    ({"hotword_boost": "11"}, 422, "invalid_request"),
    ({"hotword_boost": "nan"}, 422, "invalid_request"),
    ({"hotword_boost": "strong"}, 422, "invalid_request"),
    ({"hotwords": "a" * 101}, 422, "invalid_request"),
])
def test_bad_parameters_get_json_errors(client, bundled_samples, params, status, code):
    response = transcribe(client, bundled_samples[0]["path"].read_bytes(), **params)
    assert response.status_code == status and response.json()["error"] == code


def test_bad_bodies_get_json_errors(client):
    garbage = client.post("/transcribe", files={"file": ("a.wav", b"RIFF\x10\x00\x00\x00WAVEnot audio at all")})
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_audio"
    text = client.post("/transcribe", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and text.json()["error"] == "unsupported_media_type"
    missing = client.post("/transcribe", files={"other": ("a.wav", b"x")})
    assert missing.status_code == 400 and missing.json()["error"] == "missing_file"
    assert client.get("/healthz").status_code == 200


def test_oversized_body_is_refused_before_it_is_read(live_server):
    """A declared 300 MB body gets 413 at once, though not one byte of it is sent."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as connection:
        connection.sendall(b"POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                           b"Content-Length: 300000000\r\n\r\n")
        reply = ""
        while "\r\n\r\n" not in reply or len(reply.split("\r\n\r\n", 1)[1]) < content_length(reply):
            chunk = connection.recv(4096).decode()  # headers and body may arrive in separate packets
            if not chunk:
                break
            reply += chunk
    assert reply.startswith("HTTP/1.1 413") and '"too_large"' in reply


def content_length(reply: str) -> int:
    for line in reply.split("\r\n"):
        if line.lower().startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def test_a_hotword_written_as_a_name_is_written_brings_out_that_name(client):
    """A support desk's product name, outside the English lexicon, sent as callers write it: without the hotword the
    model hears other words ("cuban eats", 0.11.2), with "Kubernetes" it writes the name (the hotword is normalised
    and joins the request's lexicon: tests/recognition/test_recognizer.py)."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    wav = encode(synthesize("my kubernetes account is locked", VoiceSpec("en-us")), "WAV")
    plain = transcribe(client, wav, locale="en").json()["text"]
    biased = transcribe(client, wav, locale="en", hotwords="Kubernetes, PayPal").json()["text"]
    assert "kubernetes" not in plain.lower().split()
    assert biased == "My Kubernetes account is locked."  # written form, the name as the request spelled it
    # The boost is the request's to set, as a stream's is: 0 switches the bias off.
    unboosted = transcribe(client, wav, locale="en", hotwords="Kubernetes", hotword_boost="0").json()["text"]
    assert "kubernetes" not in unboosted.lower().split()


def test_a_cantonese_hotword_heard_with_the_wrong_tone_is_written_as_asked(client):
    """Cantonese 港鐵 (gong2 tit3) comes out as 講鐵 (gong3 tit3) without the hotword; with it the final is
    corrected to the name (model.decoding.hotwords.correct_to_hotwords), where the search's boost alone does not lift
    it."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    wav = encode(synthesize("我想問下港鐵站喺邊度", VoiceSpec("yue")), "WAV")
    plain = transcribe(client, wav, locale="yue").json()["text"]
    biased = transcribe(client, wav, locale="yue", hotwords="港鐵").json()
    assert "港鐵" not in plain
    assert "港鐵" in biased["text"]
    tokens = biased["segments"][0]["tokens"]
    assert "".join(t["text"] for t in tokens) == biased["segments"][0]["raw_text"]  # tokens are as heard
