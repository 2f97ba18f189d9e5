"""A companion encoder: a second, frozen streaming encoder beside the main one, whose output frames are projected and
added to the main encoder's subsampled frames, before its layers (a two-stream acoustic front end).

Why: a model on Whisper's frozen backbone (model.network.whisper_backbone) hears real people, but Whisper hears
espeak-ng's voices badly (Whisper base reads its Mandarin at about 60% CER and cannot read its Cantonese), so such a
model reads the synthetic test at two to three times the error of the convolutional model trained on espeak-ng
alone. The companion is that model's encoder (its own filterbank, pitch and CMVN), frozen; the layers above learn
from the data when to trust which stream. It starts at a zero projection, so a model given a companion computes
exactly what it did before (`model.network.model.with_companion_encoder`).

Both streams make one frame per 40 ms over the same 7 feature frames (the companion's convolutional subsampling and
the backbone's paired frames), so frame s of one is frame s of the other, offline and chunk by chunk.

Its input columns follow the main encoder's in the feature frame (model.frontend.features.FeatureExtractor with
`second_mel`): [main MFCC | pitch | the companion's MFCC]; it reads its MFCC and the pitch.

Shape legend: B batch, T feature frames, S encoder frames, Dc companion width, D main width.
"""

from __future__ import annotations

import torch
from torch import nn

from model.frontend.features import FEATURE_DIM, N_MFCC
from model.network.encoder import EncoderConfig, EncoderState, StreamingEncoder, normalize_columns


def companion_columns(features: torch.Tensor, config: EncoderConfig) -> torch.Tensor:
    """Feature frames (..., FEATURE_DIM + N_MFCC) -> the companion's input (..., N_MFCC + pitch_dim): its own MFCC,
    then the pitch columns, as it was trained to read them."""
    return torch.cat([features[..., FEATURE_DIM : FEATURE_DIM + N_MFCC],
                      features[..., N_MFCC : N_MFCC + config.pitch_dim]], dim=-1)


class CompanionEncoder(nn.Module):
    """Feature frames -> the companion's frames (B, S, Dc), and their projection into the main encoder (B, S, D)."""

    cmvn_mean: torch.Tensor  # buffers (register_buffer), typed
    cmvn_istd: torch.Tensor

    def __init__(self, config: EncoderConfig, width: int) -> None:
        super().__init__()
        if config.backbone:
            raise ValueError("a companion encoder has its own convolutional subsampling, not a backbone")
        self.config = config
        self.register_buffer("cmvn_mean", torch.zeros(config.feature_dim + config.pitch_dim))
        self.register_buffer("cmvn_istd", torch.ones(config.feature_dim + config.pitch_dim))
        self.encoder = StreamingEncoder(config).requires_grad_(False)  # frozen: only the projection learns
        self.project = nn.Linear(config.d_model, width)

    def train(self, mode: bool = True) -> "CompanionEncoder":
        """The projection trains; the frozen encoder stays in inference mode (no dropout) whatever the model's mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return normalize_columns(companion_columns(features, self.config), self.config, self.cmvn_mean,
                                 self.cmvn_istd)

    def frames(self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None,
               left_frames: int | None) -> torch.Tensor:
        """Offline, under the chunk mask: (B, T, F) -> its encoder's output (B, S, Dc), before the projection (what a
        training cache keeps: model.training.companion_cache)."""
        encoded, _ = self.encoder(self.normalize(features), lengths, chunk_frames, left_frames)
        return encoded

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None,
                left_frames: int | None) -> torch.Tensor:
        return self.project(self.frames(features, lengths, chunk_frames, left_frames))

    def forward_chunk(self, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState
                      ) -> tuple[torch.Tensor, EncoderState]:
        """One streaming step: (B, 4C+3, F) -> projected frames (B, C, D), its next state."""
        encoded, _, next_state = self.encoder.forward_chunk(self.normalize(features), lengths, state)
        return self.project(encoded), next_state
