"""At capacity, new work is refused at once (HTTP 503 with Retry-After, WebSocket close 1013) while admitted work
continues to completion."""

import asyncio
import json

import httpx
import pytest
import websockets

from helpers import encode, pcm16, read_mono16k, start_server, with_pauses


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("small"),
                          env={"ASR_MAX_STREAMS": "2", "ASR_MAX_QUEUED_OFFLINE_AUDIO_S": "5"})
    yield server
    server.stop()


def test_stream_limit_refuses_with_1013_and_admitted_streams_finish(small_server, bundled_samples):
    audio = pcm16(read_mono16k(bundled_samples[6]["path"]))

    async def scenario():
        admitted = [await websockets.connect(small_server.ws_url) for _ in range(2)]
        for ws in admitted:
            await ws.send(json.dumps({"type": "start", "locale": "en"}))
            assert json.loads(await ws.recv())["type"] == "ready"
        extra = await websockets.connect(small_server.ws_url)
        await extra.send(json.dumps({"type": "start", "locale": "en"}))
        refused = json.loads(await extra.recv())
        await extra.wait_closed()
        endings = []
        for ws in admitted:
            await ws.send(audio)
            await ws.send(json.dumps({"type": "stop"}))
            endings.append([json.loads(m) async for m in ws][-1])
        return refused, extra.close_code, endings

    refused, close_code, endings = asyncio.run(scenario())
    assert refused["type"] == "error" and refused["code"] == "busy" and close_code == 1013
    assert [e["type"] for e in endings] == ["end", "end"]


def test_full_offline_queue_answers_503_with_retry_after(small_server, bundled_samples):
    long_audio = with_pauses([read_mono16k(s["path"]) for s in bundled_samples[:4]])  # > 5 s of audio
    response = httpx.post(f"{small_server.url}/transcribe", files={"file": ("a.flac", encode(long_audio, "FLAC"))},
                          timeout=60)
    assert response.status_code == 503 and response.json()["error"] == "busy"
    assert int(response.headers["retry-after"]) >= 1
    short = httpx.post(f"{small_server.url}/transcribe",
                       files={"file": ("a.wav", bundled_samples[0]["path"].read_bytes())}, timeout=60)
    assert short.status_code == 200
