"""Typed training configuration, read from a TOML file; an unknown key is an error."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from model.network.decoder import DecoderConfig
from model.network.encoder import EncoderConfig
from model.training.dataset import SpecAugment


@dataclass(frozen=True)
class TrainConfig:
    train_manifest: str
    dev_manifest: str
    cache_dir: str = "data/cache"
    output_dir: str = "runs/default"
    name: str = "openasr-synth"
    version: str = "0.1.0"
    init_checkpoint: str | None = None  # start from this model checkpoint's weights (when output_dir has no last.pt)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    spec_augment: SpecAugment = field(default_factory=SpecAugment)
    subword_vocab_size: int = 256
    max_batch_frames: int = 24_000  # feature frames (10 ms) per batch, padding included
    peak_lr: float = 1.5e-3
    warmup_steps: int = 1_500
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    max_steps: int = 1_000_000
    max_minutes: float = 60.0  # wall-clock budget of one invocation; resume continues from the last checkpoint
    ctc_weight: float = 0.6
    attention_weight: float = 0.4
    locale_weight: float = 0.1
    label_smoothing: float = 0.1
    full_context_prob: float = 0.5  # dynamic chunk training: share of batches with full context
    min_chunk_frames: int = 4
    max_chunk_frames: int = 32
    eval_every_minutes: float = 10.0
    eval_utterances_per_locale: int = 100
    checkpoint_every_minutes: float = 5.0
    keep_snapshots: int = 5
    threads: int = 2  # CPU threads of the machine, split among its DDP ranks
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with native bf16 (model.network.precision); float32 elsewhere
    lr_schedule: str = "noam"  # "noam" (global-step warm-up + inverse sqrt) or "cosine" (over this run's minutes)
    final_lr_fraction: float = 0.05  # cosine: the learning rate at the end of the run, as a fraction of peak_lr
    # Learning-rate multiplier of the pitch input path: when a trained MFCC model is grown with pitch, its new
    # zero-initialised weights must catch up with a network already fitted to the MFCC.
    pitch_lr_scale: float = 1.0
    # Expected draws per epoch of each locale's utterances (a locale not named: 1), e.g. {"en-US" = 1.5} to give
    # the locale with the worst error more of the steps: the disparity between locales is a target, not only the
    # mean. A TOML inline table; keys are locale codes of the manifests.
    locale_sampling_weights: dict[str, float] = field(default_factory=dict)
    # Auxiliary CTC over tonal syllables (pinyin / Jyutping with tones, model.decoding.syllables) on an intermediate
    # encoder layer, for the Chinese rows of each batch: tones pooled over every character that carries them. 0: off. A
    # model continued without the head gets one (model.network.model.with_syllable_head).
    syllable_ctc_weight: float = 0.0
    syllable_ctc_layer: int = 0  # 1-based encoder layer; 0: the middle one (n_layers // 2)
    # English rows join that CTC with their phonemes as espeak-ng says them (model.decoding.syllables,
    # model.decoding.pronunciation): English errors are mostly words heard wrong (model.evaluation.sound_alike). A model
    # whose head lacks them gets them added.
    english_phoneme_ctc: bool = False
    # Synthesis while training (model.training.online_corpus): a plan from `model.corpus.build --plan-only` rendered by
    # this many worker processes during training, instead of the manifests' feature caches.
    online_plan: str | None = None
    synthesis_workers: int = 2
    online_start_hours: float = 1.0  # rendered audio to wait for before the first step

    @staticmethod
    def from_toml(path: str | Path, overrides: list[str] = ()) -> "TrainConfig":
        """The file's settings, then each "key=value" override (value in TOML syntax: 8e-4, "cosine", true)."""
        data = tomllib.loads(Path(path).read_text())
        for item in overrides:
            key, _, value = item.partition("=")
            data.update(tomllib.loads(f"{key.strip()} = {value.strip()}"))
        return TrainConfig.from_dict(data)

    @staticmethod
    def from_dict(data: dict) -> "TrainConfig":
        known = {f.name for f in fields(TrainConfig)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        nested = {"encoder": EncoderConfig, "decoder": DecoderConfig, "spec_augment": SpecAugment}
        values = {k: nested[k](**v) if k in nested else v for k, v in data.items()}
        weights = values.get("locale_sampling_weights", {})
        if any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()):
            raise ValueError(f"locale_sampling_weights must be numbers >= 0, not {weights!r}")
        if values.get("lr_schedule", "noam") not in ("noam", "cosine"):
            raise ValueError(f"lr_schedule must be 'noam' or 'cosine', not {values['lr_schedule']!r}")
        config = TrainConfig(**values)
        if config.syllable_ctc_weight < 0 or not 0 <= config.syllable_ctc_layer <= config.encoder.n_layers:
            raise ValueError("syllable_ctc_weight must be >= 0 and syllable_ctc_layer an encoder layer (0: the middle one)")
        return config

    @property
    def syllable_layer(self) -> int:
        return self.syllable_ctc_layer or max(self.encoder.n_layers // 2, 1)
