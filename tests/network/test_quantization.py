"""int8 CPU serving (model.network.precision.quantize_linear_layers, ASR_QUANTIZE=int8) on the bundled models: the
encoder stays within quantisation noise of float32, a stream in 640 ms chunks stays within that noise of its full
forward, and the recognizer decodes uploads and streams as float32 does up to rare beam decisions. Dynamic int8
scales each call's activations by that call's range, so chunked and full forwards are close, never equal."""

import copy
import json

import httpx
import pytest
import torch

from helpers import ROOT, start_server
from model.accuracy.scoring import count_errors
from model.decoding.results import join_texts
from model.frontend.audio import load_audio_file
from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.network.precision import (KEPT_FLOAT, int8_weight_count, quantization_of, quantize_linear_layers,
                                     serving_quantization)
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.recognition.stream_decoder import FinalEvent, decode_stream_offline
from model.recognition.streaming import encode_streaming
from service.client import ASRClient
from service.protocol import FinalMessage

SAMPLES = ROOT / "model" / "samples"
CHUNK_FRAMES = 16  # 640 ms, the streaming default
# Measured on the samples (one per locale), int8 against float32 and an int8 stream against its full forward alike:
# the synthetic-voices model's encoder output errs by about 3% of its RMS (RMS error) and 3-5% of its largest value
# (largest error); the default's by 3-7% and 5-19%, its Whisper backbone and layers above quantised and its companion's
# frames exact. The limits: (RMS, largest) error relative to the output's.
NOISE = {"default": (0.1, 0.25), "synthetic-voices": (0.06, 0.1)}


@pytest.fixture(scope="module", params=sorted(NOISE))
def models(request):
    float_model = load_checkpoint(request.param).model
    return float_model, quantize_linear_layers(copy.deepcopy(float_model), "int8"), NOISE[request.param]


@pytest.fixture(scope="module")
def samples() -> list[tuple[dict, torch.Tensor]]:
    rows = [json.loads(line) for line in (SAMPLES / "samples.jsonl").read_text().splitlines()]
    return [(row, load_audio_file(str(SAMPLES / row["audio"]))) for row in rows]


def sample_features(model, samples) -> list[torch.Tensor]:
    extractor = model.config.feature_extractor()
    return [extractor(audio) for _, audio in samples[::3]]  # one of each locale


def assert_within_noise(actual: torch.Tensor, expected: torch.Tensor, noise: tuple[float, float]) -> None:
    error = actual - expected
    assert float(error.pow(2).mean().sqrt()) <= noise[0] * float(expected.pow(2).mean().sqrt())
    assert float(error.abs().max()) <= noise[1] * float(expected.abs().max())


def greedy_tokens(model, encoded: torch.Tensor) -> torch.Tensor:
    return model.ctc_log_probs(encoded[None])[0].argmax(-1)


def test_int8_encoder_output_stays_within_quantisation_noise_of_float32(models, samples):
    float_model, int8_model, noise = models
    with torch.no_grad():
        for features in sample_features(float_model, samples):
            lengths = torch.tensor([features.shape[0]])
            expected, _ = float_model.encode(features[None], lengths)
            actual, _ = int8_model.encode(features[None], lengths)
            assert_within_noise(actual[0], expected[0], noise)
            agree = greedy_tokens(int8_model, actual[0]) == greedy_tokens(float_model, expected[0])
            assert float(agree.float().mean()) >= 0.97


def test_an_int8_stream_in_chunks_matches_its_full_forward_within_quantisation_noise(models, samples):
    """forward_chunk with its caches, as the service streams: the chunked int8 encoder against the int8 masked full
    forward (float32 streams equal theirs to 2e-5: tests/network/test_encoder.py)."""
    _, int8_model, noise = models
    left = int8_model.config.encoder.left_context_frames
    with torch.no_grad():
        for features in sample_features(int8_model, samples):
            full, lengths = int8_model.encode(features[None], torch.tensor([features.shape[0]]), CHUNK_FRAMES, left)
            streamed = encode_streaming(int8_model, features, CHUNK_FRAMES)
            assert streamed.shape[0] == int(lengths[0])
            assert_within_noise(streamed, full[0, : int(lengths[0])], noise)


def test_an_int8_recognizer_decodes_uploads_and_streams_as_float32_does(samples):
    """Offline at full context and in 640 ms chunks (batched uploads), and the streaming decoder with its endpointing
    (the WebSocket path): the texts are float32's up to a rare beam decision (under 5% of the characters/words)."""
    float_recognizer = Recognizer(load_checkpoint(DEFAULT_CHECKPOINT))
    int8_recognizer = Recognizer(load_checkpoint(DEFAULT_CHECKPOINT), quantization="int8")
    rows, audio = [row for row, _ in samples], [a for _, a in samples]

    def assert_close_texts(expected: list[str], actual: list[str]) -> None:
        counts = [count_errors(e, a, row["locale"]) for e, a, row in zip(expected, actual, rows)]
        assert sum(c.errors for c in counts) <= 0.05 * sum(c.reference_units for c in counts)

    for chunk_frames in (None, CHUNK_FRAMES):
        options = [DecodeOptions(locale=row["locale"], chunk_frames=chunk_frames) for row in rows]
        assert_close_texts(*([t.text for t in r.transcribe_batch(audio, options)]
                             for r in (float_recognizer, int8_recognizer)))

    def streamed(recognizer: Recognizer) -> list[str]:
        texts = []
        for row, recording in samples:
            _, events = decode_stream_offline(recognizer, recording, DecodeOptions(locale=row["locale"]), CHUNK_FRAMES)
            texts.append(join_texts([e.segment.text for e in events if isinstance(e, FinalEvent)]))
        return texts

    assert_close_texts(streamed(float_recognizer), streamed(int8_recognizer))


def test_int8_quantises_the_first_pass_and_keeps_what_reads_weights_directly_in_float(models):
    """The encoder, CTC head and decoder layers become int8, but for the backbone's MLP output layers (KEPT_FLOAT);
    the decoder's output layer (rescoring reads its rows) and nn.MultiheadAttention's out_proj (its forward reads the
    weight) stay float32; no weight goes uncounted."""
    float_model, int8_model, _ = models
    assert quantization_of(float_model) == "none" and quantization_of(int8_model) == "int8"
    assert quantization_of(int8_model.encoder) == quantization_of(int8_model.decoder.layers) == "int8"
    assert quantization_of(int8_model.ctc_head) == "int8"
    assert isinstance(int8_model.decoder.output, torch.nn.Linear)
    assert isinstance(int8_model.decoder.layers.layers[0].self_attn.out_proj, torch.nn.Linear)
    quantised = {"encoder": float_model.encoder, "ctc_head": float_model.ctc_head,
                 "decoder.layers": float_model.decoder.layers}
    linear = [m for prefix, part in quantised.items() for name, m in part.named_modules()
              if type(m) is torch.nn.Linear and not KEPT_FLOAT.match(f"{prefix}.{name}")]
    assert int8_weight_count(int8_model) == sum(p.numel() for m in linear for p in m.parameters())
    assert int8_model.parameter_count() == float_model.parameter_count()


def test_a_whisper_backbone_keeps_its_mlp_output_layers_in_float(tiny_backbone_model):
    """Their GELU inputs have outliers that one int8 scale per tensor would flatten (model.network.precision)."""
    int8_model = quantize_linear_layers(copy.deepcopy(tiny_backbone_model), "int8")
    for block in int8_model.encoder.backbone.blocks:
        assert quantization_of(block.qkv) == quantization_of(block.mlp[0]) == "int8"
        assert isinstance(block.mlp[2], torch.nn.Linear)
    assert int8_model.parameter_count() == tiny_backbone_model.parameter_count()


def test_int8_serving_is_for_float32_models_on_the_cpu(tiny_model):
    assert serving_quantization(torch.device("cpu"), "int8") == "int8"
    assert serving_quantization(torch.device("cuda"), "int8") == "none"  # GPUs serve in float16
    half = copy.deepcopy(tiny_model).half()
    with pytest.raises(ValueError, match="float32 model on the CPU"):
        quantize_linear_layers(half, "int8")
    assert quantize_linear_layers(half, "none") is half


@pytest.fixture(scope="module")
def int8_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("int8"), env={"ASR_QUANTIZE": "int8"})
    yield server
    server.stop()


def test_an_int8_server_says_so_and_serves_uploads_and_streams(int8_server, bundled_samples):
    """ASR_QUANTIZE=int8 through the real server (warm-up included): the model card says so and counts the int8
    weights; uploads, at full context and in 640 ms chunks, and streams of the samples are recognised within the
    error tests/service/test_service_rest.py allows float32 (there per locale, here over the three)."""
    card = httpx.get(f"{int8_server.url}/v1/models").json()["data"][0]
    assert (card["device"], card["precision"], card["quantization"]) == ("cpu", "float32", "int8")
    assert card["parameters"] == load_checkpoint(DEFAULT_CHECKPOINT).model.parameter_count()
    errors = units = 0
    with ASRClient(int8_server.url) as client:
        for sample in bundled_samples[::3]:  # one of each locale
            locale = sample["locale"]
            texts = [client.transcribe(sample["path"], locale=locale, chunk_ms=ms, format="spoken").text
                     for ms in (None, 640)]
            finals = [e.text for e in client.stream(sample["path"], locale=locale, format="spoken")
                      if isinstance(e, FinalMessage)]
            for text in (*texts, join_texts(finals)):
                count = count_errors(sample["text"], text, locale)
                errors, units = errors + count.errors, units + count.reference_units
    assert errors <= 0.2 * units
