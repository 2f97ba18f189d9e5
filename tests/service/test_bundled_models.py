"""The two bundled models. The default (model/checkpoints/default.pt) hears natural voices: Whisper's frozen audio
encoder below layers trained on Kokoro, Piper and espeak-ng, with 0.14.0's encoder and CTC head beside it as a gated
expert. The synthetic-voices model (ASR_CHECKPOINT=synthetic-voices, model/checkpoints/synthetic) is 0.14.0 alone,
trained on espeak-ng only, and served by name like the default. What tells them apart is a voice unlike espeak-ng:
here two of flite's voices, a synthesiser family no training utterance of either model used (the
held-out-synthesiser cell of their evaluations), which the default reads and the synthetic-voices model does not."""

import httpx
import pytest

from helpers import ROOT, start_server
from model.accuracy.scoring import count_errors
from model.decoding.results import join_texts
from model.network.checkpoint import BUNDLED_CHECKPOINTS, SYNTHETIC_CHECKPOINT, load_checkpoint
from service.client import ASRClient
from service.protocol import FinalMessage

VOICES = ROOT / "tests" / "service" / "voices"
# flite's awb and rms voices reading two English test sentences (python -m model.corpus.flite)
FLITE_CLIPS = {"en-US_flite_awb_0027.wav": "jones i'll give it to you straight",
               "en-US_flite_rms_0062.wav": "we haven't been able to catch one yet"}


@pytest.fixture(scope="module")
def synthetic_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("synthetic"), env={"ASR_CHECKPOINT": "synthetic-voices"})
    yield server
    server.stop()


def word_error_rate(texts: dict[str, str]) -> float:
    counts = [count_errors(FLITE_CLIPS[name], text, "en-US") for name, text in texts.items()]
    return sum(c.errors for c in counts) / sum(c.reference_units for c in counts)


def test_the_synthetic_voices_model_is_a_bundled_checkpoint_by_name():
    assert BUNDLED_CHECKPOINTS["synthetic-voices"] == SYNTHETIC_CHECKPOINT
    loaded = load_checkpoint("synthetic-voices")
    assert (loaded.name, loaded.version) == ("openasr-synth-small", "0.14.0")
    assert loaded.model.encoder.backbone is None
    assert {"evaluation", "real_speech_evaluation", "heldout_synthesiser_evaluation"} <= loaded.metadata.keys()


def test_the_default_carries_the_synthetic_voices_model_as_its_gated_companion():
    default, synthetic = load_checkpoint("default"), load_checkpoint("synthetic-voices")
    assert default.model.encoder.backbone is not None and default.model.config.companion_gate
    companion = default.metadata["companion"]
    assert (companion["name"], companion["version"]) == (synthetic.name, synthetic.version)
    ours, theirs = default.model.companion.ctc_head.state_dict(), synthetic.model.ctc_head.state_dict()
    assert all(ours[key].equal(theirs[key]) for key in theirs)


def test_each_server_names_its_model_and_its_accuracy_on_real_speech(synthetic_server, live_server):
    for server, name in ((live_server, "openasr-real-speech"), (synthetic_server, "openasr-synth-small")):
        card = httpx.get(f"{server.url}/v1/models").json()["data"][0]
        assert card["id"] == name
        assert set(card["locales"]) == {"zh-CN", "yue-HK", "en-US"}
        real = card["real_speech_evaluation"]
        assert real["manifest"].endswith("realdev/manifest.jsonl")
        assert set(real["modes"]["full_context"]["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}


def test_the_default_reads_a_voice_the_synthetic_voices_model_cannot(synthetic_server, live_server):
    """Uploads at full context and streams in 640 ms chunks, written form (the default), through both servers: the
    default errs on at most a quarter of the words, the synthetic-voices model on more than half."""
    def recognised(url: str) -> tuple[dict[str, str], dict[str, str]]:
        with ASRClient(url) as client:
            uploads = {name: client.transcribe(VOICES / name, locale="en-US").text for name in FLITE_CLIPS}
            streams = {name: join_texts([e.text for e in client.stream(VOICES / name, locale="en-US")
                                         if isinstance(e, FinalMessage)]) for name in FLITE_CLIPS}
        return uploads, streams

    default_uploads, default_streams = recognised(live_server.url)
    synthetic_uploads, synthetic_streams = recognised(synthetic_server.url)
    assert word_error_rate(default_uploads) <= 0.25, default_uploads
    assert word_error_rate(default_streams) <= 0.25, default_streams
    assert word_error_rate(synthetic_uploads) > 0.5 and word_error_rate(synthetic_streams) > 0.5
