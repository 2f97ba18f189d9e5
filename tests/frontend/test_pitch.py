"""Pitch features (model/frontend/pitch.py) and the pitch input of the encoder: the tonal cue for Mandarin and
Cantonese.

Chunk invariance of the whole front end, pitch columns included, is pinned in test_features.py."""

import copy
import dataclasses
import math

import pytest
import torch

from model.frontend.features import FEATURE_DIM, HOP_SAMPLES, N_MFCC, SAMPLE_RATE, WINDOW_SAMPLES, FeatureExtractor
from model.frontend.pitch import frame_pitch


def harmonic_tone(f0: torch.Tensor) -> torch.Tensor:
    """A voiced-like signal: 7 harmonics of a (possibly gliding) fundamental given per sample."""
    phase = 2 * math.pi * torch.cumsum(f0 / SAMPLE_RATE, dim=0)
    return sum(torch.sin(k * phase) / k for k in range(1, 8)) * 0.3


def frames_of(signal: torch.Tensor) -> torch.Tensor:
    return signal.unfold(-1, WINDOW_SAMPLES, HOP_SAMPLES)


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 380.0])
def test_pitch_tracks_the_fundamental_of_a_steady_tone(f0):
    pitch = frame_pitch(frames_of(harmonic_tone(torch.full((SAMPLE_RATE,), f0))), SAMPLE_RATE)
    estimated = 150.0 * torch.exp(pitch[:, 1])
    assert torch.allclose(estimated, torch.full_like(estimated, f0), rtol=0.02)  # no octave errors on any frame
    assert pitch[:, 0].min() > 0.8  # strongly voiced


def test_pitch_follows_a_rising_contour_like_a_second_tone():
    rising = torch.linspace(110.0, 200.0, SAMPLE_RATE // 2)
    estimated = 150.0 * torch.exp(frame_pitch(frames_of(harmonic_tone(rising)), SAMPLE_RATE)[:, 1])
    expected = rising[torch.arange(len(estimated)) * HOP_SAMPLES + WINDOW_SAMPLES // 2]
    assert torch.allclose(estimated, expected, rtol=0.03)
    assert (estimated[10:] > estimated[:-10]).all()


def test_voicing_separates_periodic_frames_from_noise():
    noise = torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(0)) * 0.1
    voicing = frame_pitch(frames_of(noise), SAMPLE_RATE)[:, 0]
    assert voicing.mean() < 0.35
    silence = frame_pitch(frames_of(torch.zeros(SAMPLE_RATE)), SAMPLE_RATE)
    assert torch.isfinite(silence).all()


def test_front_end_appends_pitch_to_the_mfcc():
    tone = harmonic_tone(torch.full((SAMPLE_RATE,), 200.0))
    features = FeatureExtractor()(tone)
    assert features.shape[-1] == FEATURE_DIM == N_MFCC + 2
    assert torch.allclose(150.0 * torch.exp(features[:, N_MFCC + 1]), torch.tensor(200.0), rtol=0.02)


def test_grown_model_computes_exactly_what_the_mfcc_only_model_did(tiny_loaded):
    """with_pitch_input keeps every weight and starts the pitch path at zero, so continuing a released model with
    pitch starts from the same outputs; and an MFCC-only model ignores the pitch columns altogether."""
    from model.network.model import with_pitch_input

    old = tiny_loaded.model
    assert old.config.encoder.pitch_dim == 0
    wanted = dataclasses.replace(old.config.encoder, pitch_dim=2)
    grown = with_pitch_input(old, wanted, torch.tensor([0.6, -0.2]), torch.tensor([3.0, 2.5])).eval()
    assert grown.config.encoder.pitch_dim == 2 and grown.input_dim == FEATURE_DIM
    features = torch.randn(2, 120, FEATURE_DIM, generator=torch.Generator().manual_seed(1)) * 3
    lengths = torch.tensor([120, 95])
    other_pitch = features.clone()
    other_pitch[..., N_MFCC:] = torch.randn(2, 120, 2)
    with torch.no_grad():
        expected, expected_lengths = old.encode(features, lengths)
        assert torch.equal(old.encode(other_pitch, lengths)[0], expected)
        actual, actual_lengths = grown.encode(features, lengths)
    assert torch.equal(actual_lengths, expected_lengths)
    assert torch.allclose(actual, expected, atol=1e-6)
    with pytest.raises(ValueError):
        with_pitch_input(grown, wanted, torch.zeros(2), torch.ones(2))


def gated(model, gate: float, log_f0_mean: float = -0.2):
    """`model` re-read through a voicing gate, with the given voiced log F0 mean in its CMVN."""
    from model.network.model import with_pitch_input

    first = model.config.encoder.feature_dim
    wanted = dataclasses.replace(model.config.encoder, pitch_voicing_gate=gate)
    return with_pitch_input(model, wanted, torch.tensor([float(model.cmvn_mean[first]), log_f0_mean]),
                            model.cmvn_istd[first:first + 2].clone()).eval()


def test_voicing_gate_replaces_the_log_f0_of_unvoiced_frames_by_the_voiced_mean(ungated_model):
    """An unvoiced frame's log F0 is noise (the lag its noise happened to correlate at): through the gate it reads
    exactly 0 once normalised; voiced frames and every other column are normalised as before."""
    model = gated(ungated_model, 0.6)
    features = torch.randn(3, 40, FEATURE_DIM, generator=torch.Generator().manual_seed(2))
    features[..., N_MFCC] = torch.rand(3, 40, generator=torch.Generator().manual_seed(3))  # voicing in [0, 1)
    normalised = model.normalize(features)
    plain = (features - model.cmvn_mean) * model.cmvn_istd
    voiced = features[..., N_MFCC] >= 0.6
    assert 0 < int(voiced.sum()) < voiced.numel()
    assert torch.equal(normalised[..., N_MFCC + 1][~voiced], torch.zeros(int((~voiced).sum())))
    assert torch.allclose(normalised[..., N_MFCC + 1][voiced], plain[..., N_MFCC + 1][voiced])
    assert torch.allclose(normalised[..., : N_MFCC + 1], plain[..., : N_MFCC + 1])


@pytest.fixture(scope="module")
def ungated_model(tiny_model):
    """The tiny model as a pitch model from before the voicing gate (it reads raw log F0, no relative channel)."""
    from model.network.model import SpeechRecognizer

    encoder = dataclasses.replace(tiny_model.config.encoder, pitch_voicing_gate=0.0, relative_pitch_prior_frames=0.0)
    torch.manual_seed(0)
    return SpeechRecognizer(dataclasses.replace(tiny_model.config, encoder=encoder)).eval()


def test_a_gated_model_streams_exactly_like_its_full_forward(ungated_model):
    """The gate is per frame, so chunk-by-chunk equals the masked full forward as for any model."""
    from model.recognition.streaming import encode_streaming

    model = gated(ungated_model, 0.6)
    with torch.no_grad():
        model.encoder.subsampling.pitch.weight.normal_(generator=torch.Generator().manual_seed(4))
    features = torch.randn(203, FEATURE_DIM, generator=torch.Generator().manual_seed(5)) * 3 + 1
    features[:, N_MFCC] = torch.rand(203, generator=torch.Generator().manual_seed(6))
    left = model.config.encoder.left_context_frames
    with torch.no_grad():
        full, lengths = model.encode(features[None], torch.tensor([203]), 4, left)
    streamed = encode_streaming(model, features, 4, piece_frames=13)
    torch.testing.assert_close(streamed, full[0, : int(lengths[0])], atol=2e-5, rtol=1e-4)


def test_regating_keeps_every_weight_but_the_pitch_path(ungated_model):
    """A pitch model re-read through a voicing gate starts with a zero pitch path: it computes what the old model
    computes with its pitch path zeroed, whatever the pitch columns hold."""
    from model.network.model import PITCH_PARAMETERS

    model = gated(ungated_model, 0.6)
    assert model.config.encoder.pitch_voicing_gate == 0.6 and ungated_model.config.encoder.pitch_voicing_gate == 0.0
    old_state = ungated_model.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith(PITCH_PARAMETERS):
            assert not value.any()
        elif name != "cmvn_mean":
            assert torch.equal(value, old_state[name]), name
    silenced = copy.deepcopy(ungated_model)
    with torch.no_grad():
        silenced.encoder.subsampling.pitch.weight.zero_()
        silenced.encoder.subsampling.pitch.bias.zero_()
    features = torch.randn(1, 90, FEATURE_DIM, generator=torch.Generator().manual_seed(7)) * 3
    with torch.no_grad():
        torch.testing.assert_close(model.encode(features, torch.tensor([90]))[0],
                                   silenced.encode(features, torch.tensor([90]))[0])


def test_relative_log_f0_reads_two_voices_alike_once_it_has_heard_them():
    """The same tone contour from a voice 0.5 (log units) higher: the gated log F0 differs by 0.5 on every voiced
    frame, the relative channel by 0.5 * prior / (prior + voiced frames so far), and unvoiced frames read 0."""
    from model.network.encoder import relative_log_f0

    frames, prior = 600, 50.0
    contour = 0.3 * torch.sin(torch.arange(frames) / 7.0)  # syllable-length rises and falls
    voiced = torch.rand(frames, generator=torch.Generator().manual_seed(8)) < 0.7
    low = torch.where(voiced, contour - 0.2, torch.zeros(frames))
    high = torch.where(voiced, contour + 0.3, torch.zeros(frames))
    relative = relative_log_f0(torch.stack([low, high]), torch.zeros(2, 2), prior)
    assert not relative[:, ~voiced].any()
    gap = (relative[1] - relative[0])[voiced]
    heard = voiced.float().cumsum(0)[voiced]
    torch.testing.assert_close(gap, 0.5 * prior / (prior + heard), atol=1e-5, rtol=1e-4)
    assert float(gap[-1]) < 0.06  # 400+ voiced frames in: a tenth of the raw difference


def test_relative_log_f0_carries_its_running_mean_across_pieces():
    """Statistics of the frames before a piece, passed in, give what the whole sequence gives."""
    from model.network.encoder import consumed_pitch_stats, relative_log_f0

    x = torch.randn(2, 90, generator=torch.Generator().manual_seed(9))
    x[x.abs() < 0.4] = 0.0  # unvoiced
    whole = relative_log_f0(x, torch.zeros(2, 2), 20.0)
    stats, pieces, start = torch.zeros(2, 2), [], 0
    for size in (1, 16, 7, 40, 26):
        piece = x[:, start : start + size]
        pieces.append(relative_log_f0(piece, stats, 20.0))
        stats = stats + consumed_pitch_stats(piece, torch.full((2,), size))
        start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-6, rtol=1e-5)


def test_a_model_given_the_relative_channel_computes_what_it_did(ungated_model):
    """with_relative_pitch_input adds a zero-initialised input channel to the pitch path: the grown model's output
    is the old one's until training moves that weight, and it refuses a model without the voicing gate."""
    from model.network.model import with_relative_pitch_input

    with pytest.raises(ValueError):
        with_relative_pitch_input(ungated_model, 50.0)
    old = gated(ungated_model, 0.6)
    with torch.no_grad():
        old.encoder.subsampling.pitch.weight.normal_(generator=torch.Generator().manual_seed(10))
    grown = with_relative_pitch_input(old, 50.0).eval()
    pitch_weight = grown.encoder.subsampling.pitch.weight
    assert pitch_weight.shape[1] == 3 and not pitch_weight[:, 2].any()
    features = torch.randn(2, 150, FEATURE_DIM, generator=torch.Generator().manual_seed(11)) * 3 + 1
    lengths = torch.tensor([150, 101])
    with torch.no_grad():
        torch.testing.assert_close(grown.encode(features, lengths)[0], old.encode(features, lengths)[0], atol=1e-6,
                                   rtol=0)
        grown.encoder.subsampling.pitch.weight[:, 2].normal_(generator=torch.Generator().manual_seed(12))
        assert not torch.allclose(grown.encode(features, lengths)[0], old.encode(features, lengths)[0], atol=1e-3)
