"""The protocol is written down once: docs/protocol.md and the OpenAPI description match service/protocol.py."""

import pytest

from helpers import ROOT
from service.app import create_app
from service.protocol import STREAM_MESSAGES, OpenAITranscriptionFields, TranscribeFields
from service.settings import Settings

DOC = (ROOT / "docs" / "protocol.md").read_text()


@pytest.mark.parametrize("model", STREAM_MESSAGES, ids=lambda m: m.__name__)
def test_every_stream_message_and_field_is_documented(model):
    assert model.__name__ in DOC
    kind = model.model_fields["type"].annotation.__args__[0]
    assert f'"type": "{kind}"' in DOC
    for field in model.model_fields:
        assert f'"{field}"' in DOC, f"{model.__name__}.{field} is not in docs/protocol.md"


@pytest.mark.parametrize("model", (TranscribeFields, OpenAITranscriptionFields), ids=lambda m: m.__name__)
def test_every_upload_parameter_is_documented(model):
    for name, field in model.model_fields.items():
        assert f"`{field.alias or name}`" in DOC, f"{model.__name__}.{name} is not in docs/protocol.md"


def test_openapi_publishes_rest_routes_and_stream_messages():
    schema = create_app(Settings()).openapi()
    routes = {"/transcribe", "/v1/audio/transcriptions", "/v1/feedback", "/v1/fairness", "/v1/models"}
    assert routes <= set(schema["paths"])
    for model in STREAM_MESSAGES:
        assert model.__name__ in schema["components"]["schemas"]
    assert "TranscriptionResponse" in schema["components"]["schemas"]


def test_a_misspelt_setting_in_the_environment_is_an_error():
    from service.settings import check_environment

    check_environment({"ASR_PORT": "8000", "PATH": "/bin"})
    with pytest.raises(ValueError, match="ASR_PROT"):
        check_environment({"ASR_PROT": "8000"})
