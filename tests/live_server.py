"""The real service for tests (bench/server_process.py, which the benchmarks use too) and the bundled sample
recordings with their references."""

from __future__ import annotations

import json

from bench.server_process import ROOT, LiveServer, free_port, start_server  # noqa: F401 - re-exported for the tests

SAMPLES = ROOT / "model" / "samples"


def samples() -> list[dict]:
    rows = [json.loads(line) for line in (SAMPLES / "samples.jsonl").read_text().splitlines()]
    return [{**row, "path": SAMPLES / row["audio"]} for row in rows]
