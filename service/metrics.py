"""The only module that speaks Prometheus. It turns the plain stats events of `service.stats` into series on a
per-app registry, and writes them in the exposition format that `GET /metrics` serves (service/routes/metrics.py).

Label cardinality is bounded by construction: `locale` is always a model locale or "unknown" (the callers pass
`AppState.locale_label`), `mode` is rest|stream, and error kinds are mapped onto a closed set here.
"""

from __future__ import annotations

import torch
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info,
                               ProcessCollector, generate_latest)

from service.stats import BatchStats, FinalCause, Mode, RequestStats, StatsSink, StepKind

EXPOSITION_TYPE = CONTENT_TYPE_LATEST  # the media type of `PrometheusStats.exposition`
ERROR_KINDS = {"bad_audio", "too_large", "busy", "protocol", "internal", "timeout", "unauthorized", "rate_limited"}
ERROR_KIND_OF = {  # service error codes -> metric kinds
    "invalid_audio": "bad_audio", "bad_audio": "bad_audio", "unsupported_media_type": "bad_audio",
    "missing_file": "protocol", "too_large": "too_large", "audio_too_long": "too_large",
    "frame_too_large": "too_large", "busy": "busy", "protocol": "protocol", "bad_message": "protocol",
    "unsupported_locale": "protocol", "invalid_request": "protocol", "idle_timeout": "timeout",
    "slow_consumer": "timeout",
    "max_duration": "too_large", "internal": "internal", "unauthorized": "unauthorized",
    "rate_limited": "rate_limited",
}
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
RTF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class PrometheusStats(StatsSink):
    def __init__(self, locales: list[str] | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, open fds, cpu seconds
        r = self.registry
        req, loc = ["locale", "mode"], ["locale"]
        self.request_duration = Histogram("asr_request_duration_seconds", "Wall time of an upload or a stream", req,
                                          buckets=DURATION_BUCKETS, registry=r)
        self.audio_seconds = Counter("asr_audio_seconds", "Seconds of audio processed", req, registry=r)
        self.rtf = Histogram("asr_real_time_factor", "Processing time / audio duration of uploads", req,
                             buckets=RTF_BUCKETS, registry=r)
        self.first_partial_latency = Histogram("asr_stream_first_partial_latency_seconds",
                                               "First audio byte to first non-empty partial", loc,
                                               buckets=LATENCY_BUCKETS, registry=r)
        self.final_latency_seconds = Histogram("asr_final_latency_seconds",
                                               "Last audio of a segment to its final, after an endpoint or a stop",
                                               ["locale", "cause"], buckets=LATENCY_BUCKETS, registry=r)
        self.segments = Counter("asr_segments_finalized", "Segments finalised", req, registry=r)
        self.errors = Counter("asr_errors", "Requests and streams that ended in an error, by kind",
                              ["locale", "mode", "kind"], registry=r)
        self.refused = Counter("asr_refused", "Work refused because the server was at capacity", ["mode"], registry=r)
        self.confidence = Histogram("asr_token_confidence_mean", "Mean token confidence of a request or stream", req,
                                    buckets=CONFIDENCE_BUCKETS, registry=r)
        self.active = Gauge("asr_active_streams", "Open streaming sessions", registry=r)
        self.queued = Gauge("asr_queued", "Work waiting for the device", ["kind"], registry=r)
        self.queue_wait = Histogram("asr_queue_wait_seconds", "Time from queueing to the start of its device step",
                                    ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("asr_batch_size", "Rows per device step", ["kind"], buckets=BATCH_BUCKETS,
                                    registry=r)
        self.step = Histogram("asr_device_step_seconds", "Device step wall time", ["kind"], buckets=LATENCY_BUCKETS,
                              registry=r)
        self.failed_batches = Counter("asr_failed_batches", "Device steps that raised", ["kind"], registry=r)
        self.device_memory = Gauge("asr_device_memory_bytes", "CUDA memory allocated by the model", registry=r)
        self.model_info = Info("asr_model", "The loaded model", registry=r)
        self.feedback_errors = Counter("asr_feedback_errors", "Edit errors of scored hypotheses (CER/WER numerator)",
                                       loc, registry=r)
        self.feedback_units = Counter("asr_feedback_reference_units",
                                      "Reference characters/words of scored hypotheses (CER/WER denominator)", loc,
                                      registry=r)
        self.feedback_count = Counter("asr_feedback", "Feedback items scored", loc, registry=r)
        self.feedback_last = Gauge("asr_feedback_last_timestamp_seconds", "Unix time of the latest scored feedback",
                                   registry=r)
        self.disparity = Gauge("asr_locale_disparity_ratio", "Worst / best locale error rate over the sliding window",
                               registry=r)
        self.window_error_rate = Gauge("asr_feedback_window_error_rate",
                                       "Error rate per locale over the sliding window", loc, registry=r)
        for locale in (locales or []) + ["unknown"]:  # series exist from the start, so rate() works at once
            for metric in (self.feedback_errors, self.feedback_units, self.feedback_count):
                metric.labels(locale)

    def exposition(self) -> bytes:
        """The series in Prometheus' text format (`EXPOSITION_TYPE`), for `GET /metrics` (service/routes/metrics.py)."""
        return generate_latest(self.registry)

    def set_model(self, name: str, version: str, device: str) -> None:
        self.model_info.info({"name": name, "version": version, "device": device})

    def batch(self, stats: BatchStats) -> None:
        self.batch_size.labels(stats.kind).observe(stats.size)
        self.step.labels(stats.kind).observe(stats.step_s)
        for wait in stats.queue_waits_s:
            self.queue_wait.labels(stats.kind).observe(wait)
        if torch.cuda.is_available():
            self.device_memory.set(torch.cuda.memory_allocated())

    def batch_failed(self, kind: StepKind) -> None:
        self.failed_batches.labels(kind).inc()

    def queue_depth(self, stream_chunks: int, offline_units: int) -> None:
        self.queued.labels("stream").set(stream_chunks)
        self.queued.labels("offline").set(offline_units)

    def request(self, stats: RequestStats) -> None:
        self.request_duration.labels(stats.locale, stats.mode).observe(stats.duration_s)
        self.audio_seconds.labels(stats.locale, stats.mode).inc(stats.audio_s)
        self.segments.labels(stats.locale, stats.mode).inc(stats.segments)
        if stats.mode == "rest" and stats.audio_s > 0:
            self.rtf.labels(stats.locale, stats.mode).observe(stats.processing_s / stats.audio_s)
        if stats.mean_confidence is not None:
            self.confidence.labels(stats.locale, stats.mode).observe(stats.mean_confidence)

    def error(self, mode: Mode, locale: str, kind: str) -> None:
        kind = ERROR_KIND_OF.get(kind, kind if kind in ERROR_KINDS else "internal")
        self.errors.labels(locale, mode, kind).inc()
        if kind == "busy":
            self.refused.labels(mode).inc()

    def first_partial(self, locale: str, latency_s: float) -> None:
        self.first_partial_latency.labels(locale).observe(latency_s)

    def final_latency(self, locale: str, cause: FinalCause, latency_s: float) -> None:
        self.final_latency_seconds.labels(locale, cause).observe(latency_s)

    def active_streams(self, count: int) -> None:
        self.active.set(count)

    def feedback(self, locale: str, errors: int, reference_units: int, timestamp: float) -> None:
        self.feedback_errors.labels(locale).inc(errors)
        self.feedback_units.labels(locale).inc(reference_units)
        self.feedback_count.labels(locale).inc()
        self.feedback_last.set(timestamp)

    def window(self, rates: dict[str, float], disparity: float | None) -> None:
        for locale, rate in rates.items():
            self.window_error_rate.labels(locale).set(rate)
        if disparity is not None:
            self.disparity.set(disparity)
