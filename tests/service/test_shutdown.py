"""Graceful shutdown with a real server process: on SIGTERM, open streams get their finals and `end`, then a
1001 close, and the process exits cleanly."""

import asyncio
import json
import signal

import websockets

from helpers import pcm16, read_mono16k, start_server


async def open_stream_then_sigterm(server, audios: list[bytes]) -> list[tuple[list[dict], int]]:
    connections = [await websockets.connect(server.ws_url) for _ in audios]
    for ws, audio in zip(connections, audios):
        await ws.send(json.dumps({"type": "start", "locale": "en-US"}))
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(audio)
    await asyncio.sleep(1.0)  # let the audio be decoded into open segments
    server.process.send_signal(signal.SIGTERM)
    results = []
    for ws in connections:
        messages = []
        try:
            async for message in ws:
                messages.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        results.append((messages, ws.close_code))
    return results


def test_sigterm_finalises_open_streams_and_closes_with_1001(tmp_path, bundled_samples):
    server = start_server(tmp_path)
    try:
        audios = [pcm16(read_mono16k(s["path"])) for s in bundled_samples if s["locale"] == "en-US"][:2]
        results = asyncio.run(open_stream_then_sigterm(server, audios))
        for messages, close_code in results:
            kinds = [m["type"] for m in messages]
            assert "final" in kinds and kinds[-1] == "end", kinds
            assert [m for m in messages if m["type"] == "final"][-1]["reason"] == "shutdown"
            assert close_code == 1001
        # uvicorn re-raises the captured SIGTERM after its shutdown completes, so the exit status is -SIGTERM.
        assert server.process.wait(60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()
    finally:
        server.stop()
