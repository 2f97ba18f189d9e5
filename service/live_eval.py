"""Evaluate a running server with a labelled manifest: upload each file, post its reference as feedback, and
print the per-locale error table. The same counts then appear in the server's /metrics and /v1/fairness.

    python -m service.live_eval --server http://127.0.0.1:8000 --manifest model/samples/samples.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx

from model.accuracy.scoring import ErrorCount, uses_words


def evaluate_live(server: str, manifest: Path, timeout_s: float = 120) -> dict[str, ErrorCount]:
    totals: dict[str, ErrorCount] = {}
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    with httpx.Client(base_url=server, timeout=timeout_s) as client:
        for row in rows:
            audio = Path(row["audio"]) if Path(row["audio"]).is_absolute() else manifest.parent / row["audio"]
            response = client.post("/transcribe", files={"file": (audio.name, audio.read_bytes())},
                                   data={"locale": row["locale"]})
            response.raise_for_status()
            scored = client.post("/v1/feedback",
                                 json={"request_id": response.json()["request_id"], "reference": row["text"]})
            scored.raise_for_status()
            result = scored.json()
            count = ErrorCount(result["errors"], result["reference_units"])
            totals[result["locale"]] = totals.get(result["locale"], ErrorCount(0, 0)) + count
    return totals


def format_table(totals: dict[str, ErrorCount]) -> str:
    lines = [f"{'locale':<10} {'metric':<6} {'errors':>7} {'units':>7} {'rate':>8}"]
    for locale, count in sorted(totals.items()):
        metric = "WER" if uses_words(locale) else "CER"
        lines.append(f"{locale:<10} {metric:<6} {count.errors:>7} {count.reference_units:>7} {count.rate:>8.2%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--manifest", type=Path, required=True, help="JSONL with audio, text, locale")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    totals = evaluate_live(args.server, args.manifest)
    if args.json:
        print(json.dumps({k: {"errors": v.errors, "reference_units": v.reference_units} for k, v in totals.items()}))
    else:
        print(format_table(totals))


if __name__ == "__main__":
    main()
