"""Training data: a manifest -> a feature cache (MFCC computed once with the same front end the service uses,
float16 on disk, memory-mapped) -> length-bucketed batches with SpecAugment.

Cache layout in a folder: `<split>.features.npy` (frames, FEATURE_DIM) float16 (MFCC and pitch) and `<split>.index.jsonl` with one row
per utterance: id, offset, frames, text, locale, speaker, duration.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.corpus.manifest import Utterance, read_manifest
from model.frontend.audio import load_audio_file
from model.frontend.features import FEATURE_DIM, N_MFCC, FeatureExtractor


def _features_of(paths: list[str]) -> list[np.ndarray]:
    torch.set_num_threads(1)
    extractor = FeatureExtractor()
    return [extractor(load_audio_file(path)).numpy().astype(np.float16) for path in paths]


def build_feature_cache(manifest: str | Path, cache_dir: str | Path, split: str, jobs: int = 2) -> Path:
    """Features for every utterance of the manifest, in manifest order. A cache that already holds exactly these
    utterances with this front end's width is kept. Otherwise the cache is rewritten, computing only the utterances
    it lacks: a corpus grown with more hours (same seed, same held-out split) reuses the features it had, and a
    cache from before the pitch columns is rebuilt. The new files replace the old ones by rename, so a training
    process that has the old cache memory-mapped keeps reading it undisturbed."""
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"{split}.index.jsonl"
    features_path = cache_dir / f"{split}.features.npy"
    utterances = read_manifest(manifest)
    cached = _current_cache(cache_dir, split)
    if cached is not None and [row["id"] for row in cached.rows] == [u.id for u in utterances]:
        return index_path
    known = {row["id"]: index for index, row in enumerate(cached.rows)} if cached is not None else {}
    missing = [u for u in utterances if u.id not in known]
    cache_dir.mkdir(parents=True, exist_ok=True)
    groups = [[u.audio for u in missing[i : i + 64]] for i in range(0, len(missing), 64)]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        computed = [a for group in tqdm(pool.imap(_features_of, groups), total=len(groups), desc=f"features {split}") for a in group]
    fresh = {u.id: array for u, array in zip(missing, computed)}
    arrays = [fresh[u.id] if u.id in fresh else np.asarray(cached.utterance_frames(known[u.id])) for u in utterances]
    staged = features_path.with_name(f"{split}.features.tmp.npy")
    np.save(staged, np.concatenate(arrays) if arrays else np.zeros((0, FEATURE_DIM), np.float16))
    offset, rows = 0, []
    for utterance, array in zip(utterances, arrays):
        rows.append(index_row(utterance, offset, len(array)))
        offset += len(array)
    index_path.unlink(missing_ok=True)  # no index: a crash from here on leaves no cache rather than a wrong one
    staged.replace(features_path)
    index_path.with_suffix(".tmp").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    index_path.with_suffix(".tmp").rename(index_path)
    return index_path


def _current_cache(cache_dir: Path, split: str) -> "FeatureCorpus | None":
    """The split's cache if it exists and has this front end's width."""
    if not (cache_dir / f"{split}.index.jsonl").exists():
        return None
    cached = FeatureCorpus.open(cache_dir, split)
    return cached if cached.features.shape[1] == FEATURE_DIM else None


def index_row(utterance: Utterance, offset: int, frames: int) -> dict:
    return {
        "id": utterance.id, "offset": offset, "frames": frames, "text": utterance.text,
        "locale": utterance.locale, "speaker": utterance.speaker, "duration": utterance.duration,
        "condition": utterance.condition,
    }


@dataclass
class FeatureCorpus:
    features: np.ndarray  # (all frames, FEATURE_DIM) float16, memory-mapped
    rows: list[dict]

    @staticmethod
    def open(cache_dir: str | Path, split: str) -> "FeatureCorpus":
        cache_dir = Path(cache_dir)
        rows = [json.loads(line) for line in (cache_dir / f"{split}.index.jsonl").read_text().splitlines()]
        return FeatureCorpus(np.load(cache_dir / f"{split}.features.npy", mmap_mode="r"), rows)

    @property
    def hours(self) -> float:
        return sum(row["duration"] for row in self.rows) / 3600

    def subset(self, keep: Callable[[dict], bool]) -> "FeatureCorpus":
        """The utterances whose index row passes `keep`, over the same memory map (rows carry their offsets)."""
        return FeatureCorpus(self.features, [row for row in self.rows if keep(row)])

    def utterance_frames(self, index: int) -> np.ndarray:
        """The stored (frames, FEATURE_DIM) float16 rows of one utterance (a view of the memory map)."""
        row = self.rows[index]
        return self.features[row["offset"] : row["offset"] + row["frames"]]

    def utterance_features(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.utterance_frames(index).astype(np.float32))

    def cmvn(self, max_frames: int = 2_000_000, pitch_voicing_gate: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Global mean and inverse standard deviation over every k-th frame of the cache (at most `max_frames`):
        evenly spread, since a prefix would be one locale (the cache follows the manifest's order). With a voicing
        gate (see EncoderConfig), the log F0 column's statistics are those of the voiced frames, the only ones it
        reads."""
        stride = max(1, -(-len(self.features) // max_frames))
        sample = torch.from_numpy(self.features[::stride].astype(np.float64))
        mean, std = sample.mean(0), sample.std(0)
        if pitch_voicing_gate and sample.shape[1] > N_MFCC + 1:
            voiced = sample[sample[:, N_MFCC] >= pitch_voicing_gate, N_MFCC + 1]
            if voiced.numel() > 1:
                mean[N_MFCC + 1], std[N_MFCC + 1] = voiced.mean(), voiced.std()
        return mean.float(), (1.0 / std.clamp(min=1e-3)).float()

    def length_batches(self, max_batch_frames: int, rng: np.random.Generator, min_frames: int = 8,
                       locale_weights: dict[str, float] | None = None) -> list[list[int]]:
        return row_batches(self.rows, max_batch_frames, rng, min_frames, locale_weights)


def row_batches(rows: list[dict], max_batch_frames: int, rng: np.random.Generator, min_frames: int = 8,
                locale_weights: dict[str, float] | None = None) -> list[list[int]]:
    """`length_batches` over index rows (a feature cache's or the online corpus's: "frames", "locale")."""
    return length_batches(np.array([r["frames"] for r in rows]), max_batch_frames, rng, min_frames,
                          utterance_weights(rows, locale_weights))


def utterance_weights(rows: list[dict], locale_weights: dict[str, float] | None) -> np.ndarray | None:
    """Per-utterance expected draws per epoch from per-locale sampling weights (a locale not named: 1)."""
    if not locale_weights:
        return None
    return np.array([float(locale_weights.get(row["locale"], 1.0)) for row in rows])


def epoch_draws(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Utterance indices for one epoch: utterance i appears floor(w_i) times plus once more with probability
    frac(w_i), so its expected count is w_i (0 leaves it out)."""
    counts = np.floor(weights).astype(np.int64) + (rng.uniform(size=len(weights)) < weights % 1.0)
    return np.repeat(np.arange(len(weights)), counts)


def length_batches(lengths: np.ndarray, max_batch_frames: int, rng: np.random.Generator,
                   min_frames: int = 8, weights: np.ndarray | None = None) -> list[list[int]]:
    """Utterances sorted by length (with jitter), cut so that B * longest <= max_batch_frames; shuffled.
    `weights`: expected draws per epoch of each utterance (`epoch_draws`; None = each once)."""
    draws = np.arange(len(lengths)) if weights is None else epoch_draws(weights, rng)
    order = draws[np.argsort(lengths[draws] + rng.uniform(0, 20, size=len(draws)))]
    batches, current, longest = [], [], 0
    for index in order:
        if lengths[index] < min_frames:
            continue
        longest_next = max(longest, lengths[index])
        if current and longest_next * (len(current) + 1) > max_batch_frames:
            batches.append(current)
            current, longest_next = [], lengths[index]
        current.append(int(index))
        longest = longest_next
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class SpecAugment:
    """SpecAugment (Park et al., 2019) on raw MFCC: masked cells take the global mean, i.e. zero after CMVN."""

    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: int = 40

    def __call__(self, features: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """A padded batch (B, T, F) with its lengths -> the batch with independent masks per row, drawn on the
        batch's device in a few tensor operations (a per-utterance Python loop costs more than a GPU step)."""
        batch, frames, dims = features.shape
        device = features.device

        def uniform(high: torch.Tensor, count: int) -> torch.Tensor:
            """Integers in [0, high] per row, `count` draws each (high: (B,))."""
            draws = torch.rand(batch, count, generator=generator).to(device)
            return (draws * (high.to(device).unsqueeze(1) + 1)).floor().long()

        masked = torch.zeros(batch, frames, dims, dtype=torch.bool, device=device)
        if self.freq_masks:
            width = uniform(torch.full((batch,), self.freq_width), self.freq_masks)
            start = (torch.rand(batch, self.freq_masks, generator=generator).to(device)
                     * (dims - width).clamp(min=1)).long()
            bins = torch.arange(dims, device=device)[None, None, :]
            band = (bins >= start[..., None]) & (bins < (start + width)[..., None])  # (B, masks, F)
            masked |= band.any(1)[:, None, :]
        if self.time_masks:
            limit = torch.minimum(torch.full_like(lengths, self.time_width), lengths // 5)
            width = uniform(limit, self.time_masks)
            start = (torch.rand(batch, self.time_masks, generator=generator).to(device)
                     * (lengths.to(device)[:, None] - width).clamp(min=1)).long()
            steps = torch.arange(frames, device=device)[None, None, :]
            span = (steps >= start[..., None]) & (steps < (start + width)[..., None])  # (B, masks, T)
            masked |= span.any(1)[:, :, None]
        valid = torch.arange(frames, device=device)[None, :] < lengths.to(device)[:, None]
        masked &= valid[:, :, None]  # padding stays zero
        return torch.where(masked, mean.to(device=device, dtype=features.dtype), features)
