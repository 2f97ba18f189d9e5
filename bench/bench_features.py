"""Front end speed (MFCC + pitch): offline extraction of a whole utterance vs streaming extraction (`push_samples`)
with 20, 100 and 640 ms pieces, and the MFCC alone offline (what the pitch columns cost), measured side by side
(interleaved repeats, median), as multiples of real time.

    python -m bench.bench_features [--seconds 60] [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from bench.common import interleaved_timings, machine_info, print_table, set_threads, summarize, write_results
from model.frontend.features import SAMPLE_RATE, FeatureStreamState, FeatureExtractor, push_samples

PIECE_MS = (20, 100, 640)


@dataclass(frozen=True)
class FeatureBenchOptions:
    seconds: float = 60.0
    repeats: int = 7
    threads: int = 2


def noise_waveform(seconds: float, seed: int = 0) -> torch.Tensor:
    """Noise at speech-like level: MFCC cost does not depend on the content."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(int(seconds * SAMPLE_RATE), generator=generator) * 0.1


def stream_all(extractor: FeatureExtractor, waveform: torch.Tensor, piece_samples: int) -> int:
    """Push the whole waveform in pieces, as a live client would; returns frames produced."""
    state, frames = FeatureStreamState.initial(), 0
    for start in range(0, waveform.shape[0], piece_samples):
        features, state = push_samples(extractor, state, waveform[start : start + piece_samples])
        frames += features.shape[0]
    return frames


def run(options: FeatureBenchOptions) -> dict:
    set_threads(options.threads)
    extractor = FeatureExtractor()
    waveform = noise_waveform(options.seconds)
    cases = {"offline": lambda: extractor(waveform), "offline_mfcc_only": lambda: extractor.mfcc(waveform)}
    for ms in PIECE_MS:
        cases[f"stream_{ms}ms"] = lambda piece=ms * SAMPLE_RATE // 1000: stream_all(extractor, waveform, piece)
    with torch.inference_mode():
        timings = interleaved_timings(cases, options.repeats)
    results = []
    for name, seconds in timings.items():
        summary = summarize(seconds)
        piece_ms = None if name.startswith("offline") else int(name.split("_")[1].removesuffix("ms"))
        calls = 1 if piece_ms is None else -(-int(options.seconds * 1000) // piece_ms)
        results.append({
            "case": name, "piece_ms": piece_ms, "calls": calls, "timing": summary,
            "x_real_time": options.seconds * 1000.0 / summary.median_ms,
            "per_call_us": summary.median_ms * 1000.0 / calls,
        })
    return {
        "benchmark": "features", "machine": machine_info(options.threads),
        "options": options.__dict__, "audio_seconds": options.seconds, "results": results,
    }


def print_report(report: dict) -> None:
    rows = [
        (r["case"], r["piece_ms"] or "-", r["calls"], r["timing"].median_ms, r["timing"].p95_ms,
         f"{r['x_real_time']:.0f}", f"{r['per_call_us']:.0f}")
        for r in report["results"]
    ]
    print_table(
        f"Feature extraction (MFCC + pitch) of {report['audio_seconds']:.0f} s of audio "
        f"({report['machine']['torch_threads']} threads, load {report['machine']['load_average_1m_at_start']})",
        ("case", "piece ms", "calls", "median ms", "p95 ms", "x real time", "us/call"), rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=FeatureBenchOptions.seconds)
    parser.add_argument("--repeats", type=int, default=FeatureBenchOptions.repeats)
    parser.add_argument("--threads", type=int, default=FeatureBenchOptions.threads)
    args = parser.parse_args(argv)
    report = run(FeatureBenchOptions(seconds=args.seconds, repeats=args.repeats, threads=args.threads))
    print_report(report)
    print(f"\nwrote {write_results('features', report)}")


if __name__ == "__main__":
    main()
