"""Chunking a live stream in the sample domain (raw samples buffered, MFCC batched per chunk) gives exactly the
feature chunks of the reference feature-domain path, for any split of the audio and a short last chunk."""

import numpy as np
import pytest
import torch

from model.frontend.features import FeatureExtractor
from model.recognition.streaming import FeatureBuffer, SampleBuffer, chunk_features, take_audio_chunk, take_chunk


def feature_chunks(extractor, audio: torch.Tensor, chunk_frames: int) -> list:
    buffer, chunks = FeatureBuffer(extractor(audio)), []
    while (chunk := take_chunk(buffer, chunk_frames, final=True))[0] is not None:
        piece, buffer = chunk
        chunks.append(piece)
    return chunks


def audio_chunks(audio: torch.Tensor, chunk_frames: int, seed: int) -> list:
    rng, buffer, chunks, start = np.random.default_rng(seed), SampleBuffer.empty(), [], 0
    while start < len(audio):
        size = int(rng.integers(1, 5000))
        buffer = buffer.append(audio[start : start + size])
        start += size
        final = start >= len(audio)
        while (chunk := take_audio_chunk(buffer, chunk_frames, final))[0] is not None:
            piece, buffer = chunk
            chunks.append(piece)
    assert buffer.received == len(audio)
    return chunks


@pytest.mark.parametrize("chunk_frames", [1, 4, 16])
@pytest.mark.parametrize("seconds", [0.05, 1.0, 2.37])
def test_sample_domain_chunks_equal_feature_domain_chunks(chunk_frames, seconds):
    torch.manual_seed(chunk_frames)
    extractor = FeatureExtractor()
    audio = 0.1 * torch.randn(int(seconds * 16000))
    reference = feature_chunks(extractor, audio, chunk_frames)
    chunks = audio_chunks(audio, chunk_frames, seed=chunk_frames)
    assert [c.valid_frames for c in chunks] == [c.valid_frames for c in reference]
    if chunks:  # one batched MFCC call for all chunks, as the scheduler does across streams
        torch.testing.assert_close(chunk_features(extractor, chunks), torch.stack([c.features for c in reference]),
                                   atol=1e-5, rtol=1e-5)
