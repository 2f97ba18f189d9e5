"""Acoustic conditions applied to synthetic speech (float32, 16 kHz, mono).

Every function is pure: the randomness comes in through an explicit
``np.random.Generator`` so a seeded build reproduces byte-identical audio.
All conditions except "speed" keep the length unchanged.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

SAMPLE_RATE = 16000
# Per-utterance condition weights (clean 40 / noise 15 / reverb 15 / telephone 15 / speed 10 / gain 5).
CONDITION_WEIGHTS: dict[str, float] = {
    "clean": 0.40, "noise": 0.15, "reverb": 0.15, "telephone": 0.15, "speed": 0.10, "gain": 0.05,
}
_PEAK_LIMIT = 0.98


def choose_condition(rng: np.random.Generator, weights: dict[str, float] = CONDITION_WEIGHTS) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def protect_clipping(audio: np.ndarray, limit: float = _PEAK_LIMIT) -> np.ndarray:
    """Scale down (never up) so the peak stays below ``limit``."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    out = audio * (limit / peak) if peak > limit else audio
    return out.astype(np.float32)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed change by resampling (tempo and pitch both move)."""
    up, down = 100, int(round(100 * factor))
    g = np.gcd(up, down)
    return resample_poly(audio, up // g, down // g).astype(np.float32)


def _colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if color == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.maximum(np.arange(spec.size), 1.0)
    spec /= np.sqrt(f) if color == "pink" else f  # pink 1/f power, brown 1/f^2
    return np.fft.irfft(spec, n)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """Add white/pink/brown noise at ``snr_db`` relative to the speech power."""
    noise = _colored_noise(audio.size, color, rng)
    sig_pow = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-10
    noise_pow = float(np.mean(noise ** 2)) or 1e-10
    noise *= np.sqrt(sig_pow / (noise_pow * 10 ** (snr_db / 10)))
    return protect_clipping(audio + noise)


def synthetic_rir(rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Direct path + exponentially decaying noise tail (-60 dB at rt60)."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60) * 0.3
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail ** 2))


def add_reverb(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response, keep length and loudness."""
    wet = fftconvolve(audio, synthetic_rir(rt60, rng))[: audio.size]
    rms_in = np.sqrt(np.mean(audio ** 2)) + 1e-10
    rms_out = np.sqrt(np.mean(wet ** 2)) + 1e-10
    return protect_clipping(wet * (rms_in / rms_out))


def _mu_law(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """8-bit mu-law encode + decode (G.711 style quantisation)."""
    x = np.clip(x, -1.0, 1.0)
    enc = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((enc + 1) / 2 * mu) / mu * 2 - 1
    return np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu


def telephone(audio: np.ndarray) -> np.ndarray:
    """8 kHz, 300-3400 Hz band-pass, mu-law, back to 16 kHz (same length)."""
    narrow = resample_poly(audio, 1, 2)
    sos = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    narrow = _mu_law(sosfilt(sos, narrow))
    wide = resample_poly(narrow, 2, 1)[: audio.size]
    wide = np.pad(wide, (0, audio.size - wide.size))
    return protect_clipping(wide)


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    return protect_clipping(audio * 10 ** (gain_db / 20))


def augment(audio: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Apply ``condition`` with randomly drawn parameters from ``rng``."""
    audio = np.asarray(audio, dtype=np.float32)
    if condition == "clean":
        return protect_clipping(audio)
    if condition == "noise":
        color = ("white", "pink", "brown")[int(rng.integers(3))]
        return add_noise(audio, float(rng.uniform(10, 30)), rng, color)
    if condition == "reverb":
        return add_reverb(audio, float(rng.uniform(0.2, 0.8)), rng)
    if condition == "telephone":
        return telephone(audio)
    if condition == "speed":
        return protect_clipping(speed_perturb(audio, float(rng.choice([0.9, 1.1]))))
    if condition == "gain":
        return apply_gain(audio, float(rng.uniform(-20, 6)))
    raise ValueError(f"unknown condition {condition!r}; have {sorted(CONDITION_WEIGHTS)}")
