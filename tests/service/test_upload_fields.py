"""An upload's parameters (service/protocol.py `UploadFields`): read from the query string and form fields as the
routes receive them, refused as 422 `invalid_request` naming the field, and published in the OpenAPI description
from the same models. No server: tests/service/test_service_rest.py sends them to the real one."""

import pytest

from service.app import create_app
from service.errors import ApiError
from service.protocol import OpenAITranscriptionFields, TranscribeFields
from service.routes.transcription import upload_fields
from service.settings import Settings


def test_defaults_are_the_documented_ones():
    fields = TranscribeFields.from_form({})
    assert (fields.locale, fields.nbest, fields.hotwords, fields.chunk_ms, fields.timestamps) == ("auto", 1, (), None,
                                                                                                 True)
    assert (fields.channels, fields.channel_names, fields.redact, fields.format) == ("mixed", None, "none", None)
    assert Settings().text_format == "written"  # what a request that names no format gets


def test_a_repeated_field_keeps_every_value_and_any_other_its_first():
    form = {"hotwords": ["Kubernetes, PayPal", "港鐵"], "hotword": ["北京\n天安门"], "prompt": ["x"],
            "nbest": ["3", "5"], "chunk_ms": ["640"], "extra": ["ignored"]}
    fields = TranscribeFields.from_form(form)
    assert fields.hotwords == ("Kubernetes", "PayPal", "港鐵", "北京", "天安门", "x")
    assert (fields.nbest, fields.chunk_ms) == (3, 640)


def test_cases_are_read_in_any_letter_case_and_empty_is_the_default():
    fields = TranscribeFields.from_form({"channels": [" Separate "], "redact": ["PII"], "format": [""]})
    assert (fields.channels, fields.redact, fields.format) == ("separate", "pii", None)
    assert TranscribeFields.from_form({"format": [" Spoken "]}).format == "spoken"


@pytest.mark.parametrize("value,on", [("false", False), ("NO", False), ("0", False), ("true", True), ("", True)])
def test_timestamps_are_off_only_when_asked(value, on):
    assert TranscribeFields.from_form({"timestamps": [value]}).timestamps is on


def test_openai_names():
    fields = OpenAITranscriptionFields.from_form({
        "language": ["yue"], "locale": ["en"], "prompt": ["港鐵"], "response_format": ["srt"],
        "timestamp_granularities[]": ["word", "a later one"], "timestamp_granularities": ["segment"]})
    assert (fields.locale, fields.hotwords, fields.response_format) == ("yue", ("港鐵",), "srt")
    assert fields.timestamp_granularities == ("word", "segment")


@pytest.mark.parametrize("form,field", [
    ({"nbest": ["0"]}, "nbest"), ({"nbest": ["two"]}, "nbest"), ({"chunk_ms": ["33"]}, "chunk_ms"),
    ({"hotword_boost": ["11"]}, "hotword_boost"), ({"hotword_boost": ["nan"]}, "hotword_boost"),
    ({"hotwords": ["a" * 101]}, "hotwords"), ({"channels": ["stereo"]}, "channels"), ({"redact": ["all"]}, "redact"),
    ({"format": ["digits"]}, "format"), ({"response_format": ["xml"]}, "response_format"),
])
def test_a_bad_value_is_a_422_naming_its_field(form, field):
    with pytest.raises(ApiError) as raised:
        upload_fields(OpenAITranscriptionFields, form)
    assert (raised.value.status, raised.value.code) == (422, "invalid_request")
    assert raised.value.message.startswith(f"{field}: ") and "None" not in raised.value.message


def test_the_openapi_description_publishes_the_models():
    paths = create_app(Settings()).openapi()["paths"]
    transcribe, openai = paths["/transcribe"]["post"], paths["/v1/audio/transcriptions"]["post"]
    assert [p["name"] for p in transcribe["parameters"]] == [f.alias or n for n, f in
                                                             TranscribeFields.model_fields.items()]
    published = openai["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(published) == {"file"} | {f.alias or n for n, f in OpenAITranscriptionFields.model_fields.items()}
    assert published["chunk_ms"] == {"type": "integer", "minimum": 40, "maximum": 2560, "multipleOf": 40,
                                     "description": OpenAITranscriptionFields.model_fields["chunk_ms"].description}
    assert published["response_format"]["enum"] == ["json", "text", "srt", "vtt", "verbose_json"]
