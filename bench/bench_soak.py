"""Soak: N streams paced at real time (like microphones), each starting a new session as soon as the last one ends,
plus an upload every few seconds, for a long time against a real server. Sampled every minute: server RSS and open
file descriptors, stop -> last final latency (client side) and endpoint final latency (server histogram), sessions,
uploads and errors. It reports errors, lost finals (a session that ends without a final, or without its normal
end and close), RSS growth after the first minute (warm-up) and p95 latency of the first minute against the last.
Not part of the test suite: the full run takes 10 minutes and two busy cores.

    python -m bench.bench_soak                       # 50 streams + uploads for 10 minutes
    python -m bench.bench_soak --minutes 1 --streams 10 --interval-s 15   # a quick check of the bench itself
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_streams import (StreamTiming, histogram_quantiles, paced_stream, scrape,  # noqa: E402
                                 server_or_start, test_audio)
from bench.common import machine_info, print_table, write_results  # noqa: E402

RSS_GROWTH_LIMIT = 0.05
P95_DRIFT_LIMIT = 1.5  # last minute's p95 over the first minute's


@dataclass
class Soak:
    """What the clients saw, timestamped relative to the start."""

    started: float = field(default_factory=time.perf_counter)
    sessions: list[tuple[float, StreamTiming]] = field(default_factory=list)  # (stop time, timing)
    uploads: list[tuple[float, int, float]] = field(default_factory=list)  # (time, status, seconds)
    running: int = 0  # sessions in progress

    def now(self) -> float:
        return time.perf_counter() - self.started


async def stream_slot(soak: Soak, url: str, pcm: bytes, piece_s: float, first_delay_s: float,
                      deadline_s: float) -> None:
    """One microphone: paced sessions back to back until the deadline."""
    delay = first_delay_s
    while soak.now() < deadline_s:
        soak.running += 1
        timing = await paced_stream(url, pcm, piece_s, delay)
        soak.running -= 1
        delay = 0.0
        soak.sessions.append((timing.stop_sent - soak.started if timing.stop_sent else soak.now(), timing))


async def uploader(soak: Soak, base: str, wav: bytes, every_s: float, deadline_s: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        while soak.now() < deadline_s:
            began = soak.now()
            try:
                status = (await client.post("/transcribe", files={"file": ("soak.wav", wav)})).status_code
            except httpx.HTTPError:
                status = 0
            soak.uploads.append((began, status, soak.now() - began))
            await asyncio.sleep(max(0.0, began + every_s - soak.now()))


async def sampler(soak: Soak, base: str, interval_s: float, deadline_s: float, rows: list[dict]) -> None:
    """Every interval, the server's view of that interval (metrics deltas) and the clients' (sessions, uploads)."""
    before = await asyncio.to_thread(scrape, base)
    index = 0
    while True:
        index += 1
        await asyncio.sleep(max(0.0, index * interval_s - soak.now()))
        after = await asyncio.to_thread(scrape, base)
        rows.append(interval_row(soak, index, interval_s, before, after))
        before = after
        if soak.now() >= deadline_s and not soak.running:  # sessions begun before the deadline are counted too
            return


def interval_row(soak: Soak, index: int, interval_s: float, before: dict, after: dict) -> dict:
    start, end = (index - 1) * interval_s, index * interval_s
    sessions = [t for stop, t in soak.sessions if start <= stop < end]
    uploads = [(status, seconds) for began, status, seconds in soak.uploads if start <= began < end]
    stop_latencies = [t.last_final - t.stop_sent for t in sessions if t.error is None and t.last_final]
    endpoint_p95 = histogram_quantiles(before, after, "asr_final_latency_seconds", 'cause="endpoint"', (0.95,))[0]
    return {
        "interval": index, "end_s": round(end, 1), "sessions": len(sessions),
        "stream_errors": sum(t.error is not None for t in sessions),
        "lost_finals": sum(t.error is None and t.finals == 0 for t in sessions),
        "uploads": len(uploads), "upload_errors": sum(status != 200 for status, _ in uploads),
        "upload_p95_ms": percentile_ms([seconds for _, seconds in uploads]),
        "stop_final_p95_ms": percentile_ms(stop_latencies),
        "endpoint_final_p95_ms": endpoint_p95 * 1000,
        "rss_mb": after["process_resident_memory_bytes"] / 2**20, "open_fds": after["process_open_fds"],
        "active_streams": after.get("asr_active_streams", float("nan")),
    }


def percentile_ms(values: list[float], q: float = 95) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def upload_audio(seconds: float) -> bytes:
    pcm = np.frombuffer(test_audio(seconds), dtype="<i2")
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def run_soak(base: str, args: argparse.Namespace) -> tuple[Soak, list[dict]]:
    ws_url = base.replace("http", "ws", 1) + "/v1/stream"
    pcm, wav = test_audio(args.session_s), upload_audio(args.upload_s)
    deadline_s = args.minutes * 60
    soak, rows = Soak(), []

    async def everything():
        delays = np.linspace(0, args.chunk_ms / 1000, args.streams, endpoint=False)  # spread like real users
        await asyncio.gather(
            *(stream_slot(soak, ws_url, pcm, args.piece_ms / 1000, d, deadline_s) for d in delays),
            uploader(soak, base, wav, args.upload_every_s, deadline_s),
            sampler(soak, base, args.interval_s, deadline_s, rows))

    asyncio.run(everything())
    return soak, rows


def summarize(soak: Soak, rows: list[dict]) -> dict:
    timings = [t for _, t in soak.sessions]
    errors = sorted({t.error for t in timings if t.error})
    full = [r for r in rows if r["sessions"]] or rows
    first, last = full[0], full[-1]
    rss_growth = rows[-1]["rss_mb"] / rows[0]["rss_mb"] - 1 if len(rows) > 1 else float("nan")
    p95_ratio = last["stop_final_p95_ms"] / first["stop_final_p95_ms"] if first["stop_final_p95_ms"] else float("nan")
    summary = {
        "sessions": len(timings), "stream_errors": sum(t.error is not None for t in timings), "error_kinds": errors,
        "lost_finals": sum(t.error is None and t.finals == 0 for t in timings),
        "uploads": len(soak.uploads), "upload_errors": sum(status != 200 for _, status, _ in soak.uploads),
        "rss_first_interval_mb": rows[0]["rss_mb"], "rss_last_interval_mb": rows[-1]["rss_mb"],
        "rss_growth_after_warm_up": rss_growth,
        "fds_first_interval": rows[0]["open_fds"], "fds_last_interval": rows[-1]["open_fds"],
        "stop_final_p95_first_ms": first["stop_final_p95_ms"], "stop_final_p95_last_ms": last["stop_final_p95_ms"],
        "stop_final_p95_ratio": p95_ratio,
    }
    summary["passed"] = bool(summary["stream_errors"] == 0 and summary["upload_errors"] == 0
                             and summary["lost_finals"] == 0 and rss_growth < RSS_GROWTH_LIMIT
                             and p95_ratio <= P95_DRIFT_LIMIT)
    return summary


def report(rows: list[dict], summary: dict, args: argparse.Namespace) -> None:
    headers = ["interval", "end s", "sessions", "stream errors", "lost finals", "uploads", "upload errors",
               "upload p95 ms", "stop->final p95 ms", "endpoint final p95 ms", "RSS MB", "fds"]
    table = [[r["interval"], f'{r["end_s"]:.0f}', r["sessions"], r["stream_errors"], r["lost_finals"], r["uploads"],
              r["upload_errors"], f'{r["upload_p95_ms"]:.0f}', f'{r["stop_final_p95_ms"]:.0f}',
              f'{r["endpoint_final_p95_ms"]:.0f}', f'{r["rss_mb"]:.1f}', f'{r["open_fds"]:.0f}'] for r in rows]
    print_table(f"Soak: {args.streams} paced streams + an upload every {args.upload_every_s:.0f} s, "
                f"{args.minutes:g} min, sampled every {args.interval_s:.0f} s", headers, table)
    print(f"\nsessions {summary['sessions']}, stream errors {summary['stream_errors']} {summary['error_kinds']}, "
          f"lost finals {summary['lost_finals']}, uploads {summary['uploads']} "
          f"(errors {summary['upload_errors']})")
    print(f"RSS after warm-up {summary['rss_first_interval_mb']:.1f} -> {summary['rss_last_interval_mb']:.1f} MB "
          f"({summary['rss_growth_after_warm_up']:+.2%}); fds {summary['fds_first_interval']:.0f} -> "
          f"{summary['fds_last_interval']:.0f}")
    print(f"stop->final p95 first {summary['stop_final_p95_first_ms']:.0f} ms, last "
          f"{summary['stop_final_p95_last_ms']:.0f} ms (x{summary['stop_final_p95_ratio']:.2f})")
    print("PASSED" if summary["passed"] else "FAILED")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=60.0, help="sampling interval (a minute by default)")
    parser.add_argument("--session-s", type=float, default=30.0, help="audio per stream session")
    parser.add_argument("--piece-ms", type=int, default=200, help="client send interval (microphone buffer)")
    parser.add_argument("--chunk-ms", type=int, default=640)
    parser.add_argument("--upload-every-s", type=float, default=10.0)
    parser.add_argument("--upload-s", type=float, default=20.0, help="audio per upload")
    parser.add_argument("--server", help="an already running server's base URL (default: start one)")
    args = parser.parse_args(argv)
    base, server = server_or_start(args.server, args.chunk_ms)
    try:
        soak, rows = run_soak(base, args)
    finally:
        if server:
            server.stop()
    summary = summarize(soak, rows)
    report(rows, summary, args)
    write_results("soak", {"machine": machine_info(2), "streams": args.streams, "minutes": args.minutes,
                           "interval_s": args.interval_s, "session_s": args.session_s,
                           "upload_every_s": args.upload_every_s, "summary": summary, "intervals": rows})


if __name__ == "__main__":
    main()
