"""Training above a frozen backbone: the grown model keeps the start model's upper weights, cached backbone frames
are what the model computes, and a few steps on them lower the loss without touching the frozen backbone (tuned top
blocks train with the layers above and are stored in the checkpoint)."""

from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from model.network.checkpoint import load_checkpoint, save_checkpoint, stored_weights
from model.network.encoder import chunk_attention_mask
from model.network.model import SpeechRecognizer
from model.network.whisper_backbone import whisper_base_backbone_state
from model.training.backbone_cache import backbone_frames, frozen_blocks, utterance_audio
from model.training.train_backbone import CachedFrames, backbone_model, forward_batch, load_weights, trained_weights
from model.training.train_config import TrainConfig


def grown(tiny_loaded, tuned_blocks: int = 0) -> SpeechRecognizer:
    start = tiny_loaded.model
    small = replace(start.config.encoder, backbone_width=32, backbone_heads=4, backbone_layers=2)
    return backbone_model(SpeechRecognizer(replace(start.config, encoder=small, syllables=(), syllable_layer=0)), 2,
                          tuned_blocks=tuned_blocks)


def train_steps(model, data: CachedFrames, tokenizer, optimizer, steps: int) -> list[float]:
    """`steps` steps on every cached utterance at once, the views alternating; their losses."""
    config = TrainConfig(train_manifest="", dev_manifest="")
    losses = []
    for step in range(steps):
        loss, _ = forward_batch(model, data, list(range(len(data.rows))), ("full", "chunk")[step % 2], tokenizer,
                                config, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_grown_model_keeps_the_start_models_layers_heads_and_decoder(tiny_loaded):
    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    model = backbone_model(start, start.config.encoder.n_layers)
    ours, theirs = model.state_dict(), start.state_dict()
    for name in ("encoder.layers.0.attn.qkv.weight", "ctc_head.weight", "locale_head.bias", "decoder.embed.weight"):
        if name in theirs:
            assert torch.equal(ours[name], theirs[name]), name
    assert model.encoder.backbone is not None and model.config.encoder.mel == "whisper"
    assert torch.equal(model.cmvn_mean, torch.zeros_like(model.cmvn_mean))  # the backbone reads the MFCC as they are


def test_a_backbone_can_be_the_first_blocks_of_whispers_and_a_backbone_model_can_start_another(tiny_loaded):
    model = grown(tiny_loaded)
    shallower = backbone_model(model, 2, backbone_layers=1)
    assert len(shallower.encoder.backbone.blocks) == 1 and shallower.config.encoder.backbone_layers == 1
    ours, theirs = shallower.state_dict(), model.state_dict()
    kept = [k for k in theirs if k.startswith("encoder.") and not k.startswith("encoder.backbone.") and k in ours]
    assert kept and all(torch.equal(ours[k], theirs[k]) for k in kept)  # the adapter and upper layers go along


def test_a_model_grown_deeper_and_wider_computes_what_its_start_computes_and_its_new_units_learn(tiny_loaded):
    torch.manual_seed(0)
    start = grown(tiny_loaded).eval()
    bigger = backbone_model(start, 4, ffn_dim=256, decoder_ffn_dim=192).eval()
    assert len(bigger.encoder.layers) == 4 and bigger.encoder.layers[0].ffn[0].out_features == 256
    bigger.encoder.backbone.load_state_dict(start.encoder.backbone.state_dict())
    frames, lengths = torch.randn(2, 40, 32), torch.tensor([40, 30])
    tokens, token_lengths = torch.tensor([[3, 5, 6, 7], [3, 8, 9, 9]]), torch.tensor([4, 3])
    with torch.no_grad():
        for chunk in (None, 4):
            ours, our_lengths, _ = bigger.encoder.forward_from_backbone(frames, lengths, chunk, 12)
            theirs, their_lengths, _ = start.encoder.forward_from_backbone(frames, lengths, chunk, 12)
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
            torch.testing.assert_close(bigger.decoder(tokens, token_lengths, ours, our_lengths),
                                       start.decoder(tokens, token_lengths, theirs, their_lengths), atol=1e-6, rtol=0)
    # the zeros that keep it equal are trainable: the new hidden units' outgoing weights and the new layers' outputs
    encoded, encoded_lengths, _ = bigger.train().encoder.forward_from_backbone(frames, lengths, None, None)
    bigger.decoder(tokens, token_lengths, encoded, encoded_lengths).square().mean().backward()
    assert bigger.encoder.layers[0].ffn[3].weight.grad[:, 128:].abs().sum() > 0
    assert bigger.encoder.layers[3].attn.out.weight.grad.abs().sum() > 0
    assert bigger.decoder.layers.layers[0].linear2.weight.grad[:, 128:].abs().sum() > 0


def test_a_runs_trained_weights_carry_over_to_a_new_model_of_its_shape(tiny_loaded, tmp_path):
    torch.manual_seed(0)
    trained = grown(tiny_loaded)
    torch.save({"weights": trained_weights(trained), "trainer": {"step": 7}}, tmp_path / "w.pt")
    torch.manual_seed(1)
    fresh = grown(tiny_loaded)
    assert load_weights(fresh, str(tmp_path / "w.pt")) == {"trainer": {"step": 7}}
    for name, value in trained_weights(trained).items():
        assert torch.equal(fresh.state_dict()[name].half(), value), name
    with pytest.raises(SystemExit, match="does not fit"):
        load_weights(backbone_model(trained, 1), str(tmp_path / "w.pt"))  # one upper layer fewer


def test_cached_frames_train_the_layers_above_and_leave_the_backbone(tiny_loaded, tmp_path):
    torch.manual_seed(0)
    model = grown(tiny_loaded).train()
    model.encoder.backbone.requires_grad_(False)
    frozen = {k: v.clone() for k, v in model.encoder.backbone.state_dict().items()}
    tokenizer = tiny_loaded.tokenizer
    texts = [("今天天气很好", "zh-CN"), ("hello world", "en-US"), ("我哋去食飯", "yue-HK")] * 2
    features = [torch.randn(60 + 9 * i, 80) for i in range(len(texts))]
    with torch.no_grad():
        views = {view: backbone_frames(model, features, view, 4, model.config.encoder.left_context_frames)
                 for view in ("full", "chunk")}
        # the cached full-context frames are the backbone's own output for that utterance
        width = views["full"][0].shape[0]
        direct = model.encoder.backbone(model.normalize(features[0][None]), chunk_attention_mask(
            torch.tensor([width]), (features[0].shape[0] - 5) // 2 + 1, None, None))[0, :width]
        torch.testing.assert_close(views["full"][0].float(), direct, atol=2e-2, rtol=0)  # stored as float16
    rows = [{"id": str(i), "text": t, "locale": loc, "duration": 1.0} for i, (t, loc) in enumerate(texts)]
    torch.save({"rows": rows, **views, "chunk_frames": 4, "left_frames": 12}, tmp_path / "shard_00000.pt")
    data = CachedFrames([tmp_path], tokenizer)
    assert len(data.rows) == len(texts)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = train_steps(model, data, tokenizer, optimizer, 12)
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert all(torch.equal(v, frozen[k]) for k, v in model.encoder.backbone.state_dict().items())


def test_with_tuned_top_blocks_the_cache_holds_the_frames_below_them_and_training_moves_only_those(tiny_loaded,
                                                                                                   tmp_path):
    """init --tune-backbone-blocks 1: the cache keeps the first block's output, training runs the second block and
    the final norm over it (under each view's mask) to exactly what the whole backbone gives, and trains them with
    the layers above while the frozen block stays Whisper's."""
    torch.manual_seed(0)
    model = grown(tiny_loaded, tuned_blocks=1).train()
    assert frozen_blocks(model) == 1
    tokenizer = tiny_loaded.tokenizer
    texts = [("今天天气很好", "zh-CN"), ("hello world", "en-US"), ("我哋去食飯", "yue-HK")] * 2
    features = [torch.randn(60 + 9 * i, 80) for i in range(len(texts))]
    left = model.config.encoder.left_context_frames
    model.eval()
    with torch.no_grad():
        views = {view: backbone_frames(model, features, view, 4, left) for view in ("full", "chunk")}
        lengths = torch.tensor([f.shape[0] for f in features])
        padded_features = model.normalize(torch.nn.utils.rnn.pad_sequence(features, batch_first=True))
        for view, (chunk, context) in {"full": (None, None), "chunk": (4, left)}.items():
            whole, frame_lengths = model.encoder.backbone_frames(padded_features, lengths, chunk, context)
            expected, _, _ = model.encoder.forward_from_backbone(whole, frame_lengths, chunk, context)
            below = torch.nn.utils.rnn.pad_sequence([f.float() for f in views[view]], batch_first=True)
            got, got_lengths, _ = model.encoder.forward_from_backbone(below, frame_lengths, chunk, context,
                                                                      after_block=1)
            for row, n in enumerate(got_lengths.tolist()):
                torch.testing.assert_close(got[row, :n], expected[row, :n], atol=3e-2, rtol=0)  # cached as float16
    model.train()
    rows = [{"id": str(i), "text": t, "locale": loc, "duration": 1.0} for i, (t, loc) in enumerate(texts)]
    torch.save({"rows": rows, **views, "chunk_frames": 4, "left_frames": left}, tmp_path / "shard_00000.pt")
    with pytest.raises(SystemExit, match="after block None"):  # a cache of the whole backbone does not fit
        CachedFrames([tmp_path], tokenizer, after_block=1)
    torch.save({"rows": rows, **views, "chunk_frames": 4, "left_frames": left, "after_block": 1},
               tmp_path / "shard_00000.pt")
    data = CachedFrames([tmp_path], tokenizer, after_block=1)
    stored = stored_weights(model)
    trained = [p for name, p in model.named_parameters() if name in stored]
    assert {name for name in stored if name.startswith("encoder.backbone.")} == {f"encoder.backbone.{n}" for n in (
                "blocks.1.attn_norm.weight", "blocks.1.attn_norm.bias", "blocks.1.qkv.weight", "blocks.1.qkv.bias",
                "blocks.1.out.weight", "blocks.1.out.bias", "blocks.1.mlp_norm.weight", "blocks.1.mlp_norm.bias",
                "blocks.1.mlp.0.weight", "blocks.1.mlp.0.bias", "blocks.1.mlp.2.weight", "blocks.1.mlp.2.bias",
                "final_norm.weight", "final_norm.bias")}
    before = {k: v.clone() for k, v in model.encoder.backbone.state_dict().items()}
    train_steps(model, data, tokenizer, torch.optim.AdamW(trained, lr=3e-3), 3)
    after = model.encoder.backbone.state_dict()
    assert not torch.equal(after["blocks.1.qkv.weight"], before["blocks.1.qkv.weight"])
    assert not torch.equal(after["final_norm.weight"], before["final_norm.weight"])
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("blocks.0.", "conv")))


def test_a_checkpoint_stores_the_tuned_backbone_blocks_and_takes_the_rest_from_whispers_package(tiny_loaded, tmp_path):
    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    model = backbone_model(start, 1, backbone_layers=2, tuned_blocks=1)  # Whisper base's width: its real weights
    model.encoder.backbone.load_state_dict(whisper_base_backbone_state(2))
    with torch.no_grad():
        model.encoder.backbone.blocks[1].qkv.weight.add_(0.5)  # "tuned"
    save_checkpoint(tmp_path / "m.pt", model, tiny_loaded.tokenizer, "tuned", "0.0.1", {})
    stored = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert any(k.startswith("encoder.backbone.blocks.1.") for k in stored)
    assert not any(k.startswith(("encoder.backbone.blocks.0.", "encoder.backbone.conv")) for k in stored)
    loaded = load_checkpoint(tmp_path / "m.pt").model.encoder.backbone
    torch.testing.assert_close(loaded.blocks[1].qkv.weight, model.encoder.backbone.blocks[1].qkv.weight)
    torch.testing.assert_close(loaded.blocks[0].qkv.weight, whisper_base_backbone_state(2)["blocks.0.qkv.weight"])


def test_a_repeated_cache_enters_each_epoch_that_many_times(tmp_path):
    from model.training.train_backbone import cache_spec

    assert cache_spec("data/bb/kokoro-yue:3") == (Path("data/bb/kokoro-yue"), 3)
    assert cache_spec("data/bb/synth") == (Path("data/bb/synth"), 1)
    data = CachedFrames.__new__(CachedFrames)
    data.lengths, data.repeats = np.array([10, 20, 30]), [1, 1, 3]
    batches = data.batches(np.random.default_rng(0), max_frames=10_000)
    drawn = sorted(i for batch in batches for i in batch)
    assert drawn == [0, 1, 2, 2, 2]


def test_a_cached_utterance_under_capture_is_its_own_recording_every_time(tmp_path):
    """backbone_cache --augment capture: each utterance drawn from (seed, id), so a cache rebuilt is the same cache
    and two utterances get different rooms, microphones and codecs."""
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", tone, 16000)
    row = {"id": "a", "audio": str(tmp_path / "a.wav")}
    plain = utterance_audio(row, None, 0)
    captured = utterance_audio(row, "capture", 0)
    assert torch.allclose(plain, torch.from_numpy(tone), atol=1e-4)  # as written (16-bit)
    assert captured.shape == plain.shape and not torch.equal(captured, plain)
    assert torch.equal(captured, utterance_audio(row, "capture", 0))
    assert not torch.equal(captured, utterance_audio({**row, "id": "b"}, "capture", 0))
    assert not torch.equal(captured, utterance_audio(row, "capture", 1))


def test_training_saves_its_run_and_a_second_call_continues_it(tiny_loaded, tmp_path):
    """`train` end to end on a cache: it saves the run (weights, optimizer, progress), and a second call with a
    longer schedule continues the same run instead of starting over."""
    from model.training.train_backbone import main

    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    model = backbone_model(start, 1, backbone_layers=1)  # Whisper base's width: its real weights load
    save_checkpoint(tmp_path / "init.pt", model, tiny_loaded.tokenizer, "tiny", "0.0.1", {})
    generator = torch.Generator().manual_seed(0)
    texts = [("今天天气很好", "zh-CN"), ("hello world", "en-US"), ("我哋去食飯", "yue-HK")]
    frames = [torch.randn(40 + 8 * i, 512, generator=generator).half() for i in range(len(texts))]
    rows = [{"id": str(i), "text": t, "locale": loc, "duration": 1.0} for i, (t, loc) in enumerate(texts)]
    (tmp_path / "cache").mkdir()
    torch.save({"rows": rows, "full": frames, "chunk": frames, "chunk_frames": 16, "left_frames": 64},
               tmp_path / "cache" / "shard_00000.pt")

    def train_for(minutes: float) -> dict:
        main(["train", "--init", str(tmp_path / "init.pt"), "--cache", str(tmp_path / "cache"), "--out",
              str(tmp_path / "run"), "--minutes", str(minutes), "--threads", "1"])
        return load_checkpoint(tmp_path / "run" / "last.pt").metadata["trainer"]

    first = train_for(0.02)
    assert first["step"] > 0 and (tmp_path / "run" / "optimizer.pt").exists()
    assert train_for(0.04)["step"] > first["step"]  # the schedule spans 0.04 minutes in all: it goes on


def test_companion_frames_are_cached_beside_a_backbone_cache_and_train_the_projection(tiny_loaded, tmp_path):
    """companion_cache writes the convolutional model's frames of the backbone cache's own utterances (same order,
    both views, two backbone frames per companion frame); training reads both streams and moves the companion's
    projection and the layers above, never the frozen companion."""
    from model.corpus.manifest import Utterance, write_manifest
    from model.network.model import with_companion_encoder
    from model.training.companion_cache import companion_path, main as cache_companion

    torch.manual_seed(0)
    companion = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0)).eval()
    save_checkpoint(tmp_path / "companion.pt", companion, tiny_loaded.tokenizer, "conv", "0.0.1", {})
    model = with_companion_encoder(grown(tiny_loaded), companion)
    texts = [("今天天气很好", "zh-CN"), ("hello world", "en-US"), ("我哋去食飯", "yue-HK")] * 2
    rng = np.random.default_rng(0)
    utterances = []
    for i, (text, locale) in enumerate(texts):
        soundfile.write(tmp_path / f"{i}.wav", (0.1 * rng.standard_normal(8000 + 1600 * i)).astype(np.float32), 16000)
        utterances.append(Utterance(str(i), f"{i}.wav", text, locale, "s", 0.5 + 0.1 * i))
    write_manifest(tmp_path / "manifest.jsonl", utterances)
    extractor = model.config.feature_extractor()
    features = [extractor(utterance_audio({"audio": str(tmp_path / f"{i}.wav"), "id": str(i)}, None, 0))
                for i in range(len(texts))]
    model.eval()
    with torch.no_grad():
        views = {view: backbone_frames(model, features, view, 4, model.config.encoder.left_context_frames)
                 for view in ("full", "chunk")}
    rows = [{"id": str(i), "text": t, "locale": loc, "duration": 1.0} for i, (t, loc) in enumerate(texts)]
    (tmp_path / "cache").mkdir()
    shard = tmp_path / "cache" / "shard_00000.pt"
    torch.save({"rows": rows, **views, "chunk_frames": 4, "left_frames": 12}, shard)
    with pytest.raises(SystemExit, match="companion_cache"):
        CachedFrames([tmp_path / "cache"], tiny_loaded.tokenizer, companion=True)
    cache_companion(["--companion", str(tmp_path / "companion.pt"), "--cache", str(tmp_path / "cache"),
                     "--manifest", str(tmp_path / "manifest.jsonl")])
    cached = torch.load(companion_path(shard), weights_only=True)
    assert cached["ids"] == [r["id"] for r in rows]
    with torch.no_grad():
        lengths = torch.tensor([features[0].shape[0]])
        expected = model.companion.frames(features[0][None], lengths, 4, 12)[0]
    torch.testing.assert_close(cached["chunk"][0].float(), expected, atol=2e-2, rtol=0)  # stored as float16
    data = CachedFrames([tmp_path / "cache"], tiny_loaded.tokenizer, companion=True)
    model.train()
    frozen = {k: v.clone() for k, v in model.companion.encoder.state_dict().items()}
    projection = model.companion.project.weight.clone()
    trained = [p for n, p in model.named_parameters() if not n.startswith(("encoder.backbone.", "companion.encoder."))]
    losses = train_steps(model, data, tiny_loaded.tokenizer, torch.optim.AdamW(trained, lr=3e-3), 12)
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert not torch.equal(model.companion.project.weight, projection)
    assert all(torch.equal(v, frozen[k]) for k, v in model.companion.encoder.state_dict().items())


def test_the_expert_gate_learns_which_heads_voices_a_frame_sounds_like(tiny_loaded, tmp_path):
    """train_gate end to end on two caches whose companion frames differ in kind (as espeak-ng's and the natural voices'
    do): the saved model has the companion's CTC head and a gate that leans to the companion on the one and to the
    main head on the other, with greedy reports of both heads and the mixture; nothing but the gate moves."""
    from model.network.model import with_companion_encoder
    from model.training.companion_cache import companion_path
    from model.training.train_gate import main as train_gate

    torch.manual_seed(0)
    companion = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0)).eval()
    save_checkpoint(tmp_path / "companion.pt", companion, tiny_loaded.tokenizer, "conv", "0.0.1", {})
    start = SpeechRecognizer(replace(tiny_loaded.model.config, syllables=(), syllable_layer=0))
    model = with_companion_encoder(backbone_model(start, 1, backbone_layers=1), companion)  # Whisper base's width
    save_checkpoint(tmp_path / "model.pt", model, tiny_loaded.tokenizer, "fused", "0.0.1", {})
    generator = torch.Generator().manual_seed(0)
    texts = [("今天天气很好", "zh-CN"), ("hello world", "en-US"), ("我哋去食飯", "yue-HK")] * 4
    width = companion.config.encoder.d_model
    for name, loud in (("espeak", slice(0, width // 2)), ("natural", slice(width // 2, width))):
        frames = [torch.randn(40 + 8 * i, 512, generator=generator).half() for i in range(len(texts))]
        kind = [torch.randn(f.shape[0] // 2, width, generator=generator) for f in frames]
        for k in kind:
            k[:, loud] += 3.0  # which half of the companion's channels is loud tells the kind of voice
        rows = [{"id": f"{name}{i}", "text": t, "locale": loc, "duration": 1.0} for i, (t, loc) in enumerate(texts)]
        (tmp_path / name).mkdir()
        shard = tmp_path / name / "shard_00000.pt"
        torch.save({"rows": rows, "full": frames, "chunk": frames, "chunk_frames": 16, "left_frames": 64}, shard)
        halves = [k.half() for k in kind]
        torch.save({"ids": [r["id"] for r in rows], "full": halves, "chunk": halves}, companion_path(shard))
    train_gate(["--checkpoint", str(tmp_path / "model.pt"), "--companion", str(tmp_path / "companion.pt"),
                "--companion-voices", str(tmp_path / "espeak"), "--main-voices", str(tmp_path / "natural"),
                "--dev-cache", str(tmp_path / "espeak"), str(tmp_path / "natural"), "--epochs", "10", "--lr", "3e-2",
                "--threads", "1", "--out", str(tmp_path / "gated")])
    gated = load_checkpoint(tmp_path / "gated" / "last.pt")
    assert gated.model.config.companion_gate and gated.metadata["expert_gate"]["main_voices"] == ["natural"]
    assert gated.model.companion is not None and gated.model.companion.ctc_head is not None
    torch.testing.assert_close(gated.model.companion.ctc_head.weight, companion.ctc_head.weight)
    before = load_checkpoint(tmp_path / "model.pt").model.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in gated.model.state_dict().items() if k in before)
    report = json.loads((tmp_path / "gated" / "gate.json").read_text())
    for view in ("full", "chunk"):
        espeak, natural = report["dev"]["espeak"][view], report["dev"]["natural"][view]
        assert set(espeak) == {"main", "companion", "mixture", "mean_gate"}
        assert max(espeak["mean_gate"].values()) < 0.2 and min(natural["mean_gate"].values()) > 0.8, report
