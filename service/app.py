"""The FastAPI application: `create_app(settings)` builds it; the lifespan loads the checkpoint onto the device,
warms it up, and starts and stops the batching scheduler. Nothing is loaded at import time."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from model.network.encoder import ENCODER_FRAME_MS
from service.app_state import AppState
from service.auth import ApiKeyMiddleware
from service.errors import install_error_handlers
from service.loading import load_recognizer, warm_up
from service.metrics import PrometheusStats
from service.protocol import STREAM_MESSAGES
from service.routes import feedback, health, metrics, stream, transcription
from service.routes.web import install_web_client
from service.scheduler import BatchScheduler, SchedulerLimits
from service.settings import Settings
from service.stats import StatsSink

log = logging.getLogger("service")

DESCRIPTION = """Real-time multi-locale speech recognition (Mandarin zh-CN, Cantonese yue-HK, English en-US).

* `POST /transcribe`: upload a recording, get text, segments, token timestamps and confidences.
* `POST /v1/audio/transcriptions`: the same, OpenAI-compatible.
* `WebSocket /v1/stream`: live streaming; the message protocol is in docs/protocol.md and in the
  `StartMessage`, `StopMessage`, `ReadyMessage`, `PartialMessage`, `FinalMessage`, `EndMessage` and
  `ErrorMessage` schemas below.
"""


def build_app_state(settings: Settings, stats: StatsSink | None) -> AppState:
    recognizer = load_recognizer(settings)
    warm_up(recognizer, settings.chunk_ms // ENCODER_FRAME_MS)
    if stats is None:
        stats = PrometheusStats(recognizer.locales)
        stats.set_model(recognizer.loaded.name, recognizer.loaded.version, str(recognizer.device))
    return AppState(settings, recognizer, BatchScheduler(recognizer, SchedulerLimits.from_settings(settings), stats),
                    stats)


def create_app(settings: Settings | None = None, stats: StatsSink | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app_state = build_app_state(settings, stats)
        app.state.app_state = app_state
        app_state.scheduler.start()
        log.info("ready: %s", app_state.model_info)
        yield
        app_state.accepting = False
        await app_state.scheduler.stop()

    app = FastAPI(title="openasr", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(ApiKeyMiddleware)
    if settings.cors_origins:  # added last = outermost, so CORS preflights (which carry no key) are answered
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    install_error_handlers(app)
    for routes in (transcription, stream, feedback, metrics, health):
        app.include_router(routes.router)
    install_web_client(app)
    app.openapi = lambda: openapi_with_stream_messages(app)  # type: ignore[method-assign]
    return app


def openapi_with_stream_messages(app: FastAPI) -> dict:
    """FastAPI leaves WebSocket routes out of OpenAPI; publish the stream's message schemas there too."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in STREAM_MESSAGES:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
    return app.openapi_schema
