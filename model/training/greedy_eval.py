"""The dev error training reports: greedy CTC over a feature cache (model.training.dataset), at full context or under a
chunk mask, per locale. Fast (no audio, no LM, no rescoring), so the trainer can afford it every few hundred steps;
model.evaluation.evaluate measures the service's whole pipeline on audio."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from model.accuracy.scoring import ErrorCount, count_errors
from model.decoding.search import greedy_search
from model.frontend.features import pad_features
from model.network.checkpoint import LoadedModel
from model.training.dataset import FeatureCorpus


@torch.no_grad()
def decode_batch(loaded: LoadedModel, features: list[torch.Tensor], locales: list[str], chunk_frames: int | None) -> list[str]:
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


def greedy_utterance_errors(loaded: LoadedModel, corpus: FeatureCorpus, chunk_frames: int | None,
                            indices: list[int] | None = None, batch_frames: int = 30_000) -> dict[int, ErrorCount]:
    """Greedy CTC error counts of each utterance of a feature cache (index -> count), decoded in batches of similar
    length so padding costs little."""
    indices = sorted(range(len(corpus.rows)) if indices is None else indices, key=lambda i: corpus.rows[i]["frames"])
    counts: dict[int, ErrorCount] = {}
    start = 0
    while start < len(indices):
        end = start + 1
        while end < len(indices) and corpus.rows[indices[end]]["frames"] * (end - start + 1) <= batch_frames:
            end += 1
        batch = indices[start:end]
        hyps = decode_batch(loaded, [corpus.utterance_features(i) for i in batch],
                            [corpus.rows[i]["locale"] for i in batch], chunk_frames)
        for index, hyp in zip(batch, hyps):
            row = corpus.rows[index]
            counts[index] = count_errors(row["text"], hyp, row["locale"])
        start = end
    return counts


def evaluate_corpus(loaded: LoadedModel, corpus: FeatureCorpus, chunk_frames: int | None,
                    indices: list[int] | None = None, batch_frames: int = 30_000) -> dict[str, ErrorCount]:
    """Per-locale greedy error counts over a feature cache (used for dev evaluation during training)."""
    totals: dict[str, ErrorCount] = defaultdict(lambda: ErrorCount(0, 0))
    for index, count in greedy_utterance_errors(loaded, corpus, chunk_frames, indices, batch_frames).items():
        totals[corpus.rows[index]["locale"]] += count
    return dict(totals)


def sample_per_locale(corpus: FeatureCorpus, per_locale: int, seed: int = 0) -> list[int]:
    by_locale: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(corpus.rows):
        by_locale[row["locale"]].append(index)
    rng = np.random.default_rng(seed)
    return [int(i) for rows in by_locale.values() for i in rng.permutation(rows)[:per_locale]]
