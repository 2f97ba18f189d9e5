"""Training step cost of the bundled model's architecture: one optimizer step (forward, joint CTC + attention +
locale loss, backward, AdamW) on a batch of `max_batch_frames` feature frames, in float32 and under bf16 autocast,
timed interleaved in one run. The losses of the same batch in both precisions are compared too.

bf16 autocast is what `model.training.train` uses on CUDA and on CPUs with native bf16 (model/network/precision.py); on
other CPUs the bf16 row shows what emulation would cost and the trainer stays in float32.

    python -m bench.bench_train [--threads 2] [--repeats 5] [--batch-frames 16000]
"""

from __future__ import annotations

import argparse
import copy

import torch

from bench.common import (
    DEFAULT_CONFIG, benchmark_model, interleaved_timings, machine_info, print_table, set_threads, summarize,
    write_results,
)
from model.network.decoder import decoder_io
from model.network.precision import cpu_has_native_bf16
from model.training.train import joint_loss
from model.training.train_config import TrainConfig

TRAIN = TrainConfig.from_toml(DEFAULT_CONFIG)
UTTERANCE_FRAMES = 800  # 8 s: the corpus's typical length
TOKENS_PER_UTTERANCE = 30


def synthetic_batch(model, batch_frames: int, generator: torch.Generator) -> dict:
    """Random features and targets of the shapes a training batch has (compute does not depend on values)."""
    rows = max(batch_frames // UTTERANCE_FRAMES, 1)
    vocab = model.config.vocab_size
    targets = [torch.randint(4, vocab, (TOKENS_PER_UTTERANCE,), generator=generator).tolist() for _ in range(rows)]
    inputs, outputs, input_lengths = decoder_io(targets, [1] * rows)
    return {"features": torch.randn(rows, UTTERANCE_FRAMES, model.input_dim, generator=generator),
            "lengths": torch.full((rows,), UTTERANCE_FRAMES), "targets": targets, "inputs": inputs,
            "outputs": outputs, "input_lengths": input_lengths, "locales": torch.zeros(rows, dtype=torch.long)}


def batch_loss(model, batch: dict, autocast: bool) -> torch.Tensor:
    """The trainer's joint loss (model.training.train.joint_loss) on a prepared batch, at full context."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs = model(batch["features"], batch["lengths"], None, None, batch["inputs"], batch["input_lengths"])
    return joint_loss(TRAIN, outputs, batch["targets"], batch["outputs"], batch["locales"])[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: random weights of the bundled model's size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-frames", type=int, default=TRAIN.max_batch_frames)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    base, description = benchmark_model(args.checkpoint)
    batch = synthetic_batch(base, args.batch_frames, torch.Generator().manual_seed(0))
    audio_s = args.batch_frames / 100

    models = {"float32": copy.deepcopy(base).float().train(), "bf16 autocast": copy.deepcopy(base).float().train()}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}

    def step(name: str):
        def run() -> None:
            loss = batch_loss(models[name], batch, autocast=name != "float32")
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
        return run

    timings = interleaved_timings({name: step(name) for name in models}, args.repeats)
    reference = copy.deepcopy(base).float().eval()  # same weights, no dropout: the two losses are comparable
    with torch.no_grad():
        losses = {name: float(batch_loss(reference, batch, autocast=name != "float32")) for name in models}
    summaries = {name: summarize(seconds) for name, seconds in timings.items()}
    rows = [[name, f"{s.median_ms / 1000:.2f}", f"{audio_s / (s.median_ms / 1000):.0f}", f"{losses[name]:.4f}"]
            for name, s in summaries.items()]
    print_table(f"Training step, {description}, batch of {args.batch_frames} frames ({audio_s:.0f} s of audio), "
                f"{args.threads} threads", ["precision", "s / step", "audio s / s", "loss"], rows)
    speedup = summaries["float32"].median_ms / summaries["bf16 autocast"].median_ms
    loss_gap = abs(losses["bf16 autocast"] - losses["float32"]) / abs(losses["float32"])
    print(f"\nbf16 speed-up: {speedup:.2f}x; loss difference {100 * loss_gap:.3f}%; "
          f"native bf16 on this CPU: {cpu_has_native_bf16()}")
    write_results("train_step", {"machine": machine_info(args.threads), "model": description,
                                 "batch_frames": args.batch_frames, "step": summaries, "loss": losses,
                                 "bf16_speedup": speedup, "loss_relative_difference": loss_gap,
                                 "native_bf16": cpu_has_native_bf16()})


if __name__ == "__main__":
    main()
