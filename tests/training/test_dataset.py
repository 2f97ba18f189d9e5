"""The feature cache follows its manifest: kept when the manifest is unchanged, extended (computing only the new
utterances) when the corpus grows, and replaced by rename so that a reader of the old cache is undisturbed."""

import numpy as np
import soundfile
import torch

from model.corpus.manifest import Utterance, write_manifest
from model.frontend.audio import load_audio_file
from model.frontend.features import FEATURE_DIM, FeatureExtractor
from model.training.dataset import FeatureCorpus, build_feature_cache


def write_corpus(folder, count: int) -> list[Utterance]:
    rng = np.random.default_rng(0)
    utterances = []
    for index in range(count):
        seconds = 0.3 + 0.1 * index
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (120 + 20 * index) * t) + 0.01 * rng.standard_normal(len(t))
        soundfile.write(folder / f"u{index}.wav", audio.astype(np.float32), 16000)
        utterances.append(Utterance(f"u{index}", f"u{index}.wav", "a b", "en-US", "v", seconds))
    return utterances


def test_a_grown_corpus_extends_the_cache_and_an_unchanged_one_keeps_it(tmp_path):
    utterances = write_corpus(tmp_path, 5)
    extractor = FeatureExtractor()
    expected = {u.id: extractor(load_audio_file(str(tmp_path / u.audio))).half().float() for u in utterances}
    write_manifest(tmp_path / "train.jsonl", utterances[:3])
    cache = tmp_path / "cache"
    build_feature_cache(tmp_path / "train.jsonl", cache, "train", jobs=1)
    first = FeatureCorpus.open(cache, "train")  # memory-maps the first cache, like a running trainer
    written = (cache / "train.features.npy").stat()

    build_feature_cache(tmp_path / "train.jsonl", cache, "train", jobs=1)
    assert (cache / "train.features.npy").stat().st_ino == written.st_ino  # same utterances: kept as it was

    for u in utterances[:3]:  # the cached utterances' audio is gone: only the new ones can be computed
        (tmp_path / u.audio).unlink()
    write_manifest(tmp_path / "train.jsonl", [utterances[3], *utterances[:3], utterances[4]])
    grown = FeatureCorpus.open(build_feature_cache(tmp_path / "train.jsonl", cache, "train", jobs=1).parent, "train")
    assert [row["id"] for row in grown.rows] == ["u3", "u0", "u1", "u2", "u4"]
    for index, row in enumerate(grown.rows):
        torch.testing.assert_close(grown.utterance_features(index), expected[row["id"]])
    torch.testing.assert_close(first.utterance_features(2), expected["u2"])  # the old map still reads the old file


def test_a_cache_of_another_width_is_rebuilt(tmp_path):
    write_manifest(tmp_path / "train.jsonl", write_corpus(tmp_path, 2))
    cache = tmp_path / "cache"
    build_feature_cache(tmp_path / "train.jsonl", cache, "train", jobs=1)
    np.save(cache / "train.features.npy", np.zeros((10, FEATURE_DIM - 2), np.float16))  # an MFCC-only cache
    build_feature_cache(tmp_path / "train.jsonl", cache, "train", jobs=1)
    rebuilt = FeatureCorpus.open(cache, "train")
    assert rebuilt.features.shape[1] == FEATURE_DIM
    assert rebuilt.utterance_features(1).abs().sum() > 0


def test_an_empty_manifest_gives_an_empty_cache(tmp_path):
    write_manifest(tmp_path / "train.jsonl", [])
    corpus = FeatureCorpus.open(build_feature_cache(tmp_path / "train.jsonl", tmp_path / "cache", "train", 1).parent,
                                "train")
    assert corpus.rows == [] and corpus.features.shape == (0, FEATURE_DIM)


def test_cmvn_samples_the_whole_cache_and_gated_log_f0_takes_voiced_statistics():
    """The cache follows the manifest's order, one locale after another, so CMVN samples every k-th frame rather
    than a prefix; through a voicing gate the log F0 column's statistics are those of voiced frames only."""
    from model.frontend.features import N_MFCC

    rng = np.random.default_rng(0)
    frames = 1000
    features = rng.standard_normal((frames, FEATURE_DIM)).astype(np.float16)
    features[frames // 2 :, :N_MFCC] += 4  # a second "locale" with other spectra
    voicing = rng.uniform(0, 1, frames)
    features[:, N_MFCC] = voicing
    features[:, N_MFCC + 1] = np.where(voicing >= 0.6, rng.normal(0.1, 0.2, frames), rng.uniform(-1, 1.2, frames))
    corpus = FeatureCorpus(features, [])
    mean, istd = corpus.cmvn(max_frames=250)
    assert abs(float(mean[0]) - 2.0) < 0.4  # both halves sampled; a 250-frame prefix would give about 0
    gated_mean, gated_istd = corpus.cmvn(max_frames=frames, pitch_voicing_gate=0.6)
    voiced = features[voicing >= 0.6, N_MFCC + 1].astype(np.float64)
    assert abs(float(gated_mean[N_MFCC + 1]) - voiced.mean()) < 1e-4
    assert abs(1 / float(gated_istd[N_MFCC + 1]) - voiced.std(ddof=1)) < 1e-4
    plain_mean, plain_istd = corpus.cmvn(max_frames=frames)
    assert torch.equal(gated_mean[: N_MFCC + 1], plain_mean[: N_MFCC + 1])
    assert float(gated_istd[N_MFCC + 1]) > 2 * float(plain_istd[N_MFCC + 1])  # the noise is gone from its spread


def test_locale_weights_draw_each_locale_that_many_times_per_epoch():
    """`locale_sampling_weights`: an utterance of a locale weighted 1.5 is drawn once, and a second time with
    probability 0.5; weight 0 leaves a locale out; an unnamed locale is drawn once. Batches still respect the frame
    budget and every draw lands in exactly one batch."""
    from model.training.dataset import length_batches, utterance_weights

    rows = [{"locale": locale, "frames": 100 + i % 50} for i, locale in enumerate(["en-US", "zh-CN", "yue-HK"] * 2000)]
    weights = utterance_weights(rows, {"en-US": 1.5, "yue-HK": 0.0})
    batches = length_batches(np.array([r["frames"] for r in rows]), 2_000, np.random.default_rng(0), weights=weights)
    drawn = np.array([i for batch in batches for i in batch])
    per_locale = {loc: int(sum(rows[i]["locale"] == loc for i in drawn)) for loc in ("en-US", "zh-CN", "yue-HK")}
    assert per_locale["zh-CN"] == 2000 and per_locale["yue-HK"] == 0
    assert 2900 < per_locale["en-US"] < 3100  # 2000 * 1.5 expected; binomial std 22
    assert np.bincount(drawn).max() == 2
    assert all(len(b) * max(rows[i]["frames"] for i in b) <= 2_000 for b in batches)
    assert utterance_weights(rows, {}) is None
