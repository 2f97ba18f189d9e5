"""Call recordings with one party per channel: what an upload asks (`channels=separate`, `channel_names`), where
each channel is cut into turns, and what each channel returns."""

from __future__ import annotations

from dataclasses import dataclass, replace
import torch

from model.frontend.audio import MAX_CHANNELS
from model.frontend.segmenter import (FRAME_SAMPLES, AudioSpan, SegmenterOptions, cut_points, silent_frames,
                                      split_at_silences)
from service.errors import ApiError
from service.protocol import ChannelMode
MAX_CHANNEL_NAME_CHARS = 40


@dataclass(frozen=True)
class ChannelRequest:
    mode: ChannelMode = "mixed"
    names: tuple[str, ...] = ()  # channel i's name, for the first len(names) channels

    @property
    def separate(self) -> bool:
        return self.mode == "separate"

    def name(self, channel: int | None) -> str | None:
        return self.names[channel] if channel is not None and channel < len(self.names) else None

    def check_against(self, channels: int) -> None:
        """Names for channels the file does not have are a mistake about the file: said, never ignored."""
        if len(self.names) > channels:
            raise ApiError(400, "too_many_channel_names",
                           f"channel_names gives {len(self.names)} names but the audio has {channels} channel"
                           f"{'s' if channels != 1 else ''}")


@dataclass(frozen=True)
class ChannelResult:
    index: int
    name: str | None
    locale: str
    locale_probability: float | None  # set when the locale was detected


def channel_request(mode: ChannelMode, names: str | None) -> ChannelRequest:
    """The upload's `channels` and `channel_names` (comma-separated)."""
    parsed = tuple(n.strip() for n in names.split(",")) if names else ()
    if parsed and mode != "separate":
        raise ApiError(422, "invalid_request", "channel_names needs channels=separate")
    if any(not n or len(n) > MAX_CHANNEL_NAME_CHARS for n in parsed) or len(set(parsed)) < len(parsed):
        raise ApiError(422, "invalid_request", "channel_names must be distinct, non-empty and at most "
                                               f"{MAX_CHANNEL_NAME_CHARS} characters each")
    if len(parsed) > MAX_CHANNELS:
        raise ApiError(400, "too_many_channel_names", f"audio has at most {MAX_CHANNELS} channels")
    return ChannelRequest(mode, parsed)


def turn_spans(samples: torch.Tensor, segmenter: SegmenterOptions, pause_s: float) -> list[AudioSpan]:
    """One party's channel, cut at every pause of `pause_s` (a turn's end, as a stream's endpoint), so that the
    channels' segments interleave turn by turn; a turn longer than the segmenter's limit is cut at its own pauses,
    as a long upload is. A span without a frame above the channel's silence level (the other party's turn) is
    left out: it holds nothing of this party to decode."""
    options = replace(segmenter, min_silence_s=pause_s)
    silent = silent_frames(samples, options)  # (frames,) of FRAME_SAMPLES
    bounds = [0, *(c * FRAME_SAMPLES for c in cut_points(silent, options)), len(samples)]
    spans = []
    for start, end in zip(bounds, bounds[1:]):
        first, last = start // FRAME_SAMPLES, max(end // FRAME_SAMPLES, start // FRAME_SAMPLES + 1)
        if end > start and not silent[first:last].all():
            spans += [AudioSpan(start + s.start, start + s.end)
                      for s in split_at_silences(samples[start:end], segmenter)]
    return spans
