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

With an expert gate (`ModelConfig.companion_gate`) the companion also keeps its own CTC head, and the model's CTC
posteriors are a per-frame mixture of the two heads: g p_main + (1 - g) p_companion, g from a logistic gate over both
streams' frames (`ExpertGate`, a mixture of experts). The gate learns which expert's training voices a frame sounds
like (model.training.train_gate); the layers above keep learning from both streams as before.

Its input columns follow the main encoder's in the feature frame (model.frontend.features.FeatureExtractor with
`second_mel`): [main MFCC | pitch | the companion's MFCC]; it reads its MFCC and the pitch.

Shape legend: B batch, T feature frames, S encoder frames, Dc companion width, D main width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.frontend.features import FEATURE_DIM, N_MFCC
from model.network.encoder import EncoderConfig, EncoderState, StreamingEncoder, normalize_columns


def companion_columns(features: torch.Tensor, config: EncoderConfig) -> torch.Tensor:
    """Feature frames (..., FEATURE_DIM + N_MFCC) -> the companion's input (..., N_MFCC + pitch_dim): its own MFCC,
    then the pitch columns, as it was trained to read them."""
    return torch.cat([features[..., FEATURE_DIM : FEATURE_DIM + N_MFCC],
                      features[..., N_MFCC : N_MFCC + config.pitch_dim]], dim=-1)


class ExpertGate(nn.Module):
    """Per frame, the logit of trusting the main CTC head over the companion's: (..., D), (..., Dc) -> (..., 1)."""

    def __init__(self, width: int, companion_width: int) -> None:
        super().__init__()
        self.main_norm = nn.LayerNorm(width)
        self.companion_norm = nn.LayerNorm(companion_width)
        self.score = nn.Linear(width + companion_width, 1)

    def forward(self, encoded: torch.Tensor, companion: torch.Tensor) -> torch.Tensor:
        return self.score(torch.cat([self.main_norm(encoded), self.companion_norm(companion)], dim=-1))


def mixed_log_probs(main: torch.Tensor, companion: torch.Tensor, gate_logit: torch.Tensor) -> torch.Tensor:
    """log(g p_main + (1 - g) p_companion) per frame, g = sigmoid(gate_logit): two heads' log posteriors (..., V) and
    the gate's logit (..., 1) -> the mixture's log posteriors (..., V), still normalised."""
    return torch.logaddexp(F.logsigmoid(gate_logit) + main, F.logsigmoid(-gate_logit) + companion)


class CompanionEncoder(nn.Module):
    """Feature frames -> the companion's frames (B, S, Dc), and their projection into the main encoder (B, S, D);
    with `vocab_size`, also its own CTC head (frozen) and the gate between the two heads."""

    cmvn_mean: torch.Tensor  # buffers (register_buffer), typed
    cmvn_istd: torch.Tensor

    def __init__(self, config: EncoderConfig, width: int, vocab_size: int | None = None) -> None:
        super().__init__()
        if config.backbone:
            raise ValueError("a companion encoder has its own convolutional subsampling, not a backbone")
        self.config = config
        self.register_buffer("cmvn_mean", torch.zeros(config.feature_dim + config.pitch_dim))
        self.register_buffer("cmvn_istd", torch.ones(config.feature_dim + config.pitch_dim))
        self.encoder = StreamingEncoder(config).requires_grad_(False)  # frozen: only the projection learns
        self.project = nn.Linear(config.d_model, width)
        self.ctc_head = (nn.Linear(config.d_model, vocab_size).requires_grad_(False)  # frozen, as its encoder
                         if vocab_size is not None else None)
        self.gate = ExpertGate(width, config.d_model) if vocab_size is not None else None

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

    def forward_chunk(self, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState
                      ) -> tuple[torch.Tensor, EncoderState]:
        """One streaming step: (B, 4C+3, F) -> its encoder's frames (B, C, Dc), before the projection, and its next
        state."""
        encoded, _, next_state = self.encoder.forward_chunk(self.normalize(features), lengths, state)
        return encoded, next_state
