"""Plain statistics events emitted by the engine side of the service. Only `service.metrics` turns them into
Prometheus series; everything else just calls these methods (the default sink ignores them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A scheduler step: a stream batch, the encoder pass of full-context finals, or an offline unit
StepKind = Literal["stream", "final", "offline"]
Mode = Literal["rest", "stream"]  # an upload or a stream
FinalCause = Literal["endpoint", "stop"]  # what a final's latency is measured from: an endpoint, or the client's stop


@dataclass(frozen=True)
class BatchStats:
    kind: StepKind
    size: int  # rows (streams) or spans
    step_s: float  # device step wall time
    queue_waits_s: list[float]


@dataclass(frozen=True)
class RequestStats:
    mode: Mode
    locale: str  # bounded label: a model locale or "unknown"
    duration_s: float  # wall time of the request or stream
    audio_s: float
    processing_s: float
    mean_confidence: float | None
    segments: int


class StatsSink:
    """No-op base: override what you record."""

    def batch(self, stats: BatchStats) -> None: ...

    def batch_failed(self, kind: StepKind) -> None: ...

    def queue_depth(self, stream_chunks: int, offline_units: int) -> None: ...

    def request(self, stats: RequestStats) -> None: ...

    def error(self, mode: Mode, locale: str, kind: str) -> None: ...

    def first_partial(self, locale: str, latency_s: float) -> None: ...

    def final_latency(self, locale: str, cause: FinalCause, latency_s: float) -> None: ...

    def active_streams(self, count: int) -> None: ...

    def feedback(self, locale: str, errors: int, reference_units: int, timestamp: float) -> None: ...

    def window(self, rates: dict[str, float], disparity: float | None) -> None: ...
