"""Liveness, readiness and the model card: `GET /healthz`, `GET /readyz`, `GET /v1/models`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from model.frontend.geometry import FRAME_SHIFT_MS, SAMPLE_RATE
from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.recognizer import DecodeOptions
from model.text.locales import aliases_of
from service.app_state import AppState, get_app_state

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict:
    """Alive: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Ready: the model is loaded, the scheduler runs, and new work is admitted."""
    app_state: AppState | None = getattr(request.app.state, "app_state", None)
    ready = app_state is not None and app_state.scheduler.running and app_state.accepting
    body = {"status": "ready" if ready else "not_ready",
            "active_streams": app_state.active_streams if app_state else 0}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/models", tags=["models"])
async def models(request: Request) -> dict:
    """The model card: locales, token set, streaming geometry, decoding settings per locale, training data and
    evaluated error rates."""
    return model_card(get_app_state(request))


def model_card(app_state: AppState) -> dict:
    recognizer, settings = app_state.recognizer, app_state.settings
    loaded = recognizer.loaded
    metadata = loaded.metadata
    return {
        "object": "list",
        "data": [{
            "id": loaded.name, "object": "model", "version": loaded.version,
            "locales": recognizer.locales, "aliases": aliases_of(recognizer.locales),  # all that a request may name
            "token_set_size": loaded.tokenizer.vocab_size, "parameters": loaded.model.parameter_count(),
            "device": str(recognizer.device),
            "precision": str(recognizer.dtype).removeprefix("torch."),  # model.network.precision.serving_dtype
            "quantization": recognizer.quantization,  # "int8": linear layers in int8 (ASR_QUANTIZE, CPU only)
            "streaming": {"chunk_ms": settings.chunk_ms, "encoder_frame_ms": ENCODER_FRAME_MS,
                          "feature_frame_ms": FRAME_SHIFT_MS,
                          "left_context_ms": loaded.model.config.encoder.left_context_frames * ENCODER_FRAME_MS,
                          "sample_rate": SAMPLE_RATE, "full_context_finals": settings.full_context_finals},
            # as this server decodes (ASR_DEFAULT_BEAM_SIZE included): the evaluation below used the tuned settings
            "decoding": recognizer.decoding_settings(DecodeOptions(beam_size=settings.default_beam_size)),
            "training_data": metadata.get("training_data", {}),
            "evaluation": metadata.get("evaluation", {}),
            # the same pipeline on recordings of real people, and on a synthesiser family no training utterance used
            "real_speech_evaluation": metadata.get("real_speech_evaluation", {}),
            "heldout_synthesiser_evaluation": metadata.get("heldout_synthesiser_evaluation", {}),
            "limitations": metadata.get("limitations", ""),
        }],
    }
