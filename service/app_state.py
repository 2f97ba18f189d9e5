"""The state of a running app: settings, the recognizer, the scheduler, the stats sink, the feedback store, the
fairness window, the API keys and the open streams. One per app (built by `service.app`'s lifespan), reached
through `get_app_state(request)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from starlette.requests import HTTPConnection

from model.recognition.recognizer import Recognizer
from model.text.locales import bounded_locale_label
from service.auth import KeyRing
from service.fairness import FairnessMonitor
from service.feedback_store import RecentHypotheses
from service.pii import PiiOptions
from service.protocol import ModelInfo, RedactMode, TextFormat
from service.scheduler import BatchScheduler
from service.settings import Settings
from service.stats import StatsSink


class OpenStream(Protocol):
    """What shutdown needs of an open stream (`service.routes.stream.StreamConnection`)."""

    def request_shutdown(self) -> None: ...


@dataclass
class AppState:
    settings: Settings
    recognizer: Recognizer
    scheduler: BatchScheduler
    stats: StatsSink
    active_streams: int = 0
    accepting: bool = True
    hypotheses: RecentHypotheses = field(init=False)
    open_streams: set[OpenStream] = field(default_factory=set)  # for draining on shutdown
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

    def text_format(self, asked: TextFormat | None) -> TextFormat:
        """A request's format, or the server's ASR_TEXT_FORMAT where it names none."""
        return asked or self.settings.text_format

    def locale_label(self, locale: str | None) -> str:
        return bounded_locale_label(locale, self.recognizer.locales)


def get_app_state(connection: HTTPConnection | Request) -> AppState:
    return connection.app.state.app_state
