"""Audio input: any container soundfile/libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3), any rate and channel
count -> 16 kHz mono float32 in [-1, 1]. Every path into the model goes through `to_model_rate`."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import torch
import torchaudio.functional

from model.features import SAMPLE_RATE

MAX_INPUT_RATE = 384_000
MIN_INPUT_RATE = 4_000
MAX_CHANNELS = 32


class AudioDecodeError(ValueError):
    """The bytes are not audio we can decode (corrupt, unsupported, or physically implausible)."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: torch.Tensor  # (samples,) float32 mono at SAMPLE_RATE
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE


def to_model_rate(samples: torch.Tensor, rate: int) -> torch.Tensor:
    """(channels, samples) or (samples,) at `rate` -> (samples,) mono float32 at SAMPLE_RATE."""
    if samples.dim() == 2:
        samples = samples.float().mean(dim=0)
    samples = samples.float()
    if rate != SAMPLE_RATE:
        samples = torchaudio.functional.resample(samples, rate, SAMPLE_RATE)
    return samples.contiguous()


def check_stream_format(rate: int, channels: int) -> None:
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioDecodeError(f"sample rate {rate} Hz is outside {MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"{channels} channels is outside 1..{MAX_CHANNELS}")


def decode_audio(data: bytes, max_duration_s: float | None = None) -> DecodedAudio:
    """Decode a whole audio file held in memory. Raises AudioDecodeError on anything unusable."""
    if not data:
        raise AudioDecodeError("empty audio body")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            check_stream_format(f.samplerate, f.channels)
            # Refuse before decoding: the header's frame count bounds the decoded size (decompression bombs).
            if max_duration_s is not None and f.frames > 0 and f.frames / f.samplerate > max_duration_s:
                raise AudioTooLongError(f.frames / f.samplerate, max_duration_s)
            array = f.read(dtype="float32", always_2d=True)  # (samples, channels)
            rate, channels = f.samplerate, f.channels
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioDecodeError(f"cannot decode audio: {error}") from error
    if max_duration_s is not None and array.shape[0] / rate > max_duration_s:
        raise AudioTooLongError(array.shape[0] / rate, max_duration_s)
    array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0).clip(-1.0, 1.0)
    samples = to_model_rate(torch.from_numpy(array.T.copy()), rate)
    return DecodedAudio(samples=samples, source_rate=rate, source_channels=channels)


class AudioTooLongError(AudioDecodeError):
    def __init__(self, duration_s: float, limit_s: float) -> None:
        super().__init__(f"audio is {duration_s:.1f} s long; the limit is {limit_s:.0f} s")
        self.duration_s = duration_s
        self.limit_s = limit_s


def load_audio_file(path: str) -> torch.Tensor:
    """Read a file from disk -> (samples,) float32 mono at SAMPLE_RATE."""
    with open(path, "rb") as handle:
        return decode_audio(handle.read()).samples
