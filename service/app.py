"""The FastAPI application: `create_app(settings)` builds it; the lifespan loads the checkpoint onto the device,
warms it up, and starts and stops the batching scheduler. Nothing is loaded at import time."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.recognizer import DecodeOptions
from service import feedback, metrics, rest, streaming
from service.engine import load_recognizer, warm_up
from service.auth import ApiKeyMiddleware
from service.errors import install_error_handlers
from service.protocol import STREAM_MESSAGES
from service.runtime import Runtime, get_runtime
from service.scheduler import BatchScheduler, SchedulerLimits
from service.settings import Settings
from service.metrics import PrometheusStats
from service.stats import StatsSink
from service.web import install_web_client

log = logging.getLogger("service")

DESCRIPTION = """Real-time multi-locale speech recognition (Mandarin zh-CN, Cantonese yue-HK, English en-US).

* `POST /transcribe`: upload a recording, get text, segments, token timestamps and confidences.
* `POST /v1/audio/transcriptions`: the same, OpenAI-compatible.
* `WebSocket /v1/stream`: live streaming; the message protocol is in docs/protocol.md and in the
  `StartMessage`, `StopMessage`, `ReadyMessage`, `PartialMessage`, `FinalMessage`, `EndMessage` and
  `ErrorMessage` schemas below.
"""


def scheduler_limits(settings: Settings) -> SchedulerLimits:
    return SchedulerLimits(
        max_stream_batch=settings.max_stream_batch, max_batch_wait_s=batch_window_s(settings),
        max_offline_batch_audio_s=settings.max_offline_batch_audio_s,
        max_queued_offline_audio_s=settings.max_queued_offline_audio_s, retry_after_s=settings.retry_after_s,
        fault_injection_every_n_batches=settings.fault_injection_every_n_batches,
    )


def batch_window_s(settings: Settings) -> float:
    if settings.max_batch_wait_ms is not None:
        return settings.max_batch_wait_ms / 1000
    return settings.batch_window_fraction * settings.chunk_ms / 1000


def build_runtime(settings: Settings, stats: StatsSink | None) -> Runtime:
    recognizer = load_recognizer(settings)
    warm_up(recognizer, settings.chunk_ms // ENCODER_FRAME_MS)
    if stats is None:
        stats = PrometheusStats(recognizer.locales)
        stats.set_model(recognizer.loaded.name, recognizer.loaded.version, str(recognizer.device))
    return Runtime(settings, recognizer, BatchScheduler(recognizer, scheduler_limits(settings), stats), stats)


def create_app(settings: Settings | None = None, stats: StatsSink | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = build_runtime(settings, stats)
        app.state.runtime = runtime
        runtime.scheduler.start()
        log.info("ready: %s", runtime.model_info)
        yield
        runtime.accepting = False
        await runtime.scheduler.stop()

    app = FastAPI(title="openasr", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(ApiKeyMiddleware)
    if settings.cors_origins:  # added last = outermost, so CORS preflights (which carry no key) are answered
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(streaming.router)
    app.include_router(feedback.router)
    app.include_router(metrics.router)
    add_health_routes(app)
    install_web_client(app)
    app.openapi = lambda: openapi_with_stream_messages(app)  # type: ignore[method-assign]
    return app


def openapi_with_stream_messages(app: FastAPI) -> dict:
    """FastAPI leaves WebSocket routes out of OpenAPI; publish the stream's message schemas there too."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in STREAM_MESSAGES:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
    return app.openapi_schema


def add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Ready: the model is loaded, the scheduler runs, and new work is admitted."""
        runtime = getattr(request.app.state, "runtime", None)
        ready = runtime is not None and runtime.scheduler.running and runtime.accepting
        body = {"status": "ready" if ready else "not_ready",
                "active_streams": runtime.active_streams if runtime else 0}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/v1/models", tags=["models"])
    async def models(request: Request) -> dict:
        """The model card: locales, token set, streaming geometry, decoding settings per locale, training data and
        evaluated error rates."""
        return model_card(get_runtime(request))


def model_card(runtime: Runtime) -> dict:
    loaded = runtime.recognizer.loaded
    encoder = loaded.model.config.encoder
    metadata = loaded.metadata
    return {
        "object": "list",
        "data": [{
            "id": loaded.name, "object": "model", "version": loaded.version,
            "locales": runtime.recognizer.locales, "aliases": {"zh": "zh-CN", "cmn": "zh-CN", "yue": "yue-HK", "en": "en-US"},
            "token_set_size": loaded.tokenizer.vocab_size, "parameters": loaded.model.parameter_count(),
            "device": str(runtime.recognizer.device),
            "precision": str(runtime.recognizer.dtype).removeprefix("torch."),  # model.network.precision.serving_dtype
            "streaming": {"chunk_ms": runtime.settings.chunk_ms, "encoder_frame_ms": ENCODER_FRAME_MS, "feature_frame_ms": 10,
                          "left_context_ms": encoder.left_context_frames * ENCODER_FRAME_MS, "sample_rate": 16000,
                          "full_context_finals": runtime.settings.full_context_finals},
            # as this server decodes (ASR_DEFAULT_BEAM_SIZE included): the evaluation below used the tuned settings
            "decoding": runtime.recognizer.decoding_settings(DecodeOptions(beam_size=runtime.settings.default_beam_size)),
            "training_data": metadata.get("training_data", {}),
            "evaluation": metadata.get("evaluation", {}),
            # the same pipeline on recordings of real people, and on a synthesiser family no training utterance used
            "real_speech_evaluation": metadata.get("real_speech_evaluation", {}),
            "heldout_synthesiser_evaluation": metadata.get("heldout_synthesiser_evaluation", {}),
            "limitations": metadata.get("limitations", ""),
        }],
    }
