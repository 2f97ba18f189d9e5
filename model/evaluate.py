"""Evaluation: decode a feature corpus per locale at full context and at streaming chunk sizes; CER for Chinese
locales, WER for English; disparity = worst / best locale error rate. Writes JSON and a markdown model card.

    python -m model.evaluate --checkpoint model/checkpoints/default.pt --manifest data/synth/test.jsonl \
        --cache data/cache --split test --out model/checkpoints/eval.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import LoadedModel, load_checkpoint
from model.dataset import FeatureCorpus, build_feature_cache, pad_features
from model.scoring import ErrorCount, count_errors, uses_words
from model.search import greedy_search

CHUNK_SIZES_MS = (320, 640, 1280)
ENCODER_FRAME_MS = 40


@torch.no_grad()
def decode_batch(
    loaded: LoadedModel, features: list[torch.Tensor], locales: list[str], chunk_frames: int | None
) -> list[str]:
    """Greedy CTC transcripts for a batch of raw-MFCC utterances with their locales given."""
    model, tokenizer = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    batch, lengths = pad_features(features)
    left = model.config.encoder.left_context_frames if chunk_frames else None
    encoded, encoded_lengths = model.encode(batch.to(device), lengths.to(device), chunk_frames, left)
    locale_ids = torch.tensor([tokenizer.locales.index(loc) if loc in tokenizer.locales else -1 for loc in locales])
    log_probs = model.ctc_log_probs(encoded, locale_ids.to(device)).cpu()
    return [
        tokenizer.decode([t.token_id for t in greedy_search(log_probs[row, : int(encoded_lengths[row])]).tokens])
        for row in range(len(features))
    ]


def evaluate_corpus(
    loaded: LoadedModel, corpus: FeatureCorpus, chunk_frames: int | None, indices: list[int] | None = None,
    batch_frames: int = 30_000,
) -> dict[str, ErrorCount]:
    """Per-locale error counts over the corpus rows (all rows, or `indices`)."""
    indices = list(range(len(corpus.rows))) if indices is None else indices
    indices.sort(key=lambda i: corpus.rows[i]["frames"])
    totals: dict[str, ErrorCount] = defaultdict(lambda: ErrorCount(0, 0))
    start = 0
    while start < len(indices):
        longest = corpus.rows[indices[start]]["frames"]
        end = start + 1
        while end < len(indices) and corpus.rows[indices[end]]["frames"] * (end - start + 1) <= batch_frames:
            end += 1
        rows = [corpus.rows[i] for i in indices[start:end]]
        hyps = decode_batch(loaded, [corpus.utterance_features(i) for i in indices[start:end]],
                            [r["locale"] for r in rows], chunk_frames)
        for row, hyp in zip(rows, hyps):
            totals[row["locale"]] += count_errors(row["text"], hyp, row["locale"])
        start = end
    return dict(totals)


def sample_per_locale(corpus: FeatureCorpus, per_locale: int, seed: int = 0) -> list[int]:
    by_locale: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(corpus.rows):
        by_locale[row["locale"]].append(index)
    rng = np.random.default_rng(seed)
    return [int(i) for rows in by_locale.values() for i in rng.permutation(rows)[:per_locale]]


def summarize(totals: dict[str, ErrorCount]) -> dict:
    rates = {locale: count.rate for locale, count in totals.items()}
    best = min(rates.values()) if rates else 0.0
    return {
        "per_locale": {
            locale: {"metric": "wer" if uses_words(locale) else "cer", "error_rate": round(count.rate, 4),
                     "errors": count.errors, "reference_units": count.reference_units}
            for locale, count in sorted(totals.items())
        },
        "disparity": round(max(rates.values()) / best, 3) if best > 0 else None,
    }


def evaluate_all_modes(loaded: LoadedModel, corpus: FeatureCorpus, indices: list[int] | None = None) -> dict:
    results = {"full_context": summarize(evaluate_corpus(loaded, corpus, None, indices))}
    for chunk_ms in CHUNK_SIZES_MS:
        results[f"chunk_{chunk_ms}ms"] = summarize(evaluate_corpus(loaded, corpus, chunk_ms // ENCODER_FRAME_MS, indices))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="model/checkpoints/default.pt")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--cache", default="data/cache")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="model/checkpoints/eval.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build_feature_cache(args.manifest, args.cache, args.split)
    loaded = load_checkpoint(args.checkpoint)
    results = evaluate_all_modes(loaded, FeatureCorpus.open(args.cache, args.split))
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
