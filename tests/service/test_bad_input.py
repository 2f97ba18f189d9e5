"""Bad input against the real server: each case pins the exact status and error code (or WebSocket error code and
close code), and then that the server still serves everyone else. The protocol errors already pinned by
test_service_stream.py::test_protocol_errors_close_with_a_reason are not repeated here."""

import asyncio
import io
import json
import socket
import struct
import time

import httpx
import numpy as np
import pytest
import soundfile
import websockets

from helpers import (close_after, close_after_with_reason, encode, expect_error, finals, pcm16, read_mono16k, scrape,
                     start_server, stream_audio, transcribe)
from model.frontend.audio import AudioTooLongError, decode_audio


@pytest.fixture(scope="module")
def client(live_server):  # as in test_service_rest.py; an imported fixture clashes with the parameter (ruff F811)
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory):
    """Small limits, so that each is reached in a second."""
    server = start_server(tmp_path_factory.mktemp("limits"), env={
        "ASR_MAX_UPLOAD_BYTES": "100000", "ASR_STREAM_IDLE_TIMEOUT_S": "1", "ASR_MAX_STREAM_DURATION_S": "2"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def speech(bundled_samples) -> np.ndarray:
    return read_mono16k(bundled_samples[6]["path"])  # an English sample, 16 kHz


def wav_header(rate: int, channels: int, bits: int, data_bytes: int, audio_format: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header, written by hand so that it can say anything."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", audio_format, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def flac_without_length(data: bytes) -> bytes:
    """The FLAC as an encoder writing to a pipe leaves it: 0 ('unknown') in STREAMINFO's 36-bit total samples."""
    patched = bytearray(data)
    patched[8 + 13] &= 0xF0  # STREAMINFO starts after 'fLaC' and its 4-byte block header
    patched[8 + 14 : 8 + 18] = b"\0\0\0\0"
    return bytes(patched)


def flac_of_silence(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        minute = np.zeros(rate * 60, dtype=np.float32)
        for _ in range(int(seconds // 60)):
            out.write(minute)
    return buffer.getvalue()


def assert_still_serving(url: str, sample_path) -> None:
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    response = httpx.post(f"{url}/transcribe", files={"file": ("a.wav", sample_path.read_bytes())}, timeout=60)
    assert response.status_code == 200, response.text


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


# ------------------------------------------------------------------------------------------------ uploads


@pytest.mark.parametrize("body", [b"", b"RIFF$\x00\x00\x00WAVEfmt "], ids=["empty", "wav_cut_inside_its_header"])
def test_empty_or_headless_upload_is_invalid_audio(client, bundled_samples, body):
    assert_error(transcribe(client, body), 400, "invalid_audio")
    assert_error(client.post("/transcribe", content=body, headers={"content-type": "audio/wav"}), 400, "invalid_audio")
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_wav_cut_inside_its_data_transcribes_the_audio_that_arrived(client, bundled_samples, speech):
    """The header promises 10 s, 1 s arrived: like a recording cut off (or a WAV written to a pipe, whose sizes
    are never filled in), the audio present is decoded and duration_s says how much that was."""
    body = wav_header(16000, 1, 16, 10 * 32000) + pcm16(speech[:16000])
    response = transcribe(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


@pytest.mark.parametrize("container", ["FLAC", "MP3"])
def test_corrupt_flac_and_mp3_are_invalid_audio(client, bundled_samples, speech, container):
    data = encode(speech, container)
    noise = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    corrupt = data[:64] + noise[64:]  # the container's first bytes, then garbage
    assert_error(transcribe(client, corrupt, f"a.{container.lower()}"), 400, "invalid_audio")
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_flac_cut_short_loses_sync_and_is_invalid_audio(client, bundled_samples, speech):
    data = encode(speech, "FLAC")
    assert_error(transcribe(client, data[: len(data) // 2], "a.flac"), 400, "invalid_audio")
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_audio_sent_as_text_plain_is_unsupported_media_type(client, bundled_samples):
    """A raw body's content type decides whether it is audio, even when the bytes are a fine WAV."""
    response = client.post("/transcribe", content=bundled_samples[0]["path"].read_bytes(),
                           headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_wav_labelled_mp3_is_decoded_by_its_content(client, bundled_samples):
    """Formats are recognised from the bytes, not from the file name or the declared type."""
    sample = bundled_samples[0]
    wav = sample["path"].read_bytes()
    multipart = client.post("/transcribe", files={"file": ("x.mp3", wav, "audio/mpeg")})
    raw = client.post("/transcribe", content=wav, headers={"content-type": "audio/mpeg"})
    for response in (multipart, raw):
        assert response.status_code == 200, response.text
        assert response.json()["duration_s"] == pytest.approx(sample["duration"], abs=0.01)


@pytest.mark.parametrize("rate", [0, 10_000_000], ids=["0_Hz", "10_MHz"])
def test_impossible_sample_rates_are_invalid_audio(client, bundled_samples, rate):
    body = wav_header(rate, 1, 16, 32000) + bytes(32000)
    assert_error(transcribe(client, body), 400, "invalid_audio")
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


@pytest.mark.parametrize("rate", [7919, 44101, 383999])
def test_odd_sample_rates_are_resampled_quickly(client, speech, rate):
    """Rates whose ratio to 16 kHz does not reduce (7,919 Hz is prime) made the sinc resampler build a kernel row
    per phase: 44,101 Hz took minutes for 10 s, and 383,999 Hz exhausted the memory, so that a 768 kB upload
    could take the server down. Such rates go through soxr now."""
    started = time.perf_counter()
    response = transcribe(client, encode(speech[:16000], "WAV", rate), locale="en")
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert time.perf_counter() - started < 5


def test_eight_channels_are_mixed_to_mono(client, bundled_samples, speech):
    response = transcribe(client, encode(speech, "WAV", 16000, channels=8))
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(len(speech) / 16000, abs=0.01)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "minus_inf"])
def test_float_wav_with_nan_or_infinite_samples_is_a_400(client, bundled_samples, speech, value):
    """One such sample is enough (issue #28): zeroing it, as was done, answered 200 for audio other than what was
    sent. The message says where the sample is."""
    audio = speech.copy()
    audio[16000] = value
    response = transcribe(client, encode(audio, "WAV", subtype="FLOAT"))
    assert_error(response, 400, "invalid_audio")
    assert "sample 16000 (1.000 s) is NaN or infinite" in response.json()["message"]
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_float_wav_with_overs_is_clipped_and_transcribed(client, speech):
    """Finite samples past [-1, 1] are legal in a float file (headroom): clipped, not refused."""
    response = transcribe(client, encode(speech * 4, "WAV", subtype="FLOAT"))
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(len(speech) / 16000, abs=0.01)


@pytest.mark.parametrize("rate,bits,audio_format", [(16000, 16, 1), (8000, 16, 1), (16000, 32, 3)],
                         ids=["pcm16_16kHz", "pcm16_8kHz", "float32_16kHz"])
def test_wav_with_a_header_and_no_samples_is_a_400(client, bundled_samples, rate, bits, audio_format):
    """A WAV whose data chunk is empty (issue #28): answering 200 with "" and 0 s would pass a failed recording
    off as silence. The 8 kHz one is the file the decoder fuzzing found, when resampling nothing raised."""
    body = wav_header(rate, 1, bits, 0, audio_format)
    raw = client.post("/transcribe", content=body, headers={"content-type": "audio/wav"})
    for response in (transcribe(client, body), raw):
        assert_error(response, 400, "invalid_audio")
        assert response.json()["message"] == "no audio: the file holds no samples"
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


@pytest.mark.parametrize("seconds,rate", [(0.05, 16000), (0.05, 8000), (3.0, 16000), (45.0, 16000)])
def test_silence_only_gives_empty_text_and_no_segments(client, seconds, rate):
    """Digital silence is not handed to the model (a model asked to transcribe nothing may invent something), and
    a recording too short to hold a word (under 0.1 s) needs no model step either. A file with no samples at all is
    a 400 (test_wav_with_a_header_and_no_samples_is_a_400)."""
    silence = encode(np.zeros(int(16000 * seconds), dtype=np.float32), "WAV", rate)
    response = transcribe(client, silence, locale="en")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "" and body["segments"] == [] and body["locale"] == "en-US"
    assert body["duration_s"] == pytest.approx(seconds, abs=0.001)


def test_a_short_tail_after_a_cut_is_decoded_with_its_neighbour(client, speech):
    """20.05 s cuts into 20 s + 50 ms, and 50 ms is shorter than the encoder's input: the cut moves earlier."""
    audio = np.tile(speech, 10)[: 16000 * 20 + 800]
    response = transcribe(client, encode(audio, "WAV"), locale="en")
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(20.05, abs=0.001)


def test_two_hours_of_audio_are_refused_from_the_header_without_decoding(client, bundled_samples):
    """A real 2 h recording (8 kHz, 8 bit: 57.6 MB) is refused once its header is read: decoding and resampling
    it would take many seconds and gigabytes."""
    seconds = 2 * 3600
    body = wav_header(8000, 1, 8, seconds * 8000) + b"\x80" * (seconds * 8000)
    started = time.perf_counter()
    response = client.post("/transcribe", content=body, headers={"content-type": "audio/wav"})
    elapsed_s = time.perf_counter() - started
    assert_error(response, 413, "audio_too_long")
    assert "7200.0 s" in response.json()["message"]
    assert elapsed_s < 5, f"took {elapsed_s:.1f} s: was it decoded?"
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_body_over_the_limit_is_refused_while_it_is_still_arriving(limits_server, bundled_samples):
    """Chunked transfer encoding, no Content-Length: the server counts as it reads and answers 413 after 100 kB,
    although the body has not ended (no terminating chunk is ever sent)."""
    with socket.create_connection(("127.0.0.1", limits_server.port), timeout=30) as connection:
        connection.sendall(b"POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n")
        piece = bytes(10_000)
        try:
            for _ in range(20):  # 200 kB
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close its side once it has answered
        reply = read_reply(connection)
    assert reply.startswith("HTTP/1.1 413"), reply
    assert '"too_large"' in reply
    assert_still_serving(limits_server.url, bundled_samples[0]["path"])


def read_reply(connection: socket.socket) -> str:
    """One HTTP response (headers and a Content-Length body), however the bytes are split into packets."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
        piece = connection.recv(4096)
        if not piece:
            break
        data += piece
    return data.decode(errors="replace")


def content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


@pytest.fixture(scope="module")
def silence_bomb() -> bytes:
    """3 hours of digital silence at 8 kHz: about 270 kB of FLAC that decodes to 86 million samples (690 MB at
    the model's rate, as float32)."""
    return flac_of_silence(3 * 3600)


@pytest.mark.parametrize("states_its_length", [True, False], ids=["length_in_header", "length_unknown"])
def test_decompression_bomb_is_refused_quickly(client, bundled_samples, silence_bomb, states_its_length):
    """With its length in STREAMINFO the bomb is refused before decoding; without it, decoding stops as soon as
    the audio passes the 90-minute limit instead of running through all 3 hours."""
    data = silence_bomb if states_its_length else flac_without_length(silence_bomb)
    assert len(data) < 300_000
    started = time.perf_counter()
    response = transcribe(client, data, "bomb.flac")
    elapsed_s = time.perf_counter() - started
    assert_error(response, 413, "audio_too_long")
    assert elapsed_s < 5, f"took {elapsed_s:.1f} s"
    assert_still_serving(str(client.base_url), bundled_samples[0]["path"])


def test_flac_without_a_length_still_decodes_when_short(client, speech):
    """The bomb defence must not refuse a legitimate streamed FLAC (sizes unknown, like `flac -` writes)."""
    response = transcribe(client, flac_without_length(encode(speech, "FLAC")), "a.flac")
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(len(speech) / 16000, abs=0.01)


def test_high_rate_many_channel_audio_is_bounded_by_decoded_samples(speech):
    """Twenty minutes is within the duration limit, but at 96 kHz in 8 channels it is 920 million decoded
    samples: refused from the header, since one such upload would cost gigabytes and minutes to decode."""
    data = bytearray(encode(speech, "FLAC", 96000, channels=8))
    total = 1200 * 96000  # STREAMINFO: low 4 bits of byte 13 and bytes 14-17 hold the 36-bit total samples
    data[8 + 13] = (data[8 + 13] & 0xF0) | (total >> 32)
    data[8 + 14 : 8 + 18] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    with pytest.raises(AudioTooLongError, match="96000 Hz with 8 channels"):
        decode_audio(bytes(data), 5400)


# ------------------------------------------------------------------------------------------------ streams


def assert_stream_still_serving(server, bundled_samples) -> None:
    messages = asyncio.run(stream_audio(server.ws_url, pcm16(read_mono16k(bundled_samples[6]["path"])),
                                        {"locale": "en"}))
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end"
    for _ in range(50):  # the closed connection's release runs just after its close
        if httpx.get(f"{server.url}/readyz").json()["active_streams"] == 0:
            break
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/readyz").json()["active_streams"] == 0
    assert_still_serving(server.url, bundled_samples[0]["path"])


@pytest.mark.parametrize("sends,code", [
    (('{"type": "start"}', b"\x00\x01", '{"type": "pause"}'), "bad_message"),
    (('{"type": "start"}', b"\x00\x01", '{"type": "stop"'), "bad_message"),
    (('{"type": "start", "encoding": "pcm_f32le"}', b"\x00" * 6), "bad_audio"),
], ids=["unknown_type_mid_stream", "malformed_json_mid_stream", "f32_frame_of_6_bytes"])
def test_bad_messages_mid_stream_close_with_1003(live_server, bundled_samples, sends, code):
    message, close_code = asyncio.run(expect_error(live_server.ws_url, *sends))
    assert message["type"] == "error" and message["code"] == code
    assert close_code == 1003
    assert_stream_still_serving(live_server, bundled_samples)


def test_a_float_stream_with_nan_samples_closes_with_1003_and_other_streams_go_on(live_server, bundled_samples, speech):
    """A pcm_f32le frame holding NaN is refused as an upload's float file is (issue #28): `bad_audio` and 1003, as
    for a frame of the wrong length, with the message as the close reason. A stream open meanwhile reaches its end."""
    good = speech[:16000].astype("<f4")
    bad = good.copy()
    bad[100] = np.nan

    async def bad_next_to_a_good_stream():
        return await asyncio.gather(
            stream_audio(live_server.ws_url, pcm16(speech), {"locale": "en"}),
            close_after_with_reason(live_server.ws_url, '{"type": "start", "encoding": "pcm_f32le"}',
                                    good.tobytes(), bad.tobytes()))

    other, (messages, close_code, reason) = asyncio.run(bad_next_to_a_good_stream())
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "bad_audio"
    assert "sample 100 of this frame is NaN or infinite" in messages[-1]["message"]
    assert close_code == 1003 and reason.startswith("sample 100 of this frame")
    assert other[0]["type"] == "ready" and other[-1]["type"] == "end"
    assert_stream_still_serving(live_server, bundled_samples)


def test_a_20_mb_frame_is_closed_with_1009(live_server, bundled_samples):
    """uvicorn refuses a frame over its ws_max_size (4x ASR_MAX_FRAME_BYTES) while reading the frame header,
    before the handler sees it: close 1009 either way, and an error message when the handler does see it."""
    messages, close_code = asyncio.run(close_after(live_server.ws_url, '{"type": "start"}', bytes(20 * 2**20)))
    assert close_code == 1009
    errors = [m for m in messages if m["type"] == "error"]
    assert all(m["code"] == "frame_too_large" for m in errors)
    assert_stream_still_serving(live_server, bundled_samples)


def test_audio_after_stop_is_ignored_after_end_and_a_normal_close(live_server, bundled_samples, speech):
    audio = pcm16(speech[:16000])
    messages, close_code = asyncio.run(close_after(
        live_server.ws_url, '{"type": "start", "locale": "en"}', audio, '{"type": "stop"}', audio, audio))
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end"
    assert not [m for m in messages if m["type"] == "error"]
    assert close_code == 1000
    assert_stream_still_serving(live_server, bundled_samples)


@pytest.mark.parametrize("sends", [(), ('{"type": "start"}',)], ids=["before_start", "after_start"])
def test_a_silent_client_is_closed_for_idleness(limits_server, bundled_samples, sends):
    started = time.perf_counter()
    messages, close_code = asyncio.run(close_after(limits_server.ws_url, *sends))
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "idle_timeout"
    assert close_code == 1008
    assert 0.9 < time.perf_counter() - started < 10
    assert_stream_still_serving_quickly(limits_server, bundled_samples)


def test_a_stream_longer_than_the_maximum_gets_its_finals_then_max_duration(limits_server, bundled_samples, speech):
    audio = pcm16(np.tile(speech, 2)[: 16000 * 3])  # 3 s against a 2 s limit
    pieces = [audio[i : i + 6400] for i in range(0, len(audio), 6400)]
    messages, close_code = asyncio.run(close_after(limits_server.ws_url, '{"type": "start", "locale": "en"}', *pieces))
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "error" and messages[-1]["code"] == "max_duration"
    assert finals(messages) and kinds[-2] == "end"  # the stream is finished (finals, end), then the error says why
    assert close_code == 1008
    assert_stream_still_serving_quickly(limits_server, bundled_samples)


def assert_stream_still_serving_quickly(server, bundled_samples) -> None:
    """On the limits server a stream must finish within 2 s of audio and never pause for 1 s."""
    messages = asyncio.run(stream_audio(server.ws_url, pcm16(read_mono16k(bundled_samples[0]["path"]))[:32000],
                                        {"locale": "auto"}))
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end"
    assert_still_serving(server.url, bundled_samples[0]["path"])


# --------------------------------------------------------------------------------------------- back-pressure


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("impatient"), env={"ASR_STREAM_SEND_TIMEOUT_S": "2"})
    yield server
    server.stop()


async def flood_without_reading(server, pcm: bytes, deadline_s: float, bundled_samples) -> dict:
    """Send audio as fast as the server takes it and read nothing, while watching the server from outside.
    A tiny receive buffer and no compression (partials compress about 8:1) fill the sockets in seconds."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    # No client pings: an unanswered keepalive would end the connection from the client side instead.
    ws = await websockets.connect(server.ws_url, sock=sock, max_queue=1, compression=None, ping_interval=None)
    # A final with 10 alternatives every second of audio: plenty of output, whatever the model recognises.
    await ws.send(json.dumps({"type": "start", "locale": "en", "nbest": 10,
                              "endpointing": {"min_trailing_silence_s": 0.04, "max_segment_s": 1.0}}))
    sent = 0

    async def send_forever():
        nonlocal sent
        while True:
            await ws.send(pcm[sent % len(pcm) :][:64000])
            sent += 64000

    sender = asyncio.create_task(send_forever())
    rss, released_at, upload_status = [], None, None
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < deadline_s and released_at is None:
            await asyncio.sleep(1)
            rss.append((await asyncio.to_thread(scrape, server))["process_resident_memory_bytes"])
            if upload_status is None:  # someone else is served while the flood goes on
                upload_status = (await asyncio.to_thread(
                    httpx.post, f"{server.url}/transcribe",
                    files={"file": ("a.wav", bundled_samples[0]["path"].read_bytes())}, timeout=60)).status_code
            if (await asyncio.to_thread(httpx.get, f"{server.url}/readyz")).json()["active_streams"] == 0:
                released_at = time.perf_counter() - started
    finally:
        sender.cancel()
        ws.transport.abort()
    return {"rss": rss, "released_at": released_at, "sent_audio_s": sent / 32000, "upload_status": upload_status}


def test_a_client_that_never_reads_is_bounded_and_then_dropped(impatient_server, bundled_samples):
    """The server reads one message at a time (uvicorn pauses the socket until the handler asks for more) and
    a send waits while the socket buffers are full, so nothing queues up in the server. The stream's slot is then
    freed while the client is still connected: by the send timeout (2 s of a blocked send: slow_consumer,
    counted as a timeout error) once the socket buffers are full, or, if the model's output is too small to
    fill them first, by the server's keepalive (a client that reads nothing never answers a ping)."""
    pcm = pcm16(np.concatenate([read_mono16k(s["path"]) for s in bundled_samples]))
    before = scrape(impatient_server)
    key = 'asr_errors_total{kind="timeout",locale="en-US",mode="stream"}'
    result = asyncio.run(flood_without_reading(impatient_server, pcm, 90, bundled_samples))
    assert result["released_at"] is not None, f"still open after 90 s: {result}"
    assert scrape(impatient_server).get(key, 0) - before.get(key, 0) in (0, 1)
    assert result["sent_audio_s"] > 60  # far faster than real time: the server was not just idling
    growth_mb = (max(result["rss"]) - before["process_resident_memory_bytes"]) / 2**20
    assert growth_mb < 100, f"RSS grew {growth_mb:.0f} MB"
    assert result["upload_status"] == 200
    assert_stream_still_serving(impatient_server, bundled_samples)
