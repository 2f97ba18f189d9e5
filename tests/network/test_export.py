"""The exported TorchScript streaming step (saved, reloaded) equals the eager `encode_chunk` + `ctc_log_probs`
over consecutive chunks, at batch sizes other than the one it was traced with, for streams of different ages."""

import copy

import pytest
import torch

from model.frontend.features import FEATURE_DIM, N_MFCC
from model.network.encoder import EncoderState, chunk_feature_frames, stack_states
from model.network.export import (EXAMPLE_BATCH, export_onnx, export_torchscript, onnx_available,
                                  read_torchscript_metadata)
from model.network.model import with_companion_encoder, with_expert_gate
from model.network.precision import quantize_linear_layers

# torch.jit is deprecated in torch 2.14 (see model/network/export.py for why it is still used); the warning is known.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

CHUNK = 4
STEPS = 5


def aged_state(model, chunks: int, seed: int) -> EncoderState:
    """A batch-1 state after `chunks` eager steps of random audio features."""
    generator = torch.Generator().manual_seed(seed)
    state = model.initial_state(1)
    frames = chunk_feature_frames(CHUNK)
    with torch.no_grad():
        for _ in range(chunks):
            features = torch.randn(1, frames, model.config.feature_columns, generator=generator) * 3
            _, _, state = model.encode_chunk(features, torch.tensor([frames]), state)
    return state


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    path = export_torchscript(tiny_model, tmp_path_factory.mktemp("export") / "step.pt", CHUNK)
    return torch.jit.load(str(path)), path


@pytest.mark.parametrize("ages", [(0,), (6,), (0, 2, 7)], ids=["b1-new", "b1-old", "b3-mixed"])
def test_exported_step_equals_eager_over_consecutive_chunks(tiny_model, exported, ages):
    step, _ = exported
    assert len(ages) != EXAMPLE_BATCH  # the point: a batch size the trace never saw
    state = stack_states([aged_state(tiny_model, age, seed) for seed, age in enumerate(ages)])
    cache, processed, pitch_stats = state.cache, state.processed_frames, state.pitch_stats
    frames = chunk_feature_frames(CHUNK)
    generator = torch.Generator().manual_seed(len(ages))
    with torch.no_grad():
        for index in range(STEPS):
            features = torch.randn(len(ages), frames, FEATURE_DIM, generator=generator) * 3 + 1
            lengths = torch.full((len(ages),), frames)
            if index == STEPS - 1:
                lengths[0] = 11  # the first stream ends with a short chunk (two encoder frames of four)
            encoded, valid, state = tiny_model.encode_chunk(features, lengths, state)
            log_probs = tiny_model.ctc_log_probs(encoded)
            got = step(features, lengths, cache, processed, pitch_stats)
            torch.testing.assert_close(got[0], log_probs, atol=1e-4, rtol=0)
            torch.testing.assert_close(got[1], encoded, atol=1e-4, rtol=0)
            assert torch.equal(got[2], valid)
            torch.testing.assert_close(got[3], state.cache, atol=1e-4, rtol=0)
            assert torch.equal(got[4], state.processed_frames)
            torch.testing.assert_close(got[5], state.pitch_stats, atol=1e-4, rtol=0)
            # the exported step drives its own state from here on
            cache, processed, pitch_stats = got[3], got[4], got[5]
    assert int(valid[0]) == 2


def test_exported_archive_describes_the_step(tiny_model, exported):
    _, path = exported
    metadata = read_torchscript_metadata(path)
    assert metadata["chunk_frames"] == CHUNK and metadata["chunk_ms"] == 160
    assert metadata["feature_frames"] == chunk_feature_frames(CHUNK)
    assert (metadata["n_layers"], metadata["left_context_frames"], metadata["d_model"]) == (3, 12, 64)
    assert metadata["vocab_size"] == 50 and metadata["quantization"] == "none"


def test_export_refuses_a_model_in_training_mode(tiny_model, tmp_path):
    tiny_model.train()
    try:
        with pytest.raises(ValueError):
            export_torchscript(tiny_model, tmp_path / "step.pt", CHUNK)
    finally:
        tiny_model.eval()


@pytest.mark.skipif(onnx_available(), reason="only checks the fallback when the optional onnx package is missing")
def test_onnx_export_is_skipped_without_onnx(tiny_model, tmp_path):
    assert export_onnx(tiny_model, tmp_path / "step.onnx", CHUNK) is None
    assert not (tmp_path / "step.onnx").exists()


def test_exported_step_of_a_backbone_model_carries_the_backbone_cache(tiny_backbone_model, tmp_path):
    """A model with a backbone exports with its cache as one more input and output, and equals eager over chunks."""
    step = torch.jit.load(str(export_torchscript(tiny_backbone_model, tmp_path / "step.pt", CHUNK)))
    state = stack_states([aged_state(tiny_backbone_model, age, seed) for seed, age in enumerate((0, 3, 9))])
    frames = chunk_feature_frames(CHUNK)
    generator = torch.Generator().manual_seed(5)
    flat = (state.cache, state.processed_frames, state.pitch_stats, state.backbone_cache)
    with torch.no_grad():
        for _ in range(3):
            features = torch.randn(3, frames, FEATURE_DIM, generator=generator) * 3 + 1
            lengths = torch.full((3,), frames)
            encoded, valid, state = tiny_backbone_model.encode_chunk(features, lengths, state)
            got = step(features, lengths, *flat)
            torch.testing.assert_close(got[1], encoded, atol=1e-4, rtol=0)
            torch.testing.assert_close(got[6], state.backbone_cache, atol=1e-4, rtol=0)
            flat = (got[3], got[4], got[5], got[6])


def test_exported_step_of_a_model_with_a_companion_carries_both_encoders_states(tiny_backbone_model, tiny_model,
                                                                                 tmp_path):
    """A companion encoder's state (cache, processed frames, pitch statistics) goes in after the backbone's cache and
    comes out last; the step equals eager over chunks, for streams of different ages."""
    model = with_companion_encoder(tiny_backbone_model, tiny_model).eval()
    assert model.companion is not None
    torch.nn.init.normal_(model.companion.project.weight, std=0.3)
    path = export_torchscript(model, tmp_path / "step.pt", CHUNK)
    step = torch.jit.load(str(path))
    assert read_torchscript_metadata(path)["feature_dim"] == FEATURE_DIM + N_MFCC
    state = stack_states([aged_state(model, age, seed) for seed, age in enumerate((0, 3, 9))])
    assert state.companion is not None and state.backbone_cache is not None
    frames = chunk_feature_frames(CHUNK)
    generator = torch.Generator().manual_seed(5)
    flat = (state.cache, state.processed_frames, state.pitch_stats, state.backbone_cache, state.companion.cache,
            state.companion.processed_frames, state.companion.pitch_stats)
    with torch.no_grad():
        for _ in range(3):
            features = torch.randn(3, frames, FEATURE_DIM + N_MFCC, generator=generator) * 3 + 1
            lengths = torch.full((3,), frames)
            encoded, valid, state = model.encode_chunk(features, lengths, state)
            got = step(features, lengths, *flat)
            assert state.companion is not None
            torch.testing.assert_close(got[1], encoded, atol=1e-4, rtol=0)
            torch.testing.assert_close(got[7], state.companion.cache, atol=1e-4, rtol=0)
            flat = tuple(got[3:])


def test_exported_step_of_a_model_with_an_expert_gate_gives_the_gates_mixture(tiny_backbone_model, tiny_model,
                                                                             tmp_path):
    """With an expert gate the step's log posteriors are the two heads' mixture, and its encoder output carries the
    companion's frames after the main ones, as eager."""
    model = with_expert_gate(with_companion_encoder(tiny_backbone_model, tiny_model), tiny_model).eval()
    assert model.companion is not None and model.companion.gate is not None
    torch.nn.init.normal_(model.companion.project.weight, std=0.3)
    torch.nn.init.normal_(model.companion.gate.score.weight, std=0.05)
    step = torch.jit.load(str(export_torchscript(model, tmp_path / "step.pt", CHUNK)))
    state = stack_states([aged_state(model, age, seed) for seed, age in enumerate((0, 3))])
    assert state.companion is not None and state.backbone_cache is not None
    frames = chunk_feature_frames(CHUNK)
    features = torch.randn(2, frames, FEATURE_DIM + N_MFCC, generator=torch.Generator().manual_seed(5)) * 3 + 1
    lengths = torch.full((2,), frames)
    with torch.no_grad():
        got = step(features, lengths, state.cache, state.processed_frames, state.pitch_stats, state.backbone_cache,
                   state.companion.cache, state.companion.processed_frames, state.companion.pitch_stats)
        encoded, _, _ = model.encode_chunk(features, lengths, state)
        assert encoded.shape[-1] == model.encoded_width
        torch.testing.assert_close(got[1], encoded, atol=1e-4, rtol=0)
        torch.testing.assert_close(got[0], model.ctc_log_probs(encoded), atol=1e-4, rtol=0)


def test_an_int8_model_exports_its_int8_step_as_torchscript_only(tiny_model, tmp_path):
    """ASR_QUANTIZE=int8's network (model.network.precision) traces with fbgemm's packed weights: the exported step
    equals the eager int8 step at another batch size (export_torchscript checks it) and says it is int8; ONNX,
    which has no such operator, is refused rather than exported in float."""
    int8_model = quantize_linear_layers(copy.deepcopy(tiny_model), "int8")
    path = export_torchscript(int8_model, tmp_path / "step.pt", CHUNK)
    assert read_torchscript_metadata(path)["quantization"] == "int8"
    state = stack_states([aged_state(int8_model, age, seed) for seed, age in enumerate((0, 4, 9))])
    features = torch.randn(3, chunk_feature_frames(CHUNK), FEATURE_DIM, generator=torch.Generator().manual_seed(3))
    lengths = torch.full((3,), chunk_feature_frames(CHUNK))
    with torch.no_grad():
        encoded, _, _ = int8_model.encode_chunk(features, lengths, state)
        got = torch.jit.load(str(path))(features, lengths, state.cache, state.processed_frames, state.pitch_stats)
    torch.testing.assert_close(got[1], encoded, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="TorchScript only"):
        export_onnx(int8_model, tmp_path / "step.onnx", CHUNK)
