"""Which floating-point format each device computes in.

Training: bf16 autocast on CUDA and on CPUs with native bf16 arithmetic (AVX512-BF16, AMX), where oneDNN runs
the forward and backward passes about twice as fast as in float32 (bench/bench_train.py) with batch losses
within 0.2%. Other CPUs train in float32: emulated bf16 is slower than float32 there.

Serving: float16 on CUDA. CPUs serve in float32 even with native bf16: bf16 halved the encoder's time here, but
oneDNN keeps compiled kernels for every matrix shape it meets, and a server meets a new shape with every
utterance length and batch size. Serving uploads of random lengths in bf16 grew the process by about 1 MB per new
shape (1.2 GB after 400 uploads, against 0.86 GB in float32, even with ONEDNN_PRIMITIVE_CACHE_CAPACITY=0); a
server must not grow with the variety of its input.
"""

from __future__ import annotations

import functools

import torch


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
