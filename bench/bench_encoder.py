"""Streaming encoder step cost (encode_chunk + ctc_log_probs, the first pass's per-chunk work).

(a) latency at batch 1 for streams 1 s, 10 s and 60 s old (pre-run to that age, then the next chunks timed,
    interleaved): median and p95 ms, and the 60 s / 1 s ratio, which should stay near 1 (target <= 1.2) because
    the attention cache has a fixed size whatever the stream's age;
(b) throughput at batch 1, 8, 32, 64 with streams of mixed ages stacked into one step: ms per step, chunks per
    second, and the real-time streams that implies (chunks/s x chunk seconds).

With `--quantize none int8` the float32 model and the one a CPU server runs with ASR_QUANTIZE=int8 (int8 linear
layers: model.network.precision) are measured side by side, every case of both in the same interleaved rounds, and
the int8 speed-up is each case's float32 median over its int8 median.

    python -m bench.bench_encoder [--checkpoint PATH] [--chunk-ms 640] [--threads 2] [--repeats 20] \
        [--quantize none int8] [--results-name encoder]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from bench.common import (
    benchmark_model, git_commit, interleaved_timings, machine_info, print_table, set_threads, summarize, write_results,
)
from model.frontend.features import FEATURE_DIM
from model.network.checkpoint import DEFAULT_CHECKPOINT
from model.network.encoder import ENCODER_FRAME_MS, EncoderState, chunk_feature_frames, stack_states
from model.network.export import chunk_frames_from_ms
from model.network.model import SpeechRecognizer
from model.network.precision import QUANTIZATIONS, Quantization, quantize_linear_layers

STREAM_AGES_S = (1.0, 10.0, 60.0)
BATCH_SIZES = (1, 8, 32, 64)
AGE_RATIO_TARGET = 1.2


@dataclass(frozen=True)
class EncoderBenchOptions:
    checkpoint: str | None = None
    chunk_ms: int = 640
    threads: int = 2
    repeats: int = 20
    quantize: tuple[Quantization, ...] = ("none",)


def random_chunk(batch: int, chunk_frames: int, generator: torch.Generator, columns: int = FEATURE_DIM
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Full chunks of MFCC-scale noise (`columns` wide: the model's front end); step cost does not depend on the
    values."""
    frames = chunk_feature_frames(chunk_frames)
    features = torch.randn(batch, frames, columns, generator=generator) * 10
    return features, torch.full((batch,), frames, dtype=torch.long)


def step(model: SpeechRecognizer, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState) -> EncoderState:
    """The measured unit: one streaming step and the CTC posteriors the first-pass search consumes."""
    encoded, _, next_state = model.encode_chunk(features, lengths, state)
    model.ctc_log_probs(encoded)
    return next_state


def aged_state(model: SpeechRecognizer, chunk_frames: int, chunks: int, generator: torch.Generator) -> EncoderState:
    """A batch-1 stream after `chunks` real steps, so its cache holds what a stream of that age holds."""
    state = model.initial_state(1)
    for _ in range(chunks):
        state = step(model, *random_chunk(1, chunk_frames, generator, model.config.feature_columns), state)
    return state


class Stream:
    """A stream advanced by each call, so timed chunks are the stream's next chunks, not replays of one."""

    def __init__(self, model: SpeechRecognizer, state: EncoderState, chunk_frames: int, seed: int) -> None:
        self.model, self.state = model, state
        self.inputs = random_chunk(state.batch_size, chunk_frames, torch.Generator().manual_seed(seed),
                                   model.config.feature_columns)

    def __call__(self) -> None:
        self.state = step(self.model, *self.inputs, self.state)


def chunks_for_age(age_s: float, chunk_s: float) -> int:
    return max(1, round(age_s / chunk_s))


def mixed_batch(states: list[EncoderState], batch: int) -> EncoderState:
    """`batch` rows cycling through streams of different ages, as a server's batch of live streams would be."""
    return stack_states([states[row % len(states)] for row in range(batch)])


def load_variants(options: EncoderBenchOptions) -> tuple[dict[Quantization, SpeechRecognizer], str]:
    """The model under test once per quantisation (each its own copy: int8 replaces the float layers in place)."""
    models = {}
    for quantization in options.quantize:
        model, description = benchmark_model(options.checkpoint)
        models[quantization] = quantize_linear_layers(model, quantization)
    return models, description


def timed_cases(models: dict[Quantization, SpeechRecognizer], chunk_frames: int, chunk_s: float, repeats: int
                ) -> tuple[dict, dict]:
    """(a) and (b) of every variant, all interleaved in the same rounds, so the variants meet the same load."""
    latency_cases, throughput_cases = {}, {}
    for quantization, model in models.items():
        generator = torch.Generator().manual_seed(0)
        aged = {age: aged_state(model, chunk_frames, chunks_for_age(age, chunk_s), generator) for age in STREAM_AGES_S}
        # Mixed ages: a brand-new stream plus the three aged ones.
        pool = [model.initial_state(1), *aged.values()]
        for seed, (age, state) in enumerate(aged.items()):
            latency_cases[quantization, age] = Stream(model, state, chunk_frames, seed)
        for batch in BATCH_SIZES:
            throughput_cases[quantization, batch] = Stream(model, mixed_batch(pool, batch), chunk_frames, 100 + batch)
    return interleaved_timings(latency_cases, repeats), interleaved_timings(throughput_cases, repeats)


def variant_report(latency: dict[float, list[float]], throughput: dict[int, list[float]], chunk_s: float) -> dict:
    latency_rows = [
        {"age_s": chunks_for_age(age, chunk_s) * chunk_s, "requested_age_s": age, "timing": summarize(seconds)}
        for age, seconds in latency.items()
    ]
    ratio = latency_rows[-1]["timing"].median_ms / latency_rows[0]["timing"].median_ms
    throughput_rows = []
    for batch, seconds in throughput.items():
        summary = summarize(seconds)
        chunks_per_s = batch * 1000.0 / summary.median_ms
        throughput_rows.append({
            "batch": batch, "timing": summary, "chunks_per_s": chunks_per_s,
            "real_time_streams": chunks_per_s * chunk_s,
        })
    return {
        "latency_batch1": latency_rows,
        "age_ratio_60s_over_1s": ratio, "age_ratio_target": AGE_RATIO_TARGET, "age_ratio_ok": ratio <= AGE_RATIO_TARGET,
        "throughput": throughput_rows,
    }


def int8_speedup(variants: dict[str, dict]) -> dict | None:
    """float32 median / int8 median per case (> 1: int8 is faster), when both ran."""
    if not {"none", "int8"} <= set(variants):
        return None
    none, int8 = variants["none"], variants["int8"]
    return {
        "latency_batch1": {str(a["requested_age_s"]): a["timing"].median_ms / b["timing"].median_ms
                           for a, b in zip(none["latency_batch1"], int8["latency_batch1"])},
        "throughput": {str(a["batch"]): a["timing"].median_ms / b["timing"].median_ms
                       for a, b in zip(none["throughput"], int8["throughput"])},
    }


def measure(options: EncoderBenchOptions) -> dict:
    set_threads(options.threads)
    models, description = load_variants(options)
    model = next(iter(models.values()))
    chunk_frames = chunk_frames_from_ms(options.chunk_ms)
    chunk_s = chunk_frames * ENCODER_FRAME_MS / 1000.0
    with torch.inference_mode():
        latency, throughput = timed_cases(models, chunk_frames, chunk_s, options.repeats)
    variants = {
        quantization: variant_report({age: t for (q, age), t in latency.items() if q == quantization},
                                     {batch: t for (q, batch), t in throughput.items() if q == quantization}, chunk_s)
        for quantization in models
    }
    c = model.config.encoder
    return {
        "benchmark": "encoder", "machine": machine_info(options.threads), "commit": git_commit(),
        "options": {**options.__dict__, "quantize": list(options.quantize)},
        "model": {
            "source": description, "parameters": model.parameter_count(), "d_model": c.d_model,
            "n_layers": c.n_layers, "left_context_frames": c.left_context_frames, "vocab_size": model.config.vocab_size,
            "backbone": c.backbone or None,
        },
        "chunk_frames": chunk_frames, "chunk_s": chunk_s,
        "quantizations": variants, "int8_speedup": int8_speedup(variants),
    }


def print_report(report: dict) -> None:
    machine, chunk_ms = report["machine"], round(report["chunk_s"] * 1000)
    print(f"model: {report['model']['source']}, {report['model']['parameters'] / 1e6:.1f} M parameters; "
          f"{machine['cpu_model']}, {machine['torch_threads']} threads, load {machine['load_average_1m_at_start']}")
    for quantization, variant in report["quantizations"].items():
        linear = "int8 linear layers" if quantization == "int8" else "float32"
        print_table(
            f"(a) {linear}: one {chunk_ms} ms chunk (C={report['chunk_frames']}) at batch 1, by stream age",
            ("stream age s", "median ms", "p95 ms", "x real time"),
            [(f"{r['age_s']:.2f}", r["timing"].median_ms, r["timing"].p95_ms,
              f"{chunk_ms / r['timing'].median_ms:.1f}") for r in variant["latency_batch1"]],
        )
        verdict = "ok" if variant["age_ratio_ok"] else "ABOVE TARGET"
        ratio, target = variant["age_ratio_60s_over_1s"], variant["age_ratio_target"]
        print(f"ratio 60 s / 1 s: {ratio:.2f} (target <= {target}, {verdict})")
        print_table(
            f"(b) {linear}: batched {chunk_ms} ms steps, streams of mixed ages",
            ("batch", "median ms", "p95 ms", "chunks/s", "real-time streams"),
            [(r["batch"], r["timing"].median_ms, r["timing"].p95_ms, f"{r['chunks_per_s']:.1f}",
              f"{r['real_time_streams']:.1f}") for r in variant["throughput"]],
        )
    speedup = report["int8_speedup"]
    if speedup:
        print_table("int8 speed-up (float32 median / int8 median, same rounds)", ("case", "speed-up"),
                    [*((f"batch 1, stream age {age} s", f"{v:.2f}x") for age, v in speedup["latency_batch1"].items()),
                     *((f"batch {batch}", f"{v:.2f}x") for batch, v in speedup["throughput"].items())])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="default: the bundled default model")
    parser.add_argument("--chunk-ms", type=int, default=EncoderBenchOptions.chunk_ms)
    parser.add_argument("--threads", type=int, default=EncoderBenchOptions.threads)
    parser.add_argument("--repeats", type=int, default=EncoderBenchOptions.repeats)
    parser.add_argument("--quantize", nargs="+", choices=QUANTIZATIONS, default=list(EncoderBenchOptions.quantize),
                        help="the model's linear layers as served: float32 (none), int8, or both side by side")
    parser.add_argument("--results-name", default="encoder", help="bench/results/NAME.json")
    args = parser.parse_args(argv)
    try:
        chunk_frames_from_ms(args.chunk_ms)
    except ValueError as error:
        parser.error(str(error))
    quantize = tuple(dict.fromkeys(args.quantize))  # each once, in the order given
    report = measure(EncoderBenchOptions(args.checkpoint, args.chunk_ms, args.threads, args.repeats, quantize))
    print_report(report)
    print(f"\nwrote {write_results(args.results_name, report)}")


if __name__ == "__main__":
    main()
