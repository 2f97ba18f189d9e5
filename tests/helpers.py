"""What the tests share besides conftest's fixtures: the real service and its bundled samples, audio re-encoded in
other containers, rates and channel counts, and the calls the service tests make (uploads, streams, /metrics).
Test files import from here, never from each other."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import numpy as np
import soundfile
import soxr
import websockets

# The real service in a child process (bench/server_process.py, which the benchmarks use too); re-exported for the tests
from bench.server_process import ROOT, LiveServer, free_port, start_server  # noqa: F401

SAMPLES = ROOT / "model" / "samples"

# Measured on the shipped model (0.8.0) over the bundled samples (zh-CN 0.167, yue-HK 0.00, en-US 0.10), plus 0.10.
# Three utterances per locale: the corpus-wide rates are in the model card.
SAMPLE_ERROR_BOUND = {"zh-CN": 0.24, "yue-HK": 0.10, "en-US": 0.20}


def samples() -> list[dict]:
    """The bundled sample recordings with their references."""
    rows = [json.loads(line) for line in (SAMPLES / "samples.jsonl").read_text().splitlines()]
    return [{**row, "path": SAMPLES / row["audio"]} for row in rows]


# ------------------------------------------------------------------------------------------------ audio


def read_mono16k(path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    return audio


def encode(audio16k: np.ndarray, container: str, rate: int = 16000, channels: int = 1,
           subtype: str | None = None) -> bytes:
    """(samples,) copied to `channels` channels, or (samples, channels) as it is, in `container` at `rate`."""
    audio = soxr.resample(audio16k, 16000, rate) if rate != 16000 else audio16k
    if channels > 1 and audio.ndim == 1:
        audio = np.stack([audio] * channels, axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def pcm16(audio16k: np.ndarray) -> bytes:
    """float [-1, 1) -> little-endian int16, the exact inverse of soundfile's int16 -> float read."""
    return np.round(np.clip(audio16k, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def with_pauses(pieces: list[np.ndarray], pause_s: float = 0.6) -> np.ndarray:
    pause = np.zeros(int(16000 * pause_s), dtype=np.float32)
    return np.concatenate([x for piece in pieces for x in (piece, pause)]).astype(np.float32)


# ------------------------------------------------------------------------------------------------ the service


def transcribe(client, data: bytes, filename="a.wav", **params) -> httpx.Response:
    return client.post("/transcribe", files={"file": (filename, data)}, data=params)


def scrape(live_server) -> dict[str, float]:
    """Parse /metrics text into {'name{labels}': value}."""
    samples = {}
    for line in httpx.get(f"{live_server.url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


async def stream_audio(ws_url: str, pcm: bytes, start: dict | None = None, piece_bytes: int = 6400,
                       pace_s: float = 0.0) -> list[dict]:
    """Send start, the audio in pieces, stop; return every server message until the close."""
    messages = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "locale": "auto", **(start or {})}))
        messages.append(json.loads(await ws.recv()))
        for offset in range(0, len(pcm), piece_bytes):
            await ws.send(pcm[offset : offset + piece_bytes])
            if pace_s:
                await asyncio.sleep(pace_s)
        await ws.send(json.dumps({"type": "stop"}))
        async for message in ws:
            messages.append(json.loads(message))
    return messages


def finals(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "final"]


async def expect_error(ws_url: str, *sends) -> tuple[dict, int]:
    async with websockets.connect(ws_url) as ws:
        for item in sends:
            await ws.send(item)
        messages = []
        try:
            async for m in ws:
                messages.append(json.loads(m))
        except websockets.ConnectionClosedError:
            pass  # a non-1000 close ends iteration with this error; the close code is what we check
        return messages[-1], ws.close_code


async def close_after(ws_url: str, *sends) -> tuple[list[dict], int | None]:
    """Send each item (a send may fail once the server has closed), then every server message and the close code."""
    messages, close_code, _ = await close_after_with_reason(ws_url, *sends)
    return messages, close_code


async def close_after_with_reason(ws_url: str, *sends) -> tuple[list[dict], int | None, str | None]:
    """As close_after, with the close frame's reason too."""
    messages = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        try:
            for item in sends:
                await ws.send(item)
        except websockets.ConnectionClosed:
            pass
        try:
            async for message in ws:
                messages.append(json.loads(message))
        except websockets.ConnectionClosedError:
            pass  # a non-1000 close; the close code is what is checked
    return messages, ws.close_code, ws.close_reason
