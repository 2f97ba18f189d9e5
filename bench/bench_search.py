"""What the first-pass CTC prefix beam search costs a stream, per locale and beam (8, 16, 24), with the locale's tuned
LM fusion (and English's lexicon): the served search, which builds only the extensions that could beat the floor its
kept prefixes guarantee and LM-scores a frame's candidates best-first only while one can still reach the beam, against
building and scoring every candidate (as the search did before 0.10.0, though with the cache of LM lookups by context it
gained then, cleared before each run), timed interleaved in one run.
Both find the same beams (tests/decoding/test_search.py); the table also counts LM lookups (cache hits included).

The search runs once per chunk of every stream on the server's search threads, so its cost per second of audio
bounds how many streams a core can follow (bench_streams measures that end to end).

    python -m bench.bench_search [--checkpoint PATH] [--seconds 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from bench.bench_finals import speech
from bench.common import (benchmark_recognizer, interleaved_timings, machine_info, print_table, set_threads, summarize,
                          write_results)
from model.decoding.search import BeamOptions, LmFusion, prefix_beam_search
from model.recognition.recognizer import DecodeOptions

LOCALES = ("zh-CN", "yue-HK", "en-US")
BEAMS = (8, 16, 24)
CHUNK_FRAMES = 16  # 640 ms, the service's default


@dataclass(frozen=True)
class SearchBenchOptions:
    checkpoint: str | None = None
    seconds: float = 20.0
    repeats: int = 5


@dataclass(frozen=True)
class CountingFusion(LmFusion):
    """The locale's fusion, counting its LM lookups."""

    lookups: list = None  # one-element counter (the dataclass is frozen)

    def token_score(self, prefix, token):
        self.lookups[0] += 1
        return super().token_score(prefix, token)


def streamed_search(log_probs: torch.Tensor, options: BeamOptions, fusion: LmFusion):
    """The stream's whole search, chunk by chunk as the server runs it."""
    def run():
        fusion.lm.clear_cache()  # what one stream's own lookups repeat, not what earlier runs left in the cache
        state = None
        for start in range(0, log_probs.shape[0], CHUNK_FRAMES):
            state = prefix_beam_search(log_probs[start : start + CHUNK_FRAMES], state, options, None, fusion)
        return state
    return run


def run(options: SearchBenchOptions) -> dict:
    set_threads(1)  # the search is Python on one of the server's search threads
    checkpoint, loaded, recognizer = benchmark_recognizer(options.checkpoint)
    rows = []
    for locale in LOCALES:
        encoded = recognizer.encode_segments([speech(locale, options.seconds)], CHUNK_FRAMES)[0]
        log_probs = recognizer.ctc_log_probs(encoded, locale)
        tuned = recognizer.lm_fusion(locale, DecodeOptions())
        for beam in BEAMS:
            fusions = {name: CountingFusion(tuned.lm, tuned.weight, tuned.bonus, tuned.lexicon, [0])
                       for name in ("pruned", "all")}
            cases = {name: streamed_search(log_probs, BeamOptions(beam_size=beam, skip_unrankable=name == "pruned"),
                                           fusion)
                     for name, fusion in fusions.items()}
            timings = interleaved_timings(cases, options.repeats)
            calls = {name: fusion.lookups[0] // (options.repeats + 1) for name, fusion in fusions.items()}
            rows.append({"locale": locale, "beam": beam,
                         "tuned_beam": recognizer.beam_options(locale, DecodeOptions()).beam_size,
                         "audio_s": options.seconds, "pruned": summarize(timings["pruned"]),
                         "score_all": summarize(timings["all"]), "lm_lookups_pruned": calls["pruned"],
                         "lm_lookups_all": calls["all"]})
    return {"benchmark": "search", "machine": machine_info(1), "options": options.__dict__,
            "model": f"{loaded.name} {loaded.version} ({checkpoint})", "chunk_frames": CHUNK_FRAMES, "rows": rows}


def print_report(report: dict) -> None:
    machine = report["machine"]
    print(f"model: {report['model']}; {machine['cpu_model']}, 1 thread, load {machine['load_average_1m_at_start']}")
    per_s = lambda row, key: row[key].median_ms / row["audio_s"]  # noqa: E731
    print_table(
        "prefix beam search with the tuned LM fusion, streamed in 640 ms chunks: ms per second of audio (median)",
        ("locale", "beam", "tuned", "served", "scoring all", "speed-up", "LM lookups served / all"),
        [(r["locale"], r["beam"], "yes" if r["beam"] == r["tuned_beam"] else "", f"{per_s(r, 'pruned'):.2f}",
          f"{per_s(r, 'score_all'):.2f}", f"{r['score_all'].median_ms / r['pruned'].median_ms:.2f}",
          f"{r['lm_lookups_pruned']} / {r['lm_lookups_all']}") for r in report["rows"]],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = run(SearchBenchOptions(args.checkpoint, args.seconds, args.repeats))
    print_report(report)
    print(f"\nwrote {write_results('search', report)}")


if __name__ == "__main__":
    main()
