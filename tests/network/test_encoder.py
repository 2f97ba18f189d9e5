"""Streaming encoder contracts: chunk-by-chunk == masked full forward; a batch of streams of different ages ==
each stream alone; unstack(stack(states)) == states; chunk-step cost does not depend on stream age."""

import pytest
import torch

from model.frontend.features import FEATURE_DIM
from model.network.encoder import EncoderState, chunk_feature_frames, stack_states, unstack_states
from model.recognition.streaming import FeatureBuffer, encode_streaming, take_chunk


@pytest.mark.parametrize("model_name", ["tiny_model", "tiny_backbone_model"])
@pytest.mark.parametrize("chunk_frames", [1, 4, 8, 16])
@pytest.mark.parametrize("feature_frames", [7, 50, 203, 430])
def test_chunked_encoder_equals_masked_full_forward(request, model_name, chunk_frames, feature_frames):
    tiny_model = request.getfixturevalue(model_name)
    torch.manual_seed(feature_frames)
    features = torch.randn(feature_frames, FEATURE_DIM) * 3 + 1
    left = tiny_model.config.encoder.left_context_frames
    with torch.no_grad():
        full, lengths = tiny_model.encode(features[None], torch.tensor([feature_frames]), chunk_frames, left)
    streamed = encode_streaming(tiny_model, features, chunk_frames, piece_frames=13)
    assert streamed.shape[0] == int(lengths[0])
    torch.testing.assert_close(streamed, full[0, : int(lengths[0])], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("model_name", ["tiny_model", "tiny_backbone_model"])
def test_batch_of_streams_of_different_ages_equals_each_alone(request, model_name):
    """Three streams, started at different times, share batched steps; each row matches its solo run."""
    tiny_model = request.getfixturevalue(model_name)
    torch.manual_seed(1)
    chunk = 4
    need = chunk_feature_frames(chunk)
    utterances = [torch.randn(n, FEATURE_DIM) for n in (300, 200, 120)]
    solo = [encode_streaming(tiny_model, u, chunk) for u in utterances]
    starts = [0, 3, 9]  # the chunk step at which each stream joins
    buffers = [FeatureBuffer(u) for u in utterances]
    states: list[EncoderState | None] = [None] * 3
    outputs: list[list[torch.Tensor]] = [[], [], []]
    with torch.no_grad():
        for step in range(40):
            rows, chunks = [], []
            for i in range(3):
                if step < starts[i]:
                    continue
                piece, buffers[i] = take_chunk(buffers[i], chunk, final=True)
                if piece is not None:
                    rows.append(i)
                    chunks.append(piece)
                    states[i] = states[i] or tiny_model.encoder.initial_state(1)
            if not rows:
                continue
            batch = torch.stack([c.features for c in chunks])
            lengths = torch.tensor([c.valid_frames for c in chunks])
            encoded, valid, state = tiny_model.encode_chunk(batch, lengths, stack_states([states[i] for i in rows]))
            for row, (i, next_state) in enumerate(zip(rows, unstack_states(state))):
                states[i] = next_state
                outputs[i].append(encoded[row, : int(valid[row])])
    for i in range(3):
        torch.testing.assert_close(torch.cat(outputs[i]), solo[i], atol=2e-5, rtol=1e-4)
    assert need == 4 * chunk + 3


def test_unstack_is_the_inverse_of_stack(tiny_model):
    torch.manual_seed(2)
    states = [
        EncoderState(torch.randn(1, 3, 2, 12, 64), torch.tensor([n]), torch.randn(1, 2)) for n in (0, 5, 40)
    ]
    for original, restored in zip(states, unstack_states(stack_states(states))):
        assert torch.equal(original.cache, restored.cache)
        assert torch.equal(original.processed_frames, restored.processed_frames)
        assert torch.equal(original.pitch_stats, restored.pitch_stats)
    batched = stack_states(states)
    again = stack_states(unstack_states(batched))
    assert torch.equal(batched.cache, again.cache) and torch.equal(batched.processed_frames, again.processed_frames)
    assert torch.equal(batched.pitch_stats, again.pitch_stats)


def test_state_size_is_fixed_whatever_the_stream_age(tiny_model):
    """The cache is fixed-size, so a chunk step costs the same at 1 s and at 60 s (the benchmark measures time)."""
    torch.manual_seed(3)
    state = tiny_model.encoder.initial_state(1)
    shapes = set()
    with torch.no_grad():
        for _ in range(30):
            _, _, state = tiny_model.encode_chunk(torch.randn(1, chunk_feature_frames(4), FEATURE_DIM),
                                                  torch.tensor([19]), state)
            shapes.add(tuple(state.cache.shape))
    assert shapes == {(1, 3, 2, 12, 64)}
    assert int(state.processed_frames[0]) == 120


@pytest.mark.parametrize("bundled", ["default", "synthetic-voices"])
def test_the_training_forward_keeps_every_tensor_on_the_model_device_even_cuda(bundled):
    """No GPU here, so the network runs on a fake CUDA device (torch's FakeTensorMode: shapes, dtypes and devices
    without data). A tensor made on the CPU inside the forward (a mask, a position table) and met by a CUDA one
    raises a device mismatch, as it would on a GPU. Covers the training forward and the offline encoder, full context
    and chunked, for each bundled model (the default's backbone, companion and gate; the synthetic-voices model's pitch
    path and syllable head); the backward pass, the CTC loss and the streaming step (its branches read data) need a
    real GPU."""
    from torch._subclasses.fake_tensor import FakeTensorDeviceMismatchError, FakeTensorMode

    from model.network.checkpoint import load_checkpoint

    model = load_checkpoint(bundled).model
    cuda = torch.device("cuda", 0)
    overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # fake parameters cannot be swapped in place
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            model = model.to(cuda)
            features = torch.randn(2, 300, model.config.feature_columns, device=cuda)
            lengths = torch.tensor([300, 250], device=cuda)
            tokens, token_lengths = torch.randint(4, 100, (2, 10), device=cuda), torch.tensor([10, 7], device=cuda)
            for chunk, left in ((None, None), (16, 64)):
                outputs = model(features, lengths, chunk, left, tokens, token_lengths)
                assert all(o.device == cuda for o in outputs if o is not None)
                encoded, encoded_lengths = model.encode(features, lengths, chunk, left)
                log_probs = model.ctc_log_probs(encoded, torch.tensor([0, -1], device=cuda))
                assert {encoded.device, encoded_lengths.device, log_probs.device} == {cuda}
            with pytest.raises(FakeTensorDeviceMismatchError):  # the check bites: a CPU tensor met by a CUDA one
                model.ctc_log_probs(encoded, torch.tensor([0, -1]))
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
