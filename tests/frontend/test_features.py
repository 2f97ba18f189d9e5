"""The streaming MFCC extractor is chunk-invariant: any split of an utterance gives the whole-utterance frames."""

import numpy as np
import pytest
import torch

from model.frontend.audio import decode_audio, AudioDecodeError
from model.frontend.features import (HOP_SAMPLES, FEATURE_DIM, SAMPLE_RATE, FeatureStreamState, FeatureExtractor,
                                     num_frames, push_samples)


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor()


def speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 3 * t)) * t)
    return torch.from_numpy((tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32))


def random_splits(total: int, rng: np.random.Generator) -> list[int]:
    """Cut points with 1-sample, odd-sized and large pieces."""
    sizes, used = [], 0
    while used < total:
        size = int(rng.choice([1, 2, 3, 159, 161, 399, 401, 1023, 4801]))
        sizes.append(min(size, total - used))
        used += sizes[-1]
    return sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_frames_equal_whole_utterance_frames(extractor, seed):
    audio = speechlike(1.37, seed)
    whole = extractor(audio)
    state, pieces, start = FeatureStreamState.initial(), [], 0
    for size in random_splits(len(audio), np.random.default_rng(seed)):
        frames, state = push_samples(extractor, state, audio[start : start + size])
        pieces.append(frames)
        start += size
    streamed = torch.cat(pieces)
    assert streamed.shape == whole.shape == (num_frames(len(audio)), FEATURE_DIM)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-5)


def test_frame_count_has_no_padding():
    assert num_frames(399) == 0
    assert num_frames(400) == 1
    assert num_frames(400 + HOP_SAMPLES - 1) == 1
    assert num_frames(SAMPLE_RATE) == 98


def test_features_do_not_depend_on_the_loudest_frame(extractor):
    """No dB scaling relative to the input maximum: a loud burst later must not change earlier frames."""
    quiet = speechlike(0.5)
    loud = torch.cat([quiet, 0.9 * torch.ones(8000)])
    torch.testing.assert_close(extractor(loud)[: len(extractor(quiet))], extractor(quiet))


def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path):
    import soundfile

    seconds = 0.5
    stereo = np.stack([np.sin(np.linspace(0, 200, int(44_100 * seconds)))] * 2, axis=1).astype(np.float32) * 0.5
    path = tmp_path / "stereo.flac"
    soundfile.write(path, stereo, 44_100)
    decoded = decode_audio(path.read_bytes())
    assert decoded.source_rate == 44_100 and decoded.source_channels == 2
    assert decoded.samples.dim() == 1
    assert abs(decoded.samples.shape[0] - SAMPLE_RATE * seconds) <= 1


def test_undecodable_bytes_raise_a_clear_error():
    with pytest.raises(AudioDecodeError):
        decode_audio(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioDecodeError):
        decode_audio(b"")
