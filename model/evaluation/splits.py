"""What the evaluation and every error analysis of a split share: its first utterances per locale, decoded as the
service decodes them, their errors counted per locale and per recording condition, and the command line and storage
of an analysis (model.evaluation.tone_errors, sound_alike)."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch

from model.accuracy.scoring import ErrorCount, count_errors, summarize
from model.corpus.manifest import Utterance, read_manifest
from model.frontend.audio import load_audio_file
from model.network.checkpoint import load_checkpoint, update_checkpoint
from model.recognition.recognizer import DecodeOptions, Recognizer


def first_per_locale(utterances: list[Utterance], limit: int) -> list[Utterance]:
    kept: list[Utterance] = []
    seen: defaultdict[str, int] = defaultdict(int)
    for utterance in utterances:
        seen[utterance.locale] += 1
        if seen[utterance.locale] <= limit:
            kept.append(utterance)
    return kept


def transcribe_all(recognizer: Recognizer, utterances: list[Utterance], audio: list[torch.Tensor],
                   options: DecodeOptions, batch: int = 32, detect: bool = False) -> list:
    transcripts = []
    for start in range(0, len(utterances), batch):
        group = utterances[start : start + batch]
        opts = [replace(options, locale=None if detect else u.locale) for u in group]
        transcripts += recognizer.transcribe_batch(audio[start : start + batch], opts)
    return transcripts


def utterance_errors(utterances: list[Utterance], texts: list[str]) -> list[ErrorCount]:
    return [count_errors(utterance.text, text, utterance.locale) for utterance, text in zip(utterances, texts)]


def error_table(utterances: list[Utterance], texts: list[str]) -> tuple[dict, dict]:
    return count_table(utterances, utterance_errors(utterances, texts))


def count_table(utterances: list[Utterance], counts: list[ErrorCount]) -> tuple[dict, dict]:
    """Per-locale summary and per-condition rates of per-utterance error counts."""
    by_locale: dict[str, ErrorCount] = defaultdict(lambda: ErrorCount(0, 0))
    by_condition: dict[str, ErrorCount] = defaultdict(lambda: ErrorCount(0, 0))
    for utterance, count in zip(utterances, counts):
        by_locale[utterance.locale] += count
        by_condition[f"{utterance.locale}/{utterance.condition}"] += count
    conditions = {k: {"error_rate": round(v.rate, 4), "reference_units": v.reference_units}
                  for k, v in sorted(by_condition.items())}
    return summarize(dict(by_locale)), conditions


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line every error analysis of a split shares."""
    parser.add_argument("--checkpoint", default="model/checkpoints/default.pt")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--limit-per-locale", type=int, default=150)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", action="store_true",
                        help="store the results in the checkpoint's metadata (the model card shows them)")


def analysis_inputs(args: argparse.Namespace, locales) -> tuple[list[Utterance], list[torch.Tensor], Recognizer]:
    """The first `--limit-per-locale` utterances of these locales, their audio, and the checkpoint's recognizer."""
    torch.set_num_threads(args.threads)
    utterances = [u for u in first_per_locale(read_manifest(args.manifest), args.limit_per_locale)
                  if u.locale in locales]
    return utterances, [load_audio_file(u.audio) for u in utterances], Recognizer(load_checkpoint(args.checkpoint))


def store_analysis(args: argparse.Namespace, key: str, results: dict) -> None:
    """`--out` and `--store`: the results as JSON, and in the checkpoint's metadata under `key` (loaded afresh)."""
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    if args.store:
        loaded = load_checkpoint(args.checkpoint)
        loaded.metadata[key] = results
        update_checkpoint(args.checkpoint, loaded)
