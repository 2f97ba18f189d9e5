"""Cutting long recordings at silences so that an hour of audio decodes as a batch of short segments instead of
one huge tensor. Energy-based: frames quieter than a level relative to the recording's loud frames are silence."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.frontend.features import SAMPLE_RATE

FRAME_SAMPLES = 160  # 10 ms energy frames


@dataclass(frozen=True)
class SegmenterOptions:
    max_segment_s: float = 20.0  # hard cut if no silence is found
    min_silence_s: float = 0.3  # a pause this long is a cut point
    silence_below_db: float = 35.0  # below the recording's 95th-percentile frame energy
    min_segment_s: float = 0.2  # shorter voiced pieces are merged into neighbours
    kept_silence_s: float = 0.25  # silence kept at either end of a span (`speech_spans`); the rest is left out


@dataclass(frozen=True)
class AudioSpan:
    start: int  # samples
    end: int


def frame_energies_db(samples: torch.Tensor) -> torch.Tensor:
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-10)  # (frames,)


def silent_frames(samples: torch.Tensor, options: SegmenterOptions) -> torch.Tensor:
    energy = frame_energies_db(samples)
    if energy.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    loud = torch.quantile(energy, 0.95)
    return energy < loud - options.silence_below_db


def cut_points(silent: torch.Tensor, options: SegmenterOptions) -> list[int]:
    """Frame indices at the middle of every silence run of at least min_silence_s."""
    min_run = int(options.min_silence_s * SAMPLE_RATE / FRAME_SAMPLES)
    cuts, run_start = [], None
    for index, is_silent in enumerate(silent.tolist() + [False]):
        if is_silent and run_start is None:
            run_start = index
        elif not is_silent and run_start is not None:
            if index - run_start >= min_run:
                cuts.append((run_start + index) // 2)
            run_start = None
    return cuts


def split_at_silences(samples: torch.Tensor, options: SegmenterOptions = SegmenterOptions()) -> list[AudioSpan]:
    """Spans covering the whole recording, each at most max_segment_s long, cut in pauses where possible."""
    total = len(samples)
    max_len = int(options.max_segment_s * SAMPLE_RATE)
    if total <= max_len:
        return [AudioSpan(0, total)]
    cuts = [c * FRAME_SAMPLES for c in cut_points(silent_frames(samples, options), options)]
    spans, start = [], 0
    while total - start > max_len:
        inside = [c for c in cuts if start + options.min_segment_s * SAMPLE_RATE < c <= start + max_len]
        end = inside[-1] if inside else start + max_len  # latest pause that keeps the segment short enough
        spans.append(AudioSpan(start, end))
        start = end
    spans.append(AudioSpan(start, total))
    return spans


def speech_spans(samples: torch.Tensor, spans: list[AudioSpan], options: SegmenterOptions) -> list[AudioSpan]:
    """Each span without the silence at its ends beyond `kept_silence_s` (its frames quieter than the recording's
    silence level, `silent_frames`). The model learned from utterances with a fraction of a second of silence
    around them: a second or two of it around the speech, in the encoder's context, raised its error by up to half
    again and took its locale detection with it (docs/model_releases.md). A span without a voiced frame is kept
    as it is."""
    silent = silent_frames(samples, options)
    kept = int(options.kept_silence_s * SAMPLE_RATE)
    trimmed = []
    for span in spans:
        first = span.start // FRAME_SAMPLES
        voiced = (~silent[first : max(span.end // FRAME_SAMPLES, first + 1)]).nonzero()
        if len(voiced) == 0:
            trimmed.append(span)
            continue
        start = max(span.start, (first + int(voiced[0])) * FRAME_SAMPLES - kept)
        end = min(span.end, (first + int(voiced[-1]) + 1) * FRAME_SAMPLES + kept)
        trimmed.append(AudioSpan(start, end))
    return trimmed
