"""Load and faults against dedicated servers: 1,000 connect/start/stop/disconnect cycles must leave memory, file
descriptors and the stream count where they were; a model step that raises fails only its own batch; clients
that vanish while their work is on the device harm no one else."""

import asyncio
import json
import os
import socket
import time

import httpx
import numpy as np
import pytest
import soxr
import websockets

from helpers import close_after, pcm16, read_mono16k, scrape, start_server, stream_audio

# RSS of a fresh server climbs in steps while the allocator's pools (glibc arenas of the event loop, device and
# torch threads) grow to the largest batches they have seen: after every 100 cycles at 20 concurrent, 743, 757,
# 758, 783, 787, 790, 791, 792, 795, then flat; how long that takes varies from run to run. A warm-up at three
# times the concurrency sets those high-water marks at once (717 MB after 100 cycles, 849 after 400 more at 60
# concurrent, then 849 MB after each of the next 1,000 at 20), so that the measured cycles show only what stays
# behind. A leaked stream keeps at least its encoder cache (0.8 MB): ~800 MB over 1,000 cycles.
# CI runs 1,000 cycles; the full 10,000 of the issue: CYCLES=10000 pytest tests/service/test_cycles.py -k thousand -s
CYCLES, CONCURRENT = int(os.environ.get("CYCLES", "1000")), 20
WARM_UP, WARM_UP_CONCURRENT = 400, 60
RSS_GROWTH_LIMIT = 0.05
FD_SLACK = 4  # a keep-alive connection of the metrics scraper itself may or may not be open


@pytest.fixture(scope="module")
def cycle_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("cycles"))
    yield server
    server.stop()


def wait_until_idle(server, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{server.url}/readyz", timeout=10).json()["active_streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/readyz", timeout=10).json()["active_streams"] == 0


def resources(server) -> dict[str, float]:
    """RSS and open fds once the server is idle: the median of three scrapes, so one allocator swing is not read
    as a trend."""
    wait_until_idle(server)
    samples = []
    for _ in range(3):
        time.sleep(0.3)
        samples.append(scrape(server))
    return {key: float(np.median([s[key] for s in samples]))
            for key in ("process_resident_memory_bytes", "process_open_fds")}


async def one_cycle(ws_url: str, index: int, audio: bytes) -> str:
    """connect, start, (a quarter second of 48 kHz audio, through the resampler), stop or vanish, disconnect."""
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "start", "locale": "en", "sample_rate": 48000}))
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(audio)
        if index % 10 == 9:  # every tenth client vanishes without a stop or a close handshake
            ws.transport.abort()
            return "vanished"
        await ws.send(json.dumps({"type": "stop"}))
        messages = [json.loads(m) async for m in ws]
    assert messages[-1]["type"] == "end" and ws.close_code == 1000
    return "ended"


def run_cycles(server, count: int, audio: bytes, concurrent: int = CONCURRENT) -> list[str]:
    async def batches():
        outcomes = []
        for first in range(0, count, concurrent):
            outcomes += await asyncio.gather(*(one_cycle(server.ws_url, i, audio)
                                               for i in range(first, min(first + concurrent, count))))
        return outcomes

    return asyncio.run(batches())


def test_a_thousand_stream_cycles_return_memory_and_descriptors_to_baseline(cycle_server, bundled_samples):
    audio = pcm16(soxr.resample(read_mono16k(bundled_samples[6]["path"])[:4000], 16000, 48000))
    run_cycles(cycle_server, 100, audio)
    early = resources(cycle_server)
    run_cycles(cycle_server, WARM_UP, audio, WARM_UP_CONCURRENT)
    baseline = resources(cycle_server)
    started = time.perf_counter()
    outcomes = run_cycles(cycle_server, CYCLES, audio)
    elapsed_s = time.perf_counter() - started
    end = resources(cycle_server)
    growth = end["process_resident_memory_bytes"] / baseline["process_resident_memory_bytes"] - 1
    scrapes = {"100": early, "warm": baseline, "end": end}
    mb = {name: r["process_resident_memory_bytes"] / 2**20 for name, r in scrapes.items()}
    print(f"\ncycles: {CYCLES} at {CONCURRENT} concurrent in {elapsed_s:.1f} s, after 100 + {WARM_UP} at "
          f"{WARM_UP_CONCURRENT}; RSS {mb['100']:.1f} MB after 100, {mb['warm']:.1f} after the warm-up, "
          f"{mb['end']:.1f} at the end ({growth:+.2%}); "
          f"fds {early['process_open_fds']:.0f}, {baseline['process_open_fds']:.0f}, {end['process_open_fds']:.0f}")
    assert outcomes.count("ended") == CYCLES * 9 // 10
    assert end["process_open_fds"] <= min(early["process_open_fds"], baseline["process_open_fds"]) + FD_SLACK
    assert growth < RSS_GROWTH_LIMIT
    assert httpx.get(f"{cycle_server.url}/readyz").json() == {"status": "ready", "active_streams": 0}


def post_and_vanish(port: int, body: bytes) -> None:
    """A whole upload, then the client is gone before the answer (its work still queued or on the device)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"POST /transcribe?locale=en HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def stream_and_vanish(ws_url: str, audio: bytes) -> None:
    ws = await websockets.connect(ws_url)
    await ws.send(json.dumps({"type": "start", "locale": "en"}))
    await ws.recv()
    await ws.send(audio)  # several chunks: queued and on the device when the client disappears
    ws.transport.abort()


def test_clients_vanishing_mid_batch_harm_no_one_else(cycle_server, bundled_samples):
    speech = read_mono16k(bundled_samples[6]["path"])
    wav = bundled_samples[6]["path"].read_bytes()
    before = scrape(cycle_server)

    async def scenario():
        survivor = asyncio.create_task(stream_audio(cycle_server.ws_url, pcm16(speech), {"locale": "en"}, 3200,
                                                    pace_s=0.02))
        await asyncio.gather(*(stream_and_vanish(cycle_server.ws_url, pcm16(np.tile(speech, 3))) for _ in range(3)),
                             *(asyncio.to_thread(post_and_vanish, cycle_server.port, wav) for _ in range(3)))
        return await survivor

    messages = asyncio.run(scenario())
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end"
    wait_until_idle(cycle_server)
    after = scrape(cycle_server)
    for kind in ("stream", "offline"):
        series = f'asr_failed_batches_total{{kind="{kind}"}}'
        assert after.get(series, 0) == before.get(series, 0)
    response = httpx.post(f"{cycle_server.url}/transcribe", files={"file": ("a.wav", wav)}, timeout=60)
    assert response.status_code == 200


# ------------------------------------------------------------------------------------------ fault injection

FAULT_EVERY = 5


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory):
    """Every 5th device batch raises RuntimeError inside the step (ASR_FAULT_INJECTION_EVERY_N_BATCHES)."""
    server = start_server(tmp_path_factory.mktemp("faulty"),
                          env={"ASR_FAULT_INJECTION_EVERY_N_BATCHES": str(FAULT_EVERY)})
    yield server
    server.stop()


def test_a_failing_model_step_fails_only_its_own_batch(faulty_server, bundled_samples):
    """Run alone, each short upload is one device batch and each stream chunk is one: batch 5 is an upload, batch
    10 falls inside a long stream, and everything after each failure (fewer than 5 batches) must succeed. One
    keep-alive HTTP client sends every upload: a 500 must not cost the client its connection."""
    wav = bundled_samples[0]["path"].read_bytes()
    speech = read_mono16k(bundled_samples[6]["path"])
    with httpx.Client(base_url=faulty_server.url, timeout=60) as client:
        statuses = [client.post("/transcribe", files={"file": ("a.wav", wav)}) for _ in range(FAULT_EVERY + 1)]
        assert [r.status_code for r in statuses] == [200] * (FAULT_EVERY - 1) + [500, 200]
        assert statuses[FAULT_EVERY - 1].json()["error"] == "internal"

        async def streams():
            bystander = await websockets.connect(faulty_server.ws_url)  # open, in no batch, while the fault hits
            await bystander.send(json.dumps({"type": "start", "locale": "en"}))
            assert json.loads(await bystander.recv())["type"] == "ready"
            audio = pcm16(np.tile(speech, 4)[: 16000 * 10])  # ~15 chunks: batches 7.. and 10 fails
            failed = await close_after(faulty_server.ws_url, '{"type": "start", "locale": "en"}',
                                       *(audio[i : i + 6400] for i in range(0, len(audio), 6400)))
            await bystander.send(pcm16(speech[:16000]))
            await bystander.send(json.dumps({"type": "stop"}))
            finished = [json.loads(m) async for m in bystander]
            return failed, finished, bystander.close_code

        (failed_messages, failed_close), finished, bystander_close = asyncio.run(streams())
        assert failed_messages[-1] == {"type": "error", "code": "internal", "message": "RuntimeError"}
        assert failed_close == 1011
        assert finished[-1]["type"] == "end" and bystander_close == 1000
        assert client.post("/transcribe", files={"file": ("a.wav", wav)}).status_code == 200
    metrics = scrape(faulty_server)
    assert metrics['asr_failed_batches_total{kind="offline"}'] == 1
    assert metrics['asr_failed_batches_total{kind="stream"}'] == 1
    assert metrics['asr_errors_total{kind="internal",locale="unknown",mode="rest"}'] == 1
    assert httpx.get(f"{faulty_server.url}/readyz").json() == {"status": "ready", "active_streams": 0}
