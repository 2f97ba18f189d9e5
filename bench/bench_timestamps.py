"""How accurate the word timestamps are: each test sentence is spoken again by espeak-ng's library, which reports the
sample where every word begins (model/corpus/word_times.py), then transcribed as an upload (full context) and as a
640 ms stream (the service's streaming path, endpointing included), locale named. Recognised words that match the
reference (an edit-distance alignment; Chinese by character, English by word) are compared by start time.

Reported per locale and mode, for word starts and word ends (a word ends where the next begins; the last where the
speech does): how many reference words were matched, the mean signed error (positive: the service says later than
spoken), the median and 90th percentile of the absolute error, and the share within 100 and 200 ms. Times come in
40 ms encoder frames, so about 20 ms of error is the floor.

    python -m bench.bench_timestamps [--checkpoint PATH] [--manifest data/synth/test.jsonl] [--per-locale 60]

Without the manifest (no corpus built), the bundled samples' sentences and voices are used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein

from bench.common import benchmark_recognizer, machine_info, print_table, set_threads, write_results
from model.accuracy.scoring import scoring_units
from model.corpus.build import LOCALES
from model.corpus.manifest import read_manifest
from model.corpus.synthesize import VoiceSpec
from model.corpus.word_times import WordTime, synthesize_with_word_times
from model.decoding.results import SegmentResult
from model.recognition.recognizer import DecodeOptions
from model.recognition.stream_decoder import FinalEvent, decode_stream_offline

CHUNK_FRAMES = 16  # 640 ms, the service's default
SAMPLES_MANIFEST = Path(__file__).resolve().parent.parent / "model" / "samples" / "samples.jsonl"


@dataclass(frozen=True)
class TimestampBenchOptions:
    checkpoint: str | None = None
    manifest: str = "data/synth/test.jsonl"
    per_locale: int = 60
    seed: int = 0
    threads: int = 2


def voice_for(speaker: str, locale: str, rng: np.random.Generator) -> VoiceSpec:
    """The manifest's voice (espeak language + variant) at a speed and pitch drawn like the corpus builder's."""
    language, _, variant = speaker.partition("+")
    low, high = LOCALES[locale].speed
    return VoiceSpec(language, variant or None, int(rng.integers(low, high + 1)), int(rng.integers(20, 81)))


def reference_units(words: list[WordTime], locale: str) -> list[tuple[str, float, float]]:
    """(unit, start, end) per scoring unit: an English word, or a Chinese character (one espeak event per Hanzi)."""
    return [(unit, word.start_s, word.end_s) for word in words for unit in scoring_units(word.text.lower(), locale)]


def time_errors(reference: list[tuple[str, float, float]], segments: list[SegmentResult]
                ) -> tuple[list[tuple[float, float]], int]:
    """(start, end) errors (hypothesis - reference, seconds) of the recognised words that align to an equal
    reference word, and how many reference words there were."""
    hypothesis = [(word.text, word.start_s, word.end_s) for segment in segments for word in segment.words]
    errors = []
    for tag, ref_start, ref_end, hyp_start, _ in Levenshtein.opcodes([u[0] for u in reference],
                                                                     [u[0] for u in hypothesis]):
        if tag == "equal":
            for r, h in zip(range(ref_start, ref_end), range(hyp_start, hyp_start + ref_end - ref_start)):
                errors.append((hypothesis[h][1] - reference[r][1], hypothesis[h][2] - reference[r][2]))
    return errors, len(reference)


def error_summary(errors: list[tuple[float, float]], reference_words: int) -> dict:
    summary = {"reference_words": reference_words, "matched_words": len(errors)}
    for index, edge in enumerate(("start", "end")):
        signed = np.array([e[index] for e in errors]) * 1000
        absolute = np.abs(signed)
        summary[edge] = {"mean_signed_ms": round(float(signed.mean()), 1),
                         "median_abs_ms": round(float(np.median(absolute)), 1),
                         "p90_abs_ms": round(float(np.percentile(absolute, 90)), 1),
                         "within_100ms": round(float(np.mean(absolute <= 100)), 3),
                         "within_200ms": round(float(np.mean(absolute <= 200)), 3)} if errors else None
    return summary


def run(options: TimestampBenchOptions) -> dict:
    set_threads(options.threads)
    checkpoint, loaded, recognizer = benchmark_recognizer(options.checkpoint)
    manifest = Path(options.manifest) if Path(options.manifest).exists() else SAMPLES_MANIFEST
    rng = np.random.default_rng(options.seed)
    rows, raw = [], {}
    for locale in loaded.tokenizer.locales:
        utterances = [u for u in read_manifest(manifest) if u.locale == locale][: options.per_locale]
        errors: dict[str, list[tuple[float, float]]] = {"upload (full context)": [], "stream (640 ms)": []}
        words = 0
        for utterance in utterances:
            audio, word_times = synthesize_with_word_times(utterance.text, voice_for(utterance.speaker, locale, rng))
            reference = reference_units(word_times, locale)
            samples = torch.from_numpy(audio)
            upload = recognizer.transcribe(samples, DecodeOptions(locale=locale)).segments
            _, events = decode_stream_offline(recognizer, samples, DecodeOptions(locale=locale), CHUNK_FRAMES)
            streamed = [e.segment for e in events if isinstance(e, FinalEvent)]
            for mode, segments in (("upload (full context)", list(upload)), ("stream (640 ms)", streamed)):
                found, words_here = time_errors(reference, segments)
                errors[mode] += found
            words += words_here
        for mode, found in errors.items():
            rows.append({"locale": locale, "mode": mode, "utterances": len(utterances), **error_summary(found, words)})
            raw[f"{locale} {mode}"] = [[round(start * 1000, 1), round(end * 1000, 1)] for start, end in found]
    return {"benchmark": "timestamps", "machine": machine_info(options.threads), "options": options.__dict__,
            "sentences_from": str(manifest), "model": f"{loaded.name} {loaded.version} ({checkpoint})",
            "rows": rows, "errors_ms": raw}


def print_report(report: dict) -> None:
    print(f"model: {report['model']}; sentences and voices: {report['sentences_from']}")
    for edge in ("start", "end"):
        print_table(
            f"word {edge} times against espeak-ng's word events (positive: reported later than spoken)",
            ("locale", "mode", "matched / words", "mean signed ms", "median |err| ms", "p90 |err| ms", "<=100 ms",
             "<=200 ms"),
            [(r["locale"], r["mode"], f"{r['matched_words']} / {r['reference_words']}", *(
                (r[edge][k] for k in ("mean_signed_ms", "median_abs_ms", "p90_abs_ms", "within_100ms", "within_200ms"))
                if r[edge] else ("",) * 5)) for r in report["rows"]],
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--manifest", default=TimestampBenchOptions.manifest)
    parser.add_argument("--per-locale", type=int, default=TimestampBenchOptions.per_locale)
    parser.add_argument("--threads", type=int, default=TimestampBenchOptions.threads)
    args = parser.parse_args(argv)
    report = run(TimestampBenchOptions(args.checkpoint, args.manifest, args.per_locale, threads=args.threads))
    print_report(report)
    print(f"\nwrote {write_results('timestamps', report)}")


if __name__ == "__main__":
    main()
