"""Pitch features for tonal languages: per 25 ms frame, the peak normalised cross-correlation (how periodic, i.e.
voiced, the frame is) and the log fundamental frequency at that peak.

Why: Mandarin has four tones and Cantonese six, and a tone is a pitch contour. MFCC carries pitch only weakly, in
the fine structure of the low mel bands; on the bundled model's test split 11 of Mandarin's 28 CER points were
syllables recognised right with the wrong tone. Kaldi's AISHELL and HKUST recipes append pitch to the spectral
features for the same reason; this is a simpler, per-frame version of that feature (no Viterbi smoothing across
frames), so it is chunk-invariant by construction: frame i depends only on samples
[i * HOP, i * HOP + WINDOW), exactly like the MFCC beside it. The encoder's convolutions see 7 consecutive frames
per output and learn the contour (rising, falling, dipping) from the sequence.

The correlation is the normalised cross-correlation of RAPT (Talkin, 1995) between the frame's first N - lag
samples and its last N - lag samples, for lags covering 60-500 Hz, computed for all lags at once with an FFT.
"""

from __future__ import annotations

import math

import torch

PITCH_DIMS = 2  # (voicing, log F0)
MIN_F0_HZ = 60.0
MAX_F0_HZ = 500.0
REFERENCE_F0_HZ = 150.0  # log F0 is reported relative to this, so values sit near zero
OCTAVE_TOLERANCE = 0.9  # take the shortest-lag peak within this factor of the best (no subharmonic picks)


def _fast_fft_size(minimum: int) -> int:
    """The smallest even n >= minimum whose only prime factors are 2, 3 and 5: fast real FFTs (an odd size such as
    675 measured 1.5x slower than 720 with torch's CPU FFT, and a power of two, 1024, 2.5x slower)."""
    n = minimum + minimum % 2
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 2


def frame_pitch(frames: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(..., frames, window) float waveform frames -> (..., frames, PITCH_DIMS) [voicing in [0, 1], log(F0 / 150 Hz)].

    Pure and per-frame: a frame's output depends on its own samples only.
    """
    window = frames.shape[-1]
    min_lag = int(math.floor(sample_rate / MAX_F0_HZ))
    max_lag = min(int(math.ceil(sample_rate / MIN_F0_HZ)), window - 2)
    low, high = min_lag - 1, max_lag + 2  # lags low..high-1: the searched ones and one neighbour each side
    x = frames.float()
    x = x - x.mean(dim=-1, keepdim=True)
    # Circular correlation with n >= window + high is linear for lags below `high` (720 for 25 ms at 16 kHz).
    n_fft = _fast_fft_size(window + high)
    spectrum = torch.fft.rfft(x, n=n_fft)
    correlation = torch.fft.irfft(spectrum.real.square() + spectrum.imag.square(), n=n_fft)[..., low:high]
    # Energies of the two overlapping parts for every lag: head = x[:N-lag], tail = x[lag:].
    power = torch.nn.functional.pad(x.square().cumsum(dim=-1), (1, 0))  # (..., N + 1), power[k] = sum x[:k]
    total = power[..., -1:]
    head = power[..., window - high + 1 : window - low + 1].flip(-1)  # power[N - lag] for lag = low..high-1
    tail = total - power[..., low:high]
    nccf = correlation * torch.rsqrt(head * tail + 1e-6 * total.square() + 1e-12)  # lags low..high-1
    searched = nccf[..., 1:-1]  # lags min_lag..max_lag
    best = searched.max(dim=-1, keepdim=True).values
    # The shortest-lag peak within tolerance of the best: a periodic frame correlates as well at 2x and 3x its
    # period. A peak, not merely a lag above the threshold, or the pick would sit on the rising flank.
    peak = (searched >= nccf[..., :-2]) & (searched >= nccf[..., 2:])
    candidates = peak & (searched >= OCTAVE_TOLERANCE * best)
    index = candidates.byte().argmax(dim=-1, keepdim=True) + 1  # into nccf; the first True (none: silence)
    # Parabolic interpolation around the chosen lag for sub-sample resolution (1 sample is ~27 cents at 250 Hz).
    left = nccf.gather(-1, index - 1)
    centre = nccf.gather(-1, index)
    right = nccf.gather(-1, index + 1)
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < -1e-6, 0.5 * (left - right) / curvature.clamp(max=-1e-6), torch.zeros_like(centre))
    refined = (index + low).float() + offset.clamp(-0.5, 0.5)
    voicing = centre.clamp(0.0, 1.0)
    log_f0 = torch.log(sample_rate / refined / REFERENCE_F0_HZ)
    return torch.cat([voicing, log_f0], dim=-1)
