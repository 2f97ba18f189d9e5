"""Audio for service tests: the bundled samples re-encoded in other containers, rates and channel counts."""

from __future__ import annotations

import io

import numpy as np
import soundfile
import soxr


def read_mono16k(path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    return audio


def encode(audio16k: np.ndarray, container: str, rate: int = 16000, channels: int = 1,
           subtype: str | None = None) -> bytes:
    """(samples,) copied to `channels` channels, or (samples, channels) as it is, in `container` at `rate`."""
    audio = soxr.resample(audio16k, 16000, rate) if rate != 16000 else audio16k
    if channels > 1 and audio.ndim == 1:
        audio = np.stack([audio] * channels, axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def pcm16(audio16k: np.ndarray) -> bytes:
    """float [-1, 1) -> little-endian int16, the exact inverse of soundfile's int16 -> float read."""
    return np.round(np.clip(audio16k, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def with_pauses(pieces: list[np.ndarray], pause_s: float = 0.6) -> np.ndarray:
    pause = np.zeros(int(16000 * pause_s), dtype=np.float32)
    return np.concatenate([x for piece in pieces for x in (piece, pause)]).astype(np.float32)
