"""Optional API keys: hashes in settings, Bearer / WebSocket subprotocol / query parameter, per-key limits,
401/429 JSON, open probes, and no key in the logs."""

import asyncio
import json

import httpx
import pytest
import websockets

from helpers import start_server
from service.auth import hash_key

OPEN_KEY = "k-open-0123456789"
LIMITED_KEY = "k-limited-abcdef"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, bundled_samples):
    keys = [{"name": "open", "sha256": hash_key(OPEN_KEY)},
            {"name": "limited", "sha256": hash_key(LIMITED_KEY), "max_streams": 1, "requests_per_minute": 3}]
    server = start_server(tmp_path_factory.mktemp("secured"), env={"ASR_API_KEYS": json.dumps(keys)})
    yield server
    server.stop()


def post(server, sample, headers=None, params=None) -> httpx.Response:
    return httpx.post(f"{server.url}/transcribe", params=params, headers=headers, timeout=60,
                      files={"file": ("a.wav", sample["path"].read_bytes())}, data={"locale": sample["locale"]})


def test_requests_without_a_valid_key_get_401_json(secured, bundled_samples):
    for headers in (None, {"Authorization": "Bearer wrong"}):
        response = post(secured, bundled_samples[0], headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_probes_and_metrics_need_no_key(secured):
    assert httpx.get(f"{secured.url}/healthz").status_code == 200
    assert httpx.get(f"{secured.url}/readyz").status_code == 200
    assert httpx.get(f"{secured.url}/metrics").status_code == 200


def test_bearer_and_query_parameter_keys_are_accepted(secured, bundled_samples):
    assert post(secured, bundled_samples[0], {"Authorization": f"Bearer {OPEN_KEY}"}).status_code == 200
    assert post(secured, bundled_samples[0], params={"api_key": OPEN_KEY}).status_code == 200


def test_requests_per_minute_limit_gives_429(secured, bundled_samples):
    statuses = [post(secured, bundled_samples[0], {"Authorization": f"Bearer {LIMITED_KEY}"}).status_code
                for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429


async def open_stream(url: str, subprotocols=None):
    ws = await websockets.connect(url, subprotocols=subprotocols)
    await ws.send(json.dumps({"type": "start", "locale": "en"}))
    return ws, json.loads(await ws.recv())


def test_websocket_key_as_subprotocol_and_stream_limit(secured):
    async def scenario():
        ws, ready = await open_stream(secured.ws_url, ["asr", f"apikey.{LIMITED_KEY}"])
        assert ready["type"] == "ready" and ws.subprotocol == "asr"
        second, refused = await open_stream(secured.ws_url, ["asr", f"apikey.{LIMITED_KEY}"])
        assert refused == {"type": "error", "code": "rate_limited", "message": refused["message"]}
        await second.wait_closed()
        assert second.close_code == 1008
        await ws.close()
        anonymous = await websockets.connect(secured.ws_url)  # refused right after the handshake
        denied = json.loads(await anonymous.recv())
        assert denied["code"] == "unauthorized"
        await anonymous.wait_closed()
        assert anonymous.close_code == 1008
        query, ready = await open_stream(f"{secured.ws_url}?api_key={OPEN_KEY}")
        assert ready["type"] == "ready"
        await query.close()

    asyncio.run(scenario())


def test_no_key_appears_in_the_server_log(secured, bundled_samples):
    post(secured, bundled_samples[0], params={"api_key": OPEN_KEY})
    log = secured.log()
    assert "api_key=REDACTED" in log
    assert OPEN_KEY not in log and LIMITED_KEY not in log
