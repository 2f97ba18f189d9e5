"""Service configuration: one pydantic-settings class, read from ASR_* environment variables and `.env`.
Unknown ASR_* variables are an error (`check_environment`), so a typo never silently falls back to a default."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.network.checkpoint import DEFAULT_CHECKPOINT
from model.network.encoder import ENCODER_FRAME_MS
from model.network.precision import Quantization
from model.recognition.options import EndpointConfig
from service.auth import ApiKey
from service.pii import PiiOptions
from service.protocol import MAX_CHUNK_MS, MAX_HOTWORDS, MAX_NBEST, RedactMode, TextFormat

DEFAULT_CHUNK_MS = 640  # the streaming chunk: partials every 640 ms (320 gives earlier ones at more cost per stream)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", env_file=".env", extra="forbid", frozen=True)

    # Model and device
    checkpoint: Path = DEFAULT_CHECKPOINT
    device: Literal["auto", "cpu", "cuda"] = "auto"
    half_precision: bool = True  # float16 on CUDA; CPUs serve in float32 (model.network.precision says why)
    # CPUs only: "int8" serves the linear layers dynamically quantised (model.network.precision), "none" in float32
    quantize: Quantization = "none"
    torch_threads: int = Field(default=0, ge=0, description="0 = torch's default")

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list)

    # Access control: no keys = open. ASR_API_KEYS is JSON: [{"name", "sha256", "max_streams", "requests_per_minute"}]
    api_keys: list[ApiKey] = Field(default_factory=list)
    protect_metrics: bool = False  # /metrics needs a key too (probes /healthz and /readyz are always open)
    shutdown_grace_s: float = 25.0  # drain time for open streams after SIGTERM (keep below k8s' grace period)

    # Uploads
    max_upload_bytes: int = 200 * 1024 * 1024
    max_audio_duration_s: float = 5400.0  # at least one hour of audio is supported; two hours is refused
    offline_unit_s: float = 60.0  # a long upload is decoded as batches of at most this much audio

    # Streaming
    chunk_ms: int = Field(default=DEFAULT_CHUNK_MS, ge=ENCODER_FRAME_MS, le=MAX_CHUNK_MS, multiple_of=ENCODER_FRAME_MS)
    max_streams: int = 256
    max_frame_bytes: int = 1024 * 1024
    # permessage-deflate on WebSockets (RFC 7692). Off: a stream's messages are PCM audio, which deflate hardly
    # shrinks, and small JSON events, yet inflating every audio message and deflating every event cost the server
    # CPU per message (about 2% of a loaded server's time; docs/benchmarks.md); a client that offers it is answered
    # without it.
    ws_compression: bool = False
    stream_idle_timeout_s: float = 30.0
    stream_send_timeout_s: float = 15.0  # a send blocked this long (the client reads nothing) ends the stream
    max_stream_duration_s: float = 3600.0
    # Endpointing (a stream's `start` may set its own): the rules of model.recognition.options.EndpointConfig, whose
    # defaults these are; a segment of long_segment_s ends at a pause of long_segment_trailing_silence_s
    min_trailing_silence_s: float = EndpointConfig.min_trailing_silence_s
    max_silence_without_speech_s: float = EndpointConfig.max_silence_without_speech_s
    max_segment_s: float = EndpointConfig.max_segment_s
    long_segment_s: float = EndpointConfig.long_segment_s
    long_segment_trailing_silence_s: float = EndpointConfig.long_segment_trailing_silence_s

    # Scheduler
    max_stream_batch: int = 128
    # How long the first queued chunk waits for others to join its batch, as a fraction of the chunk length:
    # streams' chunks arrive spread over a chunk period, so a window of 5% gathers ~N/20 of N streams into one
    # encoder step (batch 1 costs ~2.5x more per chunk than batch 8) for at most 32 ms more latency at 640 ms.
    batch_window_fraction: float = Field(default=0.05, ge=0.0, le=0.25)
    max_batch_wait_ms: float | None = Field(default=None, ge=0.0)  # an absolute window instead of the fraction
    max_offline_batch_audio_s: float = 120.0
    max_queued_offline_audio_s: float = 4 * 3600.0
    retry_after_s: int = 2
    # Testing aid, off in service: every Nth device batch raises RuntimeError, to check that a failing model step
    # fails only its own batch's requests (tests/service/test_cycles.py). 0 = off.
    fault_injection_every_n_batches: int = Field(default=0, ge=0)

    # Live accuracy
    feedback_retention_s: float = 3600.0  # how long hypotheses are kept to be scored by POST /v1/feedback
    fairness_window_s: float = 3600.0  # sliding window of the live disparity gauge

    # Results
    max_nbest: int = MAX_NBEST
    max_hotwords: int = MAX_HOTWORDS
    # Prefixes the beam search keeps per frame; unset: the model's per-locale beam, tuned on dev with its LM
    # (8 where untuned). A number here overrides it for every locale, e.g. 4 for more streams per core.
    default_beam_size: int | None = Field(default=None, ge=1, le=64)
    # Streams: decode each final again from its segment's audio at full context (partials stay streaming); a
    # stream's `start` message may choose otherwise. Off by default: it searches each segment twice.
    full_context_finals: bool = False

    # The deployment's own words: a JSON map of locale to a text file of its sentences, one per line, each mixed into
    # that locale's LM as the server starts (model.decoding.adaptation; `openasr lm adapt` writes the same into a
    # checkpoint instead), e.g. {"yue-HK": "/etc/openasr/calls_yue.txt"}. /v1/models states each adaptation.
    domain_text: dict[str, Path] = Field(default_factory=dict)

    # Personal data: "pii" masks phone, resident ID and card numbers, emails and long digit strings in every
    # result of every upload and stream (service/redaction.py); a request may ask for it, never turn it off.
    redact: RedactMode = "none"
    # A digit string this long is masked though it validates as no number (order, account, one-time codes)
    redact_min_digits: int = Field(default=PiiOptions.min_digits, ge=3, le=30)
    # The text of uploads and stream finals when a request does not say: "written" punctuates, cases and writes
    # numbers, dates and amounts as digits (service/written.py), the text as heard in raw_text; "spoken" as heard.
    text_format: TextFormat = "written"


    @property
    def chunk_frames(self) -> int:
        """Encoder frames per streaming chunk."""
        return self.chunk_ms // ENCODER_FRAME_MS

    @property
    def batch_window_s(self) -> float:
        """How long the first queued chunk of a stream batch waits for others (`max_batch_wait_ms`, else the fraction
        of a chunk)."""
        if self.max_batch_wait_ms is not None:
            return self.max_batch_wait_ms / 1000
        return self.batch_window_fraction * self.chunk_ms / 1000

    @property
    def endpoint(self) -> EndpointConfig:
        """The server's endpointing rules (a stream's `start` may override each: service/routes/stream.py)."""
        return EndpointConfig(**{f.name: getattr(self, f.name) for f in fields(EndpointConfig)})


def check_environment(environ: dict[str, str] | None = None) -> None:
    """pydantic-settings ignores prefixed variables that match no field; refuse them instead."""
    variables = os.environ if environ is None else environ
    prefix = Settings.model_config["env_prefix"]
    known = {prefix + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in variables if k.upper().startswith(prefix) and k.upper() not in known)
    if unknown:
        raise ValueError(f"unknown settings in the environment: {', '.join(unknown)} (see service/settings.py)")
