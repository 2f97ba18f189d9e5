"""Checkpoints describe themselves and load with weights_only=True."""

import pytest
import torch

from model.network.checkpoint import load_checkpoint, save_checkpoint
from model.text.tokenizer import Tokenizer


def test_checkpoint_round_trip_is_weights_only(tmp_path, tiny_model):
    tokenizer = Tokenizer.build({"zh-CN": ["你好"], "yue-HK": ["你好嗎"], "en-US": ["hello there"]}, 20)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, tiny_model, tokenizer, "tiny", "0.0.1",
                    {"training_data": {"hours_per_locale": {"zh-CN": 1.0}}})
    payload = torch.load(path, weights_only=True)  # raises if anything but plain data were stored
    assert payload["config"]["encoder"]["left_context_frames"] == 12
    loaded = load_checkpoint(path)
    assert loaded.name == "tiny" and loaded.metadata["training_data"]["hours_per_locale"]["zh-CN"] == 1.0
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])


def test_checkpoint_path_is_validated(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    bogus = tmp_path / "model.txt"
    bogus.write_text("x")
    with pytest.raises(ValueError):
        load_checkpoint(bogus)


def test_the_committed_model_card_is_what_the_bundled_checkpoint_measured(tmp_path):
    """MODEL_CARD.md is written from the checkpoint's stored measurements (make bundle's last step): the committed
    card must be that rendering, so no number in it is stale or typed by hand."""
    from pathlib import Path

    from model.evaluation.model_card import main as write_card
    from model.network.checkpoint import DEFAULT_CHECKPOINT

    write_card(["--checkpoint", str(DEFAULT_CHECKPOINT), "--out", str(tmp_path / "card.md")])
    assert (tmp_path / "card.md").read_text() == Path("model/checkpoints/MODEL_CARD.md").read_text()


def test_the_synthetic_voices_committed_model_card_is_what_it_measured(tmp_path):
    """The same for the synthetic-voices model (make bundle), whose card says how it is served and what it is for."""
    from model.evaluation.model_card import main as write_card
    from model.network.checkpoint import SYNTHETIC_CHECKPOINT

    write_card(["--checkpoint", "synthetic-voices", "--out", str(tmp_path / "card.md")])
    card = (tmp_path / "card.md").read_text()
    assert card == (SYNTHETIC_CHECKPOINT.parent / "MODEL_CARD.md").read_text()
    assert "`ASR_CHECKPOINT=synthetic-voices`" in card.splitlines()[2]
