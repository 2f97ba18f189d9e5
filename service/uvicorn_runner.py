"""Running the app under uvicorn with a graceful drain: on the first SIGTERM/SIGINT the service stops admitting
(readiness goes 503, new streams get 1013), every open stream receives the final of its open segment and `end`,
and is closed with 1001; only then does uvicorn shut down (and finish in-flight uploads). A second signal exits
at once."""

from __future__ import annotations

import asyncio
import logging
import re

import uvicorn

from service.app import create_app
from service.settings import Settings, check_environment

log = logging.getLogger("service.uvicorn_runner")


class RedactApiKeys(logging.Filter):
    """uvicorn logs full paths (HTTP access lines, WebSocket accept lines): a browser's `?api_key=` must not end
    up in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("api_key=" in str(a) for a in record.args):
            record.args = tuple(re.sub(r"api_key=[^&\s\"]*", "api_key=REDACTED", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, grace_s: float) -> None:
        super().__init__(config)
        self.grace_s = grace_s
        self.draining = False

    def handle_exit(self, sig, frame) -> None:
        app_state = getattr(self.config.app.state, "app_state", None) if hasattr(self.config.app, "state") else None
        if self.draining or app_state is None:
            return super().handle_exit(sig, frame)
        self.draining = True
        app_state.accepting = False
        asyncio.get_event_loop().create_task(self.drain_then_exit(app_state, sig, frame))

    async def drain_then_exit(self, app_state, sig, frame) -> None:
        streams = list(app_state.open_streams)
        log.info("draining %d open streams (grace %.0f s)", len(streams), self.grace_s)
        for connection in streams:
            connection.request_shutdown()
        deadline = asyncio.get_event_loop().time() + self.grace_s
        while app_state.open_streams and asyncio.get_event_loop().time() < deadline:
            await asyncio.sleep(0.05)
        super().handle_exit(sig, frame)


def run(settings: Settings) -> None:
    check_environment()
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, ws_max_size=4 * settings.max_frame_bytes,
                            ws_per_message_deflate=settings.ws_compression,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s), log_level="info")
    server = DrainingServer(config, settings.shutdown_grace_s)
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactApiKeys())
    server.run()
