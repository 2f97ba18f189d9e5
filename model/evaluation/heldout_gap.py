"""What the held-out split's errors come from: voices the model never heard, or sentences it never saw.

The test and dev splits hold out both (model.corpus.build), so their error rate mixes the two. This renders fresh
utterances per locale in cells of {training sentences, dev sentences} x {training voices, held-out voices, random voices
never used in training (model/corpus/random_voices.py, from rnd90000)}, each cell the same sentences for every voice
set, and decodes them greedily (CTC, no LM, no rescoring: the acoustic model itself) and as served. The LM has read the
training sentences, so only the greedy rows separate sentences from voices fairly.

    python -m model.evaluation.heldout_gap --corpus data/synth --per-cell 150 --out runs/heldout_gap.json

The sentences come from the corpus's train.jsonl and dev.jsonl, or, without rendering its hours, from its plan: the
same sentences (`make corpus`'s settings, then `--corpus data/synth_plan.jsonl.gz`):

    python -m model.corpus.build --out data/synth --hours-per-locale 30 --plan-only data/synth_plan.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from model.corpus.build import Job, make_job, read_plan, run_jobs, split_variants
from model.corpus.manifest import read_manifest
from model.corpus.random_voices import HELD_OUT_START, random_variant_names
from model.evaluation.splits import error_table, transcribe_all
from model.frontend.audio import load_audio_file
from model.network.checkpoint import load_checkpoint
from model.recognition.recognizer import DecodeOptions, Recognizer

SENTENCES = ("train", "dev")
VOICES = ("train", "heldout", "random")
RANDOM_VOICES = 200  # a fixed set of unheard random speakers (rnd90000..rnd90199), the same for every model


def corpus_sentences(corpus: Path) -> dict[str, list[tuple[str, str]]]:
    """{"train": [(locale, text)], "dev": [...]} in id order, from a rendered corpus folder (its manifests) or from
    its plan (`model.corpus.build --plan-only`, a .jsonl.gz): a plan's jobs are the manifests' rows before rendering."""
    if corpus.is_file():
        jobs = sorted(read_plan(corpus), key=lambda job: job.id)
        return {split: [(j.locale, j.text) for j in jobs if j.split == split] for split in SENTENCES}
    return {split: [(u.locale, u.text) for u in read_manifest(corpus / f"{split}.jsonl")] for split in SENTENCES}


def plan_cells(corpus: Path, per_cell: int, locales: tuple[str, ...],
               seed: int = 0) -> list[tuple[tuple[str, str, str], Job]]:
    """((locale, sentences, voices), Job) for every utterance of every cell, deterministic."""
    train_voices, heldout_voices = split_variants(seed, 0.1)
    voice_sets = {"train": train_voices, "heldout": heldout_voices,
                  "random": random_variant_names(RANDOM_VOICES, HELD_OUT_START)}
    sentences_of = corpus_sentences(corpus)
    train, dev = sentences_of["train"], sentences_of["dev"]
    cells = []
    for locale_index, locale in enumerate(locales):
        seen = sorted({text for loc, text in train if loc == locale})
        texts = {"train": [seen[i]
                           for i in np.random.default_rng([seed, locale_index]).permutation(len(seen))[:per_cell]],
                 "dev": [text for loc, text in dev if loc == locale][:per_cell]}
        for s_index, sentences in enumerate(SENTENCES):
            for v_index, voices in enumerate(VOICES):
                for i, text in enumerate(texts[sentences]):
                    job = make_job(locale, f"gap-{sentences}-{voices}", i, text, voice_sets[voices],
                                   (seed, 7, locale_index, s_index, v_index, i))
                    cells.append(((locale, sentences, voices), job))
    return cells


def measure(checkpoint: str, corpus: Path, render_dir: Path, per_cell: int, locales: tuple[str, ...],
            jobs: int = 2) -> dict:
    cells = plan_cells(corpus, per_cell, locales)
    cell_of = {job.id: cell for cell, job in cells}
    utterances, errors = run_jobs([job for _, job in cells], render_dir, jobs)  # rendered once, kept for the next model
    if errors:
        raise RuntimeError(f"{len(errors)} utterances failed to render: {errors[:3]}")
    utterances = [replace(u, audio=str(render_dir / u.audio)) for u in utterances]
    audio = [load_audio_file(u.audio) for u in utterances]
    recognizer = Recognizer(load_checkpoint(checkpoint))
    results: dict = {"checkpoint": checkpoint, "per_cell": per_cell,
                     "random_voices": f"{RANDOM_VOICES} from rnd{HELD_OUT_START:05d}", "cells": {}}
    for mode, options in (("greedy", DecodeOptions(rescore=False, lm_weight=0.0)), ("served", DecodeOptions())):
        texts = [t.text for t in transcribe_all(recognizer, utterances, audio, options)]
        for cell in sorted(set(cell_of.values())):
            rows = [i for i, u in enumerate(utterances) if cell_of[u.id] == cell]
            summary = error_table([utterances[i] for i in rows], [texts[i] for i in rows])[0]
            key = f"{cell[0]} {cell[1]} sentences, {cell[2]} voices"
            results["cells"].setdefault(key, {})[mode] = summary["per_locale"][cell[0]]["error_rate"]
    return results


def table(results: dict) -> str:
    lines = ["| cell | greedy | served |", "| --- | --- | --- |"]
    for key, rates in results["cells"].items():
        lines.append(f"| {key} | {100 * rates['greedy']:.1f}% | {100 * rates['served']:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="model/checkpoints/default.pt")
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"),
                        help="its train.jsonl and dev.jsonl give the sentences; or its plan (.jsonl.gz, --plan-only)")
    parser.add_argument("--render-dir", type=Path, default=Path("data/heldout_gap"))
    parser.add_argument("--per-cell", type=int, default=150)
    parser.add_argument("--locales", nargs="+", default=["zh-CN", "yue-HK", "en-US"])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = measure(args.checkpoint, args.corpus, args.render_dir, args.per_cell, tuple(args.locales), args.threads)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
