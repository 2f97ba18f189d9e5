"""Whether adapting the language models to a deployment's own sentences (model.decoding.adaptation, `openasr lm
adapt`, ASR_DOMAIN_TEXT) helps on that domain and costs nothing elsewhere.

The domain is a broadband and mobile provider's customer-service line, per locale (bench/domain/): 100 lines of its
scripts and callers' requests to adapt with, and 20 further sentences of the same kind, none of them among the 100,
spoken by espeak-ng voices that no training utterance used (`--voices`). Both are decoded as uploads at full context
and in 640 ms chunks (the streaming search), locale named, by the model as built and by the model adapted to the 100
lines. Then the general synthetic test (the first `--general-limit` utterances per locale of `--manifest`) with both,
and the perplexity of both LMs on every sentence of that manifest: the adaptation must not raise either. Each
difference comes with its 95% paired bootstrap interval (as bench.compare_models gives them). Last, what the mixture
costs the streamed search (bench.bench_search's case, at each locale's tuned beam).

    python -m bench.bench_adaptation [--checkpoint PATH] [--manifest data/synth/test.jsonl] [--general-limit 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.bench_finals import speech
from bench.bench_search import CHUNK_FRAMES, streamed_search
from bench.common import (
    ROOT, git_commit, interleaved_timings, machine_info, print_table, set_threads, summarize, write_results,
)
from bench.compare_models import paired_difference
from model.corpus.manifest import Utterance, read_manifest
from model.corpus.synthesize import VoiceSpec, synthesize
from model.decoding.adaptation import adapt_checkpoint
from model.decoding.kneser_ney import perplexity
from model.decoding.search import BeamOptions
from model.evaluation.splits import first_per_locale, transcribe_all, utterance_errors
from model.frontend.audio import load_audio_file
from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.text.normalize import normalize_text

DOMAIN_DIR = ROOT / "bench" / "domain"
LOCALES = ("zh-CN", "yue-HK", "en-US")
# Held-out variants of the corpus build (data/synth/summary.json: heldout_variants), at ordinary speeds.
VOICES = {
    "zh-CN": (
        VoiceSpec("cmn-latn-pinyin", "m1", 220),
        VoiceSpec("cmn-latn-pinyin", "f5", 240),
        VoiceSpec("cmn-latn-pinyin", "norbert", 200),
    ),
    "yue-HK": (VoiceSpec("yue", "m1", 200), VoiceSpec("yue", "f5", 220), VoiceSpec("yue", "norbert", 190)),
    "en-US": (VoiceSpec("en-us", "m1", 170), VoiceSpec("en-us", "f5", 180), VoiceSpec("en-gb", "norbert", 160)),
}
MODES = {"full_context": None, "chunk_640ms": 16}
GENERAL_MANIFEST = Path("data/synth/test.jsonl")


def domain_utterances(locale: str) -> tuple[list[Utterance], list[torch.Tensor]]:
    """The locale's 20 held-out domain sentences in each voice, synthesised here (nothing is written to disk)."""
    sentences = [line.strip() for line in (DOMAIN_DIR / f"{locale}_test.txt").read_text().splitlines() if line.strip()]
    utterances, audio = [], []
    for index, sentence in enumerate(sentences):
        for voice in VOICES[locale]:
            utterances.append(
                Utterance(
                    f"{locale}-domain-{index}-{voice.variant}",
                    "",
                    normalize_text(sentence, locale),
                    locale,
                    voice.speaker,
                    0.0,
                )
            )
            audio.append(torch.from_numpy(synthesize(sentence, voice)))
    return utterances, audio


def paired_error_rates(
    recognizers: dict[str, Recognizer], utterances: list[Utterance], audio: list[torch.Tensor]
) -> dict:
    """mode -> locale -> both models' error rates and the adapted model's difference in points, with its 95% paired
    bootstrap interval (bench.compare_models.paired_difference: the same utterances drawn for both)."""
    counts = {}
    for name, recognizer in recognizers.items():
        for mode, chunk_frames in MODES.items():
            texts = [
                t.text for t in transcribe_all(recognizer, utterances, audio, DecodeOptions(chunk_frames=chunk_frames))
            ]
            counts[name, mode] = utterance_errors(utterances, texts)
    results, rng = {}, np.random.default_rng(0)
    for mode in MODES:
        for locale in LOCALES:
            rows = [i for i, u in enumerate(utterances) if u.locale == locale]
            built, adapted = (np.array([counts[name, mode][i].errors for i in rows]) for name in ("built", "adapted"))
            units = np.array([counts["built", mode][i].reference_units for i in rows])
            results.setdefault(mode, {})[locale] = {
                "reference_units": int(units.sum()),
                **paired_difference(built, adapted, units, rng),
            }
            print(mode, locale, results[mode][locale], flush=True)
    return results


def lm_perplexities(recognizers: dict[str, Recognizer], utterances: list[Utterance]) -> dict:
    """model -> locale -> perplexity of the served LM on the sentences."""
    tokenizer = next(iter(recognizers.values())).tokenizer
    return {
        name: {
            locale: round(
                perplexity(
                    r.language_models[locale], [tokenizer.encode(u.text) for u in utterances if u.locale == locale]
                ),
                1,
            )
            for locale in LOCALES
        }
        for name, r in recognizers.items()
    }


def search_cost(recognizers: dict[str, Recognizer], seconds: float, repeats: int) -> list[dict]:
    """Per locale, the streamed first-pass search of `seconds` of speech (bench.bench_search) with each model's LM
    fusion at the locale's tuned beam, interleaved on one thread: ms per second of audio (median)."""
    rows = []
    for locale in LOCALES:
        built = recognizers["built"]
        log_probs = built.ctc_log_probs(built.encode_segments([speech(locale, seconds)], CHUNK_FRAMES)[0], locale)
        beam = BeamOptions(beam_size=built.beam_options(locale, DecodeOptions()).beam_size)
        cases = {
            name: streamed_search(log_probs, beam, r.lm_fusion(locale, DecodeOptions()))
            for name, r in recognizers.items()
        }
        timings = {name: summarize(t) for name, t in interleaved_timings(cases, repeats).items()}
        rows.append(
            {
                "locale": locale,
                "beam": beam.beam_size,
                "audio_s": seconds,
                **{f"{name}_ms_per_audio_s": round(t.median_ms / seconds, 2) for name, t in timings.items()},
            }
        )
        print(rows[-1], flush=True)
    return rows


def run(checkpoint: Path, manifest: Path | None, general_limit: int) -> dict:
    adapted = load_checkpoint(checkpoint)
    reports = adapt_checkpoint(adapted, {locale: DOMAIN_DIR / f"{locale}.txt" for locale in LOCALES})
    built = load_checkpoint(checkpoint)
    recognizers = {"built": Recognizer(built), "adapted": Recognizer(adapted)}
    domain = [domain_utterances(locale) for locale in LOCALES]
    utterances, audio = [u for us, _ in domain for u in us], [a for _, audio in domain for a in audio]
    result = {
        "checkpoint": str(checkpoint),
        "model": f"{built.name} {built.version}",
        "commit": git_commit(),
        "adaptation": reports,
        "voices": {loc: [v.espeak_voice for v in voices] for loc, voices in VOICES.items()},
        "domain_utterances": len(utterances),
        "domain": paired_error_rates(recognizers, utterances, audio),
        "general": None,
        "search": search_cost(recognizers, seconds=20.0, repeats=5),
        "machine": machine_info(torch.get_num_threads()),
    }
    if manifest:
        every = [u for u in read_manifest(manifest) if u.locale in LOCALES]
        sliced = first_per_locale(every, general_limit)
        result["general"] = {
            "manifest": str(manifest),
            "utterances": len(sliced),
            "error_rates": paired_error_rates(recognizers, sliced, [load_audio_file(u.audio) for u in sliced]),
            "lm_perplexity": {"sentences": len(every), **lm_perplexities(recognizers, every)},
        }
    return result


def print_report(report: dict) -> None:
    rows = []
    for part in ("domain", "general"):
        rates = report[part] if part == "domain" else (report["general"] or {}).get("error_rates")
        for mode in MODES if rates else ():
            for locale, r in rates[mode].items():
                rows.append(
                    (
                        part,
                        mode,
                        locale,
                        r["reference_units"],
                        f"{r['before']:.2%}",
                        f"{r['after']:.2%}",
                        f"{r['difference_points']:+.2f} ({r['ci95_points'][0]:+.2f} to {r['ci95_points'][1]:+.2f})",
                    )
                )
    print_table(
        "domain adaptation: error rates (CER, English WER) of the model as built and adapted",
        ("speech", "mode", "locale", "reference units", "built", "adapted", "points (95%)"),
        rows,
    )
    print_table(
        "the streamed first-pass search at the tuned beam: ms per second of audio (median)",
        ("locale", "beam", "built", "adapted"),
        [(r["locale"], r["beam"], r["built_ms_per_audio_s"], r["adapted_ms_per_audio_s"]) for r in report["search"]],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument(
        "--manifest",
        type=Path,
        default=GENERAL_MANIFEST if GENERAL_MANIFEST.exists() else None,
        help="the general test (default: the corpus's test split, when built)",
    )
    parser.add_argument("--general-limit", type=int, default=300, help="utterances per locale of the general test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="adaptation", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    report = run(args.checkpoint, args.manifest, args.general_limit)
    print_report(report)
    print(f"\nwrote {write_results(args.name, report)}")


if __name__ == "__main__":
    main()
