"""Train the expert gate of a model with a companion encoder (model.network.companion): per frame, whether to read the
main CTC head (the layers above Whisper's backbone, which hear real people) or the companion's own (the convolutional
model that was trained on espeak-ng alone and reads its voices best).

    python -m model.training.train_gate --checkpoint runs/bbc/last.pt --companion model/checkpoints/synthetic/synthetic_voices.pt \\
        --companion-voices data/bb/synth data/bb/synth2 --main-voices data/bb/kokoro-zh data/bb/piper-en ... \\
        --dev-cache data/bb/dev data/bb/real --out runs/bbg

Why a classifier and not the mixture's CTC loss: on its own training utterances the main head is better everywhere,
espeak-ng's included (it has learned them), so a gate fitted to that loss opens to it everywhere; on held-out
espeak-ng voices the companion is better. So the gate learns which expert's training voices a frame sounds like
(logistic regression on both streams' normalised frames, binary cross-entropy, the two classes weighed equally), from
a sample of the cached training frames of both, in both views (full context and 640 ms chunks). Only the gate trains:
the encoders and both heads stay as they are. Writes OUT/last.pt (the model with its gate; `make bundle-backbone
BACKBONE_RUN=OUT` bundles it) and OUT/gate.json: greedy CTC per dev cache, locale and view for the main head, the
companion's and the mixture, and each one's mean gate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.network.checkpoint import load_checkpoint, save_checkpoint
from model.network.companion import mixed_log_probs
from model.network.model import SpeechRecognizer, with_expert_gate
from model.training.backbone_cache import VIEWS, frozen_blocks
from model.training.train_backbone import CachedFrames, encode_cached, greedy_rates

MAIN, COMPANION = 1.0, 0.0  # the gate's target: trust the main head, or the companion's


@torch.no_grad()
def expert_frames(model: SpeechRecognizer, data: CachedFrames, view: str, batch: int = 16) -> list[torch.Tensor]:
    """Each cached utterance's encoder output with the companion's frames after the main ones (S, D + Dc): what the
    heads and the gate read (`SpeechRecognizer.with_expert_frames`)."""
    out = []
    for start in range(0, len(data.rows), batch):
        indices = list(range(start, min(start + batch, len(data.rows))))
        encoded, encoded_lengths, companion = encode_cached(model, data, indices, view, None)
        both = model.with_expert_frames(encoded, companion)
        out += [both[row, : int(encoded_lengths[row])] for row in range(len(indices))]
    return out


def fit_gate(model: SpeechRecognizer, examples: list[tuple[torch.Tensor, float]], epochs: int, lr: float,
             seed: int, main_weight: float = 1.0) -> list[float]:
    """Logistic regression of each frame's expert, from an undecided gate; returns the mean loss per epoch. Each
    utterance counts once (its frames' mean loss), and each class as much as the other, the main head's `main_weight`
    times as much (a frame in doubt goes to the head that hears real people)."""
    assert model.companion is not None and model.companion.gate is not None
    gate = model.companion.gate.train()
    torch.nn.init.zeros_(gate.score.weight)  # from scratch: a new gate's open start (GATE_OPEN) is far from any answer
    torch.nn.init.zeros_(gate.score.bias)
    optimizer = torch.optim.Adam(gate.parameters(), lr=lr)
    counts = {target: sum(1 for _, t in examples if t == target) for target in (MAIN, COMPANION)}
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        order = rng.permutation(len(examples))
        for start in range(0, len(order), 32):
            loss = torch.zeros(())
            for index in order[start : start + 32]:
                frames, target = examples[index]
                logits = model.gate_logit(frames)[..., 0]
                weight = len(examples) / (2 * counts[target]) * (main_weight if target == MAIN else 1.0)
                loss = loss + weight * F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
            optimizer.zero_grad()
            (loss / len(order[start : start + 32])).backward()
            optimizer.step()
            total += float(loss.detach())
        losses.append(round(total / len(examples), 4))
    gate.eval()
    return losses


@torch.no_grad()
def greedy_report(model: SpeechRecognizer, data: CachedFrames, frames: list[torch.Tensor], tokenizer) -> dict:
    """Greedy CTC error per locale (locale given) of the main head, the companion's and the mixture, and the mean gate."""
    heads: dict[str, list[torch.Tensor]] = {"main": [], "companion": [], "mixture": []}
    gates: dict[str, list[float]] = {}
    for row, both in zip(data.rows, frames):
        locale_id = torch.tensor([tokenizer.locales.index(row["locale"])])
        main, companion, gate_logit = model.expert_log_probs(both[None], locale_id)
        for name, log_probs in zip(heads, (main, companion, mixed_log_probs(main, companion, gate_logit))):
            heads[name].append(log_probs[0])
        gates.setdefault(row["locale"], []).append(float(torch.sigmoid(gate_logit).mean()))
    return {**{name: greedy_rates(data.rows, log_probs, tokenizer) for name, log_probs in heads.items()},
            "mean_gate": {locale: round(float(np.mean(g)), 3) for locale, g in sorted(gates.items())}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a model with a companion encoder (train_backbone's run)")
    p.add_argument("--companion", required=True, help="the convolutional model whose encoder is the companion: its "
                   "CTC head joins the model")
    p.add_argument("--companion-voices", nargs="+", required=True, help="cache folders of the voices the companion "
                   "reads best (espeak-ng's)")
    p.add_argument("--main-voices", nargs="+", required=True, help="cache folders of every other voice")
    p.add_argument("--dev-cache", nargs="*", default=[], help="cache folders to report greedy CTC on (never trained)")
    p.add_argument("--shards", type=int, default=4, help="shards per training cache folder, spread over it")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--main-weight", type=float, default=1.0, help="how much more the main head's voices count than the "
                   "companion's (a frame in doubt goes to the head that hears real people)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    loaded, companion = load_checkpoint(args.checkpoint), load_checkpoint(args.companion)
    if companion.tokenizer.tokens != loaded.tokenizer.tokens:
        raise SystemExit("the companion's token table differs from the model's: their heads cannot be mixed")
    model = loaded.model if loaded.model.config.companion_gate else with_expert_gate(loaded.model, companion.model)
    model.eval()
    tokenizer, after_block = loaded.tokenizer, frozen_blocks(model)

    def cached(folders: list[str], training: bool) -> list[CachedFrames]:
        return [CachedFrames([Path(f)], tokenizer, training=training, after_block=after_block, companion=True,
                             shards=args.shards if training else None) for f in folders]

    examples = []
    for target, folders in ((COMPANION, args.companion_voices), (MAIN, args.main_voices)):
        for data in cached(folders, training=True):
            for view in VIEWS:
                examples += [(frames, target) for frames in expert_frames(model, data, view)]
    print(f"{len(examples)} utterance views to fit the gate on", flush=True)
    losses = fit_gate(model, examples, args.epochs, args.lr, args.seed, args.main_weight)
    report = {"losses": losses, "dev": {}}
    for folder, data in zip(args.dev_cache, cached(args.dev_cache, training=False)):
        report["dev"][Path(folder).name] = {view: greedy_report(model, data, expert_frames(model, data, view), tokenizer)
                                            for view in VIEWS}
    print(json.dumps(report), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded.metadata["expert_gate"] = {
        "companion_voices": [Path(f).name for f in args.companion_voices],
        "main_voices": [Path(f).name for f in args.main_voices], "examples": len(examples), "losses": losses,
        "main_weight": args.main_weight,
        "note": "the gate between the main CTC head and the companion's (python -m model.training.train_gate)"}
    save_checkpoint(out / "last.pt", model, tokenizer, loaded.name, loaded.version, loaded.metadata,
                    loaded.language_models)
    (out / "gate.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
