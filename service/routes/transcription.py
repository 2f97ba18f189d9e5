"""REST transcription: `POST /transcribe` (and `/v1/transcribe`) and the OpenAI-compatible
`POST /v1/audio/transcriptions`. Audio arrives as multipart field `file` or as a raw body with an audio type."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import replace
from typing import Any, overload

import torch
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from model.decoding.results import Transcript
from model.frontend.audio import AudioDecodeError, AudioTooLongError, decode_audio
from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.options import DecodeOptions
from model.text.locales import ALIASES, UnsupportedLocaleError, bounded_locale_label, resolve_locale
from service.app_state import AppState, get_app_state
from service.channels import ChannelResult, channel_request
from service.errors import ApiError
from service.formats import to_openai_verbose, to_srt, to_vtt, transcription_response
from service.pii import PiiOptions
from service.protocol import (MAX_CHUNK_MS, MAX_HOTWORD_BOOST, MAX_HOTWORD_CHARS, MAX_NBEST, ErrorBody, RedactMode,
                              TextFormat, TranscriptionResponse)
from service.recording import Shown, UploadResult, transcribe_recording
from service.redaction import redact_transcript
from service.scheduler import Overloaded
from service.stats import RequestStats
from service.written import written_transcript

router = APIRouter()
RAW_AUDIO_TYPES = ("audio/", "application/octet-stream", "video/ogg", "video/webm")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 413, 415, 422, 429, 503)}
TRANSCRIBE_FIELDS = {  # form fields, also read from the query string: published so clients and fuzzers see them
    "locale": {"type": "string", "description": f"a locale of the model (GET /v1/models), an alias of one "
                                               f"({', '.join(ALIASES)}) or auto"},
    "nbest": {"type": "integer", "minimum": 1, "maximum": MAX_NBEST},
    "hotwords": {"type": "string", "description": "comma-separated phrases to favour, written as names are (normalised "
                                                  "as transcripts are)"},
    "hotword_boost": {"type": "number", "minimum": 0, "maximum": MAX_HOTWORD_BOOST,
                      "description": f"log-probability bonus per token of a hotword (default "
                                     f"{DecodeOptions.hotword_boost:g}; bench/bench_hotwords.py)"},
    "timestamps": {"type": "boolean"},
    "chunk_ms": {"type": "integer", "minimum": ENCODER_FRAME_MS, "maximum": MAX_CHUNK_MS,
                 "multipleOf": ENCODER_FRAME_MS},
}
CALL_FIELDS = {  # both upload routes
    "channels": {"type": "string", "enum": ["mixed", "separate"],
                 "description": "mixed (default): one transcript of all channels mixed to mono; separate: each channel "
                                "recognised on its own (one party of a call per channel)"},
    "channel_names": {"type": "string", "description": "comma-separated names of the channels in order, with "
                                                       "channels=separate (agent,customer)"},
    "redact": {"type": "string", "enum": ["none", "pii"],
               "description": "pii: mask phone, resident ID and card numbers, emails and long digit strings "
                              "(ASR_REDACT=pii masks them in every request whatever this says)"},
    "format": {"type": "string", "enum": ["spoken", "written"],
               "description": "written: punctuated, English cased, numbers, dates, times and amounts as digits "
                              "(一共350块钱。, \"I paid $350.\", 23號); the text as heard stays in raw_text"},
}
TRANSCRIBE_FIELDS.update(CALL_FIELDS)
OPENAI_FIELDS = {
    "model": {"type": "string"}, "language": {"type": "string"}, "prompt": {"type": "string"},
    "response_format": {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
    "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["word", "segment"]}},
    **CALL_FIELDS,
}


def upload_openapi(fields: dict, raw_body: bool) -> dict:
    """The request body of an upload route (it reads the request itself, so FastAPI cannot describe it)."""
    multipart = {"type": "object", "required": ["file"],
                 "properties": {"file": {"type": "string", "format": "binary"}, **fields}}
    content = {"multipart/form-data": {"schema": multipart}}
    if raw_body:  # any audio/* type is accepted too
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    parameters = [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in fields.items()]
    return {"requestBody": {"required": True, "content": content}, "parameters": parameters if raw_body else []}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` (never read whole into memory first)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form() parse the bytes we already hold
    return body


async def audio_and_fields(request: Request, limit: int) -> tuple[bytes, dict[str, list[str]]]:
    content_type = request.headers.get("content-type", "").lower()
    body = await read_body(request, limit)
    fields: dict[str, list[str]] = {k: request.query_params.getlist(k) for k in request.query_params}
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=50, max_part_size=limit)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", "multipart body needs an audio part named 'file'")
        for key, value in form.multi_items():
            if key != "file" and isinstance(value, str):
                fields.setdefault(key, []).append(value)
        return await upload.read(), fields
    if not content_type.startswith(RAW_AUDIO_TYPES):
        raise ApiError(415, "unsupported_media_type",
                       "send audio as multipart field 'file' or a raw body with an audio/* content type, "
                       f"not {content_type or 'none'!r}")
    return body, fields


@overload
def first(fields: dict[str, list[str]], *names: str, default: str) -> str: ...
@overload
def first(fields: dict[str, list[str]], *names: str, default: None = None) -> str | None: ...
def first(fields: dict[str, list[str]], *names: str, default: str | None = None) -> str | None:
    """The first value given of the fields `names` (in that order), or `default`."""
    for name in names:
        if fields.get(name):
            return fields[name][0]
    return default


def parse_hotwords(fields: dict[str, list[str]], *names: str) -> tuple[str, ...]:
    values = [v for name in names for v in fields.get(name, [])]
    return tuple(w.strip() for v in values for w in v.replace("\n", ",").split(",") if w.strip())


def decode_options(app_state: AppState, fields: dict[str, list[str]], locale_field: str = "locale") -> DecodeOptions:
    settings = app_state.settings
    try:
        locale = resolve_locale(first(fields, locale_field), app_state.recognizer.locales)
        nbest = int(first(fields, "nbest", default="1"))
    except UnsupportedLocaleError as error:
        raise ApiError(400, "unsupported_locale", str(error)) from error
    except ValueError as error:
        raise ApiError(422, "invalid_request", "nbest must be an integer") from error
    if not 1 <= nbest <= settings.max_nbest:
        raise ApiError(422, "invalid_request", f"nbest must be in 1..{settings.max_nbest}")
    hotwords = parse_hotwords(fields, "hotwords", "hotword", "prompt")
    if len(hotwords) > settings.max_hotwords:
        raise ApiError(422, "invalid_request", f"at most {settings.max_hotwords} hotwords")
    if any(len(phrase) > MAX_HOTWORD_CHARS for phrase in hotwords):
        raise ApiError(422, "invalid_request", f"a hotword is at most {MAX_HOTWORD_CHARS} characters")
    hotword_boost = parse_hotword_boost(first(fields, "hotword_boost", default=str(DecodeOptions.hotword_boost)))
    chunk_ms = first(fields, "chunk_ms")
    chunk_frames = None
    if chunk_ms is not None:
        if not chunk_ms.isdecimal() or int(chunk_ms) % ENCODER_FRAME_MS or not 0 < int(chunk_ms) <= MAX_CHUNK_MS:
            raise ApiError(422, "invalid_request",
                           f"chunk_ms must be a multiple of {ENCODER_FRAME_MS} in {ENCODER_FRAME_MS}..{MAX_CHUNK_MS}")
        chunk_frames = int(chunk_ms) // ENCODER_FRAME_MS
    return DecodeOptions(locale=locale, nbest=nbest, hotwords=hotwords, hotword_boost=hotword_boost,
                         beam_size=settings.default_beam_size, chunk_frames=chunk_frames)


def parse_hotword_boost(value: str) -> float:
    """0-10, as a stream's `hotword_boost` (service/protocol.py StartMessage)."""
    try:
        boost = float(value)
    except ValueError:
        boost = math.nan
    if not 0.0 <= boost <= MAX_HOTWORD_BOOST:  # NaN fails too
        raise ApiError(422, "invalid_request", f"hotword_boost must be a number in 0..{MAX_HOTWORD_BOOST:g}")
    return boost


async def decode_upload(app_state: AppState, data: bytes, separate: bool) -> torch.Tensor:
    """(samples,) mono, or (channels, samples) when the channels are recognised apart."""
    try:
        decoded = await asyncio.to_thread(decode_audio, data, app_state.settings.max_audio_duration_s, not separate)
    except AudioTooLongError as error:
        raise ApiError(413, "audio_too_long", str(error)) from error
    except AudioDecodeError as error:
        raise ApiError(400, "invalid_audio", str(error)) from error
    return decoded.samples


def redact_mode(app_state: AppState, fields: dict[str, list[str]]) -> RedactMode:
    asked = (first(fields, "redact", default="none") or "none").strip().lower()
    if asked not in ("none", "pii"):
        raise ApiError(422, "invalid_request", "redact must be 'none' or 'pii'")
    return app_state.redact_mode(asked)  # type: ignore[arg-type]


def text_format(fields: dict[str, list[str]]) -> TextFormat:
    asked = (first(fields, "format", default="spoken") or "spoken").strip().lower()
    if asked not in ("spoken", "written"):
        raise ApiError(422, "invalid_request", "format must be 'spoken' or 'written'")
    return asked  # type: ignore[return-value]


def finished_text(transcript: Transcript, redact: RedactMode, form: TextFormat, options: PiiOptions) -> Shown:
    """Masked first, on the words as heard with their times; then written (service/written.py)."""
    redactions = None
    if redact == "pii":
        transcript, redactions = redact_transcript(transcript, options)
    spoken = transcript.text
    raw_texts = None
    if form == "written":
        transcript, raw_texts = written_transcript(transcript)
    return Shown(transcript, spoken, raw_texts, redactions)


async def recognise_upload(app_state: AppState, data: bytes, fields: dict[str, list[str]],
                           options: DecodeOptions) -> tuple[Shown, tuple[ChannelResult, ...]]:
    call = channel_request(first(fields, "channels"), first(fields, "channel_names"))
    redact, form = redact_mode(app_state, fields), text_format(fields)
    samples = await decode_upload(app_state, data, call.separate)
    channels = samples if call.separate else samples.unsqueeze(0)  # (channels, samples)
    call.check_against(len(channels))
    transcript, per_channel = await transcribe_recording(app_state, channels, options, call.separate)
    per_channel = tuple(replace(c, name=call.name(c.index)) for c in per_channel)
    # off the event loop: an hour of segments takes a while to search for entities and to write
    shown = await asyncio.to_thread(finished_text, transcript, redact, form, app_state.pii_options)
    return shown, per_channel


async def run_transcription(request: Request, locale_field: str) -> UploadResult:
    app_state = get_app_state(request)
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    label = "unknown"
    try:
        data, fields = await audio_and_fields(request, app_state.settings.max_upload_bytes)
        options = decode_options(app_state, fields, locale_field)
        label = bounded_locale_label(options.locale, app_state.recognizer.locales)
        shown, channels = await recognise_upload(app_state, data, fields, options)
    except ApiError as error:
        app_state.stats.error("rest", label, error.code)
        raise
    except Overloaded as error:
        app_state.stats.error("rest", label, "busy")
        raise ApiError(503, "busy", str(error), {"Retry-After": str(error.retry_after_s)}) from error
    except Exception:  # a failed model step (a 500): counted here, answered by service.errors
        app_state.stats.error("rest", label, "internal")
        raise
    processing_s = time.perf_counter() - started
    # feedback scores the text as heard (masked when redaction is on), as the model is evaluated
    record_upload(app_state, request_id, replace(shown.transcript, text=shown.spoken_text), processing_s)
    return UploadResult(shown, channels, request_id, processing_s, fields)


def record_upload(app_state: AppState, request_id: str, transcript: Transcript, processing_s: float) -> None:
    """An answered upload: its statistics, and its text kept for feedback."""
    tokens = [t.confidence for s in transcript.segments for t in s.tokens]
    app_state.stats.request(RequestStats(
        mode="rest", locale=app_state.locale_label(transcript.locale), duration_s=processing_s,
        audio_s=transcript.duration_s, processing_s=processing_s,
        mean_confidence=sum(tokens) / len(tokens) if tokens else None, segments=len(transcript.segments)))
    app_state.hypotheses.put(request_id, transcript.locale, transcript.text)


@router.post("/transcribe", response_model=TranscriptionResponse, responses=ERRORS, tags=["transcription"],
             openapi_extra=upload_openapi(TRANSCRIBE_FIELDS, raw_body=True))
@router.post("/v1/transcribe", response_model=TranscriptionResponse, responses=ERRORS, tags=["transcription"],
             include_in_schema=False)
async def transcribe(request: Request) -> TranscriptionResponse:
    """Transcribe an uploaded recording (WAV, FLAC, OGG/Opus, MP3; any rate and channel count).

    Send the audio as multipart field `file` or as the raw body with an audio content type. Parameters (query
    string or form fields): `locale` (a locale of the model, an alias of one as /v1/models lists them, or auto),
    `nbest` (1-10), `hotwords` (comma-separated phrases to favour), `timestamps` (true/false: per-token times in
    segments), `chunk_ms` (decode with the streaming model's chunked attention, as `/v1/stream` would; default
    full context), `channels` (mixed or separate: one transcript per channel of a call), `channel_names`
    (comma-separated, with separate), `redact` (pii: mask personal data)."""
    result = await run_transcription(request, "locale")
    timestamps = (first(result.fields, "timestamps", default="true") or "true").lower() not in {"false", "0", "no"}
    return transcription_response(result.shown, result.request_id, get_app_state(request).model_info,
                                  result.processing_s, timestamps, result.channels)


@router.post("/v1/audio/transcriptions", responses=ERRORS, tags=["openai"],
             openapi_extra=upload_openapi(OPENAI_FIELDS, raw_body=False))
async def openai_transcriptions(request: Request) -> Response:
    """OpenAI-compatible transcription: multipart `file`, `model` (ignored), `language`, `prompt` (hotwords,
    comma-separated), `response_format` (json, text, srt, vtt, verbose_json), `timestamp_granularities[]`;
    `channels`, `channel_names` and `redact` as `/transcribe` takes them."""
    result = await run_transcription(request, "language")
    transcript, fields, names = result.shown.transcript, result.fields, {c.index: c.name for c in result.channels}
    response_format = first(fields, "response_format", default="json")
    granularities = set(fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", []))
    headers = {"X-Request-Id": result.request_id}
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n", headers=headers)
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript, names), headers=headers)
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript, names), media_type="text/vtt", headers=headers)
    if response_format == "verbose_json":
        body = to_openai_verbose(transcript, "word" in granularities, "segment" in granularities or not granularities,
                                 names, result.shown.redactions)
        return JSONResponse(body, headers=headers)
    if response_format != "json":
        raise ApiError(422, "invalid_request", "response_format must be json, text, srt, vtt or verbose_json")
    return JSONResponse({"text": transcript.text}, headers=headers)
