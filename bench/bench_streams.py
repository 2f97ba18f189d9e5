"""Paced streaming load: N clients send audio at real-time speed (like microphones) to a real server over
WebSocket. For each N it reports first-partial latency (first audio byte -> first non-empty partial), final
latency (stop -> last final), server device-step time per batched chunk (p50/p95/p99), batch sizes, server CPU and
RSS, and whether the server kept up (p95 device step below the chunk length and p95 final latency below two chunk
lengths). It searches the largest N that stays real time.

    python bench/bench_streams.py --chunk-ms 640 --streams 10 25 50 100 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (add_served_checkpoint_option, git_commit, machine_info, print_table,  # noqa: E402
                          results_name, served_checkpoint_env, write_results)
from bench.server_process import ROOT, start_server  # noqa: E402

SAMPLES = ROOT / "model" / "samples"
CHURN_UTTERANCE_S = (2.0, 6.0)  # what each utterance of the churn pattern lasts


@dataclass
class StreamTiming:
    first_send: float = 0.0
    first_partial: float | None = None
    stop_sent: float = 0.0
    last_final: float | None = None
    finals: int = 0
    error: str | None = None


def test_audio(seconds: float) -> bytes:
    """The bundled samples (all locales), concatenated with short pauses up to `seconds`, as PCM16."""
    pieces = [soundfile.read(p, dtype="int16")[0] for p in sorted(SAMPLES.glob("*.wav"))]
    pause = np.zeros(4000, dtype=np.int16)
    audio = np.concatenate([x for p in pieces for x in (p, pause)])
    repeats = int(np.ceil(seconds * 16000 / len(audio)))
    return np.tile(audio, repeats)[: int(seconds * 16000)].astype("<i2").tobytes()


async def paced_stream(url: str, pcm: bytes, piece_s: float, start_delay_s: float) -> StreamTiming:
    timing = StreamTiming()
    await asyncio.sleep(start_delay_s)
    piece = int(piece_s * 16000) * 2
    try:
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "locale": "auto", "sample_rate": 16000}))
            await ws.recv()
            receiver = asyncio.create_task(receive(ws, timing))
            timing.first_send = time.perf_counter()
            for index, offset in enumerate(range(0, len(pcm), piece)):
                await ws.send(pcm[offset : offset + piece])
                delay = timing.first_send + (index + 1) * piece_s - time.perf_counter()
                await asyncio.sleep(max(delay, 0))
            timing.stop_sent = time.perf_counter()
            await ws.send(json.dumps({"type": "stop"}))
            await receiver
    except Exception as error:  # noqa: BLE001 - reported per stream
        timing.error = f"{type(error).__name__}: {error}"
    return timing


async def churning_client(url: str, pcm: bytes, piece_s: float, start_delay_s: float, total_s: float,
                          seed: int) -> list[StreamTiming]:
    """A user who speaks 2-6 s, stops, waits for the final and speaks again in a new stream, for `total_s`: each
    utterance a random stretch of the test audio, sent in real time."""
    rng = np.random.default_rng(seed)
    await asyncio.sleep(start_delay_s)
    ends_at = time.perf_counter() + total_s
    timings = []
    while time.perf_counter() < ends_at:
        length = int(rng.uniform(*CHURN_UTTERANCE_S) * 16000) * 2
        offset = int(rng.integers(0, max(len(pcm) - length, 1) // 2)) * 2
        timings.append(await paced_stream(url, pcm[offset : offset + length], piece_s, 0.0))
    return timings


async def receive(ws, timing: StreamTiming) -> None:
    async for raw in ws:
        message = json.loads(raw)
        now = time.perf_counter()
        if message["type"] == "partial" and message["text"] and timing.first_partial is None:
            timing.first_partial = now
        elif message["type"] == "final":
            timing.finals += 1
            timing.last_final = now
        elif message["type"] == "error":
            timing.error = message["code"]


def scrape(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def histogram_quantiles(before: dict, after: dict, name: str, labels: str, quantiles=(0.5, 0.95, 0.99)) -> list[float]:
    """Quantiles from the change of a Prometheus histogram (linear inside buckets, as histogram_quantile does)."""
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), after[k] - before.get(k, 0.0))
        for k in after if k.startswith(f"{name}_bucket{{") and labels in k
    )
    total = buckets[-1][1] if buckets else 0
    results = []
    for q in quantiles:
        rank, previous_bound, previous_count = q * total, 0.0, 0.0
        value = float("nan")
        for bound, count in buckets:
            if count >= rank and total > 0:
                value = bound if bound == float("inf") else previous_bound + (bound - previous_bound) * (
                    (rank - previous_count) / max(count - previous_count, 1e-9))
                break
            previous_bound, previous_count = bound, count
        results.append(value)
    return results


def run_level(server_url: str, ws_url: str, streams: int, pcm: bytes, chunk_s: float, piece_s: float,
              churn: bool = False) -> dict:
    before = scrape(server_url)
    started = time.perf_counter()

    async def all_streams() -> list[StreamTiming]:
        delays = np.linspace(0, chunk_s, streams, endpoint=False)  # spread starts over one chunk, as real users do
        if not churn:
            return list(await asyncio.gather(*(paced_stream(ws_url, pcm, piece_s, d) for d in delays)))
        total_s = len(pcm) / 32000
        clients = await asyncio.gather(*(churning_client(ws_url, pcm, piece_s, d, total_s, seed)
                                         for seed, d in enumerate(delays)))
        return [timing for client in clients for timing in client]

    timings = asyncio.run(all_streams())
    wall_s = time.perf_counter() - started
    after = scrape(server_url)
    ok = [t for t in timings if t.error is None and t.first_partial is not None and t.last_final is not None]
    first_partial = [t.first_partial - t.first_send for t in ok]
    final = [t.last_final - t.stop_sent for t in ok]
    step = histogram_quantiles(before, after, "asr_device_step_seconds", 'kind="stream"')
    batches = after.get('asr_batch_size_sum{kind="stream"}', 0) - before.get('asr_batch_size_sum{kind="stream"}', 0)
    steps = after.get('asr_batch_size_count{kind="stream"}', 0) - before.get('asr_batch_size_count{kind="stream"}', 0)
    # Full-context finals' second passes are device steps of their own kind (service.scheduler).
    final_step = histogram_quantiles(before, after, "asr_device_step_seconds", 'kind="final"')
    final_rows = after.get('asr_batch_size_sum{kind="final"}', 0) - before.get('asr_batch_size_sum{kind="final"}', 0)
    final_series = 'asr_batch_size_count{kind="final"}'
    final_steps = after.get(final_series, 0) - before.get(final_series, 0)
    cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
    result = {
        "streams": streams, "utterances": len(timings), "errors": len(timings) - len(ok),
        "audio_s_per_stream": len(pcm) / 32000,
        "first_partial_p50_ms": pct(first_partial, 50), "first_partial_p95_ms": pct(first_partial, 95),
        "final_p50_ms": pct(final, 50), "final_p95_ms": pct(final, 95),
        "step_p50_ms": step[0] * 1000, "step_p95_ms": step[1] * 1000, "step_p99_ms": step[2] * 1000,
        "mean_batch": batches / steps if steps else 0.0, "server_cpu_percent": 100 * cpu / wall_s,
        "final_steps": int(final_steps), "mean_final_batch": final_rows / final_steps if final_steps else 0.0,
        "final_step_p95_ms": final_step[1] * 1000 if final_steps else 0.0,
        "server_rss_mb": after["process_resident_memory_bytes"] / 2**20,
    }
    result["real_time"] = bool(result["errors"] == 0 and result["step_p95_ms"] < chunk_s * 1000
                               and result["final_p95_ms"] < 2 * chunk_s * 1000)
    return result


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def server_or_start(url: str | None, chunk_ms: int, full_context_finals: bool = False, checkpoint: str | None = None):
    """(base URL, the started server or None): an already running server, or a fresh one for this run (serving
    `checkpoint`, a path or a bundled model's name, when given)."""
    if url:
        return url.rstrip("/"), None
    env = {"ASR_CHUNK_MS": str(chunk_ms), "ASR_MAX_STREAMS": "1000",
           "ASR_FULL_CONTEXT_FINALS": str(full_context_finals).lower(), **served_checkpoint_env(checkpoint)}
    server = start_server(Path(tempfile.mkdtemp()), env=env)
    return server.url, server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-ms", type=int, default=640)
    parser.add_argument("--streams", type=int, nargs="+", default=[10, 25, 50, 100, 150])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--piece-ms", type=int, default=200, help="client send interval (microphone buffer)")
    parser.add_argument("--server", help="an already running server's base URL (default: start one)")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first level that fails")
    parser.add_argument("--churn", action="store_true",
                        help="each client speaks 2-6 s, stops, waits for its final and starts a new stream, for "
                             "--seconds in all (utterance churn) instead of one continuous stream")
    parser.add_argument("--full-context-finals", action="store_true",
                        help="the started server decodes each final again at full context (ASR_FULL_CONTEXT_FINALS)")
    add_served_checkpoint_option(parser)
    args = parser.parse_args(argv)
    base, server = server_or_start(args.server, args.chunk_ms, args.full_context_finals, args.checkpoint)
    ws_url = base.replace("http", "ws", 1) + "/v1/stream"
    pcm = test_audio(args.seconds)
    card = httpx.get(f"{base}/v1/models", timeout=30).json()["data"][0]
    rows = []
    try:
        for streams in args.streams:
            rows.append(run_level(base, ws_url, streams, pcm, args.chunk_ms / 1000, args.piece_ms / 1000, args.churn))
            print(json.dumps(rows[-1]), flush=True)
            if not rows[-1]["real_time"] and not args.keep_going:
                break
    finally:
        if server:
            server.stop()
    report(rows, args, f"{card['id']} {card['version']}")


def report(rows: list[dict], args: argparse.Namespace, model: str) -> None:
    headers = ["streams", "errors", "1st partial p50/p95 ms", "final p50/p95 ms", "step p50/p95/p99 ms",
               "mean batch", "server CPU %", "RSS MB", "real time"]
    if args.full_context_finals:
        headers[6:6] = ["2nd-pass steps", "2nd-pass batch", "2nd-pass p95 ms"]
    table = [[r["streams"], r["errors"], f'{r["first_partial_p50_ms"]:.0f}/{r["first_partial_p95_ms"]:.0f}',
              f'{r["final_p50_ms"]:.0f}/{r["final_p95_ms"]:.0f}',
              f'{r["step_p50_ms"]:.0f}/{r["step_p95_ms"]:.0f}/{r["step_p99_ms"]:.0f}', f'{r["mean_batch"]:.1f}',
              *([r["final_steps"], f'{r["mean_final_batch"]:.1f}', f'{r["final_step_p95_ms"]:.0f}']
                if args.full_context_finals else []),
              f'{r["server_cpu_percent"]:.0f}', f'{r["server_rss_mb"]:.0f}', "yes" if r["real_time"] else "NO"]
             for r in rows]
    second = ", finals decoded again at full context" if args.full_context_finals else ""
    pattern = (f"utterances of {CHURN_UTTERANCE_S[0]:.0f}-{CHURN_UTTERANCE_S[1]:.0f} s one after another for "
               f"{args.seconds:.0f} s" if args.churn else f"{args.seconds:.0f} s of audio each")
    print_table(f"Paced streams, {args.chunk_ms} ms chunks{second}, {pattern}", headers, table)
    best = max((r["streams"] for r in rows if r["real_time"]), default=0)
    print(f"\nlargest real-time level: {best} streams")
    name = results_name(f"stream_load_{args.chunk_ms}ms" + ("_full_context_finals" if args.full_context_finals else "")
                        + ("_churn" if args.churn else ""), args.checkpoint)
    write_results(name,
                  {"machine": machine_info(2), "commit": git_commit(), "model": model, "chunk_ms": args.chunk_ms,
                   "full_context_finals": args.full_context_finals, "churn": args.churn,
                   "largest_real_time_streams": best, "levels": rows})


if __name__ == "__main__":
    main()
