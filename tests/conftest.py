"""Fixtures shared by every test folder. The repository root and tests/ are on the import path through pytest's
`pythonpath` setting (pyproject.toml), so tests import the project's packages and their shared helpers (helpers.py)."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def tiny_model():
    """A small random model with the real architecture, for equivalence tests that need no training."""
    from model.network.decoder import DecoderConfig
    from model.network.encoder import EncoderConfig
    from model.network.model import ModelConfig, SpeechRecognizer

    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50, locales=("zh-CN", "yue-HK", "en-US"),
        # the bundled model's input: gated pitch and the relative log F0 channel, so the streaming tests cover its state
        encoder=EncoderConfig(pitch_dim=2, pitch_voicing_gate=0.6, relative_pitch_prior_frames=50.0, d_model=64,
                              n_heads=4, n_layers=3, ffn_dim=128, left_context_frames=12, dropout=0.0),
        decoder=DecoderConfig(d_model=64, n_heads=4, n_layers=1, ffn_dim=128, dropout=0.0),
    )
    return SpeechRecognizer(config).eval()


@pytest.fixture(scope="session")
def tiny_backbone_model():
    """A small random model whose subsampling is a Whisper-shaped backbone (model.network.whisper_backbone): its own
    streaming cache, absolute positions and 20 ms frames under the chunk mask."""
    from model.network.decoder import DecoderConfig
    from model.network.encoder import EncoderConfig
    from model.network.model import ModelConfig, SpeechRecognizer

    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50, locales=("zh-CN", "yue-HK", "en-US"),
        encoder=EncoderConfig(mel="whisper", backbone="whisper", backbone_width=32, backbone_heads=4, backbone_layers=2,
                              d_model=64, n_heads=4, n_layers=2, ffn_dim=128, left_context_frames=12, dropout=0.0),
        decoder=DecoderConfig(d_model=64, n_heads=4, n_layers=1, ffn_dim=128, dropout=0.0),
    )
    return SpeechRecognizer(config).eval()


TINY_TEXTS = {
    "zh-CN": ["今天天气很好", "我们去北京"],
    "yue-HK": ["你好嗎", "我哋去食飯"],
    "en-US": ["hello world", "the cat sat on the mat"],
}


@pytest.fixture(scope="session")
def tiny_loaded():
    """A random model with a real tokenizer: exercises every decoding path without training."""
    from model.decoding.syllables import build_syllable_table
    from model.network.checkpoint import LoadedModel
    from model.network.decoder import DecoderConfig
    from model.network.encoder import EncoderConfig
    from model.network.model import ModelConfig, SpeechRecognizer
    from model.text.tokenizer import Tokenizer
    from model.training.build_lm import train_ngram

    tokenizer = Tokenizer.build(TINY_TEXTS, subword_vocab_size=30)
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, locales=tuple(tokenizer.locales),
        encoder=EncoderConfig(d_model=64, n_heads=4, n_layers=2, ffn_dim=128, left_context_frames=12, dropout=0.0),
        decoder=DecoderConfig(d_model=64, n_heads=4, n_layers=1, ffn_dim=128, dropout=0.0),
        # like the bundled model, it carries the training-only tonal-syllable head, which decoding must ignore
        syllables=build_syllable_table(TINY_TEXTS), syllable_layer=1,
    )
    model = SpeechRecognizer(config).eval()
    with torch.no_grad():
        model.ctc_head.bias[0] -= 3.0  # fewer blanks than a random init gives, so texts are not empty
    model.locale_token_mask.copy_(tokenizer.locale_token_mask(TINY_TEXTS))
    language_models = {
        locale: train_ngram([tokenizer.encode(t) for t in texts], tokenizer.vocab_size).to_payload()
        for locale, texts in TINY_TEXTS.items()
    }
    return LoadedModel(model, tokenizer, "tiny-random", "0.0.0", language_models=language_models)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The real service with the bundled checkpoint, shared by the service tests of one run."""
    from helpers import start_server

    server = start_server(tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bundled_samples():
    from helpers import samples

    return samples()
