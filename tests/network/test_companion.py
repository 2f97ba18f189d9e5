"""A companion encoder beside the backbone (model.network.companion): a model given one computes what it did before,
its streams equal its chunk-masked offline output with both encoders' states carried, its frames are the convolutional
model's own encoder output, and checkpoints keep it. With an expert gate, the CTC posteriors mix the two models' heads:
open, the model reads as before; closed, as the companion's own model; streamed, as offline."""

from dataclasses import replace

import torch

from model.frontend.features import FEATURE_DIM, N_MFCC, FeatureExtractor
from model.network.checkpoint import load_checkpoint, save_checkpoint
from model.network.companion import companion_columns
from model.network.encoder import EncoderConfig, stack_states, unstack_states
from model.network.model import GATE_OPEN, ModelConfig, SpeechRecognizer, with_companion_encoder, with_expert_gate
from model.network.whisper_backbone import whisper_base_backbone_state
from model.recognition.streaming import encode_streaming
from model.training.train_backbone import backbone_model

COLUMNS = FEATURE_DIM + N_MFCC  # a feature frame with the companion's MFCC after the main one's and the pitch


def pitch_model(tiny_loaded) -> SpeechRecognizer:
    """A convolutional model that reads pitch through the voicing gate and the relative log F0, as 0.14.0 does."""
    torch.manual_seed(1)
    encoder = replace(tiny_loaded.model.config.encoder, pitch_dim=2, pitch_voicing_gate=0.6,
                      relative_pitch_prior_frames=50.0)
    model = SpeechRecognizer(replace(tiny_loaded.model.config, encoder=encoder, syllables=(), syllable_layer=0))
    with torch.no_grad():
        model.cmvn_mean.normal_(0, 1)
        model.cmvn_istd.uniform_(0.5, 2.0)
    return model.eval()


def backbone_start(tiny_loaded) -> SpeechRecognizer:
    torch.manual_seed(0)
    start = tiny_loaded.model
    small = replace(start.config.encoder, backbone_width=32, backbone_heads=4, backbone_layers=2)
    return backbone_model(SpeechRecognizer(replace(start.config, encoder=small, syllables=(), syllable_layer=0)),
                          2).eval()


def features(frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(frames, COLUMNS, generator=generator)
    x[:, N_MFCC] = torch.rand(frames, generator=generator)  # voicing in [0, 1]: some frames pass the gate
    return x


def test_a_model_given_a_companion_computes_what_it_did_before(tiny_loaded):
    start = backbone_start(tiny_loaded)
    model = with_companion_encoder(start, pitch_model(tiny_loaded)).eval()
    x = torch.stack([features(90), features(90, seed=1)])
    lengths = torch.tensor([90, 71])
    with torch.no_grad():
        for chunk, left in ((None, None), (4, 12)):
            ours, our_lengths = model.encode(x, lengths, chunk, left)
            theirs, their_lengths = start.encode(x[..., :FEATURE_DIM], lengths, chunk, left)
            assert torch.equal(our_lengths, their_lengths)
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_the_companion_reads_its_own_mfcc_and_the_pitch_as_its_model_did():
    audio = torch.randn(16_000) * 0.1
    fused = FeatureExtractor("whisper", "htk")(audio)
    own = FeatureExtractor("htk")(audio)
    assert fused.shape[1] == COLUMNS
    torch.testing.assert_close(companion_columns(fused, EncoderConfig(pitch_dim=2)), own)
    torch.testing.assert_close(fused[:, :FEATURE_DIM], FeatureExtractor("whisper")(audio))


def test_companion_frames_are_the_convolutional_models_own_encoder_output(tiny_loaded):
    companion = pitch_model(tiny_loaded)
    model = with_companion_encoder(backbone_start(tiny_loaded), companion).eval()
    assert model.companion is not None
    x = features(80)
    own = companion_columns(x, companion.config.encoder)  # the columns its model's own front end gives
    with torch.no_grad():
        for chunk, left in ((None, None), (4, 12)):
            expected, _ = companion.encode(own[None], torch.tensor([80]), chunk, left)
            torch.testing.assert_close(model.companion.frames(x[None], torch.tensor([80]), chunk, left), expected)


def test_a_stream_with_a_companion_equals_its_chunk_masked_offline_output(tiny_loaded):
    model = with_companion_encoder(backbone_start(tiny_loaded), pitch_model(tiny_loaded)).eval()
    assert model.companion is not None
    torch.nn.init.normal_(model.companion.project.weight, std=0.3)  # as if trained: the companion counts
    x = features(203)
    left = model.config.encoder.left_context_frames
    with torch.no_grad():
        offline, _ = model.encode(x[None], torch.tensor([203]), 4, left)
        for piece in (None, 13, 50):
            streamed = encode_streaming(model, x, 4, piece_frames=piece)
            torch.testing.assert_close(streamed, offline[0], atol=1e-4, rtol=0)
        torch.nn.init.zeros_(model.companion.project.weight)  # the companion's frames did count
        assert not torch.allclose(model.encode(x[None], torch.tensor([203]), 4, left)[0], offline, atol=1e-3)


def test_streams_of_different_ages_batch_with_their_companion_states(tiny_loaded):
    model = with_companion_encoder(backbone_start(tiny_loaded), pitch_model(tiny_loaded)).eval()
    assert model.companion is not None
    torch.nn.init.normal_(model.companion.project.weight, std=0.3)
    chunk = features(4 * 3 + 3)[None]
    lengths = torch.tensor([chunk.shape[1]])
    with torch.no_grad():
        young = model.initial_state()
        _, _, old = model.encode_chunk(features(15, seed=2)[None], lengths, model.initial_state())
        alone = [model.encode_chunk(chunk, lengths, state) for state in (young, old)]
        batched, _, state = model.encode_chunk(chunk.repeat(2, 1, 1), lengths.repeat(2), stack_states([young, old]))
    for row, (encoded, _, next_state) in enumerate(alone):
        torch.testing.assert_close(batched[row], encoded[0], atol=1e-5, rtol=0)
        split = unstack_states(state)[row]
        assert split.companion is not None and next_state.companion is not None
        torch.testing.assert_close(split.companion.cache, next_state.companion.cache, atol=1e-5, rtol=0)


def test_a_checkpoint_keeps_the_companion_and_its_front_end(tiny_loaded, tmp_path):
    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    whisper = backbone_model(start, 1, backbone_layers=2)  # Whisper base's width: a checkpoint reads its weights
    whisper.encoder.backbone.load_state_dict(whisper_base_backbone_state(2))
    model = with_companion_encoder(whisper, pitch_model(tiny_loaded)).eval()
    assert model.companion is not None
    torch.nn.init.normal_(model.companion.project.weight, std=0.3)
    save_checkpoint(tmp_path / "m.pt", model, tiny_loaded.tokenizer, "fused", "0.0.1", {})
    loaded = load_checkpoint(tmp_path / "m.pt").model.eval()
    assert loaded.config == model.config and loaded.config.companion == model.config.companion
    assert loaded.config.feature_extractor().feature_dim == loaded.config.feature_columns == COLUMNS
    x = features(60)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x[None], torch.tensor([60]))[0], model.encode(x[None],
                                                                                             torch.tensor([60]))[0])
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config


def test_training_moves_the_projection_and_never_the_companion(tiny_loaded):
    model = with_companion_encoder(backbone_start(tiny_loaded), pitch_model(tiny_loaded)).train()
    assert model.companion is not None
    frozen = {k: v.clone() for k, v in model.companion.encoder.state_dict().items()}
    assert not model.companion.encoder.training  # no dropout in the frozen encoder
    x = features(80)[None]
    encoded, _ = model.encode(x, torch.tensor([80]))
    model.ctc_head(encoded).square().mean().backward()
    assert model.companion.project.weight.grad is not None and model.companion.project.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.companion.encoder.parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in model.companion.encoder.state_dict().items())


def assert_same_posteriors(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Equal best tokens, and equal log posteriors wherever they are not negligible (a gate's sigmoid is never 0 or 1:
    the other head's share of an all but impossible token shows)."""
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))
    likely = theirs > -8
    torch.testing.assert_close(ours[likely], theirs[likely], atol=1e-3, rtol=0)


def gated_model(tiny_loaded, start: SpeechRecognizer | None = None
                ) -> tuple[SpeechRecognizer, SpeechRecognizer, SpeechRecognizer]:
    """(the gated model, the same model without the gate, the companion's own model), the projection as if trained."""
    companion = pitch_model(tiny_loaded)
    before = with_companion_encoder(start or backbone_start(tiny_loaded), companion).eval()
    assert before.companion is not None
    torch.nn.init.normal_(before.companion.project.weight, std=0.3)
    return with_expert_gate(before, companion).eval(), before, companion


def test_a_new_expert_gate_leaves_the_models_posteriors_as_they_were(tiny_loaded):
    model, before, _ = gated_model(tiny_loaded)
    x = torch.stack([features(90), features(90, seed=1)])
    lengths = torch.tensor([90, 71])
    with torch.no_grad():
        for chunk, left in ((None, None), (4, 12)):
            ours, _ = model.encode(x, lengths, chunk, left)
            theirs, _ = before.encode(x, lengths, chunk, left)
            assert ours.shape[-1] == model.encoded_width == before.encoded_width + model.config.companion.d_model
            torch.testing.assert_close(model.main_frames(ours), theirs)  # the decoder's memory is unchanged
            assert_same_posteriors(model.ctc_log_probs(ours, torch.tensor([0, -1])),
                                   before.ctc_log_probs(theirs, torch.tensor([0, -1])))


def test_a_closed_expert_gate_reads_as_the_companions_own_model(tiny_loaded):
    model, _, companion = gated_model(tiny_loaded)
    assert model.companion is not None and model.companion.gate is not None
    torch.nn.init.constant_(model.companion.gate.score.bias, -GATE_OPEN)
    x = features(80)
    own = companion_columns(x, companion.config.encoder)
    with torch.no_grad():
        for chunk, left in ((None, None), (4, 12)):
            ours, _ = model.encode(x[None], torch.tensor([80]), chunk, left)
            theirs, _ = companion.encode(own[None], torch.tensor([80]), chunk, left)
            assert_same_posteriors(model.ctc_log_probs(ours), companion.ctc_log_probs(theirs))


def trained_gate(model: SpeechRecognizer) -> SpeechRecognizer:
    """As if trained: frames differ in which head they trust."""
    assert model.companion is not None and model.companion.gate is not None
    torch.nn.init.normal_(model.companion.gate.score.weight, std=0.05)
    torch.nn.init.zeros_(model.companion.gate.score.bias)
    return model


def test_a_gated_stream_reads_as_the_chunk_masked_offline_model(tiny_loaded):
    model = trained_gate(gated_model(tiny_loaded)[0])
    assert model.companion is not None and model.companion.gate is not None
    x = features(203)
    left = model.config.encoder.left_context_frames
    with torch.no_grad():
        offline, _ = model.encode(x[None], torch.tensor([203]), 4, left)
        logits = model.companion.gate(model.main_frames(offline), offline[..., model.config.encoder.d_model :])
        model.companion.gate.score.bias -= logits.median()  # half the frames lean on each head
        assert (logits - logits.median()).min() < -0.2 and (logits - logits.median()).max() > 0.2
        expected = model.ctc_log_probs(offline)[0]
        for piece in (None, 13):
            streamed = encode_streaming(model, x, 4, piece_frames=piece)
            torch.testing.assert_close(model.ctc_log_probs(streamed[None])[0], expected, atol=1e-4, rtol=0)


def test_a_checkpoint_keeps_the_expert_gate(tiny_loaded, tmp_path):
    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    whisper = backbone_model(start, 1, backbone_layers=2)  # Whisper base's width: a checkpoint reads its weights
    whisper.encoder.backbone.load_state_dict(whisper_base_backbone_state(2))
    model = trained_gate(gated_model(tiny_loaded, whisper)[0])
    save_checkpoint(tmp_path / "m.pt", model, tiny_loaded.tokenizer, "gated", "0.0.1", {})
    loaded = load_checkpoint(tmp_path / "m.pt").model.eval()
    assert loaded.config == model.config and loaded.config.companion_gate
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config
    x = features(60)
    with torch.no_grad():
        torch.testing.assert_close(loaded.ctc_log_probs(loaded.encode(x[None], torch.tensor([60]))[0]),
                                   model.ctc_log_probs(model.encode(x[None], torch.tensor([60]))[0]))
