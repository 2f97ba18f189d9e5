"""Feeding a stream into the encoder chunk by chunk: the feature-frame bookkeeping between the front end and
`forward_chunk`. Consecutive chunks share SUBSAMPLING_OVERLAP feature frames, so a buffer keeps them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.encoder import SUBSAMPLING, SUBSAMPLING_CONTEXT, chunk_feature_frames
from model.features import N_MFCC
from model.network import SpeechRecognizer


@dataclass(frozen=True)
class FeatureBuffer:
    frames: torch.Tensor  # (n, N_MFCC) feature frames received and not yet fully consumed

    @staticmethod
    def empty() -> "FeatureBuffer":
        return FeatureBuffer(torch.zeros(0, N_MFCC))

    def append(self, frames: torch.Tensor) -> "FeatureBuffer":
        return FeatureBuffer(torch.cat([self.frames, frames]))


@dataclass(frozen=True)
class EncoderChunk:
    features: torch.Tensor  # (4C+3, N_MFCC), zero-padded for a short last chunk
    valid_frames: int  # feature frames that are real


def take_chunk(buffer: FeatureBuffer, chunk_frames: int, final: bool = False) -> tuple[EncoderChunk | None, FeatureBuffer]:
    """The next full chunk if the buffer holds one; at the end of a stream (`final`) also a short last chunk."""
    needed = chunk_feature_frames(chunk_frames)
    available = buffer.frames.shape[0]
    if available >= needed:
        stride = SUBSAMPLING * chunk_frames
        return EncoderChunk(buffer.frames[:needed], needed), FeatureBuffer(buffer.frames[stride:])
    if final and available >= SUBSAMPLING_CONTEXT:
        padded = torch.zeros(needed, N_MFCC)
        padded[:available] = buffer.frames
        return EncoderChunk(padded, available), FeatureBuffer.empty()
    return None, buffer


@torch.no_grad()
def encode_streaming(
    model: SpeechRecognizer, features: torch.Tensor, chunk_frames: int, piece_frames: int | None = None
) -> torch.Tensor:
    """Encode one utterance (T, F) chunk by chunk, optionally receiving features in pieces of `piece_frames`.
    Returns (S, D). Used by tests and benchmarks as the reference streaming path."""
    state = model.encoder.initial_state(1, features.device)
    buffer, outputs = FeatureBuffer.empty(), []
    step = piece_frames or features.shape[0]
    for start in range(0, features.shape[0] + 1, step):
        buffer = buffer.append(features[start : start + step])
        final = start + step >= features.shape[0]
        while True:
            chunk, buffer = take_chunk(buffer, chunk_frames, final)
            if chunk is None:
                break
            encoded, valid, state = model.encode_chunk(chunk.features[None], torch.tensor([chunk.valid_frames]), state)
            outputs.append(encoded[0, : int(valid[0])])
        if final:
            break
    return torch.cat(outputs) if outputs else features.new_zeros(0, model.config.encoder.d_model)
