"""Live accuracy and fairness: reference transcripts posted by reviewers are scored against the hypotheses the
service returned (kept for a bounded time), per locale. Counters go to Prometheus so that CER/WER can be computed
over any window there; a sliding window here feeds the worst/best locale ratio and `GET /v1/fairness`."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator

from model.accuracy.scoring import count_errors, uses_words
from service.fairness import figures, window_intervals
from service.errors import ApiError
from service.app_state import get_app_state


class FeedbackRequest(BaseModel):
    request_id: str | None = Field(default=None, description="from a POST /transcribe response")
    session_id: str | None = Field(default=None, description="from a stream's ready message")
    segment: int | None = Field(default=None, ge=0, description="a final's segment index in that stream")
    reference: str = Field(max_length=10_000, description="what was really said")

    @model_validator(mode="after")
    def one_target(self) -> "FeedbackRequest":
        if (self.request_id is None) == (self.session_id is None or self.segment is None):
            raise ValueError("give either request_id, or session_id and segment")
        return self

    @property
    def key(self) -> str:
        return self.request_id or f"{self.session_id}:{self.segment}"


class FeedbackResult(BaseModel):
    locale: str
    metric: str
    errors: int
    reference_units: int
    error_rate: float
    hypothesis: str


router = APIRouter(tags=["accuracy"])


@router.post("/v1/feedback", response_model=FeedbackResult)
async def post_feedback(body: FeedbackRequest, request: Request) -> FeedbackResult:
    """Score a returned hypothesis against a reference transcript (a reviewer's or an agent's correction)."""
    app_state = get_app_state(request)
    stored = app_state.hypotheses.get(body.key)
    if stored is None:
        raise ApiError(404, "unknown_id", "no hypothesis with that id (unknown, or older than the retention time)")
    locale, hypothesis = stored
    count = count_errors(body.reference, hypothesis, locale)
    label = app_state.locale_label(locale)
    app_state.fairness.add(label, count)
    app_state.stats.feedback(label, count.errors, count.reference_units, time.time())
    window = app_state.fairness.window_counts()
    app_state.stats.window({k: v.rate for k, v in window.items()}, app_state.fairness.disparity(window))
    return FeedbackResult(locale=label, metric="wer" if uses_words(locale) else "cer", errors=count.errors,
                          reference_units=count.reference_units, error_rate=round(count.rate, 4), hypothesis=hypothesis)


@router.get("/v1/fairness")
async def fairness(request: Request) -> dict:
    """Per-locale live error rates (all time, and over the sliding window with 95% bootstrap intervals) next to the
    model card's evaluation."""
    app_state = get_app_state(request)
    window = app_state.fairness.window_counts()
    intervals = await asyncio.to_thread(window_intervals, app_state.fairness.window_items())  # numpy, off the loop
    return {
        "window_s": app_state.fairness.window_s,
        "live": {"all_time": figures(app_state.fairness.totals), "window": figures(window),
                 "window_disparity": app_state.fairness.disparity(window),
                 "window_ci95": intervals,
                 "all_time_disparity": app_state.fairness.disparity(app_state.fairness.totals)},
        "evaluated": app_state.recognizer.loaded.metadata.get("evaluation", {}),
    }
