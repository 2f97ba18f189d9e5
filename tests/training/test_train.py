"""The training command end to end on a tiny synthetic corpus: it trains, checkpoints, resumes where it stopped,
averages snapshots into a self-describing checkpoint, and that checkpoint evaluates and writes a model card."""

import json
from pathlib import Path

import pytest
import torch

from helpers import ROOT
from model.corpus.build import BuildConfig, build
from model.evaluation.evaluate import main as evaluate_main
from model.evaluation.model_card import averaging_words
from model.frontend.features import N_MFCC
from model.network.checkpoint import load_checkpoint
from model.network.precision import cpu_has_native_bf16
from model.training.train import average_snapshots, interpolate_weights
from model.training.train import main as train_main

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
    assert [(r["first_step"], r["last_step"]) for r in resumed["runs"]] == [(0, 6), (6, 10)]  # for the model card
    assert resumed["runs"][1]["data"] == "train.jsonl" and resumed["runs"][1]["audio_hours"] > 0
    assert resumed["runs"][1]["data_hours"] > 0  # the corpus's size then: a corpus can grow under the same name
    # bf16 autocast wherever the hardware has it, CPUs included (about 2x faster there), float32 elsewhere
    assert resumed["runs"][1]["precision"] == ("bf16 autocast" if cpu_has_native_bf16() else "float32")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("dev" in entry and "zh-CN" in entry["dev"]["full"]["per_locale"] for entry in log)

    averaged = tmp_path / "averaged.pt"
    train_main(["--config", str(tmp_path / "train.toml"), "--average", "3", "--export", str(averaged),
                "--set", 'version = "1.2.3"'])
    loaded = load_checkpoint(averaged)
    assert loaded.version == "1.2.3"  # published under the config's name and version
    assert set(loaded.tokenizer.locales) == {"zh-CN", "yue-HK", "en-US"}
    assert len(loaded.metadata["averaged_snapshots"]) >= 2
    assert loaded.metadata["training_data"]["hours_per_locale"]["yue-HK"] > 0

    # A released checkpoint can be trained further (how the next session continues the bundled model), here with
    # the tonal-syllable CTC added (with English phonemes): the model is grown with a head whose table comes from
    # the training texts.
    continued = tmp_path / "continued"
    continued.mkdir()
    train_main(["--config", write_config(continued, tiny_corpus, 12, f'init_checkpoint = "{averaged}"\n'
                                         "syllable_ctc_weight = 0.3\nsyllable_ctc_layer = 1\n"
                                         "english_phoneme_ctc = true\n")])
    last = torch.load(continued / "run" / "last.pt", weights_only=True)
    assert last["trainer"]["step"] == 12
    syllables = last["model"]["config"]["syllables"]
    assert {"zh-CN", "yue-HK", "en-US"} == {s.split()[0] for s in syllables[2:]}
    assert last["model"]["config"]["syllable_layer"] == 1 and "syllable_head.1.weight" in last["model"]["state_dict"]
    assert "new tonal-syllable CTC" in last["trainer"]["runs"][-1]["note"]
    assert "English phonemes" in last["trainer"]["runs"][-1]["note"]

    card = tmp_path / "card.md"
    evaluate_main(["--checkpoint", str(averaged), "--manifest", str(tiny_corpus / "test.jsonl"), "--threads", "1",
                   "--out", str(tmp_path / "eval.json"), "--card", str(card), "--store"])
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results["modes"]) == {"full_context", "chunk_320ms", "chunk_640ms", "chunk_1280ms"}
    assert set(results["modes"]["full_context"]["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}
    assert set(results["streamed_auto"]["per_locale"]) == {"zh-CN", "yue-HK", "en-US"}  # the WebSocket default
    assert "Streamed with `locale=auto`" in card.read_text()
    assert results["streamed_auto_full_context_finals"]["full_context_finals"] is True  # the stream option, measured
    assert "The same streams with `full_context_finals`" in card.read_text()
    assert "Trained on synthetic speech only" in card.read_text()
    assert "| 6-10 |" in card.read_text() and "| train.jsonl (0.0" in card.read_text()  # the training runs table
    assert load_checkpoint(averaged).metadata["evaluation"]["utterances"] == results["utterances"]


def test_spec_augment_masks_whole_bands_and_spans_inside_each_utterance():
    from model.training.dataset import SpecAugment

    augment = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=40)
    lengths = torch.tensor([300, 120, 17])
    features = torch.randn(3, 300, 80) + 50  # far from the mean, so masked cells are recognisable
    for row, length in enumerate(lengths):
        features[row, length:] = 0
    mean = torch.full((80,), -7.0)
    out = augment(features, lengths, mean, torch.Generator().manual_seed(0))
    masked = out == -7.0
    for row, length in enumerate(lengths.tolist()):
        assert not masked[row, length:].any()  # padding stays zero
        inside = masked[row, :length]
        bands = inside.all(0)  # frequency masks cover every frame of the utterance
        spans = inside.all(1)  # time masks cover every coefficient
        assert int(bands.sum()) <= 2 * 10 and int(spans.sum()) <= 2 * min(40, length // 5)
        assert torch.equal(inside, bands[None, :] | spans[:, None])  # nothing else is touched
    counts = [int((augment(features, lengths, mean, torch.Generator().manual_seed(s)) == -7.0).sum())
              for s in range(20)]
    assert len(set(counts)) > 1 and max(counts) > 0  # random widths and places


def test_online_training_renders_its_plan_while_it_trains(tmp_path):
    """Synthesis while training: the trainer renders the plan's dev split, continues a checkpoint on train jobs
    rendered by worker processes, and records what it rendered as the training data."""
    from model.corpus.build import export_plan

    corpus = tmp_path / "corpus"
    cfg = BuildConfig(out=corpus, hours_per_locale=0.004, jobs=1, seed=1, dev_sentences=2, test_sentences=2,
                      max_sentences=30)
    export_plan(cfg, tmp_path / "plan.jsonl.gz", ("train", "dev"))
    base = tmp_path / "base"
    base.mkdir()
    build(cfg)
    train_main(["--config", write_config(base, corpus, 2)])
    train_main(["--config", str(base / "train.toml"), "--average", "1", "--export", str(tmp_path / "base.pt")])

    online = tmp_path / "online"
    online.mkdir()
    extra = (f'init_checkpoint = "{tmp_path / "base.pt"}"\nonline_plan = "{tmp_path / "plan.jsonl.gz"}"\n'
             'synthesis_workers = 2\nonline_start_hours = 0.001\nlr_schedule = "cosine"\n')
    train_main(["--config", write_config(online, corpus, 6, extra)])
    payload = torch.load(online / "run" / "last.pt", weights_only=True)
    assert payload["trainer"]["step"] == 6
    data = payload["model"]["metadata"]["training_data"]
    assert data["synthesised_during_training"] == {"plan": "plan.jsonl.gz", "failed_jobs": 0}
    assert data["utterances"] > 0 and set(data["hours_per_locale"]) <= {"zh-CN", "yue-HK", "en-US"}
    assert payload["model"]["metadata"]["earlier_training_data"][0]["utterances"] > 0
    log = [json.loads(line) for line in (online / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["final"] and "zh-CN" in log[-1]["dev"]["full"]["per_locale"]


def test_cosine_schedule_warms_up_then_decays_to_its_floor_at_the_time_budget():
    from model.training.train import learning_rate
    from model.training.train_config import TrainConfig

    config = TrainConfig("", "", lr_schedule="cosine", peak_lr=1e-3, warmup_steps=10, final_lr_fraction=0.05)
    assert learning_rate(config, 5000, 1, 0.0) == pytest.approx(1e-4)  # run steps warm up, not the global step
    assert learning_rate(config, 5000, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 5000, 500, 0.5) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert learning_rate(config, 5000, 900, 1.0) == learning_rate(config, 5000, 900, 3.0) == pytest.approx(5e-5)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig.from_dict({"train_manifest": "", "dev_manifest": "", "lr_schedule": "linear"})
    config = TrainConfig.from_toml("model/configs/synth_small.toml", ["lr_schedule='cosine'", "peak_lr=8e-4"])
    assert config.peak_lr == 8e-4


def test_every_shipped_config_describes_the_synthetic_voices_network():
    """The configs (the espeak-ng-only recipe) continue the synthetic-voices model: same encoder and decoder, and its
    tonal-syllable head on the layer they train it on (a config that disagreed would grow or re-read a network that
    was never meant to)."""
    from glob import glob

    from model.training.train_config import TrainConfig

    bundled = load_checkpoint("synthetic-voices").model.config
    for path in sorted(glob("model/configs/*.toml")):
        config = TrainConfig.from_toml(path)
        assert config.encoder == bundled.encoder and config.decoder == bundled.decoder, path
        assert config.syllable_ctc_weight > 0 and config.syllable_layer == bundled.syllable_layer, path
    assert len(bundled.syllables) > 1000  # pinyin and Jyutping syllables with tones


def test_locale_sampling_weights_are_a_toml_table_of_non_negative_numbers():
    from model.training.train_config import TrainConfig

    with pytest.raises(ValueError, match="locale_sampling_weights"):
        TrainConfig.from_dict({"train_manifest": "", "dev_manifest": "", "locale_sampling_weights": {"en-US": -1}})
    weighted = TrainConfig.from_toml("model/configs/synth_small.toml", ['locale_sampling_weights={"en-US"=1.5}'])
    assert weighted.locale_sampling_weights == {"en-US": 1.5}


def test_continuing_with_pitch_grows_the_model_and_its_pitch_path_learns_faster(tiny_corpus, tmp_path):
    """A released MFCC-only model continued under a config with pitch_dim: the model is grown (model.network.model.
    with_pitch_input), the new path trains in its own optimizer group at pitch_lr_scale times the rate."""
    train_main(["--config", write_config(tmp_path, tiny_corpus, 4)])
    released = tmp_path / "released.pt"
    train_main(["--config", str(tmp_path / "train.toml"), "--average", "2", "--export", str(released)])
    assert load_checkpoint(released).model.config.encoder.pitch_dim == 0
    grown = tmp_path / "grown"
    grown.mkdir()
    config = write_config(grown, tiny_corpus, 7, f'init_checkpoint = "{released}"\npitch_lr_scale = 10.0\n')
    Path(config).write_text(Path(config).read_text().replace("[encoder]\n", "[encoder]\npitch_dim = 2\n", 1))
    train_main(["--config", config])
    payload = torch.load(grown / "run" / "last.pt", weights_only=True)
    assert payload["trainer"]["step"] == 7
    assert payload["model"]["config"]["encoder"]["pitch_dim"] == 2
    assert payload["model"]["state_dict"]["encoder.subsampling.pitch.weight"].abs().sum() > 0  # it trained
    groups = payload["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])

    # Continued again with a voicing gate: a new pitch path, and the log F0 column normalised by voiced frames.
    with_pitch = grown / "with_pitch.pt"
    train_main(["--config", config, "--average", "1", "--export", str(with_pitch)])
    regated = tmp_path / "regated"
    regated.mkdir()
    config = write_config(regated, tiny_corpus, 9, f'init_checkpoint = "{with_pitch}"\npitch_lr_scale = 10.0\n')
    Path(config).write_text(Path(config).read_text().replace("[encoder]\n",
                                                             "[encoder]\npitch_dim = 2\npitch_voicing_gate = 0.6\n", 1))
    train_main(["--config", config])
    before_loaded = load_checkpoint(with_pitch)
    before, before_runs = before_loaded.model, before_loaded.metadata["trainer"]["runs"]
    last = torch.load(regated / "run" / "last.pt", weights_only=True)
    after, runs = last["model"], last["trainer"]["runs"]
    assert after["config"]["encoder"]["pitch_voicing_gate"] == 0.6 and before.config.encoder.pitch_voicing_gate == 0.0
    weights = after["state_dict"]
    assert runs[:-1] == before_runs  # the released model's history carries on
    assert runs[-1]["first_step"] == 7 and runs[-1]["note"] == "new pitch path (voicing gate 0.6)"
    assert weights["encoder.subsampling.pitch.weight"].abs().sum() > 0  # it trained again from zero
    assert torch.equal(weights["cmvn_mean"][: N_MFCC + 1], before.cmvn_mean[: N_MFCC + 1])
    assert float(weights["cmvn_istd"][N_MFCC + 1]) != float(before.cmvn_istd[N_MFCC + 1])

    # Continued once more with the relative log F0 channel, and English drawn 1.5 times per epoch: the pitch kernel
    # gains a third input channel that starts at zero and trains; the run's row says both.
    regated_export = regated / "regated.pt"
    train_main(["--config", config, "--average", "1", "--export", str(regated_export)])
    relative = tmp_path / "relative"
    relative.mkdir()
    extra = (f'init_checkpoint = "{regated_export}"\npitch_lr_scale = 10.0\n'
             'locale_sampling_weights = { "en-US" = 1.5 }\n')
    config = write_config(relative, tiny_corpus, 11, extra)
    Path(config).write_text(Path(config).read_text().replace(
        "[encoder]\n", "[encoder]\npitch_dim = 2\npitch_voicing_gate = 0.6\nrelative_pitch_prior_frames = 50.0\n", 1))
    train_main(["--config", config])
    last = torch.load(relative / "run" / "last.pt", weights_only=True)
    kernel = last["model"]["state_dict"]["encoder.subsampling.pitch.weight"]
    assert last["model"]["config"]["encoder"]["relative_pitch_prior_frames"] == 50.0 and kernel.shape[1] == 3
    assert kernel[:, 2].abs().sum() > 0  # the new channel trained from zero
    assert last["trainer"]["runs"][-1]["note"] == "new relative pitch channel (prior 50 frames); sampling en-US x1.5"


def test_data_parallel_training_through_torchrun_shares_steps_and_checkpoints_once(tiny_corpus, tmp_path):
    """`torchrun --nproc-per-node 2` on CPU (gloo): both ranks take the same number of steps on disjoint batches,
    rank 0 alone writes the checkpoint, the audio of both ranks is counted, and a DDP run resumes like any other."""
    import subprocess
    import sys

    # with the tonal-syllable head, whose loss skips English rows: every rank must still reduce its parameters
    config = write_config(tmp_path, tiny_corpus, 4, "syllable_ctc_weight = 0.3\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "model.training.train", "--config", config]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert finished.returncode == 0, finished.stderr[-3000:]
    trainer = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert trainer["step"] == 4
    assert trainer["runs"][-1]["device"] == "cpu x2"
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]["config"]["syllable_layer"] == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["final"]  # one log, written by rank 0 only: no duplicated lines
    assert len([entry for entry in log if entry.get("final")]) == 1

    single = tmp_path / "single"  # the same 4 steps in one process see about half the audio of two ranks
    single.mkdir()
    train_main(["--config", write_config(single, tiny_corpus, 4)])
    alone = torch.load(single / "run" / "last.pt", weights_only=True)["trainer"]
    assert 1.3 * alone["audio_hours"] < trainer["audio_hours"] < 3.0 * alone["audio_hours"]

    resumed = subprocess.run([*command[:-1], write_config(tmp_path, tiny_corpus, 6)], capture_output=True, text=True,
                             timeout=600, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trainer = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert trainer["step"] == 6 and [(r["first_step"], r["last_step"]) for r in trainer["runs"]] == [(0, 4), (4, 6)]


def test_sigterm_stops_training_after_its_step_with_a_checkpoint_and_no_error(tiny_corpus, tmp_path):
    """A preempted job (SIGTERM, as schedulers and torchrun send) keeps the steps it took since the last periodic
    checkpoint: the trainer finishes the step, writes last.pt, skips the final evaluation and exits with 0."""
    import signal
    import subprocess
    import sys
    import time

    config = write_config(tmp_path, tiny_corpus, 1_000_000)
    no_periodic = ["--set", "checkpoint_every_minutes=600.0", "--set", "eval_every_minutes=600.0"]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "model.training.train", "--config", config, *no_periodic],
                                   cwd=ROOT, stderr=stderr)
        # into the training loop: the trainer logs every 100 steps, so a log line means steps were taken (a fixed
        # sleep is not enough on a loaded machine, where the first step may come late)
        deadline, log_path = time.monotonic() + 300, tmp_path / "run" / "log.jsonl"
        while not (log_path.exists() and log_path.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    trainer = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert 0 < trainer["step"] < 1_000_000
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stopped_by"] == "SIGTERM" and log[-1]["step"] == trainer["step"]
    assert not any(entry.get("final") for entry in log)



def test_a_release_exported_with_history_from_continues_the_previous_release_history():
    """A run initialised from a float32 average carries that average's (incomplete) history; exported with
    --history-from, the release tells the previous release's runs and data, then this run's own runs."""
    from model.training.train import with_release_history

    previous = {"name": "m", "version": "0.8.0", "metadata": {
        "trainer": {"runs": [{"first_step": 0, "last_step": 100}, {"first_step": 100, "last_step": 200}]},
        "training_data": {"hours_per_locale": {"zh-CN": 1.0}},
        "earlier_training_data": [{"model": "m 0.7.0"}]}}
    intermediate = {"trainer": {"step": 300, "runs": [{"first_step": 0, "last_step": 200, "note": "lumped"},
                                                      {"first_step": 200, "last_step": 300}]},
                    "training_data": {"hours_per_locale": {"zh-CN": 2.0}},
                    "earlier_training_data": [{"model": "m 0.8.0"}, {"model": "m 0.8.0"}]}
    merged = with_release_history(intermediate, previous)
    assert [(r["first_step"], r["last_step"]) for r in merged["trainer"]["runs"]] == [(0, 100), (100, 200), (200, 300)]
    assert [e["model"] for e in merged["earlier_training_data"]] == ["m 0.7.0", "m 0.8.0"]
    assert merged["earlier_training_data"][-1]["hours_per_locale"] == {"zh-CN": 1.0}
    assert merged["trainer"]["step"] == 300 and merged["training_data"] == intermediate["training_data"]
    again = with_release_history(intermediate, {"name": "m", "version": "0.9.0", "metadata": merged}, ("m", "0.9.0"))
    assert again["trainer"]["runs"] == merged["trainer"]["runs"]  # `make bundle` run twice: the same history
    assert again["earlier_training_data"] == merged["earlier_training_data"]


def test_a_continued_model_skips_training_sentences_its_token_table_cannot_spell():
    """A new corpus under a released model (e.g. one rendered with another --train-seed) can hold characters that
    model never had a token for: training on them would teach <unk>, so they are left out, offsets intact."""
    import numpy as np

    from model.training.dataset import FeatureCorpus
    from model.training.train import spellable

    tokenizer = load_checkpoint(Path("model/checkpoints/default.pt")).tokenizer
    rows = [{"id": "a", "offset": 0, "frames": 2, "text": "今天天气很好", "locale": "zh-CN"},
            {"id": "b", "offset": 2, "frames": 3, "text": "今天𪚥很好", "locale": "zh-CN"},
            {"id": "c", "offset": 5, "frames": 1, "text": "good morning", "locale": "en-US"}]
    corpus = FeatureCorpus(np.arange(12, dtype=np.float16).reshape(6, 2), rows)
    kept = spellable(corpus, tokenizer)
    assert [row["id"] for row in kept.rows] == ["a", "c"]
    assert kept.utterance_frames(1).tolist() == [[10.0, 11.0]]  # row "c" still reads its own frames


def test_average_interpolated_with_the_starting_model_mixes_weights_and_says_so(tmp_path):
    """`--interpolate-with START --interpolation-weight W` exports W x (the snapshots' average) + (1 - W) x START;
    integer buffers stay the run's, and the checkpoint records what it was mixed with."""
    def payload(value: float, version: str) -> dict:
        return {"name": "m", "version": version, "metadata": {},
                "state_dict": {"w": torch.full((2, 3), value), "steps": torch.tensor([7])}}
    run = tmp_path / "run"
    run.mkdir()
    torch.save(payload(2.0, "s"), run / "snapshot_0000010.pt")
    torch.save(payload(4.0, "s"), run / "snapshot_0000020.pt")
    start = payload(1.0, "0.9.0")
    start["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in start["state_dict"].items()}
    torch.save(start, tmp_path / "start.pt")  # a float16 release mixes into a float32 average
    for weight, expected in [(1.0, 3.0), (0.0, 1.0), (0.5, 2.0), (0.25, 1.5)]:
        out = average_snapshots(run, tmp_path / "mixed.pt", 2, interpolate_with=tmp_path / "start.pt",
                                interpolation_weight=weight)
        mixed = torch.load(out, weights_only=True)
        assert torch.allclose(mixed["state_dict"]["w"], torch.full((2, 3), expected))
        assert mixed["state_dict"]["w"].dtype == torch.float32 and mixed["state_dict"]["steps"].tolist() == [7]
        assert mixed["metadata"]["interpolated_with"] == {"model": "m 0.9.0", "file": "start.pt",
                                                          "weight_of_average": weight}
    # the model card says how the released weights were made
    assert averaging_words(mixed["metadata"]) == ("the last snapshots averaged, then mixed with m 0.9.0 (0.25 x the "
                                                  "average + 0.75 x m 0.9.0, `--interpolate-with`).")
    assert averaging_words({}) == "the last snapshots averaged."


def test_interpolation_refuses_other_networks_and_weights_outside_0_1():
    ours = {"w": torch.zeros(2, 3)}
    with pytest.raises(ValueError, match="different parameters"):
        interpolate_weights(ours, {"v": torch.zeros(2, 3)}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_weights(ours, {"w": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(ValueError, match="weight"):
        interpolate_weights(ours, {"w": torch.zeros(2, 3)}, 1.5)
