"""The feedback store: the hypotheses the service returned (an upload's text, a stream final's), kept for a bounded
time and count so that `POST /v1/feedback` can score a reviewer's reference against them."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class RecentHypotheses:
    """request or segment id -> (locale, hypothesis text, time), bounded in count and age."""

    max_items: int = 100_000
    max_age_s: float = 3600.0
    items: OrderedDict[str, tuple[str, str, float]] = field(default_factory=OrderedDict)

    def put(self, key: str, locale: str, text: str) -> None:
        self.items[key] = (locale, text, time.monotonic())
        self.items.move_to_end(key)
        self.expire()

    def get(self, key: str) -> tuple[str, str] | None:
        self.expire()
        item = self.items.get(key)
        return (item[0], item[1]) if item else None

    def expire(self) -> None:
        oldest = time.monotonic() - self.max_age_s
        while self.items and (len(self.items) > self.max_items or next(iter(self.items.values()))[2] < oldest):
            self.items.popitem(last=False)
