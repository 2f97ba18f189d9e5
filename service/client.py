"""A Python client for the service, blocking (`ASRClient`) and asyncio (`AsyncASRClient`), returning the typed
models of service.protocol.

    from service.client import ASRClient

    with ASRClient("http://127.0.0.1:8000") as client:
        result = client.transcribe("meeting.wav", locale="en-US")   # TranscriptionResponse
        print(result.text, [s.start for s in result.segments])
        for event in client.stream("meeting.wav", locale="en-US", realtime=True):
            print(event.type, getattr(event, "text", ""))           # ready, partial..., final..., end

Uploads are idempotent, so they are retried on 503/429 (after the server's Retry-After) and on connection errors.
A stream is retried only before any audio was sent: when the connection fails or the server answers `busy`.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import numpy as np
import soundfile
import websockets
from websockets.asyncio.client import connect as connect_async

from service.protocol import (ChannelMode, EndMessage, ErrorBody, ErrorMessage, FinalMessage, PartialMessage,
                              ReadyMessage, RedactMode, StartMessage, TextFormat, TranscriptionResponse,
                              server_message_adapter)

AudioInput = str | os.PathLike | bytes | np.ndarray
StreamEvent = ReadyMessage | PartialMessage | FinalMessage | EndMessage
RETRY_STATUSES = {429, 503}
CLOSE_WAIT_S = 5.0  # how long to wait for the close frame that follows an error message
MAX_RETRY_WAIT_S = 60.0  # a server asking for longer is treated as "not now": the caller should decide
STOP = '{"type": "stop"}'


class ASRError(Exception):
    """The server refused or failed a request (HTTP status and the body's error code)."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class StreamError(Exception):
    """A stream ended with an `error` message or without `end`; `close_code` is the WebSocket close code."""

    def __init__(self, code: str, message: str, close_code: int | None) -> None:
        super().__init__(f"{code}: {message} (close code {close_code})")
        self.code, self.message, self.close_code = code, message, close_code


@dataclass(frozen=True)
class StreamRequest:
    """Everything one stream sends: the start message and the audio as 16-bit PCM in pieces."""

    start: StartMessage
    pcm: bytes
    piece_bytes: int
    realtime: bool

    @property
    def piece_s(self) -> float:
        return self.piece_bytes / 2 / self.start.sample_rate

    def pieces(self) -> Iterator[bytes]:
        for offset in range(0, len(self.pcm), self.piece_bytes):
            yield self.pcm[offset : offset + self.piece_bytes]


# ------------------------------------------------------------------------------------------- shared pieces


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def stream_url(base_url: str) -> str:
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/v1/stream"


def read_upload(audio: str | os.PathLike | bytes) -> tuple[str, bytes]:
    if isinstance(audio, bytes):
        return "audio", audio
    return Path(audio).name, Path(audio).read_bytes()


@dataclass(frozen=True)
class CallOptions:
    """What an upload asks beyond decoding (docs/protocol.md): each channel recognised apart, and their names;
    personal data masked; text punctuated, cased, numbers as digits. None leaves the server's default."""

    channels: ChannelMode | None = None
    channel_names: tuple[str, ...] = ()
    redact: RedactMode | None = None
    format: TextFormat | None = None

    def fields(self) -> dict[str, str]:
        fields = {"channels": self.channels, "redact": self.redact, "format": self.format,
                  "channel_names": ",".join(self.channel_names) or None}
        return {name: value for name, value in fields.items() if value is not None}


def upload_fields(locale: str, nbest: int, hotwords: list[str] | tuple[str, ...], chunk_ms: int | None,
                  timestamps: bool, hotword_boost: float | None = None,
                  call: CallOptions = CallOptions()) -> dict[str, str]:
    fields = {"locale": locale, "nbest": str(nbest), "timestamps": "true" if timestamps else "false", **call.fields()}
    if hotwords:
        fields["hotwords"] = ",".join(hotwords)
    if hotword_boost is not None:
        fields["hotword_boost"] = str(hotword_boost)
    if chunk_ms is not None:
        fields["chunk_ms"] = str(chunk_ms)
    return fields


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After as seconds (RFC 9110: a number of seconds or an HTTP date), or None when absent or invalid."""
    value = response.headers.get("retry-after", "").strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int) -> float:
    return min(0.5 * 2**attempt, 8.0)


def retry_delay(attempt: int, max_retries: int, response: httpx.Response | None) -> float | None:
    """How long to wait before the next try, or None to stop (out of tries, or a status that is not transient)."""
    if attempt >= max_retries or (response is not None and response.status_code not in RETRY_STATUSES):
        return None
    asked = retry_after_s(response) if response is not None else None
    if asked is not None and asked > MAX_RETRY_WAIT_S:
        return None
    return asked if asked is not None else backoff_s(attempt)


def parse_transcription(response: httpx.Response) -> TranscriptionResponse:
    if response.is_success:
        return TranscriptionResponse.model_validate_json(response.content)
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValueError:
        raise ASRError(response.status_code, "http_error", response.text[:200]) from None
    raise ASRError(response.status_code, body.error, body.message, body.request_id)


def pcm16(samples: np.ndarray) -> bytes:
    """float [-1, 1) -> little-endian int16 (the inverse of soundfile's int16 -> float read)."""
    if samples.dtype == np.int16:
        return samples.astype("<i2").tobytes()
    return np.round(np.clip(samples, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def stream_audio(audio: AudioInput, sample_rate: int) -> tuple[bytes, int]:
    """16-bit PCM and its rate: a file is read at its own rate and mixed to mono; bytes are taken as s16le
    PCM at `sample_rate`; an array as samples at `sample_rate` (float in [-1, 1) or int16)."""
    if isinstance(audio, bytes):
        return audio, sample_rate
    if isinstance(audio, np.ndarray):
        return pcm16(audio.mean(axis=1) if audio.ndim == 2 else audio), sample_rate
    samples, rate = soundfile.read(os.fspath(audio), dtype="float32", always_2d=True)
    return pcm16(samples.mean(axis=1)), rate


def stream_request(audio: AudioInput, sample_rate: int, realtime: bool, piece_ms: int,
                   **start: object) -> StreamRequest:
    pcm, rate = stream_audio(audio, sample_rate)
    message = StartMessage.model_validate({"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", **start})
    return StreamRequest(message, pcm, max(2, rate * piece_ms // 1000 * 2), realtime)


def start_frame(start: StartMessage) -> str:
    """The start message as sent: only the fields the caller set, so the server's defaults fill the rest."""
    return start.model_dump_json(exclude_unset=True)


def parse_event(raw: str | bytes) -> StreamEvent | ErrorMessage:
    return server_message_adapter.validate_json(raw)


def close_code_of(error: websockets.ConnectionClosed) -> int | None:
    return error.rcvd.code if error.rcvd is not None else None


def closed_early(closed: websockets.ConnectionClosed) -> StreamError:
    return StreamError("connection_closed", f"the stream closed before 'end': {closed}", close_code_of(closed))


def retryable_before_audio(error: Exception) -> bool:
    """Before any audio went out a stream can simply be opened again: after connection failures and `busy`."""
    return not isinstance(error, StreamError) or error.code in {"busy", "connection_closed"}


def stream_options(locale: str, nbest: int, hotwords: list[str] | tuple[str, ...], hotword_boost: float | None,
                   interim_results: bool, endpointing: dict | None, full_context_finals: bool | None = None,
                   redact: RedactMode | None = None, format: TextFormat | None = None) -> dict:
    """The start message's fields; a None is left out, so the server's default applies (the message is sent
    with only the fields set here)."""
    options = {"locale": locale, "nbest": nbest, "hotwords": list(hotwords), "hotword_boost": hotword_boost,
               "interim_results": interim_results, "endpointing": endpointing,
               "full_context_finals": full_context_finals, "redact": redact, "format": format}
    return {name: value for name, value in options.items() if value is not None}


# ------------------------------------------------------------------------------------------------ blocking


class ASRClient:
    """The blocking client: the asyncio client below, run on an event loop of its own in a background thread,
    so both behave alike (retries, pacing, errors) from one implementation. Close it, or use it as a context."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 3) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asr-client-loop", daemon=True)
        self._thread.start()
        self._client = self._run(self._open(base_url, api_key, timeout, max_retries))
        self.base_url, self.timeout, self.max_retries = self._client.base_url, timeout, max_retries

    @staticmethod
    async def _open(*args) -> AsyncASRClient:
        return AsyncASRClient(*args)  # made on the loop that will use its connections

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def transcribe(self, audio: str | os.PathLike | bytes, locale: str = "auto", nbest: int = 1,
                   hotwords: list[str] | tuple[str, ...] = (), chunk_ms: int | None = None,
                   timestamps: bool = True, hotword_boost: float | None = None, channels: ChannelMode | None = None,
                   channel_names: list[str] | tuple[str, ...] = (), redact: RedactMode | None = None,
                   format: TextFormat | None = None) -> TranscriptionResponse:
        """Upload a recording (a path, or the bytes of an audio file) to POST /transcribe. `hotword_boost`: None
        leaves the server's default. A call: `channels="separate"` (each channel on its own, `channel_names` in
        order); `redact="pii"` masks personal data; `format="written"` punctuates and writes numbers as digits."""
        return self._run(self._client.transcribe(audio, locale, nbest, hotwords, chunk_ms, timestamps, hotword_boost,
                                                 channels, channel_names, redact, format))

    def stream(self, audio: AudioInput, sample_rate: int = 16000, locale: str = "auto", nbest: int = 1,
               hotwords: list[str] | tuple[str, ...] = (), hotword_boost: float | None = None,
               interim_results: bool = True, endpointing: dict | None = None, realtime: bool = False,
               piece_ms: int = 100, full_context_finals: bool | None = None, redact: RedactMode | None = None,
               format: TextFormat | None = None) -> Iterator[StreamEvent]:
        """Stream audio over /v1/stream; yields ready, partial and final messages and end. Raises StreamError.
        The audio goes out on the client's loop while the caller reads events, so partials arrive as it is sent.
        `full_context_finals`: finals decoded again at full context, `hotword_boost` (None: the server's setting);
        `redact="pii"`: partials and finals masked; `format="written"`: finals punctuated, numbers as digits."""
        events = self._client.stream(audio, sample_rate, locale, nbest, hotwords, hotword_boost, interim_results,
                                     endpointing, realtime, piece_ms, full_context_finals, redact, format)
        try:
            while True:
                try:
                    yield self._run(anext(events))
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():  # a caller that stops reading early closes the connection
                self._run(events.aclose())


# ------------------------------------------------------------------------------------------------- asyncio


class AsyncASRClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 3) -> None:
        self.base_url, self.timeout, self.max_retries = base_url.rstrip("/"), timeout, max_retries
        self.headers = auth_headers(api_key)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=self.headers)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def transcribe(self, audio: str | os.PathLike | bytes, locale: str = "auto", nbest: int = 1,
                         hotwords: list[str] | tuple[str, ...] = (), chunk_ms: int | None = None,
                         timestamps: bool = True, hotword_boost: float | None = None,
                         channels: ChannelMode | None = None, channel_names: list[str] | tuple[str, ...] = (),
                         redact: RedactMode | None = None, format: TextFormat | None = None) -> TranscriptionResponse:
        """Upload a recording (a path, or the bytes of an audio file) to POST /transcribe. `hotword_boost`: None
        leaves the server's default. A call: `channels="separate"` (each channel on its own, `channel_names` in
        order); `redact="pii"` masks personal data; `format="written"` punctuates and writes numbers as digits."""
        name, data = await asyncio.to_thread(read_upload, audio)
        call = CallOptions(channels, tuple(channel_names), redact, format)
        fields = upload_fields(locale, nbest, hotwords, chunk_ms, timestamps, hotword_boost, call)
        for attempt in range(self.max_retries + 1):
            try:
                response = await self.http.post("/transcribe", files={"file": (name, data)}, data=fields)
            except httpx.TransportError:
                if attempt >= self.max_retries:
                    raise
                await asyncio.sleep(backoff_s(attempt))
                continue
            delay = retry_delay(attempt, self.max_retries, response)
            if delay is None:
                return parse_transcription(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def stream(self, audio: AudioInput, sample_rate: int = 16000, locale: str = "auto", nbest: int = 1,
                     hotwords: list[str] | tuple[str, ...] = (), hotword_boost: float | None = None,
                     interim_results: bool = True, endpointing: dict | None = None, realtime: bool = False,
                     piece_ms: int = 100, full_context_finals: bool | None = None, redact: RedactMode | None = None,
                     format: TextFormat | None = None) -> AsyncIterator[StreamEvent]:
        """Stream audio over /v1/stream; yields ready, partial and final messages and end. Raises StreamError.
        `full_context_finals`: finals decoded again at full context, `hotword_boost` (None: the server's setting);
        `redact="pii"`: partials and finals masked; `format="written"`: finals punctuated, numbers as digits."""
        request = await asyncio.to_thread(stream_request, audio, sample_rate, realtime, piece_ms, **stream_options(
            locale, nbest, hotwords, hotword_boost, interim_results, endpointing, full_context_finals, redact, format))
        for attempt in range(self.max_retries + 1):
            ready = None
            try:
                async with connect_async(stream_url(self.base_url), additional_headers=self.headers, max_size=None,
                                         open_timeout=self.timeout) as ws:
                    await ws.send(start_frame(request.start))
                    ready = await self._next_event(ws)
                    yield ready
                    async for event in self._events(ws, request):
                        yield event
                    return
            except (OSError, websockets.InvalidHandshake, StreamError) as error:
                if ready is not None or not retryable_before_audio(error) or attempt >= self.max_retries:
                    raise
                await asyncio.sleep(backoff_s(attempt))

    async def _events(self, ws, request: StreamRequest) -> AsyncIterator[StreamEvent]:
        sender = asyncio.create_task(self._send(ws, request))  # partials arrive while audio is still going out
        try:
            while not isinstance(event := await self._next_event(ws), EndMessage):
                yield event
            yield event
            await sender
        finally:
            sender.cancel()

    @staticmethod
    async def _next_event(ws) -> StreamEvent:
        try:
            event = parse_event(await ws.recv())
        except websockets.ConnectionClosed as closed:
            raise closed_early(closed) from None
        if not isinstance(event, ErrorMessage):
            return event
        try:
            await asyncio.wait_for(ws.recv(), CLOSE_WAIT_S)  # the close after an error carries the close code
            close_code = None
        except websockets.ConnectionClosed as closed:
            close_code = close_code_of(closed)
        except TimeoutError:
            close_code = None
        raise StreamError(event.code, event.message, close_code)

    @staticmethod
    async def _send(ws, request: StreamRequest) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for index, piece in enumerate(request.pieces()):
                if request.realtime:  # a piece exists only once its last sample has been "recorded"
                    await asyncio.sleep(max(0.0, started + (index + 1) * request.piece_s - loop.time()))
                await ws.send(piece)
            await ws.send(STOP)
        except websockets.ConnectionClosed:
            pass  # the receiving side reports why the stream ended
