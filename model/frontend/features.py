"""Audio front end: 16 kHz mono waveform -> feature frames (80 MFCC + 2 pitch), whole-utterance or incrementally.

The MFCC is configured to be *chunk-invariant*: frame i always covers samples [i * HOP_SAMPLES, i * HOP_SAMPLES +
WINDOW_SAMPLES) of the utterance, whoever calls it and however the audio was split. torchaudio's defaults break this
twice (see the `MFCC` docstring): `MelSpectrogram` centres each call by reflect-padding, and the default dB scaling
clamps relative to the loudest frame of the input. We therefore use `center=False` and `log_mels=True` (a plain log with
a fixed floor). Mean/variance normalisation is global (statistics from the training data, stored in the checkpoint) and
lives in the network, so this module has no per-utterance state at all. The pitch features (`model.frontend.pitch`) use
the same frames, so they are chunk-invariant too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio

from model.frontend.geometry import HOP_SAMPLES, SAMPLE_RATE, WINDOW_SAMPLES
from model.frontend.pitch import PITCH_DIMS, frame_pitch

N_MELS = 80
N_MFCC = 80  # n_mfcc == n_mels: an orthonormal DCT of the log-mel, so no spectral detail (pitch harmonics) is lost
FEATURE_DIM = N_MFCC + PITCH_DIMS  # columns of a feature frame: MFCC, then (voicing, log F0)


@dataclass(frozen=True)
class MelFilterbank:
    """The mel filterbank under the MFCC. A model says which one it was trained on (EncoderConfig.mel)."""

    f_min: float
    f_max: float
    mel_scale: str  # "htk" or "slaney"
    norm: str | None  # None or "slaney" (area-normalised triangles)


MEL_FILTERBANKS = {
    "htk": MelFilterbank(20.0, 7600.0, "htk", None),
    # Whisper's (librosa's default): what a model reading a Whisper backbone (model.network.whisper_backbone) needs
    "whisper": MelFilterbank(0.0, 8000.0, "slaney", "slaney"),
}


def num_frames(num_samples: int) -> int:
    """Frames produced by `num_samples` samples (no padding: a partial window yields no frame)."""
    if num_samples < WINDOW_SAMPLES:
        return 0
    return 1 + (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES


def feature_columns(second_mel: str | None = None) -> int:
    """Columns of a feature frame: MFCC and pitch (FEATURE_DIM), and N_MFCC more with a second filterbank's MFCC."""
    return FEATURE_DIM + (N_MFCC if second_mel else 0)


def mfcc_transform(mel: str) -> torchaudio.transforms.MFCC:
    """The chunk-invariant MFCC over the named mel filterbank."""
    filterbank = MEL_FILTERBANKS[mel]
    return torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE,
        n_mfcc=N_MFCC,
        log_mels=True,
        melkwargs=dict(
            n_fft=WINDOW_SAMPLES,
            win_length=WINDOW_SAMPLES,
            hop_length=HOP_SAMPLES,
            n_mels=N_MELS,
            f_min=filterbank.f_min,
            f_max=filterbank.f_max,
            mel_scale=filterbank.mel_scale,
            norm=filterbank.norm,
            center=False,
        ),
    )


class FeatureExtractor(torch.nn.Module):
    """(..., samples) float waveform at 16 kHz -> (..., frames, feature_dim) float32: MFCC then pitch
    (FEATURE_DIM columns), then with `second_mel` the MFCC over that filterbank too (N_MFCC more columns, for a
    companion encoder trained on it: model.network.companion).

    A model trained on MFCC alone (encoder pitch_dim 0) reads the first N_MFCC columns and ignores the rest."""

    def __init__(self, mel: str = "htk", second_mel: str | None = None) -> None:
        super().__init__()
        self.mfcc = mfcc_transform(mel)
        self.second_mfcc = mfcc_transform(second_mel) if second_mel else None
        self.feature_dim = feature_columns(second_mel)

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = num_frames(waveform.shape[-1])
        if frames == 0:
            return waveform.new_zeros(*waveform.shape[:-1], 0, self.feature_dim)
        used = waveform[..., : (frames - 1) * HOP_SAMPLES + WINDOW_SAMPLES].float()
        mfcc = self.mfcc(used).transpose(-1, -2)  # (..., frames, N_MFCC)
        pitch = frame_pitch(used.unfold(-1, WINDOW_SAMPLES, HOP_SAMPLES), SAMPLE_RATE)  # (..., frames, PITCH_DIMS)
        second = [] if self.second_mfcc is None else [self.second_mfcc(used).transpose(-1, -2)]
        return torch.cat([mfcc, pitch, *second], dim=-1)


@dataclass(frozen=True)
class FeatureStreamState:
    """Samples received but not yet fully consumed by a frame: the window overlap carried between calls."""

    pending: torch.Tensor  # (samples,) float32, fewer than WINDOW_SAMPLES + HOP_SAMPLES in steady state
    frames_emitted: int = 0

    @staticmethod
    def initial() -> "FeatureStreamState":
        return FeatureStreamState(pending=torch.zeros(0))


def push_samples(
    extractor: FeatureExtractor, state: FeatureStreamState, samples: torch.Tensor
) -> tuple[torch.Tensor, FeatureStreamState]:
    """Feed any number of new samples; return the newly completed feature frames (n, FEATURE_DIM) and the next state.

    Concatenating the outputs over any split of an utterance equals `extractor(utterance)`.
    """
    buffer = torch.cat([state.pending, samples.float().reshape(-1)])
    frames = num_frames(buffer.shape[0])
    if frames == 0:
        return buffer.new_zeros(0, extractor.feature_dim), FeatureStreamState(buffer, state.frames_emitted)
    features = extractor(buffer)
    rest = buffer[frames * HOP_SAMPLES :].clone()
    return features, FeatureStreamState(rest, state.frames_emitted + frames)


def pad_features(arrays: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of (T_i, F) -> (B, T_max, F) zero-padded, lengths (B,)."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    batch = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
    for row, array in enumerate(arrays):
        batch[row, : array.shape[0]] = array
    return batch, lengths
