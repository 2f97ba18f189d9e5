"""Corpus statistics: utterances and hours per split x locale and split x condition."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from .manifest import Utterance


def tally(utts: Iterable[Utterance], key: str) -> dict[str, dict[str, float]]:
    """{value of ``key``: {"utterances": n, "hours": h}}."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for u in utts:
        acc[getattr(u, key)][0] += 1
        acc[getattr(u, key)][1] += u.duration
    return {k: {"utterances": int(n), "hours": round(s / 3600, 3)} for k, (n, s) in sorted(acc.items())}


def summarize(splits: dict[str, list[Utterance]]) -> dict:
    return {
        "by_locale": {s: tally(u, "locale") for s, u in splits.items()},
        "by_condition": {s: tally(u, "condition") for s, u in splits.items()},
        "speakers": {s: len({x.speaker for x in u}) for s, u in splits.items()},
    }


def format_table(stats: dict, section: str) -> str:
    """Plain-text table: rows = locale/condition, columns = split (utts / hours)."""
    splits = list(stats[section])
    rows = sorted({k for s in splits for k in stats[section][s]})
    lines = [f"{section:<14}" + "".join(f"{s:>22}" for s in splits)]
    for r in rows:
        cells = [stats[section][s].get(r, {"utterances": 0, "hours": 0.0}) for s in splits]
        lines.append(f"{r:<14}" + "".join(f"{c['utterances']:>10} utt {c['hours']:>7.2f} h" for c in cells))
    return "\n".join(lines)
