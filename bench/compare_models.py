"""Two checkpoints on the same utterances, paired: each with its own tuned decoding (the served pipeline, nbest 1), at
full context and 640 ms chunks, per locale; the difference in error-rate points with a 95% percentile bootstrap
interval over the locale's utterances (the same draws for both models), and how many utterances got better or worse.

    python -m bench.compare_models --before runs/s15/default_0112.pt --after model/checkpoints/default.pt \
        --manifest data/synth/test.jsonl

`--before-quantize` / `--after-quantize int8` serve a side with int8 linear layers (model.network.precision), so one
checkpoint against itself measures what CPU int8 serving costs in accuracy:

    python -m bench.compare_models --before model/checkpoints/default.pt --after-quantize int8 \
        --manifest data/synth/test.jsonl --limit-per-locale 50 --results-name compare_int8_synthetic

With `--greedy-cache DIR` the two are compared by greedy CTC over a feature cache's split instead (`--split dev`): no
LM, beam or rescoring, so neither model's decoding tuning enters. This is how a training candidate is judged on dev
before it is tuned and bundled (its float32 average against the last release), and it takes about a minute.

    python -m bench.compare_models --before model/checkpoints/default.pt --after runs/s17/candidate_f32.pt \
        --greedy-cache data/cache4 --split dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_commit, print_table, write_results  # noqa: E402
from model.accuracy.bootstrap import BootstrapOptions, LocaleCounts, interval, resampled_rates  # noqa: E402
from model.corpus.manifest import read_manifest  # noqa: E402
from model.evaluation.splits import first_per_locale, transcribe_all, utterance_errors  # noqa: E402
from model.frontend.audio import load_audio_file  # noqa: E402
from model.network.checkpoint import load_checkpoint  # noqa: E402
from model.network.precision import QUANTIZATIONS, quantize_linear_layers  # noqa: E402
from model.recognition.recognizer import DecodeOptions, Recognizer  # noqa: E402
from model.training.dataset import FeatureCorpus  # noqa: E402
from model.training.greedy_eval import greedy_utterance_errors  # noqa: E402

MODES = {"full_context": None, "chunk_640ms": 16}


def paired_difference(before: np.ndarray, after: np.ndarray, units: np.ndarray, rng: np.random.Generator,
                      options: BootstrapOptions = BootstrapOptions()) -> dict:
    """Error counts per utterance of two models and the utterances' reference units -> rates and the difference,
    resampled as model.evaluation.evaluate's intervals are (the same draws for both models)."""
    rates = resampled_rates(LocaleCounts(units, {"before": before, "after": after}), options.resamples, rng)
    low, high = interval(rates["after"] - rates["before"], options.level)
    return {"before": round(before.sum() / units.sum(), 4), "after": round(after.sum() / units.sum(), 4),
            "difference_points": round(100 * (after.sum() - before.sum()) / units.sum(), 2),
            "ci95_points": [round(100 * low, 2), round(100 * high, 2)],
            "better": int((after < before).sum()), "worse": int((after > before).sum())}


def served_errors(args: argparse.Namespace) -> tuple[list[str], dict]:
    """Each utterance's locale, and its error counts per (side, mode) through the served pipeline on audio."""
    utterances = read_manifest(args.manifest)
    if args.limit_per_locale:
        utterances = first_per_locale(utterances, args.limit_per_locale)
    audio = [load_audio_file(u.audio) for u in utterances]
    counts = {}
    for side in ("before", "after"):
        recognizer = Recognizer(load_checkpoint(getattr(args, side)), quantization=getattr(args, f"{side}_quantize"))
        for mode, chunk_frames in MODES.items():
            texts = [t.text for t in transcribe_all(recognizer, utterances, audio,
                                                    DecodeOptions(nbest=1, chunk_frames=chunk_frames))]
            counts[side, mode] = utterance_errors(utterances, texts)
    return [u.locale for u in utterances], counts


def greedy_errors(args: argparse.Namespace) -> tuple[list[str], dict]:
    """Each utterance's locale, and its greedy CTC error counts per (side, mode) over a feature cache's split."""
    corpus = FeatureCorpus.open(args.greedy_cache, args.split)
    counts = {}
    for side in ("before", "after"):
        loaded = load_checkpoint(getattr(args, side))
        quantize_linear_layers(loaded.model, getattr(args, f"{side}_quantize"))
        for mode, chunk_frames in MODES.items():
            by_index = greedy_utterance_errors(loaded, corpus, chunk_frames)
            counts[side, mode] = [by_index[i] for i in range(len(corpus.rows))]
    return [row["locale"] for row in corpus.rows], counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default="model/checkpoints/default.pt")
    for side in ("before", "after"):
        parser.add_argument(f"--{side}-quantize", choices=QUANTIZATIONS, default="none",
                            help=f"serve the {side} side's linear layers in int8 (CPU)")
    parser.add_argument("--limit-per-locale", type=int, help="the first N utterances of each locale of --manifest")
    parser.add_argument("--results-name", help="bench/results/NAME.json (default: compare_models[_greedy])")
    parser.add_argument("--manifest", default="data/synth/test.jsonl")
    parser.add_argument("--greedy-cache",
                        help="compare greedy CTC over this feature cache instead of the served pipeline")
    parser.add_argument("--split", default="dev", help="the feature cache's split (with --greedy-cache)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    locales, counts = greedy_errors(args) if args.greedy_cache else served_errors(args)
    results, rng = {}, np.random.default_rng(0)
    for mode in MODES:
        for locale in sorted(set(locales)):
            rows = [i for i, loc in enumerate(locales) if loc == locale]
            before, after = (np.array([counts[side, mode][i].errors for i in rows]) for side in ("before", "after"))
            units = np.array([counts["before", mode][i].reference_units for i in rows])
            results[f"{mode} {locale}"] = paired_difference(before, after, units, rng)
    source = f"greedy CTC on {args.greedy_cache} {args.split}" if args.greedy_cache else args.manifest
    before, after = (f"{getattr(args, side)} ({getattr(args, f'{side}_quantize')})" for side in ("before", "after"))
    print_table(f"{before} -> {after} on {source}",
                ["mode, locale", "before", "after", "points (95%)", "better / worse"],
                [[key, f"{r['before']:.2%}", f"{r['after']:.2%}",
                  f"{r['difference_points']:+.2f} ({r['ci95_points'][0]:+.2f} to {r['ci95_points'][1]:+.2f})",
                  f"{r['better']} / {r['worse']}"] for key, r in results.items()])
    write_results(args.results_name or ("compare_models_greedy" if args.greedy_cache else "compare_models"),
                  {"before": args.before, "after": args.after, "before_quantize": args.before_quantize,
                   "after_quantize": args.after_quantize, "source": source,
                   "limit_per_locale": args.limit_per_locale, "commit": git_commit(), "paired": results})


if __name__ == "__main__":
    main()
