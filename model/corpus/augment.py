"""Acoustic conditions applied to synthetic speech (float32, 16 kHz, mono).

Every function is pure: the randomness comes in through an explicit
``np.random.Generator`` so a seeded build reproduces byte-identical audio.
All conditions except "speed" keep the length unchanged.

"capture" is what a real recording does to a voice, chained in the order it happens: a room, a microphone's
colouring and band limits, background noise, a careless gain, clipping, a lossy codec. It is not among the corpus's
CONDITION_WEIGHTS (the espeak-ng dev and test splits stay the audio every release was measured on); the backbone
cache applies it to natural voices (model.training.backbone_cache --augment capture).
"""
from __future__ import annotations

import io

import numpy as np
import soundfile
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


def peaking_sos(centre_hz: float, gain_db: float, q: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One peaking-EQ biquad (Bristow-Johnson's audio EQ cookbook) as a (1, 6) second-order section."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * centre_hz / sr
    alpha = np.sin(w) / (2 * q)
    b0, b1, b2 = 1 + alpha * a, -2 * np.cos(w), 1 - alpha * a
    a0, a1, a2 = 1 + alpha / a, -2 * np.cos(w), 1 - alpha / a
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def microphone(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A microphone and its preamp: a high-pass at 50-300 Hz, a low-pass at 3.5-7.8 kHz and two or three resonances
    or dips of up to 8 dB between 200 Hz and 6 kHz; loudness kept."""
    sections = [butter(2, float(rng.uniform(50, 300)), btype="highpass", fs=SAMPLE_RATE, output="sos"),
                butter(4, float(rng.uniform(3500, 7800)), btype="lowpass", fs=SAMPLE_RATE, output="sos")]
    for _ in range(int(rng.integers(2, 4))):
        sections.append(peaking_sos(float(np.exp(rng.uniform(np.log(200), np.log(6000)))), float(rng.uniform(-8, 8)),
                                    float(rng.uniform(0.7, 2.0))))
    coloured = sosfilt(np.concatenate(sections), audio)
    rms_in = np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-10
    rms_out = np.sqrt(np.mean(coloured ** 2)) + 1e-10
    return protect_clipping(coloured * (rms_in / rms_out))


def hard_clip(audio: np.ndarray, drive_db: float) -> np.ndarray:
    """Overdriven input: amplified by `drive_db` past full scale and clipped there."""
    peak = float(np.max(np.abs(audio))) or 1.0
    return np.clip(audio / peak * 10 ** (drive_db / 20), -_PEAK_LIMIT, _PEAK_LIMIT).astype(np.float32)


def lossy_codec(audio: np.ndarray, codec: str, compression: float) -> np.ndarray:
    """Through a lossy codec and back (libsndfile): "opus" or "mp3" at libsndfile's compression level in [0, 1)
    (higher: fewer bits). Same length."""
    format_, subtype = {"opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}[codec]
    encoded = io.BytesIO()
    soundfile.write(encoded, audio, SAMPLE_RATE, format=format_, subtype=subtype, compression_level=compression)
    encoded.seek(0)
    decoded, _ = soundfile.read(encoded, dtype="float32")
    decoded = decoded[: audio.size]
    return protect_clipping(np.pad(decoded, (0, audio.size - decoded.size)))


def capture(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real recording's chain: a room (half the time), the microphone, noise (half), a gain of -25 to +6 dB,
    clipping (one in eight), a lossy codec (half)."""
    audio = np.asarray(audio, dtype=np.float32)
    if rng.random() < 0.5:
        audio = add_reverb(audio, float(rng.uniform(0.15, 0.7)), rng)
    audio = microphone(audio, rng)
    if rng.random() < 0.5:
        audio = add_noise(audio, float(rng.uniform(5, 25)), rng, ("white", "pink", "brown")[int(rng.integers(3))])
    audio = apply_gain(audio, float(rng.uniform(-25, 6)))
    if rng.random() < 0.125:
        audio = hard_clip(audio, float(rng.uniform(3, 12)))
    if rng.random() < 0.5:
        audio = lossy_codec(audio, ("opus", "mp3")[int(rng.integers(2))], float(rng.uniform(0.5, 0.95)))
    return audio


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
    if condition == "capture":
        return capture(audio, rng)
    raise ValueError(f"unknown condition {condition!r}; have {sorted([*CONDITION_WEIGHTS, 'capture'])}")
