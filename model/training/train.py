"""Train the recognizer: joint CTC + attention + locale-ID loss with dynamic chunk masks.

    python -m model.training.train --config model/configs/synth_small.toml            # CPU, or one GPU
    torchrun --nproc-per-node 8 -m model.training.train --config ...                  # data parallel (DDP)

Every invocation resumes from `<output_dir>/last.pt` when it exists and stops after `max_minutes`, so a long
training runs as a series of sessions. SIGTERM or SIGINT (a preempted job, Ctrl-C) stops it after the current step
with a checkpoint written, so rerunning the command loses nothing. `--average` writes the mean of the last
snapshots as a model checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from model.accuracy.scoring import summarize
from model.decoding.syllables import (PHONEME_LOCALE, SyllableEncoder, build_syllable_table, has_english_phonemes,
                                      is_english_phoneme)
from model.frontend.features import pad_features
from model.network.checkpoint import LoadedModel, atomic_save, checkpoint_payload, load_checkpoint
from model.network.decoder import decoder_io
from model.network.model import (
    PITCH_PARAMETERS, ModelConfig, SpeechRecognizer, with_pitch_input, with_relative_pitch_input, with_syllable_head,
)
from model.network.precision import training_autocast
from model.text.tokenizer import Tokenizer
from model.training.dataset import FeatureCorpus, build_feature_cache
from model.training.greedy_eval import evaluate_corpus, sample_per_locale
from model.training.online_corpus import OnlineCorpus, SynthesisFeed, plan_splits, render_all
from model.training.train_config import TrainConfig


def data_summary(corpus: FeatureCorpus) -> dict:
    """Hours per locale and per condition, for the model card."""
    hours: Counter = Counter()
    conditions: Counter = Counter()
    for row in corpus.rows:
        hours[row["locale"]] += row["duration"] / 3600
        conditions[f'{row["locale"]}/{row.get("condition", "clean")}'] += row["duration"] / 3600
    return {
        "utterances": len(corpus.rows),
        "hours_per_locale": {k: round(v, 4) for k, v in sorted(hours.items())},
        "hours_per_condition": {k: round(v, 4) for k, v in sorted(conditions.items())},
        "speakers": len({row["speaker"] for row in corpus.rows}),
    }


def build_model(config: TrainConfig, corpus: FeatureCorpus, tokenizer: Tokenizer, texts: dict) -> SpeechRecognizer:
    syllables = build_syllable_table(texts, config.english_phoneme_ctc) if config.syllable_ctc_weight else ()
    model_config = ModelConfig(tokenizer.vocab_size, tuple(tokenizer.locales), config.encoder, config.decoder,
                               syllables, config.syllable_layer if syllables else 0)
    model = SpeechRecognizer(model_config)
    mean, istd = corpus.cmvn(pitch_voicing_gate=config.encoder.pitch_voicing_gate)
    model.cmvn_mean.copy_(mean[: model.input_dim])
    model.cmvn_istd.copy_(istd[: model.input_dim])
    model.locale_token_mask.copy_(tokenizer.locale_token_mask(texts))
    return model


def learning_rate(config: TrainConfig, step: int, run_step: int = 0, run_fraction: float = 0.0) -> float:
    """"noam": linear warm-up then inverse square-root decay over the global step (Vaswani et al., 2017), for
    training spread over many sessions. "cosine": warm-up over this invocation's steps, then a cosine decay to
    final_lr_fraction at the end of its time budget, for one budgeted run (a GPU lease, continuing a model)."""
    if config.lr_schedule == "cosine":
        warm = min(max(run_step, 1) / config.warmup_steps, 1.0)
        decay = 0.5 * (1 + math.cos(math.pi * min(max(run_fraction, 0.0), 1.0)))
        return config.peak_lr * warm * (config.final_lr_fraction + (1 - config.final_lr_fraction) * decay)
    step = max(step, 1)
    return config.peak_lr * min(step / config.warmup_steps, math.sqrt(config.warmup_steps / step))


def spellable(corpus: FeatureCorpus, tokenizer: Tokenizer) -> FeatureCorpus:
    """The utterances whose text the token table can spell. A continued model keeps its token table, and a sentence
    of a new corpus with a character outside it would teach it <unk> (the online corpus's feed skips these too)."""
    return corpus.subset(lambda row: tokenizer.can_spell(row["text"]))


def sample_chunk(config: TrainConfig, rng: np.random.Generator) -> int | None:
    if rng.random() < config.full_context_prob:
        return None
    return int(rng.integers(config.min_chunk_frames, config.max_chunk_frames + 1))


def batch_loss(model, config, corpus, tokenizer, indices, rng, device,
               syllable_encoder: SyllableEncoder | None = None) -> tuple[torch.Tensor, dict]:
    """Joint loss of one batch: ctc_weight * CTC + attention_weight * decoder CE + locale_weight * locale CE
    (+ syllable_ctc_weight * tonal-syllable CTC of the Chinese rows, given the model's syllable encoder)."""
    core = model.module if hasattr(model, "module") else model
    rows = [corpus.rows[i] for i in indices]
    features, lengths = pad_features([corpus.utterance_features(i) for i in indices])
    features = features[..., : core.input_dim]  # the columns the model reads (no pitch for an MFCC-only model)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    features = config.spec_augment(features.to(device), lengths, core.cmvn_mean, generator)
    targets = [tokenizer.encode(r["text"]) for r in rows]
    locale_ids = torch.tensor([tokenizer.locales.index(r["locale"]) for r in rows], device=device)
    inputs, outputs, input_lengths = decoder_io(targets, [tokenizer.locale_start_id(r["locale"]) for r in rows])
    chunk = sample_chunk(config, rng)
    left = config.encoder.left_context_frames if chunk else None
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=training_autocast(device, config.amp)):
        model_outputs = model(features, lengths.to(device), chunk, left, inputs.to(device), input_lengths.to(device))
    syllables = [syllable_encoder(r["text"], r["locale"]) for r in rows] if syllable_encoder else None
    loss, parts = joint_loss(config, model_outputs, targets, outputs, locale_ids, syllables)
    return loss, {**parts, "audio_s": float(lengths.sum()) / 100}


def joint_loss(config: TrainConfig, model_outputs: tuple, targets: list[list[int]], decoder_outputs: torch.Tensor,
               locale_ids: torch.Tensor, syllables: list[list[int] | None] | None = None) -> tuple[torch.Tensor, dict]:
    """ctc_weight * CTC + attention_weight * decoder CE (per utterance) + locale_weight * locale CE, reduced in
    float32 from the outputs of `SpeechRecognizer.forward`; with `syllables` (tonal-syllable ids per row, None for
    a row without tones), + syllable_ctc_weight * the syllable CTC per tonal row."""
    log_probs, encoded_lengths, logits, locale_lp, syllable_lp = model_outputs
    device, rows = log_probs.device, len(targets)
    flat = torch.tensor([t for target in targets for t in target], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    ctc = F.ctc_loss(log_probs.float().transpose(0, 1), flat.to(device), encoded_lengths.cpu(), target_lengths,
                     zero_infinity=True, reduction="sum") / rows
    attention = F.cross_entropy(logits.float().flatten(0, 1), decoder_outputs.to(device).flatten(), ignore_index=-1,
                                label_smoothing=config.label_smoothing, reduction="sum") / rows
    locale = F.nll_loss(locale_lp.float(), locale_ids.to(device))
    loss = config.ctc_weight * ctc + config.attention_weight * attention + config.locale_weight * locale
    parts = {"ctc": ctc.item(), "att": attention.item(), "lid": locale.item()}
    if syllables is not None and syllable_lp is not None:
        syllable = syllable_ctc(syllable_lp, encoded_lengths, syllables)
        loss = loss + config.syllable_ctc_weight * syllable
        parts["syl"] = syllable.item()
    return loss, parts


def syllable_ctc(log_probs: torch.Tensor, encoded_lengths: torch.Tensor, syllables: list[list[int] | None]) -> torch.Tensor:
    """CTC of the rows with syllable targets, per such row. A batch without any still connects the head to the
    loss (with zero gradient), so that data-parallel ranks reduce the same parameters."""
    rows = [i for i, target in enumerate(syllables) if target]
    if not rows:
        return log_probs[:0].sum()
    flat = torch.tensor([s for i in rows for s in syllables[i]], dtype=torch.long, device=log_probs.device)
    lengths = torch.tensor([len(syllables[i]) for i in rows], dtype=torch.long)
    chosen = torch.tensor(rows, device=log_probs.device)
    return F.ctc_loss(log_probs.index_select(0, chosen).float().transpose(0, 1), flat, encoded_lengths.cpu()[rows],
                      lengths, blank=0, zero_infinity=True, reduction="sum") / len(rows)


class Trainer:
    def __init__(self, config: TrainConfig, device: torch.device, rank: int, world: int,
                 stop_request: StopRequest | None = None) -> None:
        self.config, self.device, self.rank, self.world = config, device, rank, world
        self.stop_request = stop_request or StopRequest()
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = {"step": 0, "epoch": 0, "audio_hours": 0.0, "elapsed_s": 0.0, "log": []}
        self.feed: SynthesisFeed | None = None
        self.earlier_training: list[dict] = []
        self.run_notes: list[str] = []  # what this invocation changed in the model, for its runs-table row
        if config.online_plan:
            self._open_online()
            return
        if rank == 0:
            build_feature_cache(config.train_manifest, config.cache_dir, "train")
            build_feature_cache(config.dev_manifest, config.cache_dir, "dev")
        if world > 1:
            dist.barrier()
        self.train = FeatureCorpus.open(config.cache_dir, "train")
        self.dev = FeatureCorpus.open(config.cache_dir, "dev")
        self.texts: dict[str, list[str]] = {}
        for row in self.train.rows:
            self.texts.setdefault(row["locale"], []).append(row["text"])
        self._init_model()
        before = len(self.train.rows)
        self.train = spellable(self.train, self.tokenizer)
        if len(self.train.rows) < before and rank == 0:
            tqdm.write(f"skipped {before - len(self.train.rows)} of {before} training utterances: characters "
                       "outside the model's token table")

    def _open_online(self) -> None:
        """Synthesis while training (model.training.online_corpus): render the plan's dev split, load the model to
        continue, start the workers on the train split, and wait until `online_start_hours` are rendered."""
        config = self.config
        if self.world > 1:
            raise ValueError("online_plan trains in one process (the synthesis workers use the other cores)")
        if not (self.out / "last.pt").exists() and not config.init_checkpoint:
            raise ValueError("online_plan continues a model: set init_checkpoint (CMVN and tokens come from it)")
        dev_jobs, train_jobs = plan_splits(config.online_plan)
        self.dev = render_all(dev_jobs, config.synthesis_workers)
        self.train, self.texts = OnlineCorpus(), {}
        self._init_model()
        tokenizer = self.tokenizer
        self.feed = SynthesisFeed(train_jobs, config.synthesis_workers,
                                  keep=lambda job: tokenizer.can_spell(job.text))
        self.train = self.feed.corpus
        hours = self.feed.wait_for_hours(config.online_start_hours, timeout_s=600)
        tqdm.write(f"online corpus: dev {len(self.dev.rows)} utterances, train {hours:.2f} h rendered before step 1")

    def _init_model(self) -> None:
        last = self.out / "last.pt"
        if last.exists():
            payload = torch.load(last, map_location="cpu", weights_only=True)
            self.tokenizer = Tokenizer.from_payload(payload["model"]["tokenizer"])
            self.model = SpeechRecognizer(ModelConfig.from_dict(payload["model"]["config"]))
            self.model.load_state_dict(payload["model"]["state_dict"])
            self.state = payload["trainer"]
        elif self.config.init_checkpoint:
            self._init_from_checkpoint()
        else:
            self.tokenizer = self._shared_tokenizer()
            torch.manual_seed(self.config.seed)
            self.model = build_model(self.config, self.train, self.tokenizer, self.texts)
        self.model.to(self.device)
        self.syllable_encoder = SyllableEncoder(self.model.config.syllables) if self.model.config.syllables else None
        if self.syllable_encoder is not None:
            self.syllable_encoder.prime(self.texts.get(PHONEME_LOCALE, ()))
        self.optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.config.peak_lr, betas=(0.9, 0.98),
                                           weight_decay=self.config.weight_decay)
        if last.exists():
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
            except ValueError as error:  # a run from before the pitch path had its own group
                tqdm.write(f"optimizer state not restored ({error}): the moments start afresh")
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model

    def parameter_groups(self) -> list[dict]:
        """The pitch input path in a group of its own, so that it can learn at `pitch_lr_scale` times the rate."""
        pitch, others = [], []
        for name, parameter in self.model.named_parameters():
            (pitch if name.startswith(PITCH_PARAMETERS) else others).append(parameter)
        groups = [{"params": others, "lr_scale": 1.0}]
        return groups + [{"params": pitch, "lr_scale": self.config.pitch_lr_scale}] if pitch else groups

    def _init_from_checkpoint(self) -> None:
        """Continue training a released model (e.g. the bundled one) with a fresh optimizer: its weights, token
        table, CMVN and locale masks; the step counter and hours seen carry on from its metadata."""
        loaded = load_checkpoint(self.config.init_checkpoint)
        self.tokenizer, self.model = loaded.tokenizer, loaded.model.float().train()
        self.earlier_training = [*loaded.metadata.get("earlier_training_data", []),
                                 {**loaded.metadata.get("training_data", {}), "model": f"{loaded.name} {loaded.version}"}]
        previous = loaded.metadata.get("trainer", {})
        self.state.update(step=int(previous.get("step", 0)), audio_hours=float(previous.get("audio_hours", 0.0)),
                          elapsed_s=float(previous.get("elapsed_s", 0.0)), runs=[dict(r) for r in previous.get("runs", [])])
        wanted, has = self.config.encoder, self.model.config.encoder
        if wanted.pitch_dim and (wanted.pitch_dim, wanted.pitch_voicing_gate) != (has.pitch_dim, has.pitch_voicing_gate):
            # the config adds a pitch input, or reads it through another voicing gate: a new pitch path
            if self.config.online_plan:
                raise ValueError(f"{loaded.name} {loaded.version} reads pitch otherwise than this config: give it its new "
                                 "pitch path with the cached corpus first (its statistics come from the feature cache)")
            mean, istd = self.train.cmvn(pitch_voicing_gate=wanted.pitch_voicing_gate)
            first, end = has.feature_dim, has.feature_dim + wanted.pitch_dim
            self.model = with_pitch_input(self.model, wanted, mean[first:end], istd[first:end]).train()
            self.run_notes.append(f"new pitch path (voicing gate {wanted.pitch_voicing_gate})")
            tqdm.write(f"gave {loaded.name} {loaded.version} a {self.run_notes[-1]}, zero-initialised")
        prior = wanted.relative_pitch_prior_frames
        if prior and prior != self.model.config.encoder.relative_pitch_prior_frames:
            self.model = with_relative_pitch_input(self.model, prior).train()
            note = f"new relative pitch channel (prior {prior:g} frames)"
            self.run_notes.append(note)
            tqdm.write(f"gave {loaded.name} {loaded.version} a {note}, zero-initialised")
        table = self.model.config.syllables
        wants_phonemes = self.config.english_phoneme_ctc and not has_english_phonemes(table)
        if self.config.syllable_ctc_weight and (not table or wants_phonemes):
            if self.config.online_plan:
                raise ValueError(f"{loaded.name} {loaded.version} lacks the syllable head this config asks for: give it "
                                 "one with the cached corpus first (its table comes from the training texts)")
            table = build_syllable_table(self.texts, self.config.english_phoneme_ctc)
            self.model = with_syllable_head(self.model, table, self.config.syllable_layer).train()
            english = sum(map(is_english_phoneme, table))
            note = (f"new tonal-syllable CTC ({len(table) - 2 - english} syllables"
                    + (f", {english} English phonemes" if english else "")
                    + f", layer {self.config.syllable_layer}, weight {self.config.syllable_ctc_weight:g})")
            self.run_notes.append(note)
            tqdm.write(f"gave {loaded.name} {loaded.version} a {note}")

    def _shared_tokenizer(self) -> Tokenizer:
        """Rank 0 builds the token table; the other ranks read it, so every rank has the same ids."""
        path = self.out / "tokenizer.pt"
        if self.rank == 0 and not path.exists():
            atomic_save(Tokenizer.build(self.texts, self.config.subword_vocab_size).to_payload(), path)
        if self.world > 1:
            dist.barrier()
        return Tokenizer.from_payload(torch.load(path, weights_only=True))

    def should_stop(self, started: float) -> bool:
        """Rank 0's clock decides for everyone (ranks that disagree would deadlock in the gradient all-reduce), and a
        stop signal on any rank stops them all."""
        stop = time.monotonic() - started > self.config.max_minutes * 60 or self.state["step"] >= self.config.max_steps
        interrupted = self.stop_request.signal_name is not None
        if self.world == 1:
            return stop or interrupted
        flag = torch.tensor([float((stop and self.rank == 0) or interrupted)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def metadata(self) -> dict:
        meta = {"training_data": data_summary(self.train), "trainer": {k: v for k, v in self.state.items() if k != "log"},
                "parameters": self.model.parameter_count(), "config": self.config.__class__.__name__}
        if self.earlier_training:
            meta["earlier_training_data"] = self.earlier_training
        if self.feed is not None:
            meta["training_data"]["synthesised_during_training"] = {
                "plan": Path(self.config.online_plan).name, "failed_jobs": self.feed.failed}
        return meta

    def save(self) -> None:
        if self.rank != 0:
            return
        self.update_run()
        model_payload = checkpoint_payload(self.model, self.tokenizer, self.config.name, self.config.version, self.metadata())
        atomic_save({"model": model_payload, "optimizer": self.optimizer.state_dict(), "trainer": self.state}, self.out / "last.pt")
        atomic_save(model_payload, self.out / f"snapshot_{self.state['step']:07d}.pt")
        for old in sorted(self.out.glob("snapshot_*.pt"))[: -self.config.keep_snapshots]:
            old.unlink()

    def evaluate(self) -> dict:
        self.model.eval()
        loaded = LoadedModel(self.model, self.tokenizer, self.config.name, self.config.version)
        indices = sample_per_locale(self.dev, self.config.eval_utterances_per_locale)
        result = {"full": summarize(evaluate_corpus(loaded, self.dev, None, list(indices))),
                  "chunk_640ms": summarize(evaluate_corpus(loaded, self.dev, 16, list(indices)))}
        self.model.train()
        return result

    def record_run(self) -> dict:
        """Each invocation appends what it did to the trainer state (and so to the checkpoint's metadata and the
        model card): steps, audio, minutes, device, learning-rate schedule and data."""
        runs = self.state.setdefault("runs", [])
        if not runs and self.state["step"] > 0:
            runs.append({"first_step": 0, "last_step": self.state["step"], "audio_hours": round(self.state["audio_hours"], 2),
                         "minutes": round(self.state["elapsed_s"] / 60, 1), "note": "before runs were recorded"})
        config = self.config
        run = {"first_step": self.state["step"], "last_step": self.state["step"], "audio_hours": 0.0, "minutes": 0.0,
               "device": f"{self.device.type} x{self.world}", "lr_schedule": config.lr_schedule, "peak_lr": config.peak_lr,
               "max_batch_frames": config.max_batch_frames,
               "precision": "bf16 autocast" if training_autocast(self.device, config.amp) else "float32",
               "data": Path(config.online_plan).name if config.online_plan else Path(config.train_manifest).name,
               "data_hours": round(self.train.hours, 2)}  # a corpus grown under the same name reads differently
        weights = ", ".join(f"{locale} x{weight:g}" for locale, weight in sorted(config.locale_sampling_weights.items()))
        notes = self.run_notes + ([f"sampling {weights}"] if weights else [])
        if config.full_context_prob != TrainConfig.full_context_prob:
            notes.append(f"full-context share {config.full_context_prob:g}")  # the rest trains on random chunks
        if notes:
            run["note"] = "; ".join(notes)
        runs.append(run)
        self._run_start = (self.state["audio_hours"], time.monotonic())
        return run

    def update_run(self) -> None:
        hours, started = self._run_start
        self.run_record.update(last_step=self.state["step"], audio_hours=round(self.state["audio_hours"] - hours, 2),
                               minutes=round((time.monotonic() - started) / 60, 1))

    def log(self, entry: dict) -> None:
        entry = {"step": self.state["step"], "hours_seen": round(self.state["audio_hours"], 2), **entry}
        self.state["log"].append(entry)
        if self.rank == 0:
            with open(self.out / "log.jsonl", "a") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            tqdm.write(json.dumps(entry, ensure_ascii=False))

    def run(self) -> None:
        config, started = self.config, time.monotonic()
        self.started, self.run_steps = started, 0
        self.run_record = self.record_run()
        last_save = last_eval = started
        self.model.train()
        rng = np.random.default_rng(config.seed + 1000 * self.state["epoch"] + self.rank)
        progress = tqdm(disable=self.rank != 0, desc="train", unit="step", initial=self.state["step"], mininterval=1 if os.isatty(2) else 30)
        while not self.should_stop(started):
            batches = self.train.length_batches(config.max_batch_frames, np.random.default_rng(config.seed + self.state["epoch"]),
                                                locale_weights=config.locale_sampling_weights)
            usable = len(batches) // self.world * self.world  # equal step counts on every rank
            for indices in batches[self.rank : usable : self.world]:
                self.step(indices, rng, progress)
                now = time.monotonic()
                if now - last_save > config.checkpoint_every_minutes * 60:
                    self.state["elapsed_s"] += now - last_save
                    last_save = now
                    self.save()
                if now - last_eval > config.eval_every_minutes * 60 and self.rank == 0:
                    last_eval = now
                    self.log({"dev": self.evaluate()})
                if self.should_stop(started):
                    break
            else:
                self.state["epoch"] += 1
                continue
            break
        self.state["elapsed_s"] += time.monotonic() - last_save
        if self.feed is not None:
            self.feed.close()
        self.save()
        if self.stop_request.signal_name is not None:  # a grace period is short: no final evaluation
            self.log({"stopped_by": self.stop_request.signal_name})
        elif self.rank == 0:
            self.log({"dev": self.evaluate(), "final": True})

    def current_lr(self) -> float:
        fraction = (time.monotonic() - self.started) / (self.config.max_minutes * 60)
        return learning_rate(self.config, self.state["step"] + 1, self.run_steps + 1, fraction)

    def step(self, indices: list[int], rng: np.random.Generator, progress: tqdm) -> None:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss, parts = batch_loss(self.ddp, self.config, self.train, self.tokenizer, indices, rng, self.device,
                                 self.syllable_encoder)  # a model with the head always computes its loss (DDP: every parameter reduced)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.state["step"] += 1
        self.run_steps += 1
        self.state["audio_hours"] += parts["audio_s"] * self.world / 3600
        progress.update(1)
        progress.set_postfix(ctc=f'{parts["ctc"]:.1f}', att=f'{parts["att"]:.1f}', lid=f'{parts["lid"]:.2f}',
                             **({"syl": f'{parts["syl"]:.1f}'} if "syl" in parts else {}), h=f'{self.state["audio_hours"]:.1f}')
        if self.state["step"] % 100 == 0:
            entry = {"loss": {k: round(v, 3) for k, v in parts.items()}, "lr": lr,
                     "minutes": round((time.monotonic() - self.started) / 60, 2)}
            if self.feed is not None:
                entry["rendered_hours"] = round(self.train.hours, 2)
            self.log(entry)


def with_release_history(metadata: dict, previous_release: dict, release: tuple[str, str] | None = None) -> dict:
    """The history of a model continued from an intermediate (e.g. a float32 average of the last run's
    snapshots), told as the previous release told it: that release's runs table and its training data, then
    this training's own runs since. (An intermediate's metadata is only as complete as its own chain.) Exporting
    `release` again over itself keeps its history as it is."""
    trainer, previous = dict(metadata.get("trainer", {})), previous_release["metadata"]
    released_runs = previous.get("trainer", {}).get("runs", [])
    released_until = released_runs[-1]["last_step"] if released_runs else 0
    trainer["runs"] = released_runs + [r for r in trainer.get("runs", []) if r["first_step"] >= released_until]
    earlier = list(previous.get("earlier_training_data", []))
    if release != (previous_release["name"], previous_release["version"]):
        earlier.append({**previous.get("training_data", {}), "model": f"{previous_release['name']} {previous_release['version']}"})
    return {**metadata, "trainer": trainer, "earlier_training_data": earlier}


def interpolate_weights(ours: dict, theirs: dict, weight: float) -> dict:
    """weight x ours + (1 - weight) x theirs for every floating-point parameter (the integer buffers stay ours):
    a continued model pulled back towards the one it started from, which keeps much of what the new run learned
    and gives back much of what it forgot (weight-space ensembling, as in WiSE-FT / model soups)."""
    if ours.keys() != theirs.keys():
        raise ValueError(f"cannot interpolate models with different parameters: {sorted(ours.keys() ^ theirs.keys())[:5]}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"interpolation weight must be in [0, 1], got {weight}")
    mixed = {}
    for key, value in ours.items():
        if value.shape != theirs[key].shape:
            raise ValueError(f"cannot interpolate {key}: shape {tuple(value.shape)} against {tuple(theirs[key].shape)}")
        mixed[key] = weight * value + (1.0 - weight) * theirs[key].to(value.dtype) if value.is_floating_point() else value
    return mixed


def average_snapshots(output_dir: str | Path, destination: str | Path, last: int, half: bool = False,
                      release: tuple[str, str] | None = None, history_from: str | Path | None = None,
                      interpolate_with: str | Path | None = None, interpolation_weight: float = 0.5) -> Path:
    """Average the parameters of the newest `last` snapshots (checkpoint averaging as in WeNet/ESPnet);
    `half` stores the result in float16 (the bundled model); `release` = (name, version) it is published under;
    `history_from`: the previous release, whose history the new one continues (with_release_history);
    `interpolate_with`: a checkpoint of the same network (the one the run started from) that the average is mixed
    with, keeping `interpolation_weight` of the average (interpolate_weights)."""
    snapshots = sorted(Path(output_dir).glob("snapshot_*.pt"))[-last:]
    payloads = [torch.load(p, map_location="cpu", weights_only=True) for p in snapshots]
    averaged = payloads[-1]
    for key, value in averaged["state_dict"].items():
        if value.is_floating_point():
            averaged["state_dict"][key] = sum(p["state_dict"][key] for p in payloads) / len(payloads)
    if interpolate_with:
        other = torch.load(interpolate_with, map_location="cpu", weights_only=True)
        averaged["state_dict"] = interpolate_weights(averaged["state_dict"], other["state_dict"], interpolation_weight)
        averaged["metadata"]["interpolated_with"] = {
            "model": f"{other.get('name', '?')} {other.get('version', '?')}", "file": Path(interpolate_with).name,
            "weight_of_average": interpolation_weight}
    if release:
        averaged["name"], averaged["version"] = release
    if history_from:
        averaged["metadata"] = with_release_history(averaged["metadata"], torch.load(history_from, weights_only=True), release)
    averaged["metadata"]["averaged_snapshots"] = [p.name for p in snapshots]
    averaged["metadata"]["stored_float16"] = half
    if half:
        averaged["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in averaged["state_dict"].items()}
    atomic_save(averaged, destination)
    return Path(destination)


class StopRequest:
    """While active (a `with` block), remembers a SIGTERM or SIGINT instead of dying on it: the trainer finishes its
    step, writes its checkpoint and exits cleanly. (A scheduler preempting a job sends SIGTERM and waits a grace
    period; torchrun forwards it.) Only the process that installed it is spared: forked children (the synthesis
    pool's workers) inherit the handler, but must still die when their pool terminates them with SIGTERM."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._owner = os.getpid()
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        self._previous = {number: signal.signal(number, self._remember) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _remember(self, number: int, frame) -> None:
        if os.getpid() != self._owner:  # a forked child: the default action, as if no handler were installed
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        self.signal_name = signal.Signals(number).name


def setup_device(config: TrainConfig) -> tuple[torch.device, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
        # `threads` is the machine's budget: ranks on one machine split it, or their OpenMP threads would fight
        # over the cores (two 1-thread gloo ranks train faster here than one 2-thread process).
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, config.threads // local_ranks))
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="TOML file (see model/configs/)")
    parser.add_argument("--max-minutes", type=float, help="override the config's wall-clock budget")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a top-level config key, VALUE in TOML syntax (e.g. --set lr_schedule='\"cosine\"')")
    parser.add_argument("--average", type=int, metavar="N", help="only average the last N snapshots")
    parser.add_argument("--export", help="with --average: where to write the averaged model checkpoint")
    parser.add_argument("--half", action="store_true", help="with --average: store float16 weights")
    parser.add_argument("--history-from", metavar="CHECKPOINT",
                        help="with --average: the previous release, whose runs table and data history this one continues")
    parser.add_argument("--interpolate-with", metavar="CHECKPOINT",
                        help="with --average: mix the average with this checkpoint of the same network (the run's start)")
    parser.add_argument("--interpolation-weight", type=float, default=0.5, metavar="W",
                        help="with --interpolate-with: the average's share, W x average + (1 - W) x CHECKPOINT")
    args = parser.parse_args(argv)
    config = TrainConfig.from_toml(args.config, overrides=args.set)
    if args.max_minutes is not None:
        config = dataclasses.replace(config, max_minutes=args.max_minutes)
    if args.average:
        print(average_snapshots(config.output_dir, args.export or Path(config.output_dir) / "averaged.pt", args.average,
                                args.half, (config.name, config.version), args.history_from,
                                args.interpolate_with, args.interpolation_weight))
        return
    device, rank, world = setup_device(config)
    with StopRequest() as stop_request:
        Trainer(config, device, rank, world, stop_request).run()
    if world > 1:
        # Rank 0 saves and evaluates after the last step while the others are done. A rank that tore its gloo
        # group down meanwhile aborted ("terminate called without an active exception") in 2 of 6 runs of the
        # torchrun test, failing the whole job; with the barrier, 0 of 11: leave together.
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
