"""Audio input: any container soundfile/libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3), any rate and channel
count -> 16 kHz float32 in [-1, 1], mono or one row per channel. Every path into the model goes through
`to_model_rate`."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr
import torch

from model.frontend.features import SAMPLE_RATE

MAX_INPUT_RATE = 384_000
MIN_INPUT_RATE = 4_000
MAX_CHANNELS = 32
# Decoded samples (frames x channels) allowed per second of the duration limit: 48 kHz stereo. A high rate times
# many channels would otherwise let a small, legal-length file cost gigabytes and minutes to decode.
MAX_DECODED_SAMPLES_PER_S = 96_000
# libsndfile reports SF_COUNT_MAX frames when a container does not state its length (a FLAC written to a pipe,
# with 0 in STREAMINFO's total samples); such input is only measured while it is decoded.
UNKNOWN_LENGTH = 2**62
BLOCK_FRAMES = 1 << 16


class AudioDecodeError(ValueError):
    """The bytes are not audio we can decode (corrupt, unsupported, or physically implausible)."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: torch.Tensor  # (samples,) float32 mono at SAMPLE_RATE; (channels, samples) when decoded with mix=False
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / SAMPLE_RATE


def to_model_rate(samples: torch.Tensor, rate: int) -> torch.Tensor:
    """(channels, samples) or (samples,) at `rate` -> (samples,) mono float32 at SAMPLE_RATE."""
    if samples.dim() == 2:
        samples = samples.float().mean(dim=0)
    samples = samples.float()
    if rate == SAMPLE_RATE or not samples.numel():
        return samples.contiguous()
    # soxr, as the stream path (service/routes/stream.py): one resampler for uploads and streams, milliseconds and
    # bounded memory for any ratio (a sinc kernel per phase, as torchaudio builds, takes minutes for 44,101 Hz)
    return torch.from_numpy(soxr.resample(samples.numpy(), rate, SAMPLE_RATE).astype(np.float32))


def check_stream_format(rate: int, channels: int) -> None:
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioDecodeError(f"sample rate {rate} Hz is outside {MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"{channels} channels is outside 1..{MAX_CHANNELS}")


def decode_audio(data: bytes, max_duration_s: float | None = None, mix: bool = True) -> DecodedAudio:
    """Decode a whole audio file held in memory: mixed to mono, or with `mix=False` one row per channel (a call
    recorded with each party on its own channel). Raises AudioDecodeError on anything unusable (no samples, NaN or
    infinite samples included), and AudioTooLongError (413 for the service) past `max_duration_s`: from the
    header's length before decoding, or, when the container does not state it, as soon as the decoded audio passes
    the limit (decompression bombs)."""
    if not data:
        raise AudioDecodeError("empty audio body")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            check_stream_format(f.samplerate, f.channels)
            rate, channels = f.samplerate, f.channels
            if 0 < f.frames < UNKNOWN_LENGTH:
                check_decoded_size(f.frames, rate, channels, max_duration_s)
            decoded = read_samples(f, max_duration_s, mix)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioDecodeError(f"cannot decode audio: {error}") from error
    if not decoded.size:  # a header and no samples: answering "" for 0 s would hide a failed recording (issue #28)
        raise AudioDecodeError("no audio: the file holds no samples")
    if mix:
        samples = to_model_rate(torch.from_numpy(decoded), rate)
    else:  # (frames, channels) -> (channels, samples), each channel resampled on its own
        samples = torch.stack([to_model_rate(torch.from_numpy(np.ascontiguousarray(row)), rate) for row in decoded.T])
    return DecodedAudio(samples=samples, source_rate=rate, source_channels=channels)


def read_samples(f: soundfile.SoundFile, max_duration_s: float | None, mix: bool = True) -> np.ndarray:
    """(samples,) float32 at the source rate, or (samples, channels) without `mix`. Decoded block by block, each
    block checked (NaN or infinity refuses the file), clipped to [-1, 1] (a float file may hold overs) and, with
    `mix`, mixed to mono at once, so memory holds one channel whatever the channel count; decoding stops as soon
    as the audio passes the limit (MAX_DECODED_SAMPLES_PER_S bounds frames x channels, unmixed ones too)."""
    blocks, frames = [], 0
    buffer = np.empty((BLOCK_FRAMES, f.channels), dtype=np.float32)
    while count := read_frames(f, buffer):
        block = buffer[:count]
        check_finite(block, frames, f.samplerate)
        frames += count
        check_decoded_size(frames, f.samplerate, f.channels, max_duration_s, at_least=True)
        block = block.clip(-1.0, 1.0)  # a copy: the buffer is reused for the next block
        if mix:
            block = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0,) if mix else (0, f.channels), dtype=np.float32)


def first_non_finite(samples: np.ndarray) -> int | None:
    """The index of the first frame of (frames,) or (frames, channels) holding NaN or infinity; None if none does."""
    finite = np.isfinite(samples)
    if finite.ndim == 2:
        finite = finite.all(axis=1)  # (frames, channels) -> (frames,)
    return None if finite.all() else int(finite.argmin())


def check_finite(block: np.ndarray, first_frame: int, rate: int) -> None:
    """NaN and infinity are no sound: they come from a broken float pipeline upstream. Zeroing them answered 200
    with a transcript of audio other than what was sent, so the file is refused instead (issue #28)."""
    bad = first_non_finite(block)
    if bad is not None:
        at = first_frame + bad
        raise AudioDecodeError(f"sample {at} ({at / rate:.3f} s) is NaN or infinite: "
                               "float audio must hold finite numbers")


def read_frames(f: soundfile.SoundFile, out: np.ndarray) -> int:
    """Decode up to len(out) frames into `out` (frames, channels), float32; 0 at the end. This is libsndfile's own
    read: soundfile's `read` seeks to its new position after each read, and that seek fails at the end of a
    container that does not state its length, losing the last block."""
    count = soundfile._snd.sf_readf_float(f._file, soundfile._ffi.cast("float *", out.ctypes.data), len(out))
    soundfile._error_check(f._errorcode)
    return count


def check_decoded_size(frames: int, rate: int, channels: int, max_duration_s: float | None,
                       at_least: bool = False) -> None:
    if max_duration_s is None:
        return
    if frames / rate > max_duration_s:
        raise AudioTooLongError(frames / rate, max_duration_s, at_least)
    if frames * channels > max_duration_s * MAX_DECODED_SAMPLES_PER_S:
        limit_s = max_duration_s * MAX_DECODED_SAMPLES_PER_S / (rate * channels)
        raise AudioTooLongError(frames / rate, limit_s, at_least, f" at {rate} Hz with {channels} channels")


class AudioTooLongError(AudioDecodeError):
    def __init__(self, duration_s: float, limit_s: float, at_least: bool = False, detail: str = "") -> None:
        super().__init__(f"audio is {'more than ' if at_least else ''}{duration_s:.1f} s long; "
                         f"the limit is {limit_s:.0f} s{detail}")
        self.duration_s = duration_s
        self.limit_s = limit_s


def load_audio_file(path: str) -> torch.Tensor:
    """Read a file from disk -> (samples,) float32 mono at SAMPLE_RATE."""
    with open(path, "rb") as handle:
        return decode_audio(handle.read()).samples
