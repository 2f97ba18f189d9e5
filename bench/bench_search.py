"""What the first-pass CTC prefix beam search costs a stream, per locale and beam (8, 16, 24), with the locale's tuned
LM fusion (and English's lexicon): the served search, compiled (model/decoding/_ctc_search.cpp), against the Python
search it replaced (`reference_prefix_beam_search`), timed interleaved in one run on the same posteriors. Both find the
same beams, bit for bit (tests/decoding/test_compiled_search.py).

The Python search caches LM lookups by context in a dict that every stream of a locale shares: it is timed with that
cache cleared before each run (what one stream's own lookups repeat) and with it kept from the earlier runs (a busy
server's steady state); the compiled search looks every n-gram up in its own tables and keeps no cache.

The search runs once per chunk of every stream on the server's search threads, on posteriors the device thread has
already cut to each frame's best labels for the whole batch (search.frame_posteriors), so that cut is made before the
timing here. Its cost per second of audio bounds how many streams a core can follow (bench_streams measures that end
to end).

    python -m bench.bench_search [--checkpoint PATH] [--seconds 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.bench_finals import speech
from bench.common import (benchmark_recognizer, git_commit, interleaved_timings, machine_info, print_table,
                          set_threads, summarize, write_results)
from model.decoding import compiled_search
from model.decoding.search import (BeamOptions, BeamState, LmFusion, frame_posteriors, prefix_beam_search,
                                   reference_prefix_beam_search)
from model.recognition.recognizer import DecodeOptions

LOCALES = ("zh-CN", "yue-HK", "en-US")
BEAMS = (8, 16, 24)
CHUNK_FRAMES = 16  # 640 ms, the service's default


@dataclass(frozen=True)
class SearchBenchOptions:
    checkpoint: str | None = None
    seconds: float = 20.0
    repeats: int = 5


def streamed_search(log_probs: torch.Tensor, options: BeamOptions, fusion: LmFusion | None,
                    search=prefix_beam_search, lm_cache: dict | None = None) -> Callable[[], BeamState | None]:
    """The stream's whole search, chunk by chunk as the server runs it (each chunk's posteriors cut beforehand).
    The Python search's LM cache is emptied before each run (what one stream's own lookups repeat), or, given
    `lm_cache`, is that dict, kept from one run to the next (a busy server's steady state)."""
    chunks = [frame_posteriors(chunk[None], [chunk.shape[0]], options.token_candidates)[0]
              for chunk in log_probs.split(CHUNK_FRAMES)]

    def run() -> BeamState | None:
        lm = fusion.lm if fusion is not None else None
        own = lm.cache if lm is not None else {}
        if lm is not None and lm_cache is None:
            lm.clear_cache()
        elif lm is not None and lm_cache is not None:
            lm.cache = lm_cache
        try:
            state = None
            for posteriors in chunks:
                state = search(posteriors, state, options, None, fusion)
            return state
        finally:
            if lm is not None:
                lm.cache = own
    return run


def run(options: SearchBenchOptions) -> dict:
    if not compiled_search.AVAILABLE:
        raise SystemExit("the compiled search is not built (make install, or python setup.py build_ext --inplace)")
    set_threads(1)  # the search runs on one of the server's search threads
    checkpoint, loaded, recognizer = benchmark_recognizer(options.checkpoint)
    rows = []
    for locale in LOCALES:
        encoded = recognizer.encode_segments([speech(locale, options.seconds)], CHUNK_FRAMES)[0]
        log_probs = recognizer.ctc_log_probs(encoded, locale)
        fusion = recognizer.lm_fusion(locale, DecodeOptions())
        for beam in BEAMS:
            beam_options = BeamOptions(beam_size=beam)
            cases = {"compiled": streamed_search(log_probs, beam_options, fusion),
                     "python": streamed_search(log_probs, beam_options, fusion, reference_prefix_beam_search),
                     "python_cache_warm": streamed_search(log_probs, beam_options, fusion, reference_prefix_beam_search,
                                                          lm_cache={})}
            timings = interleaved_timings(cases, options.repeats)
            rows.append({"locale": locale, "beam": beam,
                         "tuned_beam": recognizer.beam_options(locale, DecodeOptions()).beam_size,
                         "audio_s": options.seconds, **{name: summarize(t) for name, t in timings.items()}})
    return {"benchmark": "search", "machine": machine_info(1), "options": options.__dict__,
            "model": f"{loaded.name} {loaded.version} ({checkpoint})", "commit": git_commit(),
            "chunk_frames": CHUNK_FRAMES, "rows": rows}


def print_report(report: dict) -> None:
    machine = report["machine"]
    print(f"model: {report['model']}; {machine['cpu_model']}, 1 thread, load {machine['load_average_1m_at_start']}")
    per_s = lambda row, key: row[key].median_ms / row["audio_s"]  # noqa: E731
    ratio = lambda row, key: row[key].median_ms / row["compiled"].median_ms  # noqa: E731
    print_table(
        "prefix beam search with the tuned LM fusion, streamed in 640 ms chunks: ms per second of audio (median)",
        ("locale", "beam", "tuned", "compiled", "Python", "Python, LM cache warm", "speed-up", "speed-up, warm"),
        [(r["locale"], r["beam"], "yes" if r["beam"] == r["tuned_beam"] else "", f"{per_s(r, 'compiled'):.2f}",
          f"{per_s(r, 'python'):.2f}", f"{per_s(r, 'python_cache_warm'):.2f}", f"{ratio(r, 'python'):.1f}",
          f"{ratio(r, 'python_cache_warm'):.1f}") for r in report["rows"]],
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
