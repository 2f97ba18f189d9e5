"""Training the layers above a frozen backbone (model.network.whisper_backbone) on its cached outputs.

The backbone is frozen and costs most of a training step on a CPU, so its outputs are computed once per utterance
and stored (float16, shards of utterances, resumable): full context, and the streaming view (the chunk mask of
`chunk_frames` encoder frames with `left_frames` of left context) that `forward_chunk` computes frame for frame.

    python -m model.training.backbone_cache --checkpoint START.pt --manifest data/synth/train.jsonl \
        --out data/bb/train [--per-locale N] [--seed 0]

A checkpoint whose top backbone blocks are tuned (`train_backbone init --tune-backbone-blocks N`) is cached below
them: the frames after the frozen blocks, which training then runs through the tuned ones.

`--augment capture` caches each utterance as a real recording would have it (model.corpus.augment.capture: room,
microphone, noise, gain, clipping, codec), seeded per utterance: a second acoustic view of a natural voice at the
cost of its backbone frames, far less than rendering it again.
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.corpus.augment import augment
from model.corpus.manifest import read_manifest
from model.frontend.audio import load_audio_file
from model.network.checkpoint import atomic_save, load_checkpoint

SHARD_UTTERANCES = 64
BATCH_UTTERANCES = 8
VIEWS = ("full", "chunk")


def frozen_blocks(model) -> int | None:
    """The backbone blocks below the ones training tunes, whose output a cache keeps (None: the whole backbone's)."""
    encoder = model.config.encoder
    return encoder.backbone_layers - encoder.backbone_tuned_blocks if encoder.backbone_tuned_blocks else None


def backbone_frames(model, features: list[torch.Tensor], view: str, chunk_frames: int, left_frames: int
                    ) -> list[torch.Tensor]:
    """Feature frames of a few utterances -> each one's backbone frames (W, E) float16, in the given view: the
    output of the frozen blocks (below any that training tunes)."""
    lengths = torch.tensor([f.shape[0] for f in features])
    padded = model.normalize(torch.nn.utils.rnn.pad_sequence(features, batch_first=True))
    chunk, left = (None, None) if view == "full" else (chunk_frames, left_frames)
    frames, frame_lengths = model.encoder.backbone_frames(padded, lengths, chunk, left, frozen_blocks(model))
    return [frames[i, : int(n)].half().clone() for i, n in enumerate(frame_lengths)]


def views_of(features: list[torch.Tensor], frames_of: Callable[[list[torch.Tensor], str], list[torch.Tensor]]
             ) -> dict[str, list[torch.Tensor]]:
    """Each utterance's frames in both views (`frames_of(features of a few utterances, view)`), computed in batches of
    utterances of similar length; in the utterances' own order."""
    order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
    outputs: dict[str, list] = {view: [None] * len(features) for view in VIEWS}
    with torch.inference_mode():
        for start in range(0, len(order), BATCH_UTTERANCES):
            batch = order[start : start + BATCH_UTTERANCES]
            for view in VIEWS:
                for i, frames in zip(batch, frames_of([features[i] for i in batch], view)):
                    outputs[view][i] = frames
    return outputs


def utterance_audio(row: dict, condition: str | None, seed: int) -> torch.Tensor:
    """An utterance's audio as cached: as recorded, or under `condition` drawn from its own seed (seed, id)."""
    audio = load_audio_file(row["audio"])
    if condition is None:
        return audio
    rng = np.random.default_rng((seed, zlib.crc32(row["id"].encode())))
    return torch.from_numpy(augment(audio.numpy(), condition, rng))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a model with a backbone (its frozen weights are used)")
    p.add_argument("--manifest", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-locale", type=int, default=None, help="at most this many utterances per locale")
    p.add_argument("--skip-per-locale", type=int, default=0,
                   help="pass over the first N per locale of the shuffled order (those another cache with the same "
                        "seed holds), so that caches grow without overlap")
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-frames", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--augment", choices=("capture",), default=None,
                   help="cache every utterance under this acoustic condition (model.corpus.augment)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint).model
    if model.encoder.backbone is None:
        raise SystemExit("the checkpoint has no backbone")
    left = model.config.encoder.left_context_frames
    rows = []
    for manifest in args.manifest:
        rows += [asdict(row) for row in read_manifest(manifest) if row.duration <= args.max_seconds]
    if args.per_locale is not None:
        random.Random(args.seed).shuffle(rows)
        counts: dict[str, int] = {}
        kept = []
        for row in rows:
            seen = counts.get(row["locale"], 0)
            counts[row["locale"]] = seen + 1
            if args.skip_per_locale <= seen < args.skip_per_locale + args.per_locale:
                kept.append(row)
        rows = kept
    args.out.mkdir(parents=True, exist_ok=True)
    extractor = model.config.feature_extractor()
    shards = [rows[i : i + SHARD_UTTERANCES] for i in range(0, len(rows), SHARD_UTTERANCES)]
    for number, shard in enumerate(tqdm(shards, desc="backbone")):
        path = args.out / f"shard_{number:05d}.pt"
        if path.exists():
            continue
        features = [extractor(utterance_audio(row, args.augment, args.seed)) for row in shard]
        outputs = views_of(features, lambda batch, view: backbone_frames(model, batch, view, args.chunk_frames, left))
        meta = [{k: row[k] for k in ("id", "text", "locale", "duration") if k in row} for row in shard]
        atomic_save({"rows": meta, **outputs, "chunk_frames": args.chunk_frames, "left_frames": left,
                     "after_block": frozen_blocks(model)}, path)
    (args.out / "done.json").write_text(json.dumps({"utterances": len(rows), "shards": len(shards)}))


if __name__ == "__main__":
    main()
