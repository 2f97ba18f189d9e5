"""Fuzzing, bounded in examples and time: the audio decoder and the stream protocol parser with hypothesis, and the
HTTP API with schemathesis from its own OpenAPI description. The property is the same everywhere: bad input gets
the error meant for bad input (AudioDecodeError, ValidationError, a 4xx), never anything else, never a hang."""

import io
import json

import numpy as np
import pytest
import schemathesis
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from helpers import encode, read_mono16k, samples
from model.frontend.audio import AudioDecodeError, decode_audio
from service.protocol import StartMessage, StopMessage, client_message_adapter

MAX_DURATION_S = 5400.0  # the service's default limit, as decode_upload passes it
# Sized to stay within ~20 s each on one busy core: mutated audio decodes at ~300 examples a second, messages
# parse at ~300 a second. "Never hang" is a deadline: no input may take 2 s to decode (typical: a few ms). It is
# how odd sample rates were found (44,101 Hz took minutes to resample, 383,999 Hz ran out of memory).
DECODER_FUZZ = settings(max_examples=3000, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])
PARSER_FUZZ = settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def seed_files() -> list[bytes]:
    """Small valid files in every container the service reads, for the mutations to start from."""
    speech = read_mono16k(samples()[6]["path"])[:4000]
    float_wav = io.BytesIO()
    soundfile.write(float_wav, np.stack([speech, -speech], axis=1), 8000, format="WAV", subtype="FLOAT")
    return [encode(speech, "WAV"), encode(speech, "FLAC"), encode(speech, "MP3"),
            encode(speech, "OGG", subtype="VORBIS"), float_wav.getvalue()]


SEEDS = seed_files()


def decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode_audio(data, MAX_DURATION_S)
    except AudioDecodeError:
        return
    audio = decoded.samples.numpy()
    assert audio.ndim == 1 and np.isfinite(audio).all()  # the features and the model need finite samples


@st.composite
def mutated_audio(draw) -> bytes:
    """A seed file with some bytes overwritten (headers included), maybe cut short, maybe with bytes inserted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    header_biased = st.one_of(st.integers(0, 63), st.integers(0, len(data) - 1))
    for position, value in draw(st.lists(st.tuples(header_biased, st.integers(0, 255)), max_size=12)):
        data[position] = value
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    return bytes(data)


@pytest.mark.timeout(60)
@DECODER_FUZZ
@given(st.binary(max_size=8192))
def test_random_bytes_decode_or_raise_audio_decode_error(data):
    decodes_or_refuses(data)


@pytest.mark.timeout(60)
@DECODER_FUZZ
@given(mutated_audio())
def test_mutated_wav_flac_mp3_ogg_decode_or_raise_audio_decode_error(data):
    decodes_or_refuses(data)


# ------------------------------------------------------------------------------------------ protocol parser

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
START_FIELDS = st.sampled_from(["type", "locale", "sample_rate", "encoding", "interim_results", "nbest", "hotwords",
                                "hotword_boost", "endpointing", "min_trailing_silence_s", "extra"])
MESSAGES = st.dictionaries(START_FIELDS, JSON_VALUES, max_size=6).map(
    lambda d: {**d, "type": d.get("type", "start")})
TYPES = st.sampled_from(["start", "stop", "dance", "", None, 1])


def message_texts() -> st.SearchStrategy[str]:
    """Nearly-valid messages (right field names, wrong values), arbitrary JSON, and text that is not JSON."""
    shaped = st.builds(lambda d, t: json.dumps({**d, "type": t} if t != "start" else d), MESSAGES, TYPES)
    broken = shaped.flatmap(lambda text: st.integers(0, len(text)).map(lambda n: text[:n]))
    return st.one_of(shaped, broken, JSON_VALUES.map(json.dumps), st.text(max_size=200),
                     st.integers(1, 50_000).map(lambda depth: "[" * depth + "]" * depth))


@pytest.mark.timeout(60)
@PARSER_FUZZ
@given(message_texts())
def test_protocol_parser_returns_a_message_or_a_validation_error(text):
    try:
        message = client_message_adapter.validate_json(text)
    except ValidationError as error:
        assert error.errors()  # the stream handler reports the first one to the client
        return
    assert isinstance(message, (StartMessage, StopMessage))


# ------------------------------------------------------------------------------------------------ HTTP API


API_FUZZ = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.timeout(300)
def test_api_answers_generated_requests_without_a_server_error(live_server):
    """Every operation of the live server's /openapi.json, with valid and with invalid requests (wrong types,
    missing parts, random bodies and files): 4xx as much as it likes, 5xx never. (Driven from a plain test: the
    pytest plugin's lazy fixture schema does not run under pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /transcribe", "POST /v1/audio/transcriptions", "POST /v1/feedback", "GET /v1/models"}
    for operation in operations:
        fuzz_operation(operation, GenerationMode.POSITIVE, live_server.url)
        if operation.definition.raw.get("requestBody") or operation.definition.raw.get("parameters"):
            fuzz_operation(operation, GenerationMode.NEGATIVE, live_server.url)  # only these have anything to break


def fuzz_operation(operation, mode: GenerationMode, base_url: str) -> None:
    @API_FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def generated(case):
        case.call_and_validate(base_url=base_url, checks=[not_a_server_error])

    generated()
