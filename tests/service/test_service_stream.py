"""WebSocket streaming against a real uvicorn server with a real `websockets` client."""

import asyncio
import json

import httpx
import numpy as np
import pytest
import torch
import websockets

from helpers import expect_error, finals, pcm16, read_mono16k, stream_audio, with_pauses

CHUNK_MS = 640


def offline_text(live_server, path, locale: str, chunk_ms: int | None = CHUNK_MS) -> str:
    with open(path, "rb") as handle:
        response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", handle)},
                              data={"locale": locale, **({"chunk_ms": str(chunk_ms)} if chunk_ms else {})}, timeout=60)
    return response.json()["text"]


def finals_text(messages: list[dict], locale: str) -> str:
    """The stream's finals as one transcript: English words are spaced, Chinese characters are not."""
    return (" " if locale == "en-US" else "").join(m["text"] for m in finals(messages))


def test_stream_sends_ready_partials_finals_and_end(live_server, bundled_samples):
    sample = bundled_samples[1]
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(read_mono16k(sample["path"])),
                                        {"locale": "zh-CN", "nbest": 2}))
    assert messages[0]["type"] == "ready" and messages[0]["chunk_ms"] == CHUNK_MS
    assert messages[-1]["type"] == "end"
    assert any(m["type"] == "partial" and m["text"] for m in messages)
    last = finals(messages)[-1]
    assert last["reason"] == "stop" and last["locale"] == "zh-CN" and last["latency_ms"] >= 0
    assert 1 <= len(last["alternatives"]) <= 2
    for token in last["tokens"]:
        assert last["start"] <= token["start"] < token["end"] <= last["end"] + 0.05
        assert 0 < token["confidence"] <= 1
    assert "".join(w["text"] for w in last["words"]) == last["text"]  # written words: 40亿。 from 四十亿


def test_streamed_final_equals_offline_transcription_at_the_same_chunk_size(live_server, bundled_samples):
    for sample in bundled_samples[::2]:
        audio = read_mono16k(sample["path"])
        messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": sample["locale"]}, 3334))
        assert finals_text(messages, sample["locale"]) == offline_text(live_server, sample["path"], sample["locale"])


def test_full_context_finals_say_what_the_upload_says(live_server, bundled_samples):
    """A stream that asks for `full_context_finals` gets each final decoded again at full context: what an upload
    of the same audio returns, while its partials come from the chunked encoder as before."""
    for sample in bundled_samples[1::2]:
        audio = read_mono16k(sample["path"])
        messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio),
                                            {"locale": sample["locale"], "full_context_finals": True}, 3334))
        assert messages[0]["full_context_finals"] is True
        upload = offline_text(live_server, sample["path"], sample["locale"], None)
        assert finals_text(messages, sample["locale"]) == upload
        assert any(m["type"] == "partial" and m["text"] for m in messages)
    default = asyncio.run(stream_audio(live_server.ws_url, pcm16(read_mono16k(bundled_samples[0]["path"]))))
    assert default[0]["full_context_finals"] is False  # the server's setting (ASR_FULL_CONTEXT_FINALS) is off


def test_a_full_context_final_runs_its_encoder_on_the_device_thread(bundled_samples):
    """In the scheduler itself, with `full_context_finals`: every encoder pass of a stream, its chunks and each
    final's second pass, runs on the one device thread (steps of kind `final` for the latter), never on a search
    thread; the finals are those of the same stream decoded in place, alone."""
    import threading

    from model.network.checkpoint import load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer
    from model.recognition.stream_decoder import (FinalEvent, accept_samples, decode_stream_offline, new_stream,
                                                  next_chunk)
    from service.scheduler import BatchScheduler, SchedulerLimits
    from service.settings import Settings
    from service.stats import StatsSink

    recognizer = Recognizer(load_checkpoint())
    encoder_threads = []
    for name in ("encode_segments", "encode_chunks"):
        method = getattr(recognizer, name)

        def spy(*args, _method=method, _name=name, **kwargs):
            encoder_threads.append((_name, threading.current_thread().name))
            return _method(*args, **kwargs)
        setattr(recognizer, name, spy)
    sample = bundled_samples[0]
    audio = torch.from_numpy(with_pauses([read_mono16k(sample["path"])] * 2, pause_s=1.5))
    options = DecodeOptions(locale=sample["locale"], full_context_finals=True)
    in_place = [e.segment for e in decode_stream_offline(recognizer, audio, options, 16)[1]
                if isinstance(e, FinalEvent) and e.segment.text]
    encoder_threads.clear()

    batches = []

    class Batches(StatsSink):
        def batch(self, stats):
            batches.append(stats)

    async def scenario():
        scheduler = BatchScheduler(recognizer, SchedulerLimits.from_settings(Settings()), Batches())
        scheduler.start()
        state = new_stream(recognizer, options, 16)
        state, events = accept_samples(state, audio), []
        while True:
            chunk, state = next_chunk(state, final=True)
            if chunk is None:
                break
            state, more = await scheduler.decode_stream_chunk(state, chunk)
            events += more
        state, more = await scheduler.finish_stream(state)
        await scheduler.stop()
        return events + more

    events = asyncio.run(scenario())
    spoken = [e.segment for e in events if isinstance(e, FinalEvent) and e.segment.text]
    assert len(spoken) == 2 and spoken == in_place  # the pause ended the first segment
    second_passes = [thread for method, thread in encoder_threads if method == "encode_segments"]
    assert len(second_passes) >= 2 and all(thread.startswith("asr-device") for _, thread in encoder_threads)
    assert sum(b.size for b in batches if b.kind == "final") == len(second_passes)  # /metrics: kind="final"


def test_auto_locale_streams_decode_as_the_detected_locale_like_offline_auto(live_server, bundled_samples):
    """`auto` streams settle on a locale after the first chunk and search under its tokens and LM from the start
    of the segment: each final equals the upload decoded with locale=auto at the same chunk size, and says which
    locale it was decoded as, with the detection's probability."""
    for sample in bundled_samples[::2]:
        audio = read_mono16k(sample["path"])
        messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "auto"}, 3334))
        [final] = [m for m in finals(messages) if m["text"]]
        assert final["locale"] == sample["locale"] and 0.95 <= final["locale_probability"] <= 1.0
        assert final["text"] == offline_text(live_server, sample["path"], "auto")


def test_an_auto_stream_follows_a_change_of_locale_between_utterances(live_server, bundled_samples):
    """Code-switching between utterances: a Cantonese utterance, a pause that ends its segment, then English.
    The English segment is surely English on its own, so it is decoded as English, not under Cantonese tokens."""
    cantonese = next(s for s in bundled_samples if s["locale"] == "yue-HK")
    english = next(s for s in bundled_samples if s["locale"] == "en-US")
    audio = with_pauses([read_mono16k(cantonese["path"]), read_mono16k(english["path"])], pause_s=1.5)
    spoken = [m for m in finals(asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "auto"})))
              if m["text"]]
    assert [m["locale"] for m in spoken] == ["yue-HK", "en-US"]
    assert spoken[1]["text"].isascii() and spoken[1]["locale_probability"] >= 0.95


def test_endpointing_splits_a_stream_into_segments(live_server, bundled_samples):
    pieces = [read_mono16k(s["path"]) for s in bundled_samples if s["locale"] == "en-US"]
    audio = with_pauses(pieces, pause_s=1.5)
    messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "en-US"}))
    segments = finals(messages)
    assert len(segments) >= 2
    assert [m["segment"] for m in segments] == list(range(len(segments)))
    assert all(m["reason"] in {"endpoint", "stop"} for m in segments)
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(segments, segments[1:]))


def test_running_speech_is_cut_at_a_short_pause_once_the_segment_is_long(live_server, bundled_samples):
    """Pauses of 0.5 s never reach the 0.8 s endpoint; once a segment is 10 s long (long_segment_s), it ends at the
    next one of 0.4 s or more instead of running to the 20 s cut (max_segment) in the middle of a word."""
    pieces = [read_mono16k(s["path"]) for s in bundled_samples if s["locale"] == "en-US"] * 3
    audio = with_pauses(pieces, pause_s=0.5)
    assert len(audio) > 21 * 16000
    adaptive = finals(asyncio.run(stream_audio(live_server.ws_url, pcm16(audio), {"locale": "en-US"})))
    assert len(adaptive) >= 2 and adaptive[0]["reason"] == "endpoint"
    assert all(m["reason"] in {"endpoint", "stop"} for m in adaptive)
    assert all(10.0 <= m["end"] - m["start"] < 20.0 for m in adaptive[:-1])
    fixed = finals(asyncio.run(stream_audio(live_server.ws_url, pcm16(audio),
                                            {"locale": "en-US", "endpointing": {"long_segment_s": 60}})))
    assert fixed[0]["reason"] == "max_segment" and fixed[0]["end"] - fixed[0]["start"] >= 20.0


def test_twenty_simultaneous_streams_each_get_their_own_transcript(live_server, bundled_samples):
    async def run_all():
        chosen = [bundled_samples[i % len(bundled_samples)] for i in range(20)]
        audios = [read_mono16k(s["path"]) for s in chosen]
        # Make each of the 20 inputs different: prepend a different amount of silence.
        audios = [np.concatenate([np.zeros(160 * i, dtype=np.float32), a]) for i, a in enumerate(audios)]
        results = await asyncio.gather(*(
            stream_audio(live_server.ws_url, pcm16(a), {"locale": s["locale"]}, 3200, pace_s=0.02)
            for a, s in zip(audios, chosen)))
        return chosen, audios, results

    chosen, audios, results = asyncio.run(run_all())
    alone = {}
    for sample, audio, messages in zip(chosen, audios, results):
        key = (sample["audio"], len(audio))
        if key not in alone:
            alone[key] = finals(asyncio.run(stream_audio(live_server.ws_url, pcm16(audio),
                                                         {"locale": sample["locale"]})))
        assert [m["text"] for m in finals(messages)] == [m["text"] for m in alone[key]]


def test_a_client_offering_compression_streams_without_it(live_server, bundled_samples):
    """permessage-deflate is off by default (ASR_WS_COMPRESSION): deflate hardly shrinks PCM and costs the server
    CPU per message; a client that offers it (websockets and browsers do) is answered without it and still gets its
    transcript."""
    async def offer():
        async with websockets.connect(live_server.ws_url, compression="deflate") as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
            await ws.send(json.dumps({"type": "start", "locale": "en"}))
            ready = json.loads(await ws.recv())
            await ws.send(pcm16(read_mono16k(bundled_samples[6]["path"]))[:32000])
            await ws.send(json.dumps({"type": "stop"}))
            messages = [json.loads(m) async for m in ws]
            return extensions, ready, messages

    extensions, ready, messages = asyncio.run(offer())
    assert extensions is None
    assert ready["type"] == "ready" and messages[-1]["type"] == "end"


def test_a_vanished_client_frees_its_stream(live_server, bundled_samples):
    async def vanish():
        ws = await websockets.connect(live_server.ws_url)
        await ws.send(json.dumps({"type": "start", "locale": "en"}))
        await ws.recv()
        await ws.send(pcm16(read_mono16k(bundled_samples[6]["path"]))[:32000])
        ws.transport.abort()  # no close handshake: the client just disappears

    asyncio.run(vanish())
    for _ in range(100):
        if httpx.get(f"{live_server.url}/readyz").json()["active_streams"] == 0:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert httpx.get(f"{live_server.url}/readyz").json()["active_streams"] == 0


def test_a_stream_and_an_upload_interleave(live_server, bundled_samples):
    stream_sample, upload_sample = bundled_samples[4], bundled_samples[7]

    async def both():
        async with httpx.AsyncClient(timeout=60) as client:
            upload = client.post(f"{live_server.url}/transcribe",
                                 files={"file": ("a.wav", upload_sample["path"].read_bytes())},
                                 data={"locale": "en-US", "chunk_ms": str(CHUNK_MS)})
            streamed = stream_audio(live_server.ws_url, pcm16(read_mono16k(stream_sample["path"])),
                                    {"locale": "yue-HK"}, 3200, pace_s=0.01)
            return await asyncio.gather(upload, streamed)

    upload, messages = asyncio.run(both())
    assert upload.json()["text"] == offline_text(live_server, upload_sample["path"], "en-US")
    assert "".join(m["text"] for m in finals(messages)) == offline_text(live_server, stream_sample["path"], "yue-HK")


@pytest.mark.parametrize("sends,code,close_code", [
    ((b"\x00\x01",), "protocol", 1008),
    (("{not json",), "bad_message", 1003),
    (('{"type": "dance"}',), "bad_message", 1003),
    (('{"type": "start", "sample_rate": 1}',), "bad_message", 1003),
    (('{"type": "start", "encoding": "mulaw"}',), "bad_message", 1003),
    (('{"type": "start", "locale": "xx-YY"}',), "unsupported_locale", 1003),
    (('{"type": "start", "hotwords": ["' + "a" * 101 + '"]}',), "bad_message", 1003),
    (('{"type": "start"}', '{"type": "start"}'), "protocol", 1008),
    (('{"type": "start"}', b"\x00\x01\x02"), "bad_audio", 1003),
    (('{"type": "start"}', b"\x00" * (2 * 1024 * 1024)), "frame_too_large", 1009),
])
def test_protocol_errors_close_with_a_reason(live_server, sends, code, close_code):
    message, closed_with = asyncio.run(expect_error(live_server.ws_url, *sends))
    assert message["type"] == "error" and message["code"] == code
    assert closed_with == close_code
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200


def test_a_streams_hotwords_are_written_as_names_are_and_reach_its_finals(live_server):
    """The `start` message's hotwords as a caller writes them ("Kubernetes"): the stream's final writes the name,
    which without them comes out as other words (tests/service/test_service_rest.py has the upload)."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    pcm = pcm16(synthesize("please transfer me to kubernetes support", VoiceSpec("en-us")))
    plain = asyncio.run(stream_audio(live_server.ws_url, pcm, {"locale": "en-US"}))
    biased = asyncio.run(stream_audio(live_server.ws_url, pcm, {"locale": "en-US", "hotwords": ["Kubernetes"]}))
    assert "kubernetes" not in finals_text(plain, "en-US").lower().split()
    assert finals_text(biased, "en-US") == "Please transfer me to Kubernetes support."  # written, the name as asked


def test_a_streams_cantonese_hotword_heard_with_the_wrong_tone_reaches_its_final_as_asked(live_server):
    """The stream's finals get the Chinese correction too (Recognizer.finalize): 港鐵 heard as 講鐵 without the
    hotword is written 港鐵 with it (tests/service/test_service_rest.py has the upload)."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    pcm = pcm16(synthesize("我想問下港鐵站喺邊度", VoiceSpec("yue")))
    plain = asyncio.run(stream_audio(live_server.ws_url, pcm, {"locale": "yue-HK"}))
    biased = asyncio.run(stream_audio(live_server.ws_url, pcm, {"locale": "yue-HK", "hotwords": ["港鐵"]}))
    assert "港鐵" not in finals_text(plain, "yue-HK")
    assert "港鐵" in finals_text(biased, "yue-HK")
