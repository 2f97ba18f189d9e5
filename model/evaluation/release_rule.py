"""The release rule on real speech: does a candidate model's error fall against the released one's, paired, beyond
the bootstrap interval of the difference?

Both evaluations come from `model.evaluation.evaluate` on the same manifest (their `per_utterance` records). For each
locale and decoding mode, utterances are resampled with replacement and the difference of the two error rates (candidate
minus released) is computed on the same draw: its 95% interval below zero is a fall, above zero a rise. A candidate
ships when real-speech error falls in at least one locale and rises in none (full context and 640 ms chunks), and its
synthetic test error rises by no more than 10% relative (checked from the two `evaluation`s).

    python -m model.evaluation.release_rule --released runs/eval/real_0140.json --candidate runs/eval/real_0150.json \
        [--released-test A.json --candidate-test B.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model.accuracy.bootstrap import interval

MODES = ("full_context", "chunk_640ms")
SYNTHETIC_RISE_LIMIT = 0.10  # relative


def paired_differences(released: dict, candidate: dict, resamples: int = 10_000, seed: int = 0) -> dict:
    """locale -> mode -> {released, candidate, difference, ci95, verdict}: candidate minus released error rate."""
    a, b = released["per_utterance"], candidate["per_utterance"]
    if a["ids"] != b["ids"]:
        raise ValueError("the two evaluations are not of the same utterances in the same order")
    rng = np.random.default_rng(seed)
    locales = np.array(a["locales"])
    units = np.array(a["reference_units"])
    out: dict = {}
    for locale in sorted(set(a["locales"])):
        rows = np.nonzero(locales == locale)[0]
        draws = rng.integers(0, len(rows), (resamples, len(rows)))
        total = np.maximum(units[rows][draws].sum(axis=1), 1)
        out[locale] = {}
        for mode in MODES:
            old, new = np.array(a["errors"][mode])[rows], np.array(b["errors"][mode])[rows]
            difference = (new[draws].sum(axis=1) - old[draws].sum(axis=1)) / total
            low, high = interval(difference, 0.95)
            falls, rises = high is not None and high < 0, low is not None and low > 0
            verdict = "falls" if falls else "rises" if rises else "within noise"
            out[locale][mode] = {"released": round(old.sum() / max(units[rows].sum(), 1), 4),
                                 "candidate": round(new.sum() / max(units[rows].sum(), 1), 4),
                                 "difference_ci95": [low, high], "verdict": verdict}
    return out


def synthetic_rises(released: dict, candidate: dict) -> dict:
    """locale -> relative change of the full-context synthetic test error (candidate over released, minus 1)."""
    old = released["modes"]["full_context"]["per_locale"]
    new = candidate["modes"]["full_context"]["per_locale"]
    return {locale: round(new[locale]["error_rate"] / max(old[locale]["error_rate"], 1e-9) - 1, 4)
            for locale in sorted(old) if locale in new}


def decide(real: dict, synthetic: dict | None) -> tuple[bool, str]:
    verdicts = [cell["verdict"] for modes in real.values() for cell in modes.values()]
    if "rises" in verdicts:
        return False, "real-speech error rises beyond its interval somewhere"
    if "falls" not in verdicts:
        return False, "real-speech error falls beyond its interval nowhere"
    if synthetic is not None and any(change > SYNTHETIC_RISE_LIMIT for change in synthetic.values()):
        return False, f"the synthetic test rises by more than {SYNTHETIC_RISE_LIMIT:.0%} relative"
    return True, "real-speech error falls, rises nowhere" + (", synthetic test within its limit" if synthetic else "")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--released", required=True,
                   help="model.evaluation.evaluate JSON of the released model on real speech")
    p.add_argument("--candidate", required=True)
    p.add_argument("--released-test", help="model.evaluation.evaluate JSON of the released model on the synthetic test")
    p.add_argument("--candidate-test")
    p.add_argument("--out")
    args = p.parse_args(argv)
    load = lambda path: json.loads(Path(path).read_text())  # noqa: E731
    real = paired_differences(load(args.released), load(args.candidate))
    synthetic = (synthetic_rises(load(args.released_test), load(args.candidate_test))
                 if args.released_test and args.candidate_test else None)
    ships, reason = decide(real, synthetic)
    report = {"real_speech": real, "synthetic_test_relative_change": synthetic, "ships": ships, "reason": reason}
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
