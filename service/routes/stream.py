"""WebSocket `/v1/stream`: one `StreamConnection` per client. Protocol in service/protocol.py and docs/protocol.md.

Audio is decoded (PCM s16le/f32le), resampled with a stateful soxr stream so chunk borders leave no artefacts,
and buffered; every full chunk of samples goes through the batching scheduler together with the chunks of all
other streams, which computes their MFCC in one batched call off the event loop. The handler awaits each chunk
before reading more, so a client that sends faster than real time is slowed by TCP back-pressure instead of
growing a buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from typing import Literal

import numpy as np
import soxr
import torch
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from model.frontend.audio import first_non_finite
from model.frontend.features import SAMPLE_RATE
from model.recognition.options import DecodeOptions, EndpointConfig
from model.recognition.stream_decoder import (FinalEvent, PartialEvent, StreamEvent, StreamState, accept_samples,
                                              new_stream, next_chunk, search_locale)
from model.text.locales import UnsupportedLocaleError, resolve_locale
from service import protocol as p
from service.app_state import AppState, get_app_state
from service.auth import ApiKey, AuthError, chosen_subprotocol, presented_key
from service.formats import redactions_out, segment_out
from service.redaction import StreamRedactor
from service.scheduler import Overloaded
from service.stats import RequestStats
from service.written import written_segment

router = APIRouter()
log = logging.getLogger("service.routes.stream")


class ServerShutdown(Exception):
    """The server is draining: finish the stream (finals, end) and close with 1001."""


class StreamClosed(Exception):
    """Ends a connection with an error message and a close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code, self.code, self.message = close_code, code, message


def pcm_to_float(data: bytes, encoding: str) -> np.ndarray:
    width = 2 if encoding == "pcm_s16le" else 4
    if len(data) % width:
        raise StreamClosed(p.CLOSE_UNSUPPORTED_DATA, "bad_audio",
                           f"{encoding} frames must be a multiple of {width} bytes; got {len(data)}")
    if encoding == "pcm_s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4")
    bad = first_non_finite(samples)
    if bad is not None:  # refused as an upload's float file is (model.frontend.audio.check_finite): NaN is no sound
        raise StreamClosed(p.CLOSE_UNSUPPORTED_DATA, "bad_audio",
                           f"sample {bad} of this frame is NaN or infinite: pcm_f32le samples must be finite numbers")
    return samples.clip(-1.0, 1.0).astype(np.float32)


def endpoint_config(app_state: AppState, start: p.StartMessage) -> EndpointConfig:
    """The server's endpointing rules, with those the stream's `start` sets itself."""
    overrides = start.endpointing.model_dump(exclude_none=True) if start.endpointing else {}
    return replace(app_state.settings.endpoint, **overrides)


class StreamConnection:
    def __init__(self, websocket: WebSocket, app_state: AppState) -> None:
        self.websocket, self.app_state = websocket, app_state
        self.settings = app_state.settings
        self.session_id = uuid.uuid4().hex
        self.state: StreamState | None = None
        self.start: p.StartMessage | None = None
        self.resampler: soxr.ResampleStream | None = None
        self.redactor: StreamRedactor | None = None  # set when this stream's results are masked
        self.label = "unknown"
        self.opened_at = time.perf_counter()
        self.first_audio_at: float | None = None
        self.last_audio_at = 0.0
        self.first_partial_sent = False
        self.last_partial = ""
        self.segments_sent = 0
        self.token_confidences: list[float] = []
        self.stopping = False
        self.api_key: ApiKey | None = None
        self.key_stream_open = False
        self.shutdown_requested = asyncio.Event()
        self._pending_receive: asyncio.Future | None = None

    # ------------------------------------------------------------------------------------------------ run

    async def run(self) -> None:
        await self.websocket.accept(subprotocol=chosen_subprotocol(self.websocket))
        try:
            self.authorize()
            await self.handshake()
            await self.receive_loop()
        except StreamClosed as closed:
            await self.close_with_error(closed)
        except WebSocketDisconnect:
            pass
        except ServerShutdown:
            await self.drain()
        except Overloaded as error:
            await self.close_with_error(StreamClosed(p.CLOSE_TRY_AGAIN_LATER, "busy", str(error)))
        except Exception as error:  # noqa: BLE001 - one connection's failure must not take the server down
            log.exception("stream %s failed", self.session_id)
            await self.close_with_error(StreamClosed(p.CLOSE_INTERNAL_ERROR, "internal", type(error).__name__))

    async def receive(self, timeout_s: float) -> dict:
        """The next client message; raises ServerShutdown when the server starts draining meanwhile."""
        if self._pending_receive is None:
            self._pending_receive = asyncio.ensure_future(self.websocket.receive())
        shutdown = asyncio.ensure_future(self.shutdown_requested.wait())
        done, _ = await asyncio.wait({self._pending_receive, shutdown}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        shutdown.cancel()
        if self._pending_receive in done:
            message, self._pending_receive = self._pending_receive.result(), None
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            return message
        if self.shutdown_requested.is_set():
            raise ServerShutdown()
        raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "idle_timeout", f"no message for {timeout_s:.0f} s")

    def request_shutdown(self) -> None:
        self.shutdown_requested.set()

    def authorize(self) -> None:
        try:
            self.api_key = self.app_state.keys.identify(presented_key(self.websocket))
        except AuthError as error:
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, error.code, error.message) from None

    def started(self) -> p.StartMessage:
        """The stream's `start` message (the handshake sets it, before any audio is read)."""
        assert self.start is not None
        return self.start

    def current(self) -> StreamState:
        """The stream's decoding state (the handshake opens it, before any audio is read)."""
        assert self.state is not None
        return self.state

    def metrics_label(self) -> str:
        """The locale label of this stream's metrics: the named one, or under `auto` the detected one once the
        stream has settled on it ("unknown" before), so that per-locale dashboards also see the default streams."""
        detected = search_locale(self.state) if self.state is not None else None
        return self.app_state.locale_label(detected) if detected else self.label

    async def handshake(self) -> None:
        message = await self.receive(self.settings.stream_idle_timeout_s)
        if message.get("text") is None:
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "protocol", "the first message must be a JSON 'start'")
        start = self.parse(message["text"])
        if not isinstance(start, p.StartMessage):
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "protocol", "the first message must be a JSON 'start'")
        try:
            locale = resolve_locale(start.locale, self.app_state.recognizer.locales)
        except UnsupportedLocaleError as error:
            raise StreamClosed(p.CLOSE_UNSUPPORTED_DATA, "unsupported_locale", str(error)) from error
        self.label = self.app_state.locale_label(locale)
        if not self.app_state.accepting or self.app_state.active_streams >= self.settings.max_streams:
            raise StreamClosed(p.CLOSE_TRY_AGAIN_LATER, "busy", "stream limit reached; retry later")
        try:
            self.app_state.keys.open_stream(self.api_key)
        except AuthError as error:
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, error.code, error.message) from None
        self.key_stream_open = True
        self.start = start
        self.open_session(start, locale)
        await self.send(p.ReadyMessage(session_id=self.session_id, locale=locale or "auto",
                                       sample_rate=start.sample_rate, chunk_ms=self.settings.chunk_ms,
                                       full_context_finals=self.current().options.full_context_finals,
                                       redact="pii" if self.redactor else "none", model=self.app_state.model_info))

    def open_session(self, start: p.StartMessage, locale: str | None) -> None:
        options = DecodeOptions(locale=locale, nbest=start.nbest, hotwords=tuple(start.hotwords),
                                hotword_boost=start.hotword_boost, beam_size=self.settings.default_beam_size,
                                full_context_finals=(self.settings.full_context_finals
                                                     if start.full_context_finals is None
                                                     else start.full_context_finals))
        self.state = new_stream(self.app_state.recognizer, options, self.settings.chunk_frames,
                                endpoint_config(self.app_state, start))
        if start.sample_rate != SAMPLE_RATE:
            self.resampler = soxr.ResampleStream(start.sample_rate, SAMPLE_RATE, 1, dtype="float32")
        if self.app_state.redact_mode(start.redact) == "pii":
            self.redactor = StreamRedactor(self.app_state.pii_options)
        self.app_state.active_streams += 1
        self.app_state.open_streams.add(self)
        self.app_state.stats.active_streams(self.app_state.active_streams)

    def parse(self, text: str):
        try:
            return p.client_message_adapter.validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            raise StreamClosed(p.CLOSE_UNSUPPORTED_DATA, "bad_message",
                               f"{'.'.join(str(x) for x in first['loc']) or 'message'}: {first['msg']}") from None

    async def receive_loop(self) -> None:
        while True:
            message = await self.receive(self.settings.stream_idle_timeout_s)
            if message.get("bytes") is not None:
                await self.on_audio(message["bytes"])
                continue
            parsed = self.parse(message.get("text") or "")
            if isinstance(parsed, p.StartMessage):
                raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "protocol", "'start' was already received")
            await self.finish("stop")
            await self.websocket.close(p.CLOSE_NORMAL)
            return

    # ---------------------------------------------------------------------------------------------- audio

    async def on_audio(self, data: bytes) -> None:
        if len(data) > self.settings.max_frame_bytes:
            raise StreamClosed(p.CLOSE_TOO_BIG, "frame_too_large",
                               f"audio frames are limited to {self.settings.max_frame_bytes} bytes")
        samples = pcm_to_float(data, self.started().encoding)
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples)
        now = time.perf_counter()
        self.first_audio_at = self.first_audio_at or now
        self.last_audio_at = now
        self.state = accept_samples(self.current(), torch.from_numpy(samples))
        if self.state.samples_received / SAMPLE_RATE > self.settings.max_stream_duration_s:
            await self.finish("stop")
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "max_duration",
                               f"streams are limited to {self.settings.max_stream_duration_s:.0f} s of audio")
        await self.decode_ready_chunks(final=False)

    async def decode_ready_chunks(self, final: bool) -> None:
        while True:
            chunk, self.state = next_chunk(self.current(), final)
            if chunk is None:
                return
            self.state, events = await self.app_state.scheduler.decode_stream_chunk(self.state, chunk)
            for event in events:
                await self.emit(event)

    async def finish(self, reason: Literal["stop", "shutdown"]) -> None:
        """Flush the last short chunk, send the open segment's final and `end`."""
        if self.stopping or self.state is None:
            return
        self.stopping = True
        if self.resampler is not None:
            tail = self.resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            self.state = accept_samples(self.state, torch.from_numpy(tail))
        await self.decode_ready_chunks(final=True)
        self.state, events = await self.app_state.scheduler.finish_stream(self.current())
        for event in events:
            await self.emit(event, reason_override=None if reason == "stop" else reason)
        duration_s = round(self.state.samples_received / SAMPLE_RATE, 3)
        await self.send(p.EndMessage(segments=self.segments_sent, duration_s=duration_s))

    # -------------------------------------------------------------------------------------------- sending

    async def emit(self, event: StreamEvent, reason_override: Literal["shutdown"] | None = None) -> None:
        if isinstance(event, PartialEvent):
            if not self.started().interim_results:
                return
            text, tokens, redactions = event.text, event.tokens, None
            if self.redactor is not None:  # masked before anything compares, counts or sends it
                masked, found = self.redactor.partial(event.segment, event.text, event.tokens)
                text, tokens, redactions = masked.text, masked.tokens, redactions_out(found)
            if text == self.last_partial:
                return
            self.last_partial = text
            if text and not self.first_partial_sent:
                self.first_partial_sent = True
                heard_s = time.perf_counter() - (self.first_audio_at or self.opened_at)  # audio came before any text
                self.app_state.stats.first_partial(self.metrics_label(), heard_s)
            await self.send(p.PartialMessage(segment=event.segment, text=text, tokens=segment_out_tokens(tokens),
                                             redactions=redactions))
        elif isinstance(event, FinalEvent):
            await self.send_final(event, reason_override)

    async def send_final(self, event: FinalEvent, reason_override: Literal["shutdown"] | None) -> None:
        locale, probability = event.locale, event.locale_probability
        segment, redactions = event.segment, None
        if self.redactor is not None:  # masked before the feedback store or the client sees it
            segment, found = self.redactor.final(segment)
            redactions = redactions_out(found)
        heard = segment.text
        written = self.app_state.text_format(self.started().format) == "written"
        if written:
            segment = written_segment(segment, self.current().options.hotwords)
        out = segment_out(segment, raw_text=heard if written else None)
        latency_s = time.perf_counter() - self.last_audio_at
        reason: p.FinalMessageReason = reason_override or event.reason
        stopped = reason in ("stop", "shutdown")  # the client's stop or the server's, not an endpoint
        self.app_state.stats.final_latency(self.app_state.locale_label(locale), "stop" if stopped else "endpoint",
                                           latency_s)
        self.last_partial = ""
        if not out.text and not stopped:
            return
        self.segments_sent += 1
        self.token_confidences += [t.confidence for t in out.tokens]
        self.app_state.hypotheses.put(f"{self.session_id}:{out.id}", locale, heard)  # scored as heard, as uploads are
        await self.send(p.FinalMessage(segment=out.id, text=out.text, raw_text=out.raw_text, start=out.start,
                                       end=out.end, confidence=out.confidence, tokens=out.tokens, words=out.words,
                                       alternatives=out.alternatives, locale=locale, locale_probability=probability,
                                       reason=reason, latency_ms=round(latency_s * 1000, 1), redactions=redactions))

    async def send(self, message) -> None:
        # A client that stops reading fills the socket buffers and then blocks this send: the server holds no more
        # than those buffers, and the stream ends after a bounded wait instead of holding its slot forever.
        timeout_s = self.settings.stream_send_timeout_s
        try:
            await asyncio.wait_for(self.websocket.send_text(message.model_dump_json()), timeout_s)
        except asyncio.TimeoutError:
            raise StreamClosed(p.CLOSE_POLICY_VIOLATION, "slow_consumer",
                               f"the client read nothing for {timeout_s:.0f} s") from None

    async def drain(self) -> None:
        """Server shutdown: deliver the open segment's final and `end`, then close with 1001 (going away)."""
        try:
            if self.state is not None:
                await self.finish("shutdown")
            await self.websocket.close(p.CLOSE_GOING_AWAY, "server shutting down")
        except Exception:  # noqa: BLE001 - the client may already be gone
            pass

    async def close_with_error(self, closed: StreamClosed) -> None:
        self.app_state.stats.error("stream", self.metrics_label(), closed.code)
        try:
            if closed.code != "slow_consumer":  # nothing more reaches a client that reads nothing
                await self.send(p.ErrorMessage(code=closed.code, message=closed.message))
                await asyncio.wait_for(self.websocket.close(closed.close_code, closed.message[:120]),
                                       self.settings.stream_send_timeout_s)
        except Exception:  # noqa: BLE001 - the client may already be gone
            pass

    def release(self) -> None:
        if self.key_stream_open:
            self.key_stream_open = False
            self.app_state.keys.close_stream(self.api_key)
        if self in self.app_state.open_streams:
            self.app_state.open_streams.discard(self)
            self.app_state.active_streams -= 1
            self.app_state.stats.active_streams(self.app_state.active_streams)
            self.app_state.stats.request(RequestStats(
                mode="stream", locale=self.metrics_label(), duration_s=time.perf_counter() - self.opened_at,
                audio_s=self.state.samples_received / SAMPLE_RATE if self.state else 0.0,
                processing_s=0.0, segments=self.segments_sent,
                mean_confidence=sum(self.token_confidences) / len(self.token_confidences) if self.token_confidences
                else None))


def segment_out_tokens(tokens) -> list[p.TokenOut]:
    return [p.TokenOut(text=t.text, start=t.start_s, end=t.end_s, confidence=t.confidence) for t in tokens]


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    connection = StreamConnection(websocket, get_app_state(websocket))
    try:
        await connection.run()
    finally:
        connection.release()
