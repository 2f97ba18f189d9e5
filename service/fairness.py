"""Per-locale live error counts: all time, and over a sliding window that feeds the disparity gauge."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from model.accuracy.bootstrap import BootstrapOptions, LocaleCounts, evaluation_intervals
from model.accuracy.scoring import ErrorCount, uses_words

# GET /v1/fairness resamples the window's scored hypotheses for its intervals: fewer draws than the evaluation's 2,000
# keep the endpoint cheap with thousands of feedback items in the window; the bounds move by a fraction of a point.
LIVE_BOOTSTRAP = BootstrapOptions(resamples=500)


@dataclass
class FairnessMonitor:
    """Per-locale error counts, all-time and over a sliding window of `window_s` seconds."""

    window_s: float = 3600.0
    totals: dict[str, ErrorCount] = field(default_factory=dict)
    recent: deque = field(default_factory=deque)  # (time, locale, ErrorCount)

    def add(self, locale: str, count: ErrorCount, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.totals[locale] = self.totals.get(locale, ErrorCount(0, 0)) + count
        self.recent.append((now, locale, count))
        self.expire(now)

    def expire(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - self.window_s:
            self.recent.popleft()

    def window_counts(self) -> dict[str, ErrorCount]:
        self.expire(time.time())
        counts: dict[str, ErrorCount] = {}
        for _, locale, count in self.recent:
            counts[locale] = counts.get(locale, ErrorCount(0, 0)) + count
        return counts

    def window_items(self) -> list[tuple[str, ErrorCount]]:
        """(locale, count) per scored hypothesis in the window: a copy, to compute on off the event loop."""
        self.expire(time.time())
        return [(locale, count) for _, locale, count in self.recent]

    @staticmethod
    def disparity(counts: dict[str, ErrorCount]) -> float | None:
        """Worst / best error rate among locales with feedback; None until two locales have some."""
        rates = [c.rate for c in counts.values() if c.reference_units > 0]
        if len(rates) < 2:
            return None
        return max(rates) / max(min(rates), 1e-3)


def window_intervals(items: list[tuple[str, ErrorCount]], options: BootstrapOptions = LIVE_BOOTSTRAP) -> dict:
    """95% bootstrap intervals over a window's scored hypotheses (model/accuracy/bootstrap.py): each locale's error rate
    and the worst/best ratio. A few corrected sentences leave a wide interval: read the rate with it."""
    by_locale: dict[str, list[ErrorCount]] = {}
    for locale, count in items:
        by_locale.setdefault(locale, []).append(count)
    counts = {locale: LocaleCounts(np.array([c.reference_units for c in rows]),
                                   {"window": np.array([c.errors for c in rows])})
              for locale, rows in by_locale.items() if sum(c.reference_units for c in rows) > 0}
    if not counts:
        return {"per_locale": {}, "disparity": None}
    intervals = evaluation_intervals(counts, "window", options)
    return {"per_locale": intervals["per_locale"]["window"],
            "disparity": intervals["disparity"]["window"] if len(counts) > 1 else None}


def figures(counts: dict[str, ErrorCount]) -> dict:
    return {
        locale: {"metric": "wer" if uses_words(locale) else "cer", "error_rate": round(c.rate, 4),
                 "errors": c.errors, "reference_units": c.reference_units}
        for locale, c in sorted(counts.items())
    }
