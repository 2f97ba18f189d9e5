"""The real-speech preview (ASR_CHECKPOINT=real-speech-preview, model/checkpoints/preview): a model on Whisper's frozen
audio encoder that the service serves like the bundled one when asked for by name. What it is for is a voice unlike
the espeak-ng the bundled model learned: here two of flite's voices, a synthesiser family no training utterance of
either model used (the held-out-synthesiser cell of their evaluations), which the preview reads and the bundled model
does not."""

import httpx
import pytest

from helpers import ROOT, start_server
from model.accuracy.scoring import count_errors
from model.decoding.results import join_texts
from model.network.checkpoint import BUNDLED_CHECKPOINTS, PREVIEW_CHECKPOINT, load_checkpoint
from service.client import ASRClient
from service.protocol import FinalMessage

VOICES = ROOT / "tests" / "service" / "voices"
# flite's awb and rms voices reading two English test sentences (python -m model.corpus.flite)
FLITE_CLIPS = {"en-US_flite_awb_0027.wav": "jones i'll give it to you straight",
               "en-US_flite_rms_0062.wav": "we haven't been able to catch one yet"}


@pytest.fixture(scope="module")
def preview_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("preview"), env={"ASR_CHECKPOINT": "real-speech-preview"})
    yield server
    server.stop()


def word_error_rate(texts: dict[str, str]) -> float:
    counts = [count_errors(FLITE_CLIPS[name], text, "en-US") for name, text in texts.items()]
    return sum(c.errors for c in counts) / sum(c.reference_units for c in counts)


def test_the_preview_is_a_bundled_checkpoint_by_name():
    assert BUNDLED_CHECKPOINTS["real-speech-preview"] == PREVIEW_CHECKPOINT
    loaded = load_checkpoint("real-speech-preview")
    assert loaded.name == "openasr-real-speech-preview"
    assert loaded.model.encoder.backbone is not None
    assert {"evaluation", "real_speech_evaluation", "heldout_synthesiser_evaluation"} <= loaded.metadata.keys()


def test_the_preview_server_names_its_model_and_its_accuracy_on_real_speech(preview_server):
    card = httpx.get(f"{preview_server.url}/v1/models").json()["data"][0]
    assert card["id"] == "openasr-real-speech-preview"
    assert set(card["locales"]) == {"zh-CN", "yue-HK", "en-US"}
    real = card["real_speech_evaluation"]
    assert real["manifest"].endswith("realdev/manifest.jsonl")
    assert set(real["modes"]["full_context"]["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}


def test_the_preview_reads_a_voice_the_bundled_model_cannot(preview_server, live_server):
    """Uploads at full context and streams in 640 ms chunks, written form (the default), through both servers: the
    preview errs on at most a quarter of the words, the bundled model on more than half."""
    def recognised(url: str) -> tuple[dict[str, str], dict[str, str]]:
        with ASRClient(url) as client:
            uploads = {name: client.transcribe(VOICES / name, locale="en-US").text for name in FLITE_CLIPS}
            streams = {name: join_texts([e.text for e in client.stream(VOICES / name, locale="en-US")
                                         if isinstance(e, FinalMessage)]) for name in FLITE_CLIPS}
        return uploads, streams

    preview_uploads, preview_streams = recognised(preview_server.url)
    bundled_uploads, bundled_streams = recognised(live_server.url)
    assert word_error_rate(preview_uploads) <= 0.25, preview_uploads
    assert word_error_rate(preview_streams) <= 0.25, preview_streams
    assert word_error_rate(bundled_uploads) > 0.5 and word_error_rate(bundled_streams) > 0.5
