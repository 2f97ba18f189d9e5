"""What a streaming final costs, by the length of its segment: the final n-best (LM fusion's end-of-sentence scores)
and attention rescoring of a segment 2.5, 5, 10 and 20 s long, for Mandarin and English, with the decoder's output
normalised over the locale's tokens (what the service does) and over the whole vocabulary (before), timed
interleaved in one run.

A final rescores its whole segment, so its cost grows with the segment; endpointing (`long_segment_s`: a segment of
10 s ends at a pause of 0.4 s) keeps running speech from reaching the 20 s row.

    python -m bench.bench_finals [--checkpoint PATH] [--threads 1] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from bench.common import (benchmark_recognizer, interleaved_timings, machine_info, print_measured_on, print_table,
                          set_threads, summarize, write_results)
from model.decoding.rescoring import rescore
from model.decoding.search import beam_hypotheses
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.recognition.stream_decoder import (EndpointConfig, StreamState, accept_samples, current_locale, drain,
                                              new_stream)

SEGMENT_S = (2.5, 5.0, 10.0, 20.0)
LOCALES = ("zh-CN", "en-US")
CHUNK_FRAMES = 16  # 640 ms, the service's default
SAMPLES = Path(__file__).resolve().parent.parent / "model" / "samples"


@dataclass(frozen=True)
class FinalsBenchOptions:
    checkpoint: str | None = None
    threads: int = 1  # a final runs on one of the server's search threads
    repeats: int = 10


def speech(locale: str, seconds: float) -> torch.Tensor:
    """The bundled samples of the locale, joined by 0.2 s pauses (too short to endpoint), cut to `seconds`."""
    rows = [json.loads(line) for line in (SAMPLES / "samples.jsonl").read_text().splitlines()]
    pieces = [soundfile.read(SAMPLES / r["audio"], dtype="float32")[0] for r in rows if r["locale"] == locale]
    pause = np.zeros(3200, dtype=np.float32)
    joined = np.concatenate([x for p in pieces for x in (p, pause)])
    return torch.from_numpy(np.tile(joined, int(np.ceil(seconds * 16000 / len(joined))))[: int(seconds * 16000)])


def open_segment(recognizer: Recognizer, locale: str, seconds: float) -> StreamState:
    """A stream that has decoded `seconds` of speech as one open segment, just before its final."""
    never = EndpointConfig(min_trailing_silence_s=1e9, max_silence_without_speech_s=1e9, max_segment_s=1e9,
                           long_segment_s=1e9)
    state = accept_samples(new_stream(recognizer, DecodeOptions(locale=locale), CHUNK_FRAMES, never),
                           speech(locale, seconds))
    state, _ = drain(recognizer, state, final=True)
    return state


def final_cost(recognizer: Recognizer, state: StreamState, whole_vocabulary: bool):
    """The work of `stream_decoder.finalize_segment` for this state: final n-best, then rescoring."""
    locale, _ = current_locale(recognizer, state)
    allowed = None if whole_vocabulary else recognizer.model.locale_token_mask[recognizer.locales.index(locale)]
    encoded = torch.cat(state.segment_encoded)
    start = recognizer.tokenizer.locale_start_id(locale)

    def run():
        hypotheses = beam_hypotheses(state.search, state.hotwords, final=True,
                                     fusion=recognizer.lm_fusion(state.options.locale, state.options))
        return rescore(recognizer.model, encoded, hypotheses, start, allowed=allowed)
    return run


def run(options: FinalsBenchOptions) -> dict:
    set_threads(options.threads)
    checkpoint, loaded, recognizer = benchmark_recognizer(options.checkpoint)
    rows = []
    for locale in LOCALES:
        for seconds in SEGMENT_S:
            state = open_segment(recognizer, locale, seconds)
            cases = {"locale": final_cost(recognizer, state, False), "whole": final_cost(recognizer, state, True)}
            timings = interleaved_timings(cases, options.repeats)
            best = cases["locale"]()[0].hypothesis
            rows.append({"locale": locale, "segment_s": seconds, "tokens": len(best.token_ids),
                         "locale_vocabulary": summarize(timings["locale"]),
                         "whole_vocabulary": summarize(timings["whole"])})
    return {"benchmark": "finals", "machine": machine_info(options.threads), "options": options.__dict__,
            "model": f"{loaded.name} {loaded.version} ({checkpoint})", "chunk_frames": CHUNK_FRAMES, "rows": rows}


def print_report(report: dict) -> None:
    print_measured_on(report)
    print_table(
        "one final (final n-best + attention rescoring) by segment length, median ms (p95)",
        ("locale", "segment s", "tokens", "locale vocabulary", "whole vocabulary", "ratio"),
        [(r["locale"], f"{r['segment_s']:g}", r["tokens"],
          f"{r['locale_vocabulary'].median_ms:.1f} ({r['locale_vocabulary'].p95_ms:.1f})",
          f"{r['whole_vocabulary'].median_ms:.1f} ({r['whole_vocabulary'].p95_ms:.1f})",
          f"{r['whole_vocabulary'].median_ms / r['locale_vocabulary'].median_ms:.2f}") for r in report["rows"]],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    report = run(FinalsBenchOptions(args.checkpoint, args.threads, args.repeats))
    print_report(report)
    print(f"\nwrote {write_results('finals', report)}")


if __name__ == "__main__":
    main()
