"""REST transcription: `POST /transcribe` (and `/v1/transcribe`) and the OpenAI-compatible
`POST /v1/audio/transcriptions`. Audio arrives as multipart field `file` or as a raw body with an audio type."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any, TypeVar

import torch
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from model.decoding.results import Transcript
from model.frontend.audio import AudioDecodeError, AudioTooLongError, decode_audio
from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.options import DecodeOptions
from model.text.locales import UnsupportedLocaleError, bounded_locale_label, resolve_locale
from service.app_state import AppState, get_app_state
from service.channels import ChannelResult, channel_request
from service.errors import ApiError
from service.formats import to_openai_verbose, to_srt, to_vtt, transcription_response
from service.pii import PiiOptions
from service.protocol import (ErrorBody, OpenAITranscriptionFields, RedactMode, TextFormat, TranscribeFields,
                              TranscriptionResponse, UploadFields)
from service.recording import Shown, UploadResult, transcribe_recording
from service.redaction import redact_transcript
from service.scheduler import Overloaded
from service.stats import RequestStats
from service.written import written_transcript

router = APIRouter()
RAW_AUDIO_TYPES = ("audio/", "application/octet-stream", "video/ogg", "video/webm")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 413, 415, 422, 429, 503)}
UploadModel = TypeVar("UploadModel", bound=UploadFields)


def upload_openapi(fields: type[UploadFields], raw_body: bool) -> dict:
    """The request of an upload route, from its fields' model (the route reads the request itself, so FastAPI cannot
    describe it): multipart with `file` and the fields, or where `raw_body` also the audio as the body and the fields
    in the query string."""
    schema = fields.model_json_schema()
    assert "$defs" not in schema, "a form field is a plain value"
    published = {name: {key: value for key, value in field.items() if key != "title" and value is not None}
                 for name, field in schema["properties"].items()}  # no default of None: a form field is a value
    multipart = {"type": "object", "required": ["file"],
                 "properties": {"file": {"type": "string", "format": "binary"}, **published}}
    content = {"multipart/form-data": {"schema": multipart}}
    if raw_body:  # any audio/* type is accepted too
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    parameters = [{"name": name, "in": "query", "required": False, "schema": field}
                  for name, field in published.items()]
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


def upload_fields(model: type[UploadModel], form: dict[str, list[str]]) -> UploadModel:
    """The upload's parameters, or 422 naming each bad field (a form value is never None: an optional field's
    "should be None" is left out)."""
    try:
        return model.from_form(form)
    except ValidationError as error:
        problems = [f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"]
                    for e in error.errors() if e["type"] != "none_required"]
        raise ApiError(422, "invalid_request", "; ".join(problems)) from error


def decode_options(app_state: AppState, fields: UploadFields) -> DecodeOptions:
    """Past the fields' own checks: what this model and server allow."""
    settings = app_state.settings
    try:
        resolved = resolve_locale(fields.locale, app_state.recognizer.locales)
    except UnsupportedLocaleError as error:
        raise ApiError(400, "unsupported_locale", str(error)) from error
    if fields.nbest > settings.max_nbest:
        raise ApiError(422, "invalid_request", f"nbest must be in 1..{settings.max_nbest}")
    if len(fields.hotwords) > settings.max_hotwords:
        raise ApiError(422, "invalid_request", f"at most {settings.max_hotwords} hotwords")
    chunk_frames = None if fields.chunk_ms is None else fields.chunk_ms // ENCODER_FRAME_MS
    return DecodeOptions(locale=resolved, nbest=fields.nbest, hotwords=fields.hotwords,
                         hotword_boost=fields.hotword_boost, beam_size=settings.default_beam_size,
                         chunk_frames=chunk_frames)


async def decode_upload(app_state: AppState, data: bytes, separate: bool) -> torch.Tensor:
    """(samples,) mono, or (channels, samples) when the channels are recognised apart."""
    try:
        decoded = await asyncio.to_thread(decode_audio, data, app_state.settings.max_audio_duration_s, not separate)
    except AudioTooLongError as error:
        raise ApiError(413, "audio_too_long", str(error)) from error
    except AudioDecodeError as error:
        raise ApiError(400, "invalid_audio", str(error)) from error
    return decoded.samples


def finished_text(transcript: Transcript, redact: RedactMode, form: TextFormat, options: PiiOptions,
                  names: tuple[str, ...] = ()) -> Shown:
    """Masked first, on the words as heard with their times; then written (service/written.py), `names` (the
    request's hotwords) as the request spelled them."""
    redactions = None
    if redact == "pii":
        transcript, redactions = redact_transcript(transcript, options)
    spoken = transcript.text
    raw_texts = None
    if form == "written":
        transcript, raw_texts = written_transcript(transcript, names)
    return Shown(transcript, spoken, raw_texts, redactions)


async def recognise_upload(app_state: AppState, data: bytes, fields: UploadFields,
                           options: DecodeOptions) -> tuple[Shown, tuple[ChannelResult, ...]]:
    call = channel_request(fields.channels, fields.channel_names)
    redact, form = app_state.redact_mode(fields.redact), app_state.text_format(fields.format)
    samples = await decode_upload(app_state, data, call.separate)
    channels = samples if call.separate else samples.unsqueeze(0)  # (channels, samples)
    call.check_against(len(channels))
    transcript, per_channel = await transcribe_recording(app_state, channels, options, call.separate)
    per_channel = tuple(replace(c, name=call.name(c.index)) for c in per_channel)
    # off the event loop: an hour of segments takes a while to search for entities and to write
    shown = await asyncio.to_thread(finished_text, transcript, redact, form, app_state.pii_options, options.hotwords)
    return shown, per_channel


async def run_transcription(request: Request, model: type[UploadModel]) -> UploadResult[UploadModel]:
    app_state = get_app_state(request)
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    label = "unknown"
    try:
        data, form = await audio_and_fields(request, app_state.settings.max_upload_bytes)
        fields = upload_fields(model, form)
        options = decode_options(app_state, fields)
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
             openapi_extra=upload_openapi(TranscribeFields, raw_body=True))
@router.post("/v1/transcribe", response_model=TranscriptionResponse, responses=ERRORS, tags=["transcription"],
             include_in_schema=False)
async def transcribe(request: Request) -> TranscriptionResponse:
    """Transcribe an uploaded recording (WAV, FLAC, OGG/Opus, MP3; any rate and channel count).

    Send the audio as multipart field `file`, the parameters as form fields, or the audio as the raw body with an
    audio content type and the parameters in the query string (`TranscribeFields` in service/protocol.py)."""
    result = await run_transcription(request, TranscribeFields)
    return transcription_response(result.shown, result.request_id, get_app_state(request).model_info,
                                  result.processing_s, result.fields.timestamps, result.channels)


@router.post("/v1/audio/transcriptions", responses=ERRORS, tags=["openai"],
             openapi_extra=upload_openapi(OpenAITranscriptionFields, raw_body=False))
async def openai_transcriptions(request: Request) -> Response:
    """OpenAI-compatible transcription: multipart `file` and OpenAI's fields (`language` as `locale`, `prompt` as
    hotwords), with those of `/transcribe` besides (`OpenAITranscriptionFields` in service/protocol.py)."""
    result = await run_transcription(request, OpenAITranscriptionFields)
    transcript, fields, names = result.shown.transcript, result.fields, {c.index: c.name for c in result.channels}
    granularities = set(fields.timestamp_granularities)
    headers = {"X-Request-Id": result.request_id}
    if fields.response_format == "text":
        return PlainTextResponse(transcript.text + "\n", headers=headers)
    if fields.response_format == "srt":
        return PlainTextResponse(to_srt(transcript, names), headers=headers)
    if fields.response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript, names), media_type="text/vtt", headers=headers)
    if fields.response_format == "verbose_json":
        body = to_openai_verbose(transcript, "word" in granularities, "segment" in granularities or not granularities,
                                 names, result.shown.redactions)
        return JSONResponse(body, headers=headers)
    return JSONResponse({"text": transcript.text}, headers=headers)
