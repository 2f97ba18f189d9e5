"""Per-locale live error counts: all time, and over a sliding window that feeds the disparity gauge."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from model.scoring import ErrorCount, uses_words


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

    @staticmethod
    def disparity(counts: dict[str, ErrorCount]) -> float | None:
        """Worst / best error rate among locales with feedback; None until two locales have some."""
        rates = [c.rate for c in counts.values() if c.reference_units > 0]
        if len(rates) < 2:
            return None
        return max(rates) / max(min(rates), 1e-3)


def figures(counts: dict[str, ErrorCount]) -> dict:
    return {
        locale: {"metric": "wer" if uses_words(locale) else "cer", "error_rate": round(c.rate, 4),
                 "errors": c.errors, "reference_units": c.reference_units}
        for locale, c in sorted(counts.items())
    }
