"""service.client against the live server (typed results, streaming events, errors) and against a tiny local
HTTP server that answers 503 or drops the connection first (retries)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx
import numpy as np
import pytest

from helpers import encode, with_pauses
from model.corpus.synthesize import VoiceSpec, synthesize
from model.recognition.recognizer import DecodeOptions
from service.client import ASRClient, ASRError, AsyncASRClient, StreamError, start_frame, stream_options, stream_request
from service.protocol import (EndMessage, FinalMessage, PartialMessage, ReadyMessage, StartMessage,
                              TranscriptionResponse)

CHUNK_MS = 640


def api_text(live_server, sample, **fields) -> str:
    """The reference: the same upload through plain httpx."""
    with open(sample["path"], "rb") as handle:
        response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", handle)},
                              data={"locale": sample["locale"], **fields}, timeout=120)
    return response.json()["text"]


def joined(finals: list[FinalMessage], locale: str) -> str:
    return (" " if locale == "en-US" else "").join(f.text for f in finals)


def test_transcribe_returns_a_typed_response(live_server, bundled_samples):
    sample = bundled_samples[0]
    with ASRClient(live_server.url) as client:
        result = client.transcribe(sample["path"], locale=sample["locale"], nbest=2)
    assert isinstance(result, TranscriptionResponse)
    assert result.text == api_text(live_server, sample) and result.locale == sample["locale"]
    assert result.duration_s == pytest.approx(sample["duration"], abs=0.01)
    assert all(1 <= len(s.alternatives) <= 2 for s in result.segments)


def test_async_transcribe_of_bytes_with_chunked_decoding(live_server, bundled_samples):
    sample = bundled_samples[4]

    async def run() -> TranscriptionResponse:
        async with AsyncASRClient(live_server.url) as client:
            return await client.transcribe(sample["path"].read_bytes(), locale=sample["locale"], chunk_ms=CHUNK_MS)

    result = asyncio.run(run())
    assert isinstance(result, TranscriptionResponse)
    assert result.text == api_text(live_server, sample, chunk_ms=str(CHUNK_MS))


def test_stream_yields_typed_events_and_the_streamed_transcript(live_server, bundled_samples):
    sample = bundled_samples[1]
    with ASRClient(live_server.url) as client:
        events = list(client.stream(sample["path"], locale=sample["locale"], nbest=2))
    assert isinstance(events[0], ReadyMessage) and events[0].locale == sample["locale"]
    assert isinstance(events[-1], EndMessage) and events[-1].duration_s == pytest.approx(sample["duration"], abs=0.05)
    assert any(isinstance(e, PartialMessage) and e.text for e in events)
    finals = [e for e in events if isinstance(e, FinalMessage)]
    assert finals and finals[-1].reason == "stop"
    assert joined(finals, sample["locale"]) == api_text(live_server, sample, chunk_ms=str(CHUNK_MS))


def test_a_stream_asks_for_full_context_finals(live_server, bundled_samples):
    sample = bundled_samples[3]
    with ASRClient(live_server.url) as client:
        events = list(client.stream(sample["path"], locale=sample["locale"], full_context_finals=True))
    assert events[0].full_context_finals is True
    finals = [e for e in events if isinstance(e, FinalMessage)]
    assert joined(finals, sample["locale"]) == api_text(live_server, sample)  # the upload at full context


def test_async_realtime_stream_is_paced_like_a_microphone(live_server, bundled_samples):
    sample = bundled_samples[3]

    async def run() -> tuple[list, float]:
        started = time.monotonic()
        async with AsyncASRClient(live_server.url) as client:
            events = [e async for e in client.stream(sample["path"], locale=sample["locale"], realtime=True)]
        return events, time.monotonic() - started

    events, elapsed = asyncio.run(run())
    assert elapsed >= sample["duration"] * 0.95  # not sent faster than real time
    assert [type(events[0]), type(events[-1])] == [ReadyMessage, EndMessage]
    finals = [e for e in events if isinstance(e, FinalMessage)]
    assert joined(finals, sample["locale"]) == api_text(live_server, sample, chunk_ms=str(CHUNK_MS))


def test_a_stream_leaves_options_it_was_not_given_to_the_server():
    request = stream_request(bytes(3200), 16000, False, 100, **stream_options("auto", 1, (), None, True, None))
    sent = json.loads(start_frame(request.start))
    assert "hotword_boost" not in sent and "full_context_finals" not in sent and "endpointing" not in sent
    assert StartMessage.model_validate(sent).hotword_boost == DecodeOptions.hotword_boost  # the server's default
    boosted = stream_request(bytes(3200), 16000, False, 100,
                             **stream_options("en", 1, ("Kubernetes",), 4.0, True, None))
    assert json.loads(start_frame(boosted.start))["hotword_boost"] == 4.0


def test_a_call_by_channel_masked_and_written(live_server):
    """channels, channel_names, redact and format reach /transcribe as the form fields the API documents."""
    agent = synthesize("我嘅電話號碼係九一二三四五六七", VoiceSpec("yue"))
    customer = synthesize("i bought three books in two thousand and seven", VoiceSpec("en-us"))
    stereo = np.zeros((max(len(agent), len(customer)), 2), dtype=np.float32)
    stereo[: len(agent), 0], stereo[: len(customer), 1] = agent, customer
    wav = encode(stereo, "WAV")
    with ASRClient(live_server.url) as client:
        result = client.transcribe(wav, channels="separate", channel_names=["agent", "customer"], redact="pii",
                                   format="written")
    fields = {"channels": "separate", "channel_names": "agent,customer", "redact": "pii", "format": "written"}
    expected = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", wav)},
                          data={"locale": "auto", **fields}, timeout=120).json()
    assert [(c.name, c.text) for c in result.channels] == [(c["name"], c["text"]) for c in expected["channels"]]
    agent, customer = (c.text for c in result.channels)
    assert agent.endswith("[PHONE]。") and agent.replace("。", "").replace("，", "") == "我嘅電話號碼係[PHONE]"
    assert customer == "I bought three books in 2007."
    assert [r.entity for r in result.redactions] == ["phone_number"] and result.redactions[0].channel == 0
    assert result.raw_text and "two thousand and seven" in result.raw_text


def test_a_stream_asks_for_masked_and_written_finals(live_server):
    audio = with_pauses([synthesize("我嘅電話號碼係九一二三四五六七", VoiceSpec("yue")),
                         synthesize("我一九九七年買咗三本書", VoiceSpec("yue"))], pause_s=1.5)
    with ASRClient(live_server.url) as client:
        events = list(client.stream(audio, locale="yue", redact="pii", format="written"))
    assert events[0].redact == "pii"
    phone, year = (e for e in events if isinstance(e, FinalMessage) and e.text)
    assert phone.text.endswith("[PHONE]。") and phone.redactions[0].entity == "phone_number"
    assert (year.text, year.raw_text) == ("我1997年買咗三本書。", "我一九九七年買咗三本書")
    sent = json.loads(start_frame(stream_request(bytes(3200), 16000, False, 100, **stream_options(
        "yue", 1, (), None, True, None, redact="pii", format="written")).start))
    assert (sent["redact"], sent["format"]) == ("pii", "written")


def test_stream_errors_raise_stream_error_with_the_close_code(live_server, bundled_samples):
    with ASRClient(live_server.url) as client, pytest.raises(StreamError) as raised:
        list(client.stream(bundled_samples[0]["path"], locale="xx-YY"))
    assert raised.value.code == "unsupported_locale" and raised.value.close_code == 1003


def test_http_errors_raise_asr_error(live_server):
    with ASRClient(live_server.url) as client, pytest.raises(ASRError) as raised:
        client.transcribe(b"not audio at all", locale="en-US")
    assert raised.value.status == 400 and raised.value.code == "invalid_audio"


# ------------------------------------------------------------------------------------------------ retries

CANNED = {
    "request_id": "r1", "text": "canned text", "locale": "en-US", "locale_probability": None, "duration_s": 1.0,
    "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": "canned text", "confidence": 0.9, "tokens": [],
                  "alternatives": []}],
    "model": {"name": "fake", "version": "0"}, "processing_s": 0.01,
}


class ScriptedServer:
    """Answers POST /transcribe from a script: "busy" (503 + Retry-After: 0), "drop" (closes the connection
    without answering) or "ok" (a canned TranscriptionResponse); records every request body."""

    def __init__(self, script: list[str]) -> None:
        self.script, self.bodies = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                action = outer.script.pop(0) if outer.script else "ok"
                if action == "drop":
                    self.close_connection = True
                    return
                status, body = (503, {"error": "busy", "message": "queue full"}) if action == "busy" else (200, CANNED)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_busy_answers_are_retried_after_retry_after():
    with ScriptedServer(["busy", "busy", "ok"]) as server, ASRClient(server.url, max_retries=3) as client:
        started = time.monotonic()
        result = client.transcribe(b"RIFF-fake-audio", locale="en-US", hotwords=["alpha", "beta"])
        elapsed = time.monotonic() - started
    assert result.text == "canned text" and isinstance(result, TranscriptionResponse)
    assert len(server.bodies) == 3 and elapsed < 2  # Retry-After: 0 means at once, not the default backoff
    assert all(b"RIFF-fake-audio" in body and b"alpha,beta" in body for body in server.bodies)


def test_dropped_connections_are_retried_and_retries_are_bounded():
    async def run_async() -> TranscriptionResponse:
        async with AsyncASRClient(server.url, max_retries=2) as client:
            return await client.transcribe(b"audio", locale="en-US")

    with ScriptedServer(["drop", "busy", "ok"]) as server:
        assert asyncio.run(run_async()).text == "canned text"
        assert len(server.bodies) == 3
    with ScriptedServer(["busy", "busy", "busy"]) as server, ASRClient(server.url, max_retries=2) as client:
        with pytest.raises(ASRError) as raised:
            client.transcribe(b"audio")
        assert raised.value.status == 503 and raised.value.code == "busy" and len(server.bodies) == 3


def test_a_busy_stream_is_opened_again_before_any_audio_is_sent():
    """A WebSocket server that is busy for the first connection and then transcribes nothing, politely."""
    from websockets.sync.server import serve

    connections, received = [], []

    def handler(ws) -> None:
        connections.append(json.loads(ws.recv()))
        if len(connections) == 1:
            ws.send(json.dumps({"type": "error", "code": "busy", "message": "stream limit reached"}))
            ws.close(1013, "busy")
            return
        ws.send(json.dumps({"type": "ready", "session_id": "s", "locale": "en-US", "sample_rate": 16000,
                            "chunk_ms": 640, "model": {"name": "fake", "version": "0"}}))
        while isinstance(message := ws.recv(), bytes):
            received.append(message)
        ws.send(json.dumps({"type": "end", "segments": 0, "duration_s": 0.2}))

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.socket.getsockname()[1]}"
        with ASRClient(url, max_retries=1) as client:
            events = list(client.stream(b"\x00\x00" * 3200, locale="en-US", hotwords=["x"]))
        server.shutdown()
    assert [type(e) for e in events] == [ReadyMessage, EndMessage]
    assert len(connections) == 2 and connections[1]["hotwords"] == ["x"] and connections[1]["sample_rate"] == 16000
    assert b"".join(received) == b"\x00\x00" * 3200
