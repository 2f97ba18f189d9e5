"""What an open stream costs while nobody speaks into it: server memory per stream (to size ASR_MAX_STREAMS) and
server CPU while the streams sit idle. N clients open a stream and send `start`; the server's RSS and CPU seconds
(its own /metrics) are read before, after the handshakes, after each stream has spoken a few seconds (its encoder
caches, search state and segment history now exist), and over a hold in which no stream sends anything.

    python bench/bench_idle_streams.py --streams 100 --hold-s 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_streams import scrape, test_audio  # noqa: E402
from bench.common import git_commit, machine_info, print_table, write_results  # noqa: E402
from bench.server_process import start_server  # noqa: E402

MB = 2**20


def server_reading(url: str) -> dict[str, float]:
    metrics = scrape(url)
    return {"rss_mb": metrics["process_resident_memory_bytes"] / MB, "cpu_s": metrics["process_cpu_seconds_total"]}


async def open_streams(ws_url: str, count: int) -> list:
    async def one():
        ws = await websockets.connect(ws_url, max_size=None)
        await ws.send(json.dumps({"type": "start", "locale": "auto", "sample_rate": 16000}))
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"no ready message: {ready}")
        return ws

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def speak(sockets: list, pcm: bytes, piece_bytes: int = 6400) -> None:
    """Each stream sends its audio as fast as the server takes it, then nothing (the stream stays open)."""
    async def one(ws):
        for start in range(0, len(pcm), piece_bytes):
            await ws.send(pcm[start : start + piece_bytes])

    await asyncio.gather(*(one(ws) for ws in sockets))


async def drain(sockets: list, seconds: float) -> None:
    """Read whatever the server sends (partials, finals) for `seconds`, so that no stream's queue backs up."""
    async def one(ws):
        try:
            while True:
                await ws.recv()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass

    tasks = [asyncio.create_task(one(ws)) for ws in sockets]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run(url: str, ws_url: str, streams: int, speech_s: float, hold_s: float, settle_s: float) -> dict:
    pcm = test_audio(speech_s)

    async def scenario():
        readings = {"before": server_reading(url)}
        sockets = await open_streams(ws_url, streams)
        await drain(sockets, settle_s)
        readings["opened"] = server_reading(url)
        await speak(sockets, pcm)
        await drain(sockets, settle_s)  # the last chunks decoded and their partials sent
        readings["spoken"] = server_reading(url)
        await drain(sockets, hold_s)  # open, spoken to, and silent: no packet arrives
        readings["held"] = server_reading(url)
        for ws in sockets:
            await ws.close()
        await asyncio.sleep(settle_s)
        readings["closed"] = server_reading(url)
        return readings

    readings = asyncio.run(scenario())
    base = readings["before"]["rss_mb"]
    return {
        "streams": streams, "speech_s_per_stream": speech_s, "hold_s": hold_s, "readings": readings,
        "rss_per_opened_stream_mb": (readings["opened"]["rss_mb"] - base) / streams,
        "rss_per_spoken_stream_mb": (readings["spoken"]["rss_mb"] - base) / streams,
        "idle_cpu_percent": 100 * (readings["held"]["cpu_s"] - readings["spoken"]["cpu_s"]) / hold_s,
        "rss_after_close_mb": readings["closed"]["rss_mb"] - base,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chunk-ms", type=int, default=640)
    parser.add_argument("--speech-s", type=float, default=4.0, help="audio each stream sends before it goes quiet")
    parser.add_argument("--hold-s", type=float, default=20.0, help="seconds the open streams stay silent")
    parser.add_argument("--settle-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    # the idle timeout past the hold: the streams stay open, silent, for as long as the bench holds them
    server = start_server(Path(tempfile.mkdtemp()), env={"ASR_CHUNK_MS": str(args.chunk_ms),
                                                         "ASR_MAX_STREAMS": str(max(args.streams, 1)),
                                                         "ASR_STREAM_IDLE_TIMEOUT_S": str(10 * args.hold_s + 60)})
    try:
        card = httpx.get(f"{server.url}/v1/models").json()["data"][0]
        ws_url = server.url.replace("http", "ws", 1) + "/v1/stream"
        started = time.perf_counter()
        result = run(server.url, ws_url, args.streams, args.speech_s, args.hold_s, args.settle_s)
        result["wall_s"] = time.perf_counter() - started
    finally:
        server.stop()
    r = result["readings"]
    print_table(f"{args.streams} open streams, {args.chunk_ms} ms chunks: server RSS and CPU",
                ["state", "server RSS MB", "per stream MB", "server CPU s (cumulative)"],
                [[state, f"{r[state]['rss_mb']:.0f}",
                  "" if state == "before" else f"{(r[state]['rss_mb'] - r['before']['rss_mb']) / args.streams:.2f}",
                  f"{r[state]['cpu_s']:.1f}"] for state in r])
    print(f"\nsilent open streams: server CPU {result['idle_cpu_percent']:.1f}% of one core over {args.hold_s:.0f} s")
    model = f"{card['id']} {card['version']}"
    write_results("idle_streams", {"machine": machine_info(2), "commit": git_commit(), "model": model,
                                   "chunk_ms": args.chunk_ms, **result})


if __name__ == "__main__":
    main()
