"""Feeding a stream into the encoder chunk by chunk: the bookkeeping between the front end and `forward_chunk`.
Consecutive chunks share SUBSAMPLING_OVERLAP feature frames, so a buffer keeps them.

Two forms of the same geometry:
- feature domain (`FeatureBuffer`, `take_chunk`, `EncoderChunk`): frames already computed, for the reference path;
- sample domain (`SampleBuffer`, `take_audio_chunk`, `AudioChunk`): a live stream keeps raw samples and its chunk
  carries exactly the samples behind the chunk's 4C+3 feature frames, so the MFCC of every stream in a batch is
  computed in one batched call on the device thread (`chunk_features`) instead of once per WebSocket message on
  the event loop. The MFCC is chunk-invariant (model/frontend/features.py), so both forms give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.frontend.features import HOP_SAMPLES, FEATURE_DIM, WINDOW_SAMPLES, FeatureExtractor, num_frames
from model.network.encoder import SUBSAMPLING, SUBSAMPLING_CONTEXT, chunk_feature_frames
from model.network.model import SpeechRecognizer


@dataclass(frozen=True)
class FeatureBuffer:
    frames: torch.Tensor  # (n, FEATURE_DIM) feature frames received and not yet fully consumed

    @staticmethod
    def empty(feature_dim: int = FEATURE_DIM) -> "FeatureBuffer":
        return FeatureBuffer(torch.zeros(0, feature_dim))

    def append(self, frames: torch.Tensor) -> "FeatureBuffer":
        return FeatureBuffer(torch.cat([self.frames, frames]))


@dataclass(frozen=True)
class EncoderChunk:
    features: torch.Tensor  # (4C+3, FEATURE_DIM), zero-padded for a short last chunk
    valid_frames: int  # feature frames that are real


def take_chunk(buffer: FeatureBuffer, chunk_frames: int,
               final: bool = False) -> tuple[EncoderChunk | None, FeatureBuffer]:
    """The next full chunk if the buffer holds one; at the end of a stream (`final`) also a short last chunk."""
    needed = chunk_feature_frames(chunk_frames)
    available = buffer.frames.shape[0]
    if available >= needed:
        stride = SUBSAMPLING * chunk_frames
        return EncoderChunk(buffer.frames[:needed], needed), FeatureBuffer(buffer.frames[stride:])
    if final and available >= SUBSAMPLING_CONTEXT:
        padded = torch.zeros(needed, buffer.frames.shape[1])
        padded[:available] = buffer.frames
        return EncoderChunk(padded, available), FeatureBuffer.empty(buffer.frames.shape[1])
    return None, buffer


def chunk_samples(chunk_frames: int) -> int:
    """Samples behind one chunk's 4C+3 feature frames (frame f covers [f * HOP, f * HOP + WINDOW))."""
    return (chunk_feature_frames(chunk_frames) - 1) * HOP_SAMPLES + WINDOW_SAMPLES


@dataclass(frozen=True)
class SampleBuffer:
    samples: torch.Tensor  # (n,) float32 16 kHz samples received and not yet fully consumed by a chunk
    received: int = 0  # samples received over the whole stream

    @staticmethod
    def empty() -> "SampleBuffer":
        return SampleBuffer(torch.zeros(0))

    def append(self, samples: torch.Tensor) -> "SampleBuffer":
        samples = samples.float().reshape(-1)
        return SampleBuffer(torch.cat([self.samples, samples]), self.received + samples.shape[0])


@dataclass(frozen=True)
class AudioChunk:
    samples: torch.Tensor  # (chunk_samples,) float32, zero-padded for a short last chunk
    valid_frames: int  # feature frames that are real; frames past them are zeroed by `chunk_features`


def take_audio_chunk(buffer: SampleBuffer, chunk_frames: int,
                     final: bool = False) -> tuple[AudioChunk | None, SampleBuffer]:
    """`take_chunk` in the sample domain: the next full chunk's samples if the buffer holds them; at the end of a
    stream (`final`) also a short last chunk. Keeps the samples of the frames the next chunk shares."""
    needed = chunk_samples(chunk_frames)
    available = buffer.samples.shape[0]
    if available >= needed:
        stride = SUBSAMPLING * chunk_frames * HOP_SAMPLES
        chunk = AudioChunk(buffer.samples[:needed], chunk_feature_frames(chunk_frames))
        return chunk, SampleBuffer(buffer.samples[stride:], buffer.received)
    frames = num_frames(available)
    if final and frames >= SUBSAMPLING_CONTEXT:
        padded = torch.zeros(needed)
        padded[:available] = buffer.samples
        return AudioChunk(padded, frames), SampleBuffer(torch.zeros(0), buffer.received)
    return None, buffer


@torch.no_grad()
def chunk_features(extractor: FeatureExtractor, chunks: list[AudioChunk]) -> torch.Tensor:
    """Features of many streams' chunks in one call -> (B, 4C+3, FEATURE_DIM), frames past each chunk's valid count
    zeroed (as `take_chunk` pads). Each row depends only on its own samples, so batching changes no value."""
    features = extractor(torch.stack([c.samples for c in chunks]))  # (B, 4C+3, FEATURE_DIM)
    valid = torch.tensor([c.valid_frames for c in chunks])
    real = torch.arange(features.shape[1])[None, :] < valid[:, None]  # (B, 4C+3)
    return features.masked_fill(~real[..., None], 0.0)


@torch.no_grad()
def encode_streaming(
    model: SpeechRecognizer, features: torch.Tensor, chunk_frames: int, piece_frames: int | None = None
) -> torch.Tensor:
    """Encode one utterance (T, F) chunk by chunk, optionally receiving features in pieces of `piece_frames`. Returns
    (S, D) on the model's device. Used by tests, benchmarks and model.evaluation.device_check as the reference streaming
    path. The feature buffer stays on the host, as in the service; each chunk goes to the model's device."""
    device = model.cmvn_mean.device
    state = model.initial_state(1, device)
    buffer, outputs = FeatureBuffer.empty(features.shape[1]), []
    step = piece_frames or features.shape[0]
    for start in range(0, features.shape[0] + 1, step):
        buffer = buffer.append(features[start : start + step].cpu())
        final = start + step >= features.shape[0]
        while True:
            chunk, buffer = take_chunk(buffer, chunk_frames, final)
            if chunk is None:
                break
            encoded, valid, state = model.encode_chunk(chunk.features[None].to(device),
                                                       torch.tensor([chunk.valid_frames], device=device), state)
            outputs.append(encoded[0, : int(valid[0])])
        if final:
            break
    return torch.cat(outputs) if outputs else torch.zeros(0, model.encoded_width, device=device)
