"""Does an accelerator compute what the CPU computes? One command for a machine with a GPU (a new deployment, a
leased training machine), comparing the bundled model on that device with the same weights on the CPU in float32:

- serving: the bundled samples transcribed in the device's serving dtype (float16 on CUDA, model.network.precision),
  at full context and at 640 ms chunks, and streamed as the WebSocket does (640 ms, `auto`, with and without
  full-context finals): the texts may differ from the CPU's only by a rare beam decision that rounding flips
  (at most 5% of the CPU text's characters / words), and every detected locale is the same;
- streaming: on the device in float32, the chunk-by-chunk encoder equals the masked full forward, and the full
  forward equals the CPU's;
- training: the joint loss (CTC + attention + locale) of one batch of the samples and its gradient norm, in the
  device's training precision (bf16 autocast on CUDA), against float32 on the CPU, at full context and with a
  chunk mask; every gradient finite;
- export: the TorchScript streaming step, traced on the CPU as `model.network.export` writes it, moved to the device,
  equals the eager step there.

TF32 is switched off for the float32 comparisons (on by default for convolutions on recent NVIDIA GPUs), so that they
compare arithmetic, not precision settings. On a CPU-only machine `--device cpu` runs the same code against itself.

    python -m model.evaluation.device_check --device cuda [--out runs/device_check.json]

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import torch

from model.accuracy.scoring import count_errors
from model.decoding.results import join_texts
from model.frontend.audio import load_audio_file
from model.frontend.features import FeatureExtractor, pad_features
from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.network.decoder import decoder_io
from model.network.export import exported_difference, trace_step
from model.network.precision import serving_dtype, training_autocast
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.recognition.stream_decoder import FinalEvent, decode_stream_offline
from model.recognition.streaming import encode_streaming
from model.training.train import joint_loss
from model.training.train_config import TrainConfig

SAMPLES = Path(__file__).parent.parent / "samples"
SERVING_TOLERANCE = 0.05  # share of the CPU text's units the device's text may differ in (rare beam flips)
ENCODER_TOLERANCE = 1e-3  # float32 on different hardware, absolute, on encoder outputs of order 1
LOSS_TOLERANCE = 0.02  # relative, bf16 autocast against float32
GRADIENT_TOLERANCE = 0.10  # relative, of the global gradient norm


def sample_rows() -> list[dict]:
    lines = (SAMPLES / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def streamed_text(recognizer, samples: torch.Tensor, options) -> str:
    _, events = decode_stream_offline(recognizer, samples, options, 16)
    return join_texts([e.segment.text for e in events if isinstance(e, FinalEvent) and e.segment.text])


def text_agreement(expected: list[str], actual: list[str], rows: list[dict]) -> dict:
    """How many of the device's texts equal the CPU's, and the share of the CPU texts' units that differ."""
    counts = [count_errors(e, a, row["locale"]) for e, a, row in zip(expected, actual, rows)]
    share = sum(c.errors for c in counts) / max(sum(c.reference_units for c in counts), 1)
    return {"texts_equal": sum(c.errors == 0 for c in counts), "of": len(counts), "units_differing": round(share, 4)}


def check_serving(checkpoint: str, device: torch.device) -> dict:
    rows = sample_rows()
    audio = [load_audio_file(str(SAMPLES / row["audio"])) for row in rows]
    dtype = serving_dtype(device, half_precision=True)
    on_cpu = Recognizer(load_checkpoint(checkpoint))
    on_device = Recognizer(load_checkpoint(checkpoint), device=device, dtype=dtype)
    report: dict = {"dtype": str(dtype).replace("torch.", "")}
    ok = True
    for mode, chunk_frames in (("full_context", None), ("chunk_640ms", 16)):
        options = [DecodeOptions(locale=row["locale"], chunk_frames=chunk_frames) for row in rows]
        expected, actual = on_cpu.transcribe_batch(audio, options), on_device.transcribe_batch(audio, options)
        report[mode] = text_agreement([t.text for t in expected], [t.text for t in actual], rows)
        ok &= report[mode]["units_differing"] <= SERVING_TOLERANCE
    for mode, full_context_finals in (("streamed_640ms_auto", False),
                                      ("streamed_640ms_auto_full_context_finals", True)):
        # The WebSocket path (model.recognition.stream_decoder: chunk steps, endpointing, finals), locale detected on
        # the way.
        streamed = DecodeOptions(locale=None, full_context_finals=full_context_finals)
        expected_texts = [streamed_text(on_cpu, a, streamed) for a in audio]
        actual_texts = [streamed_text(on_device, a, streamed) for a in audio]
        report[mode] = text_agreement(expected_texts, actual_texts, rows)
        ok &= report[mode]["units_differing"] <= SERVING_TOLERANCE
    detected = [on_device.transcribe(a, DecodeOptions(locale=None)).locale for a in audio]
    report["locales_detected_alike"] = detected == [on_cpu.transcribe(a, DecodeOptions(locale=None)).locale
                                                    for a in audio]
    report["ok"] = bool(ok and report["locales_detected_alike"])
    return report


def sample_features(extractor: FeatureExtractor | None = None) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """The samples' features from the given front end (default: the convolutional model's)."""
    rows = sample_rows()
    extractor = extractor or FeatureExtractor()
    features, lengths = pad_features([extractor(load_audio_file(str(SAMPLES / row["audio"]))) for row in rows])
    return features, lengths, rows


def check_streaming(model, device: torch.device, features: torch.Tensor, lengths: torch.Tensor) -> dict:
    first = features[0, : int(lengths[0])]
    left = model.config.encoder.left_context_frames
    on_cpu = model.float().eval()
    on_device = copy.deepcopy(on_cpu).to(device)
    with torch.no_grad():
        streamed = encode_streaming(on_device, first, 16)
        masked, masked_lengths = on_device.encode(first[None].to(device), lengths[:1].to(device), 16, left)
        full_device, _ = on_device.encode(features.to(device), lengths.to(device))
        full_cpu, _ = on_cpu.encode(features, lengths)
    chunked = float((streamed - masked[0, : int(masked_lengths[0])]).abs().max())
    across = float((full_device.cpu() - full_cpu).abs().max())
    return {"chunked_vs_masked_full_max_abs": chunked, "device_vs_cpu_full_max_abs": across,
            "ok": chunked <= ENCODER_TOLERANCE and across <= ENCODER_TOLERANCE}


def training_loss(model, tokenizer, batch: tuple[torch.Tensor, torch.Tensor, list[dict]], device: torch.device,
                  chunk_frames: int | None, autocast: bool) -> tuple[float, float, bool]:
    """(joint loss, global gradient norm, every gradient finite) of the samples as one batch, in eval mode (no dropout,
    so both devices compute the same function), with the trainer's bf16 autocast where `autocast` and the device has
    it (model.network.precision), else float32."""
    features, lengths, rows = batch
    features = features[..., : model.config.feature_columns].to(device)
    targets = [tokenizer.encode(row["text"]) for row in rows]
    inputs, outputs, input_lengths = decoder_io(targets, [tokenizer.locale_start_id(row["locale"]) for row in rows])
    locale_ids = torch.tensor([tokenizer.locales.index(row["locale"]) for row in rows], device=device)
    left = model.config.encoder.left_context_frames if chunk_frames else None
    model.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=training_autocast(device, autocast)):
        model_outputs = model(features, lengths.to(device), chunk_frames, left, inputs.to(device),
                              input_lengths.to(device))
    loss, _ = joint_loss(TrainConfig(train_manifest="", dev_manifest=""), model_outputs, targets, outputs, locale_ids)
    loss.backward()
    grads = [p.grad.detach().double() for p in model.parameters() if p.grad is not None]
    norm = math.sqrt(sum(float(g.square().sum()) for g in grads))
    return float(loss.detach()), norm, all(bool(torch.isfinite(g).all()) for g in grads)


def check_training(model, tokenizer, device: torch.device,
                   batch: tuple[torch.Tensor, torch.Tensor, list[dict]]) -> dict:
    report: dict[str, dict[str, float] | bool] = {}
    ok = True
    on_cpu = model.float().eval()
    on_device = copy.deepcopy(on_cpu).to(device)
    for mode, chunk_frames in (("full_context", None), ("chunk_640ms", 16)):
        cpu_loss, cpu_norm, _ = training_loss(on_cpu, tokenizer, batch, torch.device("cpu"), chunk_frames,
                                              autocast=False)
        loss, norm, finite = training_loss(on_device, tokenizer, batch, device, chunk_frames, autocast=True)
        loss_error, norm_error = abs(loss - cpu_loss) / cpu_loss, abs(norm - cpu_norm) / cpu_norm
        report[mode] = {"loss_cpu": round(cpu_loss, 4), "loss_device": round(loss, 4),
                        "loss_relative_difference": round(loss_error, 5),
                        "grad_norm_cpu": round(cpu_norm, 4), "grad_norm_device": round(norm, 4),
                        "grad_norm_relative_difference": round(norm_error, 5), "gradients_finite": finite}
        ok &= loss_error <= LOSS_TOLERANCE and norm_error <= GRADIENT_TOLERANCE and finite
    on_cpu.zero_grad(set_to_none=True)
    report["ok"] = bool(ok)
    return report


def check_export(model, device: torch.device) -> dict:
    model = model.float().eval()
    traced = trace_step(model, 16).to(device)  # traced on the CPU, as `python -m model.network.export` writes it
    difference = exported_difference(traced, copy.deepcopy(model).to(device), 16)
    return {"max_abs_difference": difference, "ok": difference <= ENCODER_TOLERANCE}


def run_checks(checkpoint: str, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    results: dict = {"device": str(device), "torch": torch.__version__, "checkpoint": checkpoint}
    if device.type == "cuda":
        results["device_name"] = torch.cuda.get_device_name(device)
    results["serving"] = check_serving(checkpoint, device)
    loaded = load_checkpoint(checkpoint)
    # the samples' features, computed once on the CPU, as the service does
    batch = sample_features(loaded.model.config.feature_extractor())
    results["streaming"] = check_streaming(loaded.model, device, *batch[:2])
    results["training"] = check_training(loaded.model, loaded.tokenizer, device, batch)
    results["export"] = check_export(loaded.model, device)
    results["ok"] = all(results[name]["ok"] for name in ("serving", "streaming", "training", "export"))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = run_checks(args.checkpoint, torch.device(args.device))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    raise SystemExit(0 if results["ok"] else 1)


if __name__ == "__main__":
    main()
