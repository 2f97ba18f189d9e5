"""What a running service holds: settings, the recognizer, the scheduler, the stats sink, and the bounded store
of recent hypotheses that feedback is scored against. One per app, reached through `get_runtime(request)`."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from model.decoding.results import Transcript
from model.recognition.recognizer import Recognizer
from model.text.locales import bounded_locale_label
from service.auth import KeyRing
from service.fairness import FairnessMonitor
from service.pii import PiiOptions
from service.protocol import ModelInfo, RedactMode
from service.scheduler import BatchScheduler
from service.settings import Settings
from service.stats import RequestStats, StatsSink


@dataclass
class RecentHypotheses:
    """request or segment id -> (locale, hypothesis text, time), bounded in count and age."""

    max_items: int = 100_000
    max_age_s: float = 3600.0
    items: OrderedDict = field(default_factory=OrderedDict)

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


@dataclass
class Runtime:
    settings: Settings
    recognizer: Recognizer
    scheduler: BatchScheduler
    stats: StatsSink
    started_at: float = field(default_factory=time.time)
    active_streams: int = 0
    accepting: bool = True
    hypotheses: RecentHypotheses = field(init=False)
    open_streams: set = field(default_factory=set)  # StreamConnection objects, for draining on shutdown
    fairness: FairnessMonitor = field(init=False)
    keys: KeyRing = field(init=False)

    def __post_init__(self) -> None:
        self.hypotheses = RecentHypotheses(max_age_s=self.settings.feedback_retention_s)
        self.fairness = FairnessMonitor(window_s=self.settings.fairness_window_s)
        self.keys = KeyRing(list(self.settings.api_keys))

    @property
    def model_info(self) -> ModelInfo:
        loaded = self.recognizer.loaded
        return ModelInfo(name=loaded.name, version=loaded.version)

    @property
    def pii_options(self) -> PiiOptions:
        return PiiOptions(min_digits=self.settings.redact_min_digits)

    def redact_mode(self, asked: RedactMode) -> RedactMode:
        """What a request or stream gets: the server's ASR_REDACT is the least, so a caller can ask for masking but
        never unmask what the server masks."""
        return "pii" if "pii" in (asked, self.settings.redact) else "none"

    def locale_label(self, locale: str | None) -> str:
        return bounded_locale_label(locale, self.recognizer.locales)

    def record_rest(self, request_id: str, transcript: Transcript, processing_s: float) -> None:
        tokens = [t.confidence for s in transcript.segments for t in s.tokens]
        self.stats.request(RequestStats(
            mode="rest", locale=self.locale_label(transcript.locale), duration_s=processing_s,
            audio_s=transcript.duration_s, processing_s=processing_s,
            mean_confidence=sum(tokens) / len(tokens) if tokens else None, segments=len(transcript.segments)))
        self.hypotheses.put(request_id, transcript.locale, transcript.text)


def get_runtime(connection: HTTPConnection | Request) -> Runtime:
    return connection.app.state.runtime
