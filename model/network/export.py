"""Export of one streaming encoder step (CMVN -> `forward_chunk` -> CTC log-softmax) as a self-contained graph,
so a serving runtime can run the first pass without this package's Python code.

The exported function is tensors in, tensors out: the `EncoderState` dataclass is flattened into its cache,
processed-frame count and pitch statistics. The chunk size is fixed at export time (it sets the feature-frame count
4C+3); the batch size stays dynamic, which `export_torchscript` checks by running the traced module on a batch size
other than the example's and comparing with eager.

TorchScript (torch.jit.trace/save/load) is deprecated as of torch 2.14 in favour of torch.export, but it is still
the one format that loads with nothing but libtorch (C++) or `torch.jit.load`; tracing works here because the step
has no data-dependent Python control flow. The optional ONNX path needs the `onnx` package (not a dependency).

`--quantize int8` exports the step with int8 linear layers, as a CPU server with ASR_QUANTIZE=int8 runs it
(model.network.precision): TorchScript keeps fbgemm's packed weights; ONNX has no such operator, so it is refused.

    python -m model.network.export --checkpoint model/checkpoints/default.pt --chunk-ms 640 \
        --out exported/encoder_step_640ms.pt [--quantize int8]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.network.encoder import ENCODER_FRAME_MS, SUBSAMPLING, EncoderState, chunk_feature_frames
from model.network.model import SpeechRecognizer
from model.network.precision import QUANTIZATIONS, Quantization, quantization_of, quantize_linear_layers

EXAMPLE_BATCH = 2  # not 1: tracing at batch 1 could let a broadcast of a size-1 dim pass where B > 1 would not
CHECK_BATCH = 3  # a second batch size, to prove the traced graph did not bake in EXAMPLE_BATCH
INPUT_NAMES = ("features", "lengths", "cache", "processed_frames", "pitch_stats")
OUTPUT_NAMES = ("ctc_log_probs", "encoded", "valid", "next_cache", "next_processed_frames", "next_pitch_stats")
# A model with a backbone has one more input and output: its cache
BACKBONE_INPUT, BACKBONE_OUTPUT = "backbone_cache", "next_backbone_cache"
# A model with a companion encoder (model.network.companion) has three more: the companion's state, after the backbone's
COMPANION_INPUTS = ("companion_cache", "companion_processed_frames", "companion_pitch_stats")
COMPANION_OUTPUTS = tuple("next_" + name for name in COMPANION_INPUTS)
METADATA_FILE = "streaming_step.json"  # stored inside the TorchScript archive (torch.jit.save _extra_files)


class StreamingStep(nn.Module):
    """One streaming step of `model` over flat tensors.

    features (B, 4C+3, F) raw MFCC, lengths (B,) valid feature frames, cache (B, N, 2, L, D),
    processed_frames (B,), pitch_stats (B, 2) float32 -> ctc_log_probs (B, C, V) (no locale mask: the runtime
    applies its own), encoded (B, C, D), valid (B,), next_cache (B, N, 2, L, D), next_processed_frames (B,),
    next_pitch_stats (B, 2). A new stream starts from zeros for the cache, the count and the pitch statistics.
    """

    def __init__(self, model: SpeechRecognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, cache: torch.Tensor, processed_frames: torch.Tensor,
        pitch_stats: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        state = EncoderState(cache, processed_frames, pitch_stats)
        encoded, valid, state = self.model.encode_chunk(features, lengths, state)
        return self.model.ctc_log_probs(encoded), encoded, valid, state.cache, state.processed_frames, state.pitch_stats


class BackboneStreamingStep(nn.Module):
    """`StreamingStep` of a model with a backbone: the backbone's cache (B, Nb, 2, 2L, E) in, its next one out, last."""

    def __init__(self, model: SpeechRecognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, cache: torch.Tensor, processed_frames: torch.Tensor,
        pitch_stats: torch.Tensor, backbone_cache: torch.Tensor,
    ) -> tuple[torch.Tensor | None, ...]:
        state = EncoderState(cache, processed_frames, pitch_stats, backbone_cache)
        encoded, valid, state = self.model.encode_chunk(features, lengths, state)
        return (self.model.ctc_log_probs(encoded), encoded, valid, state.cache, state.processed_frames,
                state.pitch_stats, state.backbone_cache)


class CompanionStreamingStep(nn.Module):
    """`BackboneStreamingStep` of a model with a companion encoder too: the companion's cache (B, Nc, 2, L, Dc),
    processed frames (B,) and pitch statistics (B, 2) in after the backbone's cache, their next values out last."""

    def __init__(self, model: SpeechRecognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, cache: torch.Tensor, processed_frames: torch.Tensor,
        pitch_stats: torch.Tensor, backbone_cache: torch.Tensor, companion_cache: torch.Tensor,
        companion_processed_frames: torch.Tensor, companion_pitch_stats: torch.Tensor,
    ) -> tuple[torch.Tensor | None, ...]:
        companion = EncoderState(companion_cache, companion_processed_frames, companion_pitch_stats)
        state = EncoderState(cache, processed_frames, pitch_stats, backbone_cache, companion)
        encoded, valid, state = self.model.encode_chunk(features, lengths, state)
        assert state.companion is not None
        return (self.model.ctc_log_probs(encoded), encoded, valid, state.cache, state.processed_frames,
                state.pitch_stats, state.backbone_cache, state.companion.cache, state.companion.processed_frames,
                state.companion.pitch_stats)


def step_module(model: SpeechRecognizer) -> nn.Module:
    if model.companion is not None:
        if model.encoder.backbone is None:
            raise ValueError("export takes a companion encoder beside a backbone, the one pairing trained")
        return CompanionStreamingStep(model)
    return BackboneStreamingStep(model) if model.encoder.backbone is not None else StreamingStep(model)


def io_names(model: SpeechRecognizer) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if model.encoder.backbone is None:
        return INPUT_NAMES, OUTPUT_NAMES
    companion = (COMPANION_INPUTS, COMPANION_OUTPUTS) if model.companion is not None else ((), ())
    return INPUT_NAMES + (BACKBONE_INPUT, *companion[0]), OUTPUT_NAMES + (BACKBONE_OUTPUT, *companion[1])


@dataclass(frozen=True)
class StepMetadata:
    """What a runtime needs to drive the exported step without the checkpoint's config."""

    chunk_frames: int  # C, encoder frames per step
    chunk_ms: int
    feature_frames: int  # 4C+3 feature frames per step, 3 of them shared with the next step
    feature_dim: int
    n_layers: int
    left_context_frames: int  # L
    d_model: int
    vocab_size: int
    locales: tuple[str, ...]
    quantization: Quantization  # "int8": the linear layers are fbgemm's int8 ones (a CPU runtime)

    @staticmethod
    def of(model: SpeechRecognizer, chunk_frames: int) -> "StepMetadata":
        c = model.config
        return StepMetadata(
            chunk_frames=chunk_frames, chunk_ms=chunk_frames * ENCODER_FRAME_MS,
            feature_frames=chunk_feature_frames(chunk_frames), feature_dim=c.feature_columns,
            n_layers=c.encoder.n_layers,
            left_context_frames=c.encoder.left_context_frames, d_model=c.encoder.d_model,
            vocab_size=c.vocab_size, locales=tuple(c.locales), quantization=quantization_of(model),
        )

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "locales": list(self.locales)}, indent=2)


def chunk_frames_from_ms(chunk_ms: int) -> int:
    if chunk_ms <= 0 or chunk_ms % ENCODER_FRAME_MS:
        raise ValueError(f"--chunk-ms must be a positive multiple of {ENCODER_FRAME_MS} ms, got {chunk_ms}")
    return chunk_ms // ENCODER_FRAME_MS


def example_inputs(model: SpeechRecognizer, chunk_frames: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs with streams of different ages and one short (last) chunk, so every mask branch is live."""
    generator = torch.Generator().manual_seed(seed)
    c = model.config.encoder
    frames = chunk_feature_frames(chunk_frames)
    features = torch.randn(batch, frames, model.config.feature_columns, generator=generator) * 3
    lengths = torch.full((batch,), frames, dtype=torch.long)
    lengths[-1] = max(frames - SUBSAMPLING, 7)  # a short last chunk: one encoder frame fewer (7 = one frame's context)
    cache = torch.randn(batch, c.n_layers, 2, c.left_context_frames, c.d_model, generator=generator)
    processed = torch.arange(batch, dtype=torch.long) * (c.left_context_frames // 2 + 1)  # ages 0, L/2+1, ...
    voiced = (processed * SUBSAMPLING).float() / 2  # half of the frames so far voiced, at random heights
    pitch_stats = torch.stack([torch.randn(batch, generator=generator) * voiced.sqrt(), voiced], dim=1)
    if model.encoder.backbone is None:
        return features, lengths, cache, processed, pitch_stats
    backbone_cache = torch.randn(batch, c.backbone_layers, 2, 2 * c.left_context_frames, c.backbone_width,
                                 generator=generator)
    companion = model.config.companion
    if companion is None:
        return features, lengths, cache, processed, pitch_stats, backbone_cache
    companion_cache = torch.randn(batch, companion.n_layers, 2, companion.left_context_frames, companion.d_model,
                                  generator=generator)
    return features, lengths, cache, processed, pitch_stats, backbone_cache, companion_cache, processed, pitch_stats


def max_difference(actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]) -> float:
    return max(float((a.detach().double() - e.detach().double()).abs().max()) if a.numel() else 0.0
               for a, e in zip(actual, expected))


def exported_difference(exported, model: SpeechRecognizer, chunk_frames: int) -> float:
    """Largest difference of the exported step from the eager one, at a batch size other than the example's, on the
    model's device (model.evaluation.device_check moves both to a GPU); raises if the shapes differ (a batch size
    baked in)."""
    device = model.cmvn_mean.device
    inputs = tuple(t.to(device) for t in example_inputs(model, chunk_frames, CHECK_BATCH, seed=1))
    with torch.no_grad():
        expected = step_module(model)(*inputs)
        actual = exported(*inputs)
    if tuple(actual[0].shape) != tuple(expected[0].shape):
        raise RuntimeError(f"exported step returned {tuple(actual[0].shape)} for batch {CHECK_BATCH}")
    return max_difference(tuple(actual), expected)


def check_exported(exported, model: SpeechRecognizer, chunk_frames: int, atol: float = 1e-4) -> None:
    """Exported step == eager step at a batch size other than the example's; raises if not (e.g. batch baked in)."""
    difference = exported_difference(exported, model, chunk_frames)
    if difference > atol:
        raise RuntimeError(f"exported step differs from eager by {difference:.3g} at batch {CHECK_BATCH}")


def require_eval(model: SpeechRecognizer) -> None:
    # Tracing in training mode would bake dropout into the graph.
    if model.training:
        raise ValueError("call model.eval() before exporting")


def trace_step(model: SpeechRecognizer, chunk_frames: int) -> torch.jit.ScriptModule:
    require_eval(model)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python ints read from shapes; the only ones that become constants are the chunk
        # and cache lengths, which are fixed per export by design. check_exported catches any batch constant.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(step_module(model), example_inputs(model, chunk_frames, EXAMPLE_BATCH),
                               check_trace=False)


def export_torchscript(model: SpeechRecognizer, path: str | os.PathLike, chunk_frames: int) -> Path:
    """Trace the step, verify it at another batch size, save it with its metadata inside the archive."""
    traced = trace_step(model, chunk_frames)
    check_exported(traced, model, chunk_frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: StepMetadata.of(model, chunk_frames).to_json()})
    return path


def read_torchscript_metadata(path: str | os.PathLike) -> dict:
    files = {METADATA_FILE: ""}
    torch.jit.load(str(path), _extra_files=files)
    return json.loads(files[METADATA_FILE])


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: SpeechRecognizer, path: str | os.PathLike, chunk_frames: int) -> Path | None:
    """ONNX export with a dynamic batch axis; None when the `onnx` package is not installed (it is optional)."""
    if quantization_of(model) != "none":
        raise ValueError("an int8 model exports as TorchScript only: ONNX has no operator for fbgemm's int8 linear")
    if not onnx_available():
        return None
    require_eval(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch_axis = {0: "batch"}
    inputs, outputs = io_names(model)
    with torch.no_grad():
        torch.onnx.export(
            step_module(model), example_inputs(model, chunk_frames, EXAMPLE_BATCH), str(path),
            input_names=list(inputs), output_names=list(outputs),
            dynamic_axes={name: batch_axis for name in inputs + outputs}, opset_version=18,
        )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the streaming encoder step (CMVN, encoder chunk, CTC head).")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--chunk-ms", type=int, default=640)
    parser.add_argument("--out", required=True)
    parser.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none", help="int8 linear layers (TorchScript)")
    args = parser.parse_args(argv)
    try:
        chunk_frames = chunk_frames_from_ms(args.chunk_ms)
        loaded = load_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    quantize_linear_layers(loaded.model, args.quantize)
    if args.format == "onnx":
        try:
            written = export_onnx(loaded.model, args.out, chunk_frames)
        except ValueError as error:
            parser.error(str(error))
        if written is None:
            print("ONNX export skipped: the `onnx` package is not installed (pip install onnx onnxscript); "
                  "use --format torchscript")
            raise SystemExit(1)  # the requested file was not written: scripts must notice
    else:
        written = export_torchscript(loaded.model, args.out, chunk_frames)
    print(f"exported {loaded.name} {loaded.version} streaming step ({args.format}, {args.quantize}, C={chunk_frames}, "
          f"{args.chunk_ms} ms, dynamic batch) -> {written}")


if __name__ == "__main__":
    main()
