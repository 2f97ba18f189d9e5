"""What `format=written` costs a final, by the length of its segment: the written form as before (numbers only,
wetext), the punctuation and casing tagger alone (model.text.punctuation), and the whole written form now (tagger,
then numbers per clause: service/written.py), for each locale, timed interleaved in one run on one thread (a final is
written on one of the server's threads).

A segment's text is the bundled samples' references of its locale joined until their audio reaches 2.5, 5, 10 and
20 s (endpointing keeps running speech from reaching the 20 s row).

    python -m bench.bench_punctuation [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from bench.common import (interleaved_timings, machine_info, print_measured_on, print_table, set_threads, summarize,
                          write_results)
from model.text.punctuation import DEFAULT_PUNCTUATION, units_of
from service.written import punctuator, written, written_numbers

SEGMENT_S = (2.5, 5.0, 10.0, 20.0)
LOCALES = ("zh-CN", "yue-HK", "en-US")
SAMPLES = Path(__file__).resolve().parent.parent / "model" / "samples"


@dataclass(frozen=True)
class PunctuationBenchOptions:
    threads: int = 1
    repeats: int = 30


def segment_text(locale: str, seconds: float) -> str:
    """The locale's sample references, in turn, until their audio lasts `seconds`."""
    rows = [json.loads(line) for line in (SAMPLES / "samples.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["locale"] == locale]
    texts, heard_s = [], 0.0
    while heard_s < seconds:
        row = rows[len(texts) % len(rows)]
        texts.append(row["text"])
        heard_s += row["duration"]
    return (" " if locale == "en-US" else "").join(texts)


def run(options: PunctuationBenchOptions) -> dict:
    set_threads(options.threads)
    written("warm up", "en-US")  # loads the taggers and wetext's grammars once
    rows = []
    for locale in LOCALES:
        for seconds in SEGMENT_S:
            text = segment_text(locale, seconds)
            units = [m.group() for m in units_of(text)]
            cases = {"numbers": lambda: written_numbers(text, locale),
                     "tagger": lambda: punctuator().tag(units, locale),
                     "written": lambda: written(text, locale)}
            timings = interleaved_timings(cases, options.repeats)
            rows.append({"locale": locale, "segment_s": seconds, "units": len(units), "example": written(text, locale),
                         **{name: summarize(t) for name, t in timings.items()}})
    return {"benchmark": "punctuation", "machine": machine_info(options.threads), "options": options.__dict__,
            "model": f"{DEFAULT_PUNCTUATION.name} (trained {punctuator().metadata['trained_at']})", "rows": rows}


def print_report(report: dict) -> None:
    print_measured_on(report)
    print_table(
        "the written form of one final by segment length, median ms (p95)",
        ("locale", "segment s", "units", "numbers only (before)", "tagger", "written now", "added"),
        [(r["locale"], f"{r['segment_s']:g}", r["units"], f"{r['numbers'].median_ms:.2f} ({r['numbers'].p95_ms:.2f})",
          f"{r['tagger'].median_ms:.2f} ({r['tagger'].p95_ms:.2f})",
          f"{r['written'].median_ms:.2f} ({r['written'].p95_ms:.2f})",
          f"{r['written'].median_ms - r['numbers'].median_ms:.2f}") for r in report["rows"]],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    report = run(PunctuationBenchOptions(args.threads, args.repeats))
    print_report(report)
    print(f"\nwrote {write_results('punctuation', report)}")


if __name__ == "__main__":
    main()
