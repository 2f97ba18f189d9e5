"""The browser client: `GET /` serves service/static/index.html and `/static/*` its scripts and styles. Plain
files, no build step; the page talks to the same public API as any other client (/v1/models, /transcribe,
/v1/stream)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent.parent / "static"  # service/static
# The files change with the service, not on their own schedule: revalidate every load so an upgraded server
# never runs against a cached older page script.
NO_CACHE = {"Cache-Control": "no-cache"}


class RevalidatedStaticFiles(StaticFiles):
    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_CACHE)
        return response


def install_web_client(app: FastAPI) -> None:
    app.mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)
