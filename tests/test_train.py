"""The training command end to end on a tiny synthetic corpus: it trains, checkpoints, resumes where it stopped,
averages snapshots into a self-describing checkpoint, and that checkpoint evaluates and writes a model card."""

import json

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.corpus.build import BuildConfig, build
from model.evaluate import main as evaluate_main
from model.train import main as train_main

TINY_MODEL = """
[encoder]
d_model = 32
n_heads = 2
n_layers = 1
ffn_dim = 64
left_context_frames = 8
[decoder]
d_model = 32
n_heads = 2
n_layers = 1
ffn_dim = 64
"""


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    build(BuildConfig(out=out, hours_per_locale=0.004, jobs=1, seed=1, dev_sentences=2, test_sentences=2,
                      max_sentences=30))
    return out


def write_config(folder, corpus, max_steps: int, extra: str = "") -> str:
    path = folder / "train.toml"
    path.write_text(
        f'train_manifest = "{corpus / "train.jsonl"}"\ndev_manifest = "{corpus / "dev.jsonl"}"\n'
        f'cache_dir = "{folder / "cache"}"\noutput_dir = "{folder / "run"}"\nsubword_vocab_size = 40\n'
        f"max_batch_frames = 4000\nwarmup_steps = 5\nmax_steps = {max_steps}\nthreads = 1\n"
        f"eval_utterances_per_locale = 2\ncheckpoint_every_minutes = 0.01\n{extra}" + TINY_MODEL)
    return str(path)


def test_train_resume_average_evaluate(tiny_corpus, tmp_path):
    train_main(["--config", write_config(tmp_path, tiny_corpus, 6)])
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert first["step"] == 6
    train_main(["--config", write_config(tmp_path, tiny_corpus, 10)])  # resumes, does not start over
    resumed = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert resumed["step"] == 10 and resumed["audio_hours"] > first["audio_hours"]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("dev" in entry and "zh-CN" in entry["dev"]["full"]["per_locale"] for entry in log)

    averaged = tmp_path / "averaged.pt"
    train_main(["--config", str(tmp_path / "train.toml"), "--average", "3", "--export", str(averaged)])
    loaded = load_checkpoint(averaged)
    assert set(loaded.tokenizer.locales) == {"zh-CN", "yue-HK", "en-US"}
    assert len(loaded.metadata["averaged_snapshots"]) >= 2
    assert loaded.metadata["training_data"]["hours_per_locale"]["yue-HK"] > 0

    # A released checkpoint can be trained further (how the next session continues the bundled model).
    continued = tmp_path / "continued"
    continued.mkdir()
    train_main(["--config", write_config(continued, tiny_corpus, 12, f'init_checkpoint = "{averaged}"\n')])
    assert torch.load(continued / "run" / "last.pt", weights_only=True)["trainer"]["step"] == 12

    card = tmp_path / "card.md"
    evaluate_main(["--checkpoint", str(averaged), "--manifest", str(tiny_corpus / "test.jsonl"), "--threads", "1",
                   "--out", str(tmp_path / "eval.json"), "--card", str(card), "--store"])
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results["modes"]) == {"full_context", "chunk_320ms", "chunk_640ms", "chunk_1280ms"}
    assert set(results["modes"]["full_context"]["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}
    assert "Trained on synthetic speech only" in card.read_text()
    assert load_checkpoint(averaged).metadata["evaluation"]["utterances"] == results["utterances"]
