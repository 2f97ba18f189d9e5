"""Which floating-point format each device computes in.

Training: bf16 autocast on CUDA and on CPUs with native bf16 arithmetic (AVX512-BF16, AMX), where oneDNN runs
the forward and backward passes about twice as fast as in float32 (bench/bench_train.py) with batch losses
within 0.2%. Other CPUs train in float32: emulated bf16 is slower than float32 there.

Serving: float16 on CUDA. CPUs serve in float32 even with native bf16: bf16 halved the encoder's time here, but
oneDNN keeps compiled kernels for every matrix shape it meets, and a server meets a new shape with every
utterance length and batch size. Serving uploads of random lengths in bf16 grew the process by about 1 MB per new
shape (1.2 GB after 400 uploads, against 0.86 GB in float32, even with ONEDNN_PRIMITIVE_CACHE_CAPACITY=0); a
server must not grow with the variety of its input.

CPUs may serve with int8 linear layers instead (`quantize_linear_layers`): dynamic quantisation (Jacob et al.,
arXiv:1712.05877), weights int8 per output channel once at load, each call's activations quantised on the fly by
fbgemm's kernels, so no calibration data is needed and the rest of the network stays float32 (whether a server's
memory stays flat over the variety of its input, as bf16's did not, is not measured yet). The first-pass layers are
quantised: the encoder (a Whisper backbone included), the CTC head, and the attention decoder's layers; the
decoder's output layer stays float32 because rescoring reads rows of its weight (`AttentionDecoder.forward_tree`),
and so does the tiny locale head. Each call's activations share one scale, so a batch's rows and a stream's chunks
are computed within int8 rounding of what they give alone or at full context, no longer to float32's 1e-5. Speed and
accuracy against float32: docs/benchmarks.md.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Literal, get_args

import torch
import torch.ao.nn.quantized.dynamic as quantized_dynamic
from torch import nn
from torch.ao.quantization import QConfig, per_channel_dynamic_qconfig, quantize_dynamic

Quantization = Literal["none", "int8"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
# The SpeechRecognizer submodules whose nn.Linear layers become int8 (see the module docstring for the others).
QUANTIZED_SUBMODULES = ("encoder", "ctc_head", "decoder.layers")
# Kept float32 among them: the Whisper backbone's MLP output layers. Their inputs (after GELU) carry a few large
# outliers, as transformers' do (Dettmers et al., arXiv:2208.07339), so one scale for the whole tensor leaves the
# other values a few int8 levels: quantised, they alone about doubled the backbone model's encoder error on real
# speech, for a third of the backbone's linear work (docs/benchmarks.md).
KEPT_FLOAT = re.compile(r"encoder\.backbone\.blocks\.\d+\.mlp\.2")


@functools.cache  # the hardware does not change; training asks every step
def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def training_autocast(device: torch.device, enabled: bool) -> bool:
    """bf16 autocast for the forward pass of training; losses are still reduced in float32."""
    return enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()))


def serving_dtype(device: torch.device, half_precision: bool) -> torch.dtype:
    """The dtype of the served model's weights and activations."""
    return torch.float16 if device.type == "cuda" and half_precision else torch.float32


def serving_quantization(device: torch.device, requested: Quantization) -> Quantization:
    """int8 applies to CPUs only: GPUs serve in float16 (`serving_dtype`), which fbgemm's kernels do not take."""
    return requested if device.type == "cpu" else "none"


def quantize_linear_layers(model: nn.Module, quantization: Quantization) -> nn.Module:
    """The model with the linear layers of QUANTIZED_SUBMODULES dynamically quantised to int8, in place (the
    float weights are freed); the model as it is for "none". For a float32 model on the CPU, in eval mode."""
    if quantization == "none":
        return model
    weight = next(model.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        raise ValueError(f"int8 serving needs a float32 model on the CPU, not {weight.dtype} on {weight.device}")
    with warnings.catch_warnings():
        # torch deprecates eager-mode quantisation in favour of torchao, but torchao's int8 layers without
        # torch.compile ran the encoder step several times slower than float32 on our CPUs, where fbgemm's run it
        # faster (docs/benchmarks.md); so these kernels stay until torch removes them
        # (tests/network/test_quantization.py fails that day).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, torch.quantize_per_channel", UserWarning)
        # Exactly nn.Linear: torch's default mapping would also swap the out_proj of nn.MultiheadAttention (the
        # decoder's), whose forward reads that layer's weight directly.
        return quantize_dynamic(model, quantization_plan(model), dtype=torch.qint8,
                                mapping={nn.Linear: quantized_dynamic.Linear}, inplace=True)


def quantization_plan(model: nn.Module) -> dict[str, QConfig | None]:
    """Module name -> int8 (per output channel) for QUANTIZED_SUBMODULES and everything in them, None (float32) for
    the KEPT_FLOAT layers among them."""
    kept = {name: None for name, _ in model.named_modules() if KEPT_FLOAT.fullmatch(name)}
    return {**{name: per_channel_dynamic_qconfig for name in QUANTIZED_SUBMODULES}, **kept}


def int8_weight_count(model: nn.Module) -> int:
    """Weights and biases held by int8 linear layers, which are not nn.Parameters (so `parameters()` misses them)."""
    count = 0
    for module in model.modules():
        if isinstance(module, quantized_dynamic.Linear):
            bias = module.bias()
            count += module.weight().numel() + (bias.numel() if bias is not None else 0)
    return count


def quantization_of(model: nn.Module) -> Quantization:
    """How a model's linear layers are stored: "int8" once `quantize_linear_layers` has run on it."""
    return "int8" if any(isinstance(m, quantized_dynamic.Linear) for m in model.modules()) else "none"
