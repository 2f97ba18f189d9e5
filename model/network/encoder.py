"""Streaming Transformer encoder: convolutional x4 subsampling, pre-LN self-attention blocks with rotary
relative positions, trained with dynamic chunk masks (WeNet U2, arXiv:2012.05481) so one set of weights serves
full context and any chunk size.

Shape legend: B batch, T feature frames (10 ms), S encoder frames (40 ms), C encoder frames per chunk,
L left-context frames kept in the cache, D model width, H heads, N layers.

Two entry points share every weight:
- `forward(features, lengths, chunk_frames)` for training and offline decoding, with a chunk mask;
- `forward_chunk(features, lengths, state)` for streaming, with a fixed-size key/value cache and a per-row
  count of processed frames, so streams of different ages batch together. Rotary positions make attention depend
  on relative distance only, so the cache needs no absolute positions and nothing grows with stream age.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.frontend.features import HOP_SAMPLES, SAMPLE_RATE
from model.network.whisper_backbone import BackboneConfig, WhisperBackbone

SUBSAMPLING = 4
# One encoder frame: SUBSAMPLING feature frames of 10 ms. Every module that turns frames into time reads these.
ENCODER_FRAME_MS = SUBSAMPLING * HOP_SAMPLES * 1000 // SAMPLE_RATE  # 40
ENCODER_FRAME_S = ENCODER_FRAME_MS / 1000
SUBSAMPLING_CONTEXT = 7  # feature frames seen by one encoder frame: two 3x3 stride-2 convs, no time padding
SUBSAMPLING_OVERLAP = SUBSAMPLING_CONTEXT - SUBSAMPLING  # feature frames shared by consecutive chunks


@dataclass(frozen=True)
class EncoderConfig:
    feature_dim: int = 80  # MFCC columns, into the 2-D convolutions
    pitch_dim: int = 0  # pitch columns after them (model.frontend.pitch), into a 1-D convolution; 0 = no pitch input
    # Frames with voicing below this read the voiced mean as their log F0 (0 = off). An unvoiced frame's "F0" is
    # whichever lag its noise happened to correlate best at, anywhere in 60-500 Hz: in the synthetic corpus those
    # values have a standard deviation of 0.8 (log units), against tone contours of about 0.07, so without the gate
    # the pitch path sees mostly noise (see SpeechRecognizer.normalize).
    pitch_voicing_gate: float = 0.0
    # > 0: one more pitch channel, log F0 relative to this stream's own voiced mean so far, a running mean that
    # starts from this many frames at the corpus mean (needs the voicing gate; 0 = no such channel). Tones are
    # heights relative to the speaker's range (Mandarin 1 is high and 3 low, Cantonese has three level tones),
    # and in the synthetic corpus the voices' mean log F0 differ by 0.33 (std across utterances), as much as the
    # within-utterance spread (0.24-0.38) that carries the tones. Kaldi's pitch post-processing subtracts a 1.5 s
    # moving average for the same reason; a running mean needs two numbers of state per stream instead of a window.
    relative_pitch_prior_frames: float = 0.0
    d_model: int = 192
    n_heads: int = 4
    n_layers: int = 6
    ffn_dim: int = 768
    subsampling_channels: int = 64
    dropout: float = 0.1
    left_context_frames: int = 64  # L: encoder frames (40 ms each) of left context in streaming, 2.56 s
    rope_base: float = 10_000.0
    # The front end's mel filterbank (model.frontend.features.MEL_FILTERBANKS) under the MFCC this encoder reads.
    mel: str = "htk"
    # "whisper": the subsampling is Whisper's frozen audio encoder (model.network.whisper_backbone, its first
    # `backbone_layers` blocks at 20 ms, under the same chunk mask at twice the frames), its frames paired and
    # projected to d_model; "" = our convolutional subsampling.
    backbone: str = ""
    backbone_layers: int = 6
    # The top N of those blocks (and the backbone's final norm) are tuned by training and stored in the checkpoint;
    # the blocks below them stay Whisper's, read from its package (0: the whole backbone frozen).
    backbone_tuned_blocks: int = 0
    backbone_width: int = 512
    backbone_heads: int = 8


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Feature frames -> encoder frames produced by the time-valid subsampling."""
    return torch.clamp(torch.div(lengths - SUBSAMPLING_CONTEXT, SUBSAMPLING, rounding_mode="floor") + 1, min=0)


def chunk_feature_frames(chunk_frames: int) -> int:
    """Feature frames one streaming step consumes for `chunk_frames` encoder frames (4C + 3)."""
    return SUBSAMPLING * (chunk_frames - 1) + SUBSAMPLING_CONTEXT


def pitch_channels(config: EncoderConfig) -> int:
    """Input channels of the pitch path: the front end's pitch columns, plus the relative log F0 if configured."""
    return config.pitch_dim + (1 if config.pitch_dim and config.relative_pitch_prior_frames > 0 else 0)


def relative_log_f0(log_f0: torch.Tensor, pitch_stats: torch.Tensor, prior_frames: float) -> torch.Tensor:
    """Normalised, voicing-gated log F0 (B, T) -> log F0 minus the running mean of the stream's voiced frames up to
    and including each frame (B, T); 0 on unvoiced frames.

    pitch_stats (B, 2) float32: [sum of voiced log F0, voiced frame count] of the frames before this input. Voiced
    means nonzero: the voicing gate gives unvoiced frames exactly the corpus mean, which normalises to exactly 0
    (SpeechRecognizer.normalize). The mean starts from `prior_frames` frames at 0, the corpus mean, so the first
    syllables of a stream are read against the corpus before its own voice is known. Causal, so chunk-invariant."""
    x = log_f0.float()
    voiced = (x != 0).float()
    sums = pitch_stats[:, :1] + x.cumsum(dim=1)
    counts = pitch_stats[:, 1:] + voiced.cumsum(dim=1)
    return ((x - sums / (counts + prior_frames)) * voiced).to(log_f0.dtype)


def consumed_pitch_stats(log_f0: torch.Tensor, consumed: torch.Tensor) -> torch.Tensor:
    """[sum, count] (B, 2) float32 of the voiced log F0 in each row's first `consumed` frames of (B, T)."""
    x = log_f0.float() * (torch.arange(log_f0.shape[1], device=log_f0.device)[None, :] < consumed[:, None])
    return torch.stack([x.sum(dim=1), (x != 0).float().sum(dim=1)], dim=1)


class ConvSubsampling(nn.Module):
    """(B, T, F) -> (B, S, D) with S = (T - 7) // 4 + 1; no padding in time, so it is chunk-invariant."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        channels = config.subsampling_channels
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU()
        )
        freq = ((config.feature_dim - 3) // 2 + 1 - 3) // 2 + 1
        self.project = nn.Linear(channels * freq, config.d_model)
        self.feature_dim, self.pitch_dim = config.feature_dim, pitch_channels(config)
        # Pitch gets its own path over the same 7 frames per output (kernel 7, stride 4 = the two convs' span), so
        # the contour's slope is visible to it, and the tonal cue is not smeared into the spectral image.
        self.pitch = (nn.Conv1d(self.pitch_dim, config.d_model, SUBSAMPLING_CONTEXT, stride=SUBSAMPLING)
                      if self.pitch_dim else None)
        self.scale = math.sqrt(config.d_model)  # as in WeNet's x * xscale: keeps the residual stream at unit scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.convs(features[..., : self.feature_dim].unsqueeze(1))  # (B, C', S, F')
        batch, channels, frames, freq = x.shape
        x = self.project(x.transpose(1, 2).reshape(batch, frames, channels * freq))  # (B, S, D)
        if self.pitch is not None:
            pitch = features[..., self.feature_dim : self.feature_dim + self.pitch_dim].transpose(1, 2)  # (B, P, T)
            x = x + self.pitch(pitch).transpose(1, 2)
        return x * self.scale


def backbone_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Feature frames -> the 20 ms backbone frames the encoder uses: two per encoder frame. (Its convolutions,
    kernel 3 and kernel 3 stride 2 without padding, may make one more; that unpaired frame is left out, as a stream
    leaves it out of its cache.)"""
    return 2 * subsampled_lengths(lengths)


def backbone_frames_for(feature_frames: int) -> int:
    """Frames the backbone's convolutions make of `feature_frames` (padded) feature frames."""
    return max((feature_frames - 5) // 2 + 1, 0)


class BackboneAdapter(nn.Module):
    """(B, W, E) backbone frames -> (B, W // 2, D): consecutive pairs joined and projected, the 40 ms frames of
    `ConvSubsampling` over the same 7 feature frames."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.project = nn.Linear(2 * config.backbone_width, config.d_model)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, width, channels = frames.shape
        pairs = frames[:, : width // 2 * 2].reshape(batch, width // 2, 2 * channels)
        return self.project(pairs)


def with_companion(x: torch.Tensor, companion: torch.Tensor | None) -> torch.Tensor:
    """The subsampling's frames (B, S, D) plus a companion encoder's projected frames (B, S' >= S, D) where given."""
    return x if companion is None else x + companion[:, : x.shape[1]].to(x.dtype)


def normalize_columns(columns: torch.Tensor, config: EncoderConfig, mean: torch.Tensor, istd: torch.Tensor
                      ) -> torch.Tensor:
    """An encoder's input columns (..., feature_dim + pitch_dim) mean/variance normalised by its CMVN. With a voicing
    gate, an unvoiced frame's log F0 becomes the voiced mean, i.e. exactly 0 once normalised. Per frame, so
    chunk-invariant like the features themselves."""
    gate, first = config.pitch_voicing_gate, config.feature_dim
    if gate and config.pitch_dim:
        voiced = columns[..., first : first + 1] >= gate
        log_f0 = columns[..., first + 1 : first + 2]
        gated = torch.where(voiced, log_f0, mean[first + 1].to(log_f0.dtype))
        columns = torch.cat([columns[..., : first + 1], gated, columns[..., first + 2 :]], dim=-1)
    return (columns - mean) * istd


def cached_key_mask(seen: torch.Tensor, valid: torch.Tensor, left: int, chunk: int) -> torch.Tensor:
    """(B, L+C) True where a key is real: one of the stream's last `seen` frames in its right-aligned cache of `left`
    slots, or one of this chunk's `valid` frames."""
    slots = torch.arange(left + chunk, device=valid.device)
    cached = slots[None, :] >= left - torch.clamp(seen, max=left)[:, None]
    fresh = slots[None, :] < left + valid[:, None]
    return torch.where(slots[None, :] < left, cached, fresh)


def newest_frames(keys_values: torch.Tensor, valid: torch.Tensor, keep: int, dim: int, full: bool) -> torch.Tensor:
    """The next cache: the `keep` frames ending at each row's last valid frame, along the time axis `dim` of cache +
    chunk (rows with short chunks shift less). When every row is a full chunk (`full`, the usual case) that is a
    plain slice, otherwise a per-row gather."""
    chunk = keys_values.shape[dim] - keep
    if full:
        return keys_values.narrow(dim, chunk, keep)
    index = valid[:, None] + torch.arange(keep, device=valid.device)[None, :]  # (B, keep)
    shape = [index.shape[0]] + [1] * (keys_values.dim() - 1)
    shape[dim] = keep
    sizes = list(keys_values.shape)
    sizes[dim] = keep
    return torch.gather(keys_values, dim, index.view(shape).expand(sizes))


def rotary_tables(positions: torch.Tensor, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (P, dim) for RoPE (Su et al., arXiv:2104.09864) at integer positions."""
    inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (P, dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (P, dim)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, P, dh) rotated by position; cos/sin (P, dh)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.d_model // config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout
        self.rope_base = config.rope_base

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = x.shape
        return x.view(batch, frames, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, P, dh)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_offset: int, mask: torch.Tensor
    ) -> torch.Tensor:
        """q (B, Q, D) at positions q_offset.., k/v (B, K, D) at positions 0..; mask (B, 1, Q, K) True = attend."""
        positions = torch.arange(k.shape[1], device=k.device)
        cos, sin = rotary_tables(positions, self.head_dim, self.rope_base)
        qh = apply_rotary(self.heads(q), cos[q_offset:], sin[q_offset:])
        kh = apply_rotary(self.heads(k), cos, sin)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(qh, kh, self.heads(v), attn_mask=mask, dropout_p=dropout)
        batch, _, frames, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(batch, frames, -1))  # (B, Q, D)


class EncoderLayer(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.ffn_norm = nn.LayerNorm(config.d_model)
        self.ffn = nn.Sequential(
            nn.Linear(config.d_model, config.ffn_dim), nn.SiLU(), nn.Dropout(config.dropout),
            nn.Linear(config.ffn_dim, config.d_model),
        )
        self.dropout = nn.Dropout(config.dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.ffn(self.ffn_norm(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.attn.qkv(self.attn_norm(x)).chunk(3, dim=-1)
        x = x + self.dropout(self.attn.attend(q, k, v, 0, mask))
        return self.feed_forward(x)

    def forward_chunk(
        self, x: torch.Tensor, cache: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, D); cache (B, 2, L, D) un-rotated keys and values -> y (B, C, D), keys+values (B, 2, L+C, D)."""
        q, k, v = self.attn.qkv(self.attn_norm(x)).chunk(3, dim=-1)
        # One copy of the cache per layer (keys and values together), not one per tensor plus a stack.
        keys_values = torch.cat([cache, torch.stack([k, v], dim=1)], dim=2)  # (B, 2, L+C, D)
        x = x + self.dropout(self.attn.attend(q, keys_values[:, 0], keys_values[:, 1], cache.shape[2], mask))
        return self.feed_forward(x), keys_values


def chunk_attention_mask(
    lengths: torch.Tensor, frames: int, chunk_frames: int | None, left_frames: int | None
) -> torch.Tensor:
    """(B, 1, S, S) bool. Frame i of chunk c = i // C sees frames j < (c + 1) C, j >= c C - L, j < length.
    chunk_frames None = full context. This is exactly what `forward_chunk` sees through its cache."""
    index = torch.arange(frames, device=lengths.device)
    mask = index[None, None, None, :] < lengths[:, None, None, None]  # (B, 1, 1, S)
    if chunk_frames is None:
        return mask.expand(-1, 1, frames, frames)
    chunk_start = torch.div(index, chunk_frames, rounding_mode="floor") * chunk_frames  # (S,)
    visible = index[None, :] < (chunk_start + chunk_frames)[:, None]
    if left_frames is not None:
        visible &= index[None, :] >= (chunk_start - left_frames)[:, None]
    return mask & visible[None, None]


@dataclass
class EncoderState:
    """Streaming state of a batch of streams; row b belongs to one stream.

    cache: (B, N, 2, L, D) un-rotated keys and values of the last L frames per layer, right-aligned: slot L-1 is
        the newest frame; slots older than the stream's start are zeros and masked out.
    processed_frames: (B,) int64 encoder frames this stream has produced so far.
    """

    cache: torch.Tensor
    processed_frames: torch.Tensor
    pitch_stats: torch.Tensor  # (B, 2) float32 [sum, count] of voiced log F0 so far (`relative_log_f0`; else unused)
    # (B, Nb, 2, 2L, E) the backbone's keys and values of its last 2L frames, right-aligned as `cache` (else None)
    backbone_cache: torch.Tensor | None = None
    # the companion encoder's own state, batched the same way (model.network.companion; else None)
    companion: "EncoderState | None" = None

    @property
    def batch_size(self) -> int:
        return self.cache.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "EncoderState":
        backbone = None if self.backbone_cache is None else self.backbone_cache.to(device=device, dtype=dtype)
        companion = None if self.companion is None else self.companion.to(device, dtype)
        return EncoderState(self.cache.to(device=device, dtype=dtype), self.processed_frames.to(device),
                            self.pitch_stats.to(device), backbone, companion)


def stack_states(states: list[EncoderState]) -> EncoderState:
    """Join per-stream states (each batch 1 or more) into one batch; inverse of `unstack_states`."""
    return EncoderState(
        cache=torch.cat([s.cache for s in states], dim=0),
        processed_frames=torch.cat([s.processed_frames for s in states], dim=0),
        pitch_stats=torch.cat([s.pitch_stats for s in states], dim=0),
        backbone_cache=None if states[0].backbone_cache is None else torch.cat(
            [s.backbone_cache for s in states if s.backbone_cache is not None], dim=0),  # a model has one or none
        companion=None if states[0].companion is None else stack_states(
            [s.companion for s in states if s.companion is not None]),
    )


def unstack_states(state: EncoderState) -> list[EncoderState]:
    """Split a batch state into batch-1 states, one per row."""
    companions = [None] * state.batch_size if state.companion is None else unstack_states(state.companion)
    return [
        EncoderState(cache=state.cache[row : row + 1].clone(),
                     processed_frames=state.processed_frames[row : row + 1].clone(),
                     pitch_stats=state.pitch_stats[row : row + 1].clone(),
                     backbone_cache=None if state.backbone_cache is None
                     else state.backbone_cache[row : row + 1].clone(),
                     companion=companions[row])
        for row in range(state.batch_size)
    ]


class StreamingEncoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if config.relative_pitch_prior_frames > 0 and not (config.pitch_dim and config.pitch_voicing_gate):
            raise ValueError("relative_pitch_prior_frames needs the pitch input and its voicing gate "
                             "(it reads voiced frames)")
        if config.backbone not in ("", "whisper"):
            raise ValueError(f"unknown backbone {config.backbone!r}")
        self.config = config
        self.backbone = WhisperBackbone(BackboneConfig(config.backbone_width, config.backbone_heads,
                                                       config.backbone_layers,
                                                       config.feature_dim)) if config.backbone else None
        self.subsampling = BackboneAdapter(config) if self.backbone is not None else ConvSubsampling(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model)
        # the log F0 column of the normalised input, when the relative pitch channel is derived from it
        self.log_f0_column = config.feature_dim + 1 if pitch_channels(config) > config.pitch_dim else None

    @property
    def pitch_path(self) -> nn.Conv1d | None:
        """The subsampling's pitch convolution (`ConvSubsampling.pitch`); None without pitch or with a backbone."""
        return self.subsampling.pitch if isinstance(self.subsampling, ConvSubsampling) else None

    def with_relative_pitch(self, features: torch.Tensor, pitch_stats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, T, F + 1) with the relative log F0 after the pitch columns; unchanged without it."""
        if self.log_f0_column is None:
            return features
        relative = relative_log_f0(features[..., self.log_f0_column], pitch_stats,
                                   self.config.relative_pitch_prior_frames)
        end = self.config.feature_dim + self.config.pitch_dim
        return torch.cat([features[..., :end], relative[..., None]], dim=-1)

    def forward(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        chunk_frames: int | None = None,
        left_frames: int | None = None,
        companion: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), lengths (B,) -> encoded (B, S, D), encoded_lengths (B,).

        chunk_frames None: full context. Otherwise each chunk sees itself and `left_frames` frames before it
        (None = all of them; pass `config.left_context_frames` to match streaming exactly). companion: (B, S, D)
        frames added to the subsampling's output (a companion encoder's, projected: model.network.companion)."""
        encoded, out_lengths, _ = self.forward_with_tap(features, lengths, chunk_frames, left_frames, tap_layer=0,
                                                        companion=companion)
        return encoded, out_lengths

    def forward_with_tap(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None, left_frames: int | None,
        tap_layer: int, companion: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`forward`, also returning the output of layer `tap_layer` (1-based; 0: None) for an intermediate loss."""
        if self.backbone is not None:
            frames, frame_lengths = self.backbone_frames(features, lengths, chunk_frames, left_frames)
            return self.forward_from_backbone(frames, frame_lengths, chunk_frames, left_frames, tap_layer,
                                              companion=companion)
        no_stats = features.new_zeros(features.shape[0], 2, dtype=torch.float32)
        x = with_companion(self.subsampling(self.with_relative_pitch(features, no_stats)), companion)  # (B, S, D)
        return self.forward_layers(x, subsampled_lengths(lengths), chunk_frames, left_frames, tap_layer)

    def backbone_frames(self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None,
                        left_frames: int | None, blocks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Offline: the backbone's frames (B, W, E) of normalised features under the chunk mask at twice the frames
        (what `forward_chunk` computes frame for frame), and their valid counts (B,). blocks: the frames after its
        first `blocks` blocks instead (before the final norm)."""
        assert self.backbone is not None
        frame_lengths = backbone_lengths(lengths)
        mask = self.backbone_mask(frame_lengths, backbone_frames_for(features.shape[1]), chunk_frames, left_frames)
        return self.backbone(features[..., : self.config.feature_dim], mask, blocks), frame_lengths

    @staticmethod
    def backbone_mask(frame_lengths: torch.Tensor, frames: int, chunk_frames: int | None, left_frames: int | None
                      ) -> torch.Tensor:
        """The backbone's attention mask: the encoder's chunk mask at twice the frames."""
        return chunk_attention_mask(frame_lengths, frames, None if chunk_frames is None else 2 * chunk_frames,
                                    None if left_frames is None else 2 * left_frames)

    def forward_from_backbone(
        self, frames: torch.Tensor, frame_lengths: torch.Tensor, chunk_frames: int | None, left_frames: int | None,
        tap_layer: int = 0, after_block: int | None = None, companion: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The layers above the backbone, from its frames (B, W, E) (computed under the matching mask, or cached:
        model.training.backbone_cache) -> as `forward_with_tap`. after_block: the frames are those after the
        backbone's first `after_block` blocks, so its blocks above them run first (under the same mask)."""
        if after_block is not None and self.backbone is not None:
            mask = self.backbone_mask(frame_lengths, frames.shape[1], chunk_frames, left_frames)
            frames = self.backbone.forward_above(frames, mask, after_block)
        return self.forward_layers(with_companion(self.subsampling(frames), companion),
                                   torch.div(frame_lengths, 2, rounding_mode="floor"), chunk_frames, left_frames,
                                   tap_layer)

    def forward_layers(
        self, x: torch.Tensor, out_lengths: torch.Tensor, chunk_frames: int | None, left_frames: int | None,
        tap_layer: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        mask = chunk_attention_mask(out_lengths, x.shape[1], chunk_frames, left_frames)
        tapped = None
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, mask)
            if number == tap_layer:
                tapped = x
        return self.final_norm(x), out_lengths, tapped

    def initial_state(self, batch_size: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> EncoderState:
        c = self.config
        cache = torch.zeros(batch_size, c.n_layers, 2, c.left_context_frames, c.d_model, device=device, dtype=dtype)
        backbone = None if self.backbone is None else torch.zeros(
            batch_size, c.backbone_layers, 2, 2 * c.left_context_frames, c.backbone_width, device=device, dtype=dtype)
        return EncoderState(cache, torch.zeros(batch_size, dtype=torch.long, device=device),
                            torch.zeros(batch_size, 2, dtype=torch.float32, device=device), backbone)

    def backbone_chunk(self, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's streaming step: (B, 4C+3, F) -> its 2C frames paired into (B, C, D), and its next cache
        (the 2L frames ending at each row's last valid 40 ms frame, as `cache`)."""
        assert self.backbone is not None and state.backbone_cache is not None
        left = state.backbone_cache.shape[3]
        valid = backbone_lengths(lengths)  # only whole pairs enter the cache, so positions stay 2 x frames
        chunk = 2 * ((features.shape[1] - SUBSAMPLING_CONTEXT) // SUBSAMPLING + 1)
        key_valid = cached_key_mask(2 * state.processed_frames, valid, left, chunk)
        frames, keys_values = self.backbone.forward_chunk(features[..., : self.config.feature_dim],
                                                          2 * state.processed_frames, state.backbone_cache,
                                                          key_valid[:, None, None, :])
        next_cache = newest_frames(keys_values, valid, left, 3, bool((valid == chunk).all()))  # (B, Nb, 2, 2L, E)
        return self.subsampling(frames[:, :chunk]), next_cache.contiguous()

    def forward_chunk(
        self, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState,
        companion: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        """One streaming step.

        features (B, 4C+3, F): this chunk's feature frames, including the 3 frames shared with the next chunk;
        lengths (B,): valid feature frames per row (a stream's last chunk may be short; 0 = idle row);
        state: the batch's EncoderState; companion: (B, C, D) frames added after the subsampling, as in `forward`.
        Returns encoded (B, C, D), valid encoded frames (B,), next state (its `companion` is the caller's to set).
        Rows past their valid length return garbage frames that the caller must ignore.
        """
        left = self.config.left_context_frames
        backbone_cache = None
        if self.backbone is not None:
            x, backbone_cache = self.backbone_chunk(features, lengths, state)
        else:
            x = self.subsampling(self.with_relative_pitch(features, state.pitch_stats))  # (B, C, D)
        x = with_companion(x, companion)
        valid = subsampled_lengths(lengths)  # (B,)
        pitch_stats = state.pitch_stats
        if self.log_f0_column is not None:  # the frames this step consumed: all but the 3 shared with the next one
            pitch_stats = pitch_stats + consumed_pitch_stats(features[..., self.log_f0_column], SUBSAMPLING * valid)
        chunk = x.shape[1]
        mask = cached_key_mask(state.processed_frames, valid, left, chunk)[:, None, None, :]  # (B, 1, 1, L+C)
        # The new cache is written layer by layer into one preallocated tensor.
        full = bool((valid == chunk).all())  # once per step: on a GPU it is a host sync
        new_cache = torch.empty_like(state.cache)  # (B, N, 2, L, D)
        for index, layer in enumerate(cast(Iterable[EncoderLayer], self.layers)):
            x, keys_values = layer.forward_chunk(x, state.cache[:, index], mask)  # kv (B, 2, L+C, D)
            new_cache[:, index] = newest_frames(keys_values, valid, left, 2, full)  # (B, 2, L, D)
        next_state = EncoderState(new_cache, state.processed_frames + valid, pitch_stats, backbone_cache,
                                  state.companion)
        return self.final_norm(x), valid, next_state
