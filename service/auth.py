"""Optional API keys. Settings hold SHA-256 hashes of the keys, never the keys. A key arrives as
`Authorization: Bearer <key>`, or for browsers (which cannot set headers on a WebSocket) as the WebSocket
subprotocol `apikey.<key>` next to `asr`, or as the query parameter `api_key` (redacted from access logs).
Each key may carry limits: concurrent streams and requests per minute."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

SUBPROTOCOL = "asr"
KEY_SUBPROTOCOL_PREFIX = "apikey."


class ApiKey(BaseModel):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key")
    max_streams: int | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class KeyUsage:
    active_streams: int = 0
    tokens: float = 0.0  # token bucket for requests per minute
    refilled_at: float = field(default_factory=time.monotonic)


@dataclass
class KeyRing:
    keys: list[ApiKey]
    usage: dict[str, KeyUsage] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key's record, or raises 401. With no keys configured, access is open (returns None)."""
        if not self.enabled:
            return None
        if not presented:
            raise AuthError(401, "unauthorized", "an API key is required (Authorization: Bearer <key>)")
        digest = hash_key(presented)
        for key in self.keys:
            if hmac.compare_digest(key.sha256, digest):
                return key
        raise AuthError(401, "unauthorized", "the API key is not valid")

    def charge_request(self, key: ApiKey | None) -> None:
        """Token bucket: refuse with 429 once a key exceeds its requests per minute."""
        if key is None or key.requests_per_minute is None:
            return
        usage = self.usage.setdefault(key.sha256, KeyUsage(tokens=key.requests_per_minute))
        now = time.monotonic()
        usage.tokens = min(key.requests_per_minute,
                           usage.tokens + (now - usage.refilled_at) * key.requests_per_minute / 60)
        usage.refilled_at = now
        if usage.tokens < 1:
            raise AuthError(429, "rate_limited",
                            f"key '{key.name}' is limited to {key.requests_per_minute} requests per minute")
        usage.tokens -= 1

    def open_stream(self, key: ApiKey | None) -> None:
        if key is None:
            return
        usage = self.usage.setdefault(key.sha256, KeyUsage(tokens=key.requests_per_minute or 0))
        if key.max_streams is not None and usage.active_streams >= key.max_streams:
            raise AuthError(429, "rate_limited", f"key '{key.name}' is limited to {key.max_streams} concurrent streams")
        usage.active_streams += 1

    def close_stream(self, key: ApiKey | None) -> None:
        if key is not None:
            self.usage[key.sha256].active_streams -= 1


def presented_key(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    for protocol in websocket_subprotocols(connection):
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return protocol[len(KEY_SUBPROTOCOL_PREFIX):]
    return connection.query_params.get("api_key")


def websocket_subprotocols(connection: HTTPConnection) -> list[str]:
    raw = connection.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def chosen_subprotocol(connection: HTTPConnection) -> str | None:
    """Browsers fail the handshake unless the server picks one of the offered subprotocols: pick `asr`."""
    return SUBPROTOCOL if SUBPROTOCOL in websocket_subprotocols(connection) else None


def is_open_path(path: str, protect_metrics: bool) -> bool:
    """Probes, the API description and the web page itself need no key (the page sends the user's key)."""
    if path == "/metrics":
        return not protect_metrics
    open_paths = {"/", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/favicon.ico"}
    return path in open_paths or path.startswith("/static/")


class ApiKeyMiddleware:
    """Pure ASGI middleware for HTTP requests (WebSockets authenticate in their handler, after accept, so they
    can be told why with a close reason)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        app_state = getattr(scope["app"].state, "app_state", None) if scope["type"] == "http" else None
        if app_state is None or not app_state.keys.enabled or is_open_path(scope["path"],
                                                                           app_state.settings.protect_metrics):
            return await self.app(scope, receive, send)
        try:
            key = app_state.keys.identify(presented_key(HTTPConnection(scope)))
            app_state.keys.charge_request(key)
        except AuthError as error:
            from starlette.responses import JSONResponse

            headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
            app_state.stats.error("rest", "unknown", error.code)
            response = JSONResponse({"error": error.code, "message": error.message}, error.status, headers)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)
