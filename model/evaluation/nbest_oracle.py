"""How much the finals' ranking leaves on the table: the error rate of the best hypothesis in each final's n-best
(the oracle) beside the served one (the hypothesis ranked first).

A final ranks its beam's hypotheses by attention decoder, CTC, LM and length (model.decoding.rescoring). If the oracle
is far below the served rate, better ranking (a stronger LM, a better decoder) can still gain; if it is close, the
errors are in the first pass, where only the acoustic model or a wider beam helps. The n-best is the locale's tuned
beam, as served. An utterance cut into several segments keeps its served text (the reference cannot be split by
segment), and the count of such utterances is reported.

    python -m model.evaluation.nbest_oracle --manifest data/synth/dev.jsonl [--chunk-ms 640] \
        [--out runs/nbest_oracle.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from model.accuracy.scoring import ErrorCount, count_errors
from model.corpus.manifest import read_manifest
from model.frontend.audio import load_audio_file
from model.network.checkpoint import load_checkpoint
from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.recognizer import DecodeOptions, Recognizer


def oracle_counts(reference: str, served: str, alternatives: list[str], locale: str) -> tuple[ErrorCount, ErrorCount]:
    """(served, oracle) error counts of one utterance: the oracle is the alternative with the fewest errors."""
    served_count = count_errors(reference, served, locale)
    candidates = [count_errors(reference, text, locale) for text in alternatives] or [served_count]
    return served_count, min(candidates, key=lambda c: c.errors)


def measure(checkpoint: str, manifest: str, chunk_frames: int | None, per_locale: int | None = None) -> dict:
    recognizer = Recognizer(load_checkpoint(checkpoint))
    utterances = read_manifest(manifest)
    taken: dict[str, int] = defaultdict(int)
    totals: dict[str, dict] = {}
    for utterance in utterances:
        locale = utterance.locale
        if per_locale is not None and taken[locale] >= per_locale:
            continue
        taken[locale] += 1
        beam = recognizer.beam_options(locale, DecodeOptions(locale=locale)).beam_size
        options = DecodeOptions(locale=locale, nbest=beam, chunk_frames=chunk_frames)
        transcript = recognizer.transcribe(load_audio_file(utterance.audio), options)
        single = len(transcript.segments) == 1
        alternatives = [a.text for a in transcript.segments[0].alternatives] if single else []
        served, oracle = oracle_counts(utterance.text, transcript.text, alternatives, locale)
        row = totals.setdefault(locale, {"beam": beam, "utterances": 0, "multi_segment": 0, "reference_units": 0,
                                         "served_errors": 0, "oracle_errors": 0})
        row["utterances"] += 1
        row["multi_segment"] += 0 if single else 1
        row["reference_units"] += served.reference_units
        row["served_errors"] += served.errors
        row["oracle_errors"] += oracle.errors
    for row in totals.values():
        row["served_rate"] = round(row["served_errors"] / max(row["reference_units"], 1), 4)
        row["oracle_rate"] = round(row["oracle_errors"] / max(row["reference_units"], 1), 4)
    return {"checkpoint": checkpoint, "manifest": manifest, "chunk_frames": chunk_frames, "per_locale": totals}


def table(results: dict) -> str:
    lines = ["| locale | beam (n-best) | served | n-best oracle | multi-segment utterances |",
             "| --- | --- | --- | --- | --- |"]
    for locale, row in sorted(results["per_locale"].items()):
        lines.append(f"| {locale} | {row['beam']} | {100 * row['served_rate']:.1f}% | {100 * row['oracle_rate']:.1f}% "
                     f"| {row['multi_segment']} of {row['utterances']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="model/checkpoints/default.pt")
    parser.add_argument("--manifest", default="data/synth/dev.jsonl")
    parser.add_argument("--chunk-ms", type=int, default=None,
                        help="offline chunked decoding (640: 16 frames); default full context")
    parser.add_argument("--per-locale", type=int, default=None, help="at most this many utterances per locale")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chunk_frames = None if args.chunk_ms is None else args.chunk_ms // ENCODER_FRAME_MS
    results = measure(args.checkpoint, args.manifest, chunk_frames, args.per_locale)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
