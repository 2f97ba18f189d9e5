"""Offline throughput of a real server: real-time factor (processing time / audio duration) for a set of
uploads sent one at a time, and sent 16 at a time (the scheduler batches them), measured in one run.

    python bench/bench_offline.py --files 32 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (add_served_checkpoint_option, git_commit, machine_info, print_table,  # noqa: E402
                          results_name, served_checkpoint_env, write_results)
from bench.server_process import ROOT, start_server  # noqa: E402

SAMPLES = ROOT / "model" / "samples"


def upload_set(files: int, seconds: float) -> list[tuple[bytes, float]]:
    """`files` WAV uploads of about `seconds` each: the bundled samples in rotating order with pauses."""
    pieces = [soundfile.read(p, dtype="int16")[0] for p in sorted(SAMPLES.glob("*.wav"))]
    pause = np.zeros(4800, dtype=np.int16)
    uploads = []
    for index in range(files):
        order = pieces[index % len(pieces):] + pieces[: index % len(pieces)]
        audio = np.concatenate([x for p in order for x in (p, pause)])
        audio = np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)]
        buffer = io.BytesIO()
        soundfile.write(buffer, audio, 16000, format="WAV", subtype="PCM_16")
        uploads.append((buffer.getvalue(), len(audio) / 16000))
    return uploads


async def send_all(url: str, uploads: list[tuple[bytes, float]], concurrency: int) -> float:
    """Wall seconds to transcribe every upload with at most `concurrency` requests in flight."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        async def one(data: bytes) -> None:
            async with gate:
                response = await client.post("/transcribe", files={"file": ("a.wav", data)}, data={"locale": "auto"})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(data) for data, _ in uploads))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0, help="audio per upload")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating sequential/concurrent rounds")
    parser.add_argument("--server", help="an already running server's base URL (default: start one)")
    add_served_checkpoint_option(parser)
    args = parser.parse_args(argv)
    server = None if args.server else start_server(Path(tempfile.mkdtemp()), env=served_checkpoint_env(args.checkpoint))
    url = args.server or server.url
    uploads = upload_set(args.files, args.seconds)
    audio_s = sum(d for _, d in uploads)
    walls: dict[str, list[float]] = {"one at a time": [], f"{args.concurrency} concurrent": []}
    try:
        card = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]
        model = f"{card['id']} {card['version']}"
        asyncio.run(send_all(url, uploads[:2], 1))  # warm-up
        for _ in range(args.rounds):  # interleaved, so machine load hits both modes alike
            walls["one at a time"].append(asyncio.run(send_all(url, uploads, 1)))
            walls[f"{args.concurrency} concurrent"].append(asyncio.run(send_all(url, uploads, args.concurrency)))
    finally:
        if server:
            server.stop()
    rows = [[mode, len(uploads), f"{audio_s:.0f}", f"{min(w):.2f}", f"{min(w) / audio_s:.4f}",
             f"{audio_s / min(w):.0f}"]
            for mode, w in walls.items()]
    print_table("Offline uploads through the server (best of rounds)",
                ["mode", "files", "audio s", "wall s", "RTF", "x real time"], rows)
    sequential, concurrent = (min(w) for w in walls.values())
    print(f"\nbatched speed-up: {sequential / concurrent:.2f}x")
    write_results(results_name("offline_rtf", args.checkpoint),
                  {"machine": machine_info(2), "commit": git_commit(), "model": model, "files": len(uploads),
                   "audio_s": audio_s, "wall_s": {k: v for k, v in walls.items()},
                   "rtf": {k: min(v) / audio_s for k, v in walls.items()},
                   "batched_speedup": sequential / concurrent})


if __name__ == "__main__":
    main()
