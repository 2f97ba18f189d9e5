"""A companion encoder's frames (model.network.companion) beside a backbone cache (model.training.backbone_cache), so
that training the layers above both reads both from disk.

For every shard of a backbone cache, the same utterances in the same order, the same audio (the same acoustic
condition drawn from the same seed) and both views (full context; the streaming view under the cache's chunk mask):

    python -m model.training.companion_cache --companion model/checkpoints/synthetic/synthetic_voices.pt --cache data/bb/kokoro-zh \
        --manifest ../shared/corpora/kokoro-zh/manifest.jsonl [--augment capture] [--seed 0]

The frames are the companion's encoder output before its projection (float16), `companion_NNNNN.pt` beside
`shard_NNNNN.pt`; resumable shard by shard.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from model.corpus.manifest import read_manifest
from model.frontend.features import FeatureExtractor
from model.network.checkpoint import atomic_save, load_checkpoint
from model.network.model import SpeechRecognizer
from model.training.backbone_cache import utterance_audio, views_of


def companion_path(shard: Path) -> Path:
    """The companion frames' file beside a backbone cache shard."""
    return shard.with_name(shard.name.replace("shard_", "companion_"))


def companion_frames(model: SpeechRecognizer, features: list[torch.Tensor], view: str, chunk_frames: int,
                     left_frames: int) -> list[torch.Tensor]:
    """A convolutional model's encoder output (S, D) float16 for each utterance's features, in the given view."""
    lengths = torch.tensor([f.shape[0] for f in features])
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    chunk, left = (None, None) if view == "full" else (chunk_frames, left_frames)
    encoded, encoded_lengths = model.encode(padded, lengths, chunk, left)
    return [encoded[i, : int(n)].half().clone() for i, n in enumerate(encoded_lengths)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--companion", required=True, help="the convolutional model whose encoder is the companion")
    p.add_argument("--cache", type=Path, required=True, help="a backbone cache folder")
    p.add_argument("--manifest", nargs="+", required=True, help="the manifests its utterances came from")
    p.add_argument("--augment", choices=("capture",), default=None, help="as the backbone cache was made")
    p.add_argument("--seed", type=int, default=0, help="as the backbone cache was made")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.companion).model.eval()
    if model.config.encoder.backbone or model.config.companion:
        raise SystemExit("a companion is a convolutional model")
    extractor = FeatureExtractor(model.config.encoder.mel)
    rows = {row.id: asdict(row) for manifest in args.manifest for row in read_manifest(manifest)}
    for shard in tqdm(sorted(args.cache.glob("shard_*.pt")), desc=f"companion {args.cache.name}"):
        path = companion_path(shard)
        if path.exists():
            continue
        cached = torch.load(shard, weights_only=True)
        missing = [r["id"] for r in cached["rows"] if r["id"] not in rows]
        if missing:
            raise SystemExit(f"{shard}: utterances not in the manifests, e.g. {missing[:3]}")
        shard_rows = [rows[r["id"]] for r in cached["rows"]]
        features = [extractor(utterance_audio(row, args.augment, args.seed)) for row in shard_rows]
        outputs = views_of(features, lambda batch, view: companion_frames(model, batch, view, cached["chunk_frames"],
                                                                          cached["left_frames"]))
        for i, (full, backbone) in enumerate(zip(outputs["full"], cached["full"])):
            if 2 * full.shape[0] != backbone.shape[0]:
                raise SystemExit(f"{shard}: utterance {i} has {full.shape[0]} companion frames and "
                                 f"{backbone.shape[0]} backbone frames (two per companion frame)")
        atomic_save({"ids": [r["id"] for r in cached["rows"]], **outputs}, path)


if __name__ == "__main__":
    main()
