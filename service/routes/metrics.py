"""`GET /metrics`: the app's Prometheus series, as service/metrics.py writes them (empty with another stats sink)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.app_state import get_app_state
from service.metrics import EXPOSITION_TYPE, PrometheusStats

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    stats = get_app_state(request).stats
    body = stats.exposition() if isinstance(stats, PrometheusStats) else b""
    return Response(body, media_type=EXPOSITION_TYPE)
