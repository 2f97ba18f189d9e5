import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def tiny_model():
    """A small random model with the real architecture, for equivalence tests that need no training."""
    from model.decoder import DecoderConfig
    from model.encoder import EncoderConfig
    from model.network import ModelConfig, SpeechRecognizer

    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50, locales=("zh-CN", "yue-HK", "en-US"),
        encoder=EncoderConfig(d_model=64, n_heads=4, n_layers=3, ffn_dim=128, left_context_frames=12, dropout=0.0),
        decoder=DecoderConfig(d_model=64, n_heads=4, n_layers=1, ffn_dim=128, dropout=0.0),
    )
    return SpeechRecognizer(config).eval()
